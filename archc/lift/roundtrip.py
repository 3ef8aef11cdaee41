"""The proof of a lifted spec: compiled, built, the original's state_dict loaded strictly, outputs compared."""

from __future__ import annotations

import torch

from ..errors import SpecError
from .errors import LiftError


def build(text: str, path: str = "lifted.arch"):
    from ..spec import load

    try:
        spec = load(path, text=text)
        return spec.build(spec.default_variant())
    except SpecError as e:
        raise LiftError(f"the lifted spec does not compile (a fault of the lifter):\n{e}") from None


def verify(text: str, model, example, path: str = "lifted.arch") -> None:
    rebuilt = build(text, path)
    try:
        rebuilt.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as e:
        raise LiftError(f"the original's weights do not load into the lifted network: {e}") from None
    model.eval()
    rebuilt.eval()
    with torch.no_grad():
        want, got = model(example), rebuilt(example)
    if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor) or want.shape != got.shape:
        raise LiftError("the lifted network's output differs in kind or shape from the original's")
    if not torch.equal(want, got):
        diff = (want - got).abs().max().item()
        raise LiftError(f"the lifted network's outputs differ from the original's (largest difference {diff:.3g})")
