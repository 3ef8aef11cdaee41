"""Checks of a spec's variants against timm's models, shared by the timm families (deit, mlp_mixer, resmlp, ...):
the same parameter counts and state_dict keys, equal outputs for every tensor drawn at random, and (where the
spec carries timm's initialisation) the same tensors for the same seed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import timm
import torch
from archtest import ROOT, count_params, spec
from torch import nn


def image(batch: int = 2, size: int = 224) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def reference(variant: str, draw: Callable[[str, torch.Tensor, torch.Generator], None]) -> nn.Module:
    """timm's model, randomly initialised, then ``draw(name, tensor, generator)`` on every parameter (so that the
    tensors timm starts at a constant show in the output), in eval mode."""
    torch.manual_seed(0)
    model = timm.create_model(variant, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            draw(name, tensor, generator)
    return model.eval()


def draw_batchnorms(name: str, tensor: torch.Tensor, generator: torch.Generator) -> None:
    """A ``draw`` for ``reference``: the BatchNorms' affine terms away from 1 and 0 (every 1-D tensor but the
    classifier's, ``fc``; the convs' tensors are random already)."""
    if tensor.dim() == 1 and not name.startswith("fc"):
        tensor.uniform_(0.5, 1.5, generator=generator) if name.endswith("weight") else \
            tensor.normal_(0, 0.2, generator=generator)


def generated_module(spec_name: str):
    """``generated/<spec_name>.py``, the checked-in file, imported."""
    found = importlib.util.spec_from_file_location(f"generated_{spec_name}", ROOT / "generated" / f"{spec_name}.py")
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


def assert_counts_and_keys(spec_name: str, variant: str, params: int, ordered: bool = True) -> None:
    """On the meta device: our count, timm's and the graph's are ``params``; the state_dict keys are timm's, in its
    order (or, where not ``ordered``, as a set: strict loading does not mind the order)."""
    s = spec(spec_name)
    with torch.device("meta"):
        model, ref = s.build(variant), timm.create_model(variant, pretrained=False)
    assert count_params(model) == count_params(ref) == s.graph(variant).params == params
    ours, theirs = list(model.state_dict()), list(ref.state_dict())
    assert ours == theirs if ordered else sorted(ours) == sorted(theirs)


def starts_as_timm(s, variant: str, seed: int = 7) -> bool:
    """Whether the spec's model and timm's hold the same tensors after the same seed."""
    torch.manual_seed(seed)
    ours = s.build(variant).state_dict()
    torch.manual_seed(seed)
    theirs = timm.create_model(variant, pretrained=False).state_dict()
    return all(torch.equal(ours[k], theirs[k]) for k in theirs)
