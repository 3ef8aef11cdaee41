"""Elementwise math: abs, sign, exp, log, log2 and clamp of every entry, torch's functions of those names.

Swin V2 is written with them: its log-spaced relative coordinates are ``sign(t) * log2(abs(t) + 1) / 3`` and its
attention's logit scale is ``exp(clamp(s, max = log(100)))``. Like the numeric primitives (``ops.numeric``) they take
a tensor of any layout and keep its shape. Each ``run`` is written from the definition, not from the torch call the
code generator writes: abs and sign by comparisons, log2 as log over log 2, clamp by picking entries.
"""

from __future__ import annotations

import math

from ..sema.layout import TensorType
from .base import ANY, INPUT, NOTHING, OUTPUT, Args, Finite, NoArgs, OpKind, ShapeError, _register, _same


def _abs(x):
    import torch

    return torch.where(x < 0, -x, x)


def _sign(x):
    return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)


def _exp(x):
    import torch

    return torch.exp(x)


def _log(x):
    import torch

    return torch.log(x)


def _log2(x):
    import torch

    return torch.log(x) / math.log(2.0)


_KINDS = {  # name: (its meaning, what backward keeps, the doc)
    "abs": (_abs, INPUT, "|x| of every entry"),
    "sign": (_sign, NOTHING, "-1, 0 or 1 for every entry below, at or above 0 (its gradient is 0)"),
    "exp": (_exp, OUTPUT, "e to the power of every entry"),
    "log": (_log, INPUT, "the natural logarithm of every entry (nan below 0, -inf at 0)"),
    "log2": (_log2, INPUT, "the base-2 logarithm of every entry (nan below 0, -inf at 0)"),
}


def _kind(name: str, meaning, saves, doc: str) -> None:
    _register(OpKind(name, NoArgs, _same, layouts=ANY, functional=f"torch.{name}", view=False, doc=doc,
                     sym=lambda a, shape: shape, run=lambda m, a, t, xs, training: meaning(xs[0]),
                     keeps_output=saves is OUTPUT, saves=saves))


for _name, (_meaning, _saves, _doc) in _KINDS.items():
    _kind(_name, _meaning, _saves, _doc)


class ClampArgs(Args):
    min: Finite | None = None
    max: Finite | None = None


def _clamp_shape(a: ClampArgs, t: TensorType) -> TensorType:
    if a.min is None and a.max is None:
        raise ShapeError("clamp needs min or max", hint="clamp(x, min = 0.0), clamp(x, max = 4.6) or both")
    if a.min is not None and a.max is not None and a.min > a.max:
        raise ShapeError(f"clamp's min {a.min} is above its max {a.max}", hint="torch would give max everywhere")
    return t


def _clamp_run(m, a: dict, t, xs: list, training: bool):
    """Each entry, or the bound it passes."""
    import torch

    x = xs[0]
    if a["min"] is not None:
        x = torch.where(x < a["min"], torch.full_like(x, a["min"]), x)
    if a["max"] is not None:
        x = torch.where(x > a["max"], torch.full_like(x, a["max"]), x)
    return x


_register(OpKind(
    "clamp", ClampArgs, _clamp_shape, layouts=ANY, template="torch.clamp({x}, min={min}, max={max})", view=False,
    sym=lambda a, shape: shape, run=_clamp_run, label=lambda a: "clamp " + ", ".join(
        f"{k} {a[k]}" for k in ("min", "max") if a[k] is not None),
    doc="torch.clamp: every entry, or min where it is below min, max where it is above max (either may be left "
        "out, not both)", saves=INPUT))
