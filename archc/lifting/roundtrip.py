"""The proof of a lifted spec: compiled, built, the original's state_dict loaded strictly, outputs compared."""

from __future__ import annotations

import re

import torch

from ..errors import SpecError
from .errors import LiftError


def build(text: str, path: str = "lifted.arch", device: str | None = None, modules: dict | None = None,
          model=None):
    """The spec's network; a spec that does not compile is a ``LiftError``, which names the module whose statement
    fails where ``modules`` (block name -> (path, class) of its first instance) says which it is."""
    from ..spec import load

    try:
        spec = load(path, text=text)
        with torch.device(device or "cpu"):
            return spec.build(spec.default_variant())
    except SpecError as e:
        where = _module_of(e.errors[0], text, modules, model) if modules else None
        if where is not None:
            message = e.errors[0].message
            if re.search(r"needs .*, got \d+ x \d+ x \d+$", message):  # nest's T x N x C blocks of tokens, say
                message += " (a tensor of three dimensions that reshapes make is a C x H x W map to the language " \
                    "once a block gets it)"
            raise LiftError(f"{where}: cannot be written yet: its statement in the lifted text does not compile: "
                            f"{message}") from None
        raise LiftError(f"the lifted spec does not compile (a fault of the lifter):\n{e}") from None


def _module_of(error: SpecError, text: str, modules: dict, model=None) -> str | None:
    """``path (Class)`` of the module whose statement ``error`` points at: the statement's name in the innermost
    block the error's notes name, under that block's first instance."""
    block = next((m.group(1) for note, _ in error.notes if (m := re.match(r"in block (\w+)", note))), None)
    if block is None:  # in the network itself
        block = next((b for b, (p, _) in modules.items() if p == ""), None)
    if block not in modules or error.span is None:
        return None
    lines = text.splitlines()
    line = lines[error.span.line - 1] if 0 < error.span.line <= len(lines) else ""
    stmt = re.match(r'\s*("?)([^"\s=]+)\1 = ', line)
    path, cls = modules[block]
    if stmt is not None:
        inner = f"{path}.{stmt.group(2)}" if path else stmt.group(2)
        try:
            return f"{inner} ({type(model.get_submodule(inner)).__name__})"
        except (AttributeError, TypeError):  # a learned tensor, not a module: named under its block
            pass
    return f"{path or 'the model'} ({cls})"


def verify(text: str, model, example, path: str = "lifted.arch", modules: dict | None = None) -> None:
    """Raises unless the original's weights load strictly into the spec's network and the outputs are identical;
    on the meta device (a model too large to run), unless every key and shape of the two state_dicts agree."""
    rebuilt = build(text, path, "meta" if example.is_meta else None, modules, model)
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
