"""``einsum``: products and sums over named subscripts, as ``torch.einsum`` writes them (``"bhqd,bhkd->bhqk"``).

The equation names every axis of every operand, the batch included (the first subscript of each operand and of
the result: the batch is never moved, reduced or multiplied); ``->`` and the result may be left out, as in torch
(the subscripts written once, in alphabetical order). An axis named in two operands has one size in both, or 1
in one of them (it broadcasts). No ellipsis: every axis has its subscript, so the checker knows every size.
"""

from __future__ import annotations

import math
import re

from pydantic import field_validator

from ..lang import nodes as n
from ..sema.layout import TensorType, named
from .base import ANY, INPUTS, Args, OpKind, ShapeError, _register

_FORM = re.compile(r"[a-zA-Z]+(,[a-zA-Z]+)*(->[a-zA-Z]*)?")


class EinsumArgs(Args):
    equation: str

    @field_validator("equation")
    @classmethod
    def _written(cls, v: str) -> str:
        if not _FORM.fullmatch(v):
            raise ValueError("an equation is letters for each operand's axes, separated by commas, then '->' and "
                             "the result's (no spaces, no '...'): \"bij,bjk->bik\"")
        return v


def _parts(equation: str) -> tuple[list[str], str]:
    """The operands' subscripts and the result's (torch's implicit result: each subscript written once, sorted)."""
    left, arrow, right = equation.partition("->")
    operands = left.split(",")
    if not arrow:
        counts = {c: left.count(c) for c in left if c != ","}
        right = "".join(sorted(c for c, k in counts.items() if k == 1))
    return operands, right


def _sizes(a: EinsumArgs, shapes: list[tuple]) -> tuple[list[str], str, dict[str, object]]:
    """Each subscript's size (from the operands' shapes, batch excluded), checking the equation against them."""
    operands, result = _parts(a.equation)
    if len(operands) != len(shapes):
        raise ShapeError(f"the equation {a.equation!r} names {len(operands)} operands, given {len(shapes)}")
    batch = operands[0][0]
    for subs in [*operands, result]:
        if not subs or subs[0] != batch or batch in subs[1:]:
            raise ShapeError(f"in {a.equation!r}, the batch's subscript '{batch}' must lead every operand and the "
                             "result, once", hint="the batch is never moved, summed or multiplied")
    for subs, shape in zip(operands, shapes):
        if len(subs) != len(shape) + 1:
            raise ShapeError(f"'{subs}' names {len(subs)} axes of a tensor of {len(shape)} and the batch")
        if len(set(subs)) != len(subs):
            raise ShapeError(f"'{subs}' repeats a subscript (a diagonal), which einsum here does not take")
    if len(set(result)) != len(result):
        raise ShapeError(f"the result '{result}' repeats a subscript")
    sizes: dict[str, object] = {}
    for subs, shape in zip(operands, shapes):
        for c, size in zip(subs[1:], shape):
            known = sizes.get(c)
            if known is None or known == 1:
                sizes[c] = size
            elif size != 1 and size != known:
                raise ShapeError(f"the axis '{c}' is {known} in one operand and {size} in another",
                                 hint="an axis named in two operands has one size (or 1, which broadcasts)")
    missing = [c for c in result if c not in sizes and c != batch]
    if missing:
        raise ShapeError(f"the result's '{missing[0]}' names no operand's axis")
    return operands, result, sizes


def _shape(a: EinsumArgs, ts: tuple[TensorType, ...]) -> TensorType:
    _, result, sizes = _sizes(a, [t.shape for t in ts])
    return named(tuple(sizes[c] for c in result[1:]))


def _sym(a: dict, shapes: tuple) -> tuple | None:
    """The result's sizes as the code generator knows the operands' (the elaborator checked that they agree):
    each subscript's first known size, None where no operand's is known."""
    equation = a["equation"]
    equation = equation.value if isinstance(equation, n.Str) else equation
    if not isinstance(equation, str) or not _FORM.fullmatch(equation):
        return None
    operands, result = _parts(equation)
    sizes: dict[str, object] = {}
    for subs, shape in zip(operands, shapes):
        for c, size in zip(subs[1:], shape):
            if sizes.get(c) is None or (isinstance(sizes[c], int) and sizes[c] == 1):
                sizes[c] = size
    return tuple(sizes.get(c) for c in result[1:])


def _macs(a: EinsumArgs, ts: tuple[TensorType, ...], out: TensorType) -> int:
    """A multiply-add for every combination of the subscripts' values, where two or more operands multiply."""
    if len(ts) < 2:
        return 0
    _, _, sizes = _sizes(a, [t.shape for t in ts])
    return math.prod(sizes.values()) * (len(ts) - 1)


def _run(m, a: dict, t, xs: list, training: bool):
    """The meaning, written without einsum: each operand's axes laid out over every subscript (size 1 where it
    has none), the product of them all, summed over the subscripts the result lacks, in the result's order."""
    operands, result = _parts(a["equation"])
    letters = list(dict.fromkeys("".join(operands)))
    product = None
    for subs, x in zip(operands, xs):
        order = sorted(range(len(subs)), key=lambda i: letters.index(subs[i]))
        x = x.permute(*order)
        present = [subs[i] for i in order]
        shape = [x.shape[present.index(c)] if c in present else 1 for c in letters]
        x = x.reshape(shape)
        product = x if product is None else product * x
    summed = [i for i, c in enumerate(letters) if c not in result]
    if summed:
        product = product.sum(dim=summed)
    kept = [c for c in letters if c in result]
    return product.permute(*[kept.index(c) for c in result])


_register(OpKind(
    "einsum", EinsumArgs, _shape, layouts=ANY, template="torch.einsum({equation}, {xs})", inputs=0, sym=_sym,
    macs=_macs, run=_run,
    doc="torch.einsum over a list of tensors: the equation names every axis, the batch first "
        "(einsum([q, k], \"bhqd,bhkd->bhqk\"))", saves=INPUTS))
