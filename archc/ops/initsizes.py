"""What ``init`` rules see of a layer, as the op kinds declare it (``OpKind.init_params``, ``init_has``,
``init_sizes``): the parameters its module has for its arguments, and the sizes a rule's arguments may read, as
torch counts them (``fan_in`` and ``fan_out`` as ``nn.init``'s fans). A size is offered where the kind's torch
module holds it under that name, since the generated initialisation reads it there (``m.num_features``): a batch
norm's ``num_features``, a layer norm's ``normalized_shape``, a group norm neither."""

from __future__ import annotations

import math

from ..sema.layout import TensorType

WEIGHT_BIAS = ("weight", "bias")


def conv_sizes(a: dict, in_shape: tuple, out: TensorType) -> dict:
    """A convolution of any rank on a C x ... input: its channels, kernel and groups, and its fans."""
    k = a["kernel_size"]  # one size for every spatial axis, or one each
    kernel = (k,) * (len(in_shape) - 1) if isinstance(k, int) else tuple(k)
    c_in, area = in_shape[0], math.prod(kernel)
    return {"in_channels": c_in, "out_channels": a["out_channels"], "kernel_size": kernel, "groups": a["groups"],
            "fan_in": c_in // a["groups"] * area, "fan_out": a["out_channels"] * area}


def linear_sizes(a: dict, in_shape: tuple, out: TensorType) -> dict:
    return {"in_features": in_shape[-1], "out_features": a["out_features"], "fan_in": in_shape[-1],
            "fan_out": a["out_features"]}


def features_sizes(a: dict, in_shape: tuple, out: TensorType) -> dict:
    """A batch or instance norm's channels."""
    return {"num_features": out.features}


def shape_sizes(a: dict, in_shape: tuple, out: TensorType) -> dict:
    """A layer or RMS norm's normalised shape (the last dimension, or a map's channels)."""
    return {"normalized_shape": (out.features,)}


def bias_if(flag: str):
    """The weight, and the bias where argument ``flag`` (true by default) holds."""
    return lambda a: WEIGHT_BIAS if a.get(flag, True) else ("weight",)


def affine_if(flag: str, bias: str | None = None):
    """Both where argument ``flag`` holds (and, with ``bias``, the bias only where that one does too); else none."""
    def has(a: dict) -> tuple[str, ...]:
        if not a.get(flag, True):
            return ()
        return WEIGHT_BIAS if bias is None or a.get(bias, True) else ("weight",)

    return has
