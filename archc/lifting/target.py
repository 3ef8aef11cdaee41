"""``archc lift``'s TARGET: ``package.module:callable`` (called with ``--kwargs``), ``torchvision:NAME`` or
``timm:NAME``; the model, the input size it expects, and the variant's name."""

from __future__ import annotations

import importlib
import json

from .errors import LiftError


def resolve(target: str, kwargs_json: str | None = None) -> tuple[object, tuple[int, ...] | None, str]:
    """The model (in eval mode), its input's size where its registry says it (C, H, W), and a variant name."""
    try:
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
    except json.JSONDecodeError as e:
        raise LiftError(f"--kwargs is not JSON: {e}") from None
    if not isinstance(kwargs, dict):
        raise LiftError("--kwargs must be a JSON object: '{\"num_classes\": 10}'")
    source, sep, name = target.partition(":")
    if not sep or not source or not name:
        raise LiftError(f"'{target}' is no target: write package.module:callable, torchvision:NAME or timm:NAME")
    if source == "torchvision":
        return _torchvision(name, kwargs)
    if source == "timm":
        return _timm(name, kwargs)
    try:
        module = importlib.import_module(source)
    except ImportError as e:
        raise LiftError(f"cannot import '{source}': {e}") from None
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise LiftError(f"'{source}' has no '{name}'")
    if not callable(fn):
        raise LiftError(f"'{target}' is not callable")
    try:
        model = fn(**kwargs)
    except Exception as e:  # noqa: BLE001  (the user's constructor)
        raise LiftError(f"{target}(**kwargs) failed: {type(e).__name__}: {e}") from None
    from torch import nn

    if not isinstance(model, nn.Module):
        raise LiftError(f"{target}(**kwargs) gave a {type(model).__name__}, not a torch.nn.Module")
    return model, None, name.split(".")[-1]


def _torchvision(name: str, kwargs: dict):
    import torchvision

    try:
        model = torchvision.models.get_model(name, **kwargs)
    except (ValueError, KeyError) as e:
        raise LiftError(f"torchvision has no model '{name}': {e}") from None
    size = None
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size[0]
        size = (3, crop, crop)
    except Exception:  # noqa: BLE001  (a model without weights: the caller's default)
        pass
    return model, size, name


def _timm(name: str, kwargs: dict):
    try:
        import timm
    except ImportError:
        raise LiftError("timm is not installed (pip install timm)") from None
    try:
        model = timm.create_model(name, **kwargs)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise LiftError(f"timm cannot create '{name}': {e}") from None
    size = tuple(model.pretrained_cfg.get("input_size", ())) or None
    return model, size, name.replace(".", "_").replace("-", "_")
