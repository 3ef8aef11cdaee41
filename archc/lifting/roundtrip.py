"""The proof of a lifted spec: compiled, built, the original's state_dict loaded strictly, outputs compared."""

from __future__ import annotations

import torch

from ..errors import SpecError
from .errors import LiftError


def build(text: str, path: str = "lifted.arch", device: str | None = None):
    from ..spec import load

    try:
        spec = load(path, text=text)
        with torch.device(device or "cpu"):
            return spec.build(spec.default_variant())
    except SpecError as e:
        raise LiftError(f"the lifted spec does not compile (a fault of the lifter):\n{e}") from None


def verify(text: str, model, example, path: str = "lifted.arch") -> None:
    """Raises unless the original's weights load strictly into the spec's network and the outputs are identical;
    on the meta device (a model too large to run), unless every key and shape of the two state_dicts agree."""
    rebuilt = build(text, path, "meta" if example.is_meta else None)
    if example.is_meta:
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
        if want != got:
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
            raise LiftError(f"the lifted network's state_dict differs from the original's: missing {missing[:3]}, "
                            f"unexpected {extra[:3]}, other shapes {wrong[:3]}")
        return
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
