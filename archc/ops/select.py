"""Choosing entry by entry: ``where(condition, input, other)``, torch.where, whose condition is a tensor of
booleans (a comparison of tensors, or of a tensor and a number, in a let: ``rows >= h - ws``) and whose input
and other are each a tensor or a number. With the comparisons it writes masks as a reference computes them
(Swin's shifted windows: a region's number where a row lies past a bound, -100 where two tokens' regions differ).

Its operands are named (``OpKind.operands``): the tensors are its inputs, in order, and a number is the argument
of its operand's name. Shapes broadcast as the arithmetic of the lets does: equal sizes, or 1 in one of them, in
one layout (a tensor of unnamed axes takes the other's). ``run`` is written from the definition.
"""

from __future__ import annotations

from ..sema.layout import TensorType, broadcast
from .base import ANY, NOTHING, Args, OpKind, ShapeError, _register

Number = int | float | None


class WhereArgs(Args):
    condition: Number = None  # (always a tensor: the lowering says so where it is not)
    input: Number = None
    other: Number = None


def _where_shape(a: WhereArgs, ts) -> TensorType:
    ts = ts if isinstance(ts, tuple) else (ts,)
    out = broadcast(ts)
    if out is None:
        raise ShapeError(f"where of {' and '.join(t.describe() for t in ts)}: the shapes do not broadcast",
                         hint="sizes must be equal, or 1 in one of them, in the same layout")
    return out


def _where_sym(a: dict, ins) -> tuple | None:
    """The sizes of the input (or other, or condition) tensor, where the result keeps them (no broadcast)."""
    ins = ins if isinstance(ins, tuple) and ins and isinstance(ins[0], tuple) else (ins,)
    return ins[min(1, len(ins) - 1)]


def _where_run(m, a: dict, t, xs: list, training: bool):
    """Entry by entry: the input's where the condition holds, the other's elsewhere."""
    import torch

    tensors = iter(xs)
    condition, input, other = (next(tensors) if a.get(name) is None else a[name]
                               for name in ("condition", "input", "other"))
    return torch.where(condition, input, other)


_register(OpKind(
    "where", WhereArgs, _where_shape, layouts=ANY, template="torch.where({condition}, {input}, {other})", inputs=3,
    operands=("condition", "input", "other"), sym=_where_sym, run=_where_run,
    doc="torch.where: entry by entry, `input` where the boolean `condition` holds and `other` elsewhere; the "
        "condition is a tensor (a comparison in a let, `x > 0`), input and other each a tensor or a number",
    saves=NOTHING))
