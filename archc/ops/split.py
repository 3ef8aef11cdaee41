"""``split``: a tensor cut into parts of the given sizes along one dimension, each part a tensor of its own
(``let a, b = split(x, [3, 5], 1)`` in a block with named tensors, torch's ``x.split([3, 5], 1)``).

The graph holds one ``split`` node a part, its ``index`` saying which; the code generator writes the one call that
gives them all. The sizes must add up to the dimension's size (the message says both).
"""

from __future__ import annotations

from pydantic import Field

from ..lang import nodes as n
from ..sema.layout import TensorType
from .base import ANY, NOTHING, Args, NonNeg, OpKind, Pos, ShapeError, _register


class SplitArgs(Args):
    sizes: tuple[Pos, ...] = Field(min_length=1)
    dim: int
    index: NonNeg = 0  # which part (the elaborator sets it, one node a part)


def _axis(dim: int, rank: int) -> int:
    hint = f"dim counts the batch as 0: here 1 to {rank} (or -1 to -{rank})"
    if dim in (0, -rank - 1):
        raise ShapeError(f"dim {dim} is the batch, which split leaves alone", hint=hint)
    if not -rank <= dim <= rank:
        raise ShapeError(f"dim {dim} is out of range for a tensor of {rank} dimensions and the batch", hint=hint)
    return dim - 1 if dim > 0 else rank + dim


def _shape(a: SplitArgs, t: TensorType) -> TensorType:
    i = _axis(a.dim, len(t.shape))
    if sum(a.sizes) != t.shape[i]:
        raise ShapeError(f"the sizes {' + '.join(map(str, a.sizes))} = {sum(a.sizes)} do not add up to dimension "
                         f"{a.dim}'s size, {t.shape[i]}", hint="the parts of a split cover the whole dimension")
    if a.index >= len(a.sizes):
        raise ShapeError(f"part {a.index} of {len(a.sizes)} does not exist")
    return TensorType((*t.shape[:i], a.sizes[a.index], *t.shape[i + 1:]), t.layout)


def _sym(a: dict, shape: tuple) -> tuple | None:
    """A part's sizes as __init__ knows them: its size as written, the input's elsewhere."""
    sizes, dim, index = a.get("sizes"), a.get("dim"), a.get("index", 0)
    values = [_number(v) for v in (dim, index)]
    if not isinstance(sizes, n.ListExpr) or None in values or not -len(shape) <= values[0] <= len(shape) \
            or values[0] == 0 or not 0 <= values[1] < len(sizes.items):
        return None
    i = values[0] - 1 if values[0] > 0 else len(shape) + values[0]
    return (*shape[:i], sizes.items[values[1]], *shape[i + 1:])


def _number(v) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, n.Num) and isinstance(v.value, int):
        return v.value
    if isinstance(v, n.UnaryOp) and v.op == "-" and isinstance(v.operand, n.Num):
        return -v.operand.value
    return None


def _run(m, a: dict, t: TensorType, xs: list, training: bool):
    """The part, as a slice: it starts where the parts before it end."""
    start = sum(a["sizes"][:a["index"]])
    return xs[0].narrow(a["dim"], start, a["sizes"][a["index"]])


_register(OpKind(
    "split", SplitArgs, _shape, layouts=ANY, template="{x}.split({sizes}, {dim})", sym=_sym, run=_run, view=True,
    outputs=lambda a: len(a.sizes), label=lambda a: f"split {a['sizes']} dim {a['dim']} [{a['index']}]",
    doc="parts of the given sizes along dimension dim, each a tensor (let a, b = split(x, [3, 5], 1)); the sizes "
        "add up to the dimension's", saves=NOTHING))
