"""Tensor primitives of several inputs: the matrix product, attention, and joining tensors (``cat``, ``stack``).

They stand in the lets of blocks with named tensors, where every tensor has a name. Dimensions count as torch
counts them, the batch as 0; each has a symbolic shape rule (``sym``) as the primitives of one input
(``tensor.py``) have.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from ..lang import nodes as n
from ..sema.layout import TensorType, named
from .base import ANY, INPUTS, NOTHING, Args, OpKind, Prob, Saves, ShapeError, _register, axis
from .base import sym_axis as _sym_axis
from .tensor import _SPAN, _num


def _matmul_shape(a, ts: tuple[TensorType, ...]) -> TensorType:
    x, y = ts
    if len(x.shape) < 2 or len(y.shape) < 2:
        raise ShapeError(f"matmul needs two matrices (or stacks of them), got {x.describe()} and {y.describe()}")
    if x.shape[-1] != y.shape[-2]:
        raise ShapeError(f"{x.describe()} times {y.describe()}: {x.shape[-1]} columns against "
                         f"{y.shape[-2]} rows", hint="transpose one of them, e.g. transpose(k, -2, -1)")
    if x.shape[:-2] != y.shape[:-2]:
        raise ShapeError(f"{x.describe()} times {y.describe()}: the leading sizes differ")
    return named((*x.shape[:-1], y.shape[-1]))


def _matmul_sym(a: dict, shapes: tuple) -> tuple:
    x, y = shapes
    return (*x[:-1], y[-1])


class AttentionArgs(Args):
    dropout_p: Prob = 0.0
    is_causal: bool = False
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


def _sdpa_shape(a, ts: tuple[TensorType, ...]) -> TensorType:
    q, k, v = ts[:3]
    if not len(q.shape) == len(k.shape) == len(v.shape) or len(q.shape) < 2:
        raise ShapeError(f"q, k and v must have the same rank, at least 2: {q.describe()}, {k.describe()}, "
                         f"{v.describe()}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or q.shape[:-2] != k.shape[:-2] or \
            k.shape[:-2] != v.shape[:-2]:
        raise ShapeError(f"q {q.describe()}, k {k.describe()} and v {v.describe()} do not fit: q and k share their "
                         "last size, k and v their length, all three their leading sizes")
    if len(ts) == 4:  # an additive mask (a bias) on the scores: it broadcasts to them
        scores, mask = (*q.shape[:-1], k.shape[-2]), ts[3].shape
        if len(mask) != len(scores) or any(m not in (1, s) for m, s in zip(mask, scores)):
            raise ShapeError(f"the mask {ts[3].describe()} does not broadcast to the scores, "
                             f"{' x '.join(map(str, scores))} (q's sizes but the last, then k's length)",
                             hint="give it the scores' sizes, or 1 where it is the same along an axis")
        if a.is_causal:
            raise ShapeError("give attention a mask or is_causal, not both (PyTorch takes one)")
    return named((*q.shape[:-1], v.shape[-1]))


def _sdpa_sym(a: dict, shapes: tuple) -> tuple:
    q, v = shapes[0], shapes[2]
    return (*q[:-1], v[-1])


def _sdpa_run(m, a: dict, t, xs: list, training: bool):
    q, k, v = xs[:3]
    scale = a["scale"] if a["scale"] is not None else 1 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * scale
    if len(xs) == 4:  # a boolean mask keeps the scores where it holds; any other is added to them
        mask = xs[3]
        scores = scores.masked_fill(~mask, float("-inf")) if not mask.is_floating_point() else scores + mask
    if a["is_causal"]:
        mask = q.new_ones(q.shape[-2], k.shape[-2], dtype=bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    if training and a["dropout_p"] > 0:
        import torch.nn.functional as F

        weights = F.dropout(weights, a["dropout_p"])
    return weights @ v


class JoinArgs(Args):
    dim: int


def _cat_shape(a: JoinArgs, ts: tuple[TensorType, ...]) -> TensorType:
    first = ts[0]
    i = axis(a.dim, len(first.shape))
    for t in ts[1:]:
        if len(t.shape) != len(first.shape) or any(x != y for k, (x, y) in enumerate(zip(t.shape, first.shape))
                                                   if k != i):
            raise ShapeError(f"joining along dim {a.dim}, {first.describe()} and {t.describe()} differ elsewhere",
                             hint=f"every size but dim {a.dim}'s must be equal (and the ranks)")
    shape = list(first.shape)
    shape[i] = sum(t.shape[i] for t in ts)
    return TensorType(tuple(shape), first.layout) if all(t.layout == first.layout for t in ts) else named(tuple(shape))


def _cat_sym(a: dict, shapes: tuple) -> tuple | None:
    i = _sym_axis(a["dim"], len(shapes[0]))
    if i is None:
        return None
    total = shapes[0][i]
    for s in shapes[1:]:
        total = None if total is None or s[i] is None else n.BinOp("+", total, s[i], _SPAN)
    return (*shapes[0][:i], total, *shapes[0][i + 1:])


def _stack_shape(a: JoinArgs, ts: tuple[TensorType, ...]) -> TensorType:
    first = ts[0]
    if any(t.shape != first.shape for t in ts):
        raise ShapeError(f"the tensors stacked must have one shape, got {', '.join(t.describe() for t in ts)}",
                         hint="stack adds a dimension; to join tensors along one they have, use cat")
    i = axis(a.dim, len(first.shape) + 1)
    return named((*first.shape[:i], len(ts), *first.shape[i:]))


def _stack_sym(a: dict, shapes: tuple) -> tuple | None:
    i = _sym_axis(a["dim"], len(shapes[0]) + 1)
    return None if i is None else (*shapes[0][:i], _num(len(shapes)), *shapes[0][i:])


_register(OpKind(
    "matmul", Args, _matmul_shape, layouts=ANY, template="{x} @ {y}", inputs=2, sym=_matmul_sym,
    macs=lambda a, ts, o: math.prod(o.shape) * ts[0].shape[-1],
    run=lambda m, a, t, xs, training: xs[0] @ xs[1], doc="the matrix product of the last two dimensions",
    saves=INPUTS))
_register(OpKind(
    "scaled_dot_product_attention", AttentionArgs, _sdpa_shape, layouts=ANY, inputs=3, optional_inputs=1,
    functional="F.scaled_dot_product_attention", training_only=("dropout_p",), sym=_sdpa_sym,
    macs=lambda a, ts, o: 2 * math.prod(o.shape[:-1]) * ts[1].shape[-2] * (ts[0].shape[-1] + ts[2].shape[-1]) // 2,
    run=_sdpa_run, keeps_output=True,
    doc="softmax(q k^T * scale + mask) v over the last two dimensions; scale defaults to 1 / sqrt(q's last size); "
        "a fourth tensor is an additive mask (a bias) on the scores",
    saves=Saves((0, 1, 2, 3), True)))  # (and a number a query and head: the softmax's log-sum-exp)
_register(OpKind(
    "cat", JoinArgs, _cat_shape, layouts=ANY, template="torch.cat({xs}, {dim})", inputs=0,
    sym=_cat_sym, run=lambda m, a, t, xs, training: __import__("torch").cat(xs, a["dim"]),
    doc="joins a list of tensors along dimension dim", saves=NOTHING))
_register(OpKind(
    "stack", JoinArgs, _stack_shape, layouts=ANY, template="torch.stack({xs}, {dim})", inputs=0,
    sym=_stack_sym, run=lambda m, a, t, xs, training: __import__("torch").stack(xs, a["dim"]),
    doc="stacks a list of tensors of one shape along a new dimension dim", saves=NOTHING))
