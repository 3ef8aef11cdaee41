"""``split``: a tensor cut into parts of the given sizes along one dimension, each part a tensor of its own
(``let a, b = split(x, [3, 5], 1)`` in a block with named tensors, torch's ``x.split([3, 5], 1)``).

The graph holds one ``split`` node a part, its ``index`` saying which; the code generator writes the one call that
gives them all. The sizes must add up to the dimension's size (the message says both).
"""

from __future__ import annotations

from pydantic import Field

from ..lang import nodes as n
from ..sema.layout import TensorType
from .base import ANY, NOTHING, Args, NonNeg, OpKind, Pos, ShapeError, _register, axis, sym_axis


class SplitArgs(Args):
    sizes: tuple[Pos, ...] = Field(min_length=1)
    dim: int
    index: NonNeg = 0  # which part (the elaborator sets it, one node a part)


def _shape(a: SplitArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape), "dim")
    if sum(a.sizes) != t.shape[i]:
        raise ShapeError(f"the sizes {' + '.join(map(str, a.sizes))} = {sum(a.sizes)} do not add up to dimension "
                         f"{a.dim}'s size, {t.shape[i]}", hint="the parts of a split cover the whole dimension")
    if a.index >= len(a.sizes):
        raise ShapeError(f"part {a.index} of {len(a.sizes)} does not exist")
    return TensorType((*t.shape[:i], a.sizes[a.index], *t.shape[i + 1:]), t.layout)


def _sym(a: dict, shape: tuple) -> tuple | None:
    """A part's sizes as __init__ knows them: its size as written, the input's elsewhere."""
    sizes, index = a.get("sizes"), a.get("index", 0)
    i = sym_axis(a.get("dim"), len(shape))
    if not isinstance(sizes, n.ListExpr) or i is None or not 0 <= index < len(sizes.items):
        return None
    return (*shape[:i], sizes.items[index], *shape[i + 1:])


def _run(m, a: dict, t: TensorType, xs: list, training: bool):
    """The part, as a slice: it starts where the parts before it end."""
    start = sum(a["sizes"][:a["index"]])
    return xs[0].narrow(a["dim"], start, a["sizes"][a["index"]])


_register(OpKind(
    "split", SplitArgs, _shape, layouts=ANY, template="{x}.split({sizes}, {dim})", sym=_sym, run=_run, view=True,
    outputs=lambda a: len(a.sizes), label=lambda a: f"split {a['sizes']} dim {a['dim']} [{a['index']}]",
    doc="parts of the given sizes along dimension dim, each a tensor (let a, b = split(x, [3, 5], 1)); the sizes "
        "add up to the dimension's", saves=NOTHING))
