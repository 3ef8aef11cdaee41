"""Tensor primitives: reshapes, transposes, selections, reductions, products and joins, on tensors of any rank.

Those of one tensor stand anywhere a layer does; those of several (matmul, attention, cat, stack) in the lets
of blocks with named tensors, where every tensor has a name. Dimensions count as torch counts them, the batch
as 0 (as ``softmax`` and ``permute`` do); the batch itself is never reshaped, reduced or moved. Results of one axis are flat features, of two a token
sequence, of more a tensor of unnamed axes (``sema.layout.named``).

Each entry has, beside its shape rule, a symbolic one (``sym``) that the code generator follows in ``__init__``:
the sizes of the output's axes as expressions over the constructor's arguments, where they are known, so that
``proj = linear(dim)`` applied to ``flatten_dims(transpose(a, 1, 2), 2)`` is sized ``heads * head_dim``.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from ..lang import nodes as n
from ..sema.layout import TensorType, named
from .base import ANY, BOTH, NOTHING, Args, NonNeg, OpKind, Pos, ShapeError, _register, axis
from .base import sym_axis as _sym_axis

_SPAN = n.Span("<generated>", 1, 1, 1, 1)  # sizes __init__ works out, which no spec line wrote


def _product(sizes):
    """The product of symbolic sizes, None if one is unknown."""
    out = None
    for s in sizes:
        if s is None:
            return None
        out = s if out is None else n.BinOp("*", out, s, _SPAN)
    return out if out is not None else n.Num(1, _SPAN)


def _items(e) -> list | None:
    return list(e.items) if isinstance(e, n.ListExpr) else None


def _minus_one(e) -> bool:
    """A size written -1 (a number, or its negation as parsed)."""
    return (isinstance(e, n.Num) and e.value == -1) or (
        isinstance(e, n.UnaryOp) and e.op == "-" and isinstance(e.operand, n.Num) and e.operand.value == 1)


# ------------------------------------------------------------------ shapes


Size = Annotated[int, Field(ge=-1)]


class ReshapeArgs(Args):
    shape: tuple[Size, ...]


def _reshape_shape(a: ReshapeArgs, t: TensorType) -> TensorType:
    sizes = list(a.shape)
    total = math.prod(t.shape)
    if not sizes:
        raise ShapeError("reshape needs at least one size")
    if sizes.count(-1) > 1:
        raise ShapeError(f"at most one size of {tuple(sizes)} may be -1 (the one reshape works out)")
    if 0 in sizes:
        raise ShapeError(f"a size of {tuple(sizes)} is 0")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if total % known:
            raise ShapeError(f"{t.describe()} ({total} elements) does not divide into {tuple(sizes)}")
        sizes[sizes.index(-1)] = total // known
    elif known != total:
        raise ShapeError(f"{t.describe()} has {total} elements, {tuple(sizes)} would have {known}",
                         hint="the sizes must multiply to the input's (without the batch)")
    return named(tuple(sizes))


def _reshape_sym(a: dict, shape: tuple) -> tuple:
    items = _items(a["shape"])
    if items is None:
        return None
    if any(_minus_one(i) for i in items):
        return tuple(None if _minus_one(i) else i for i in items)
    return tuple(items)


class UnflattenArgs(Args):
    dim: int
    sizes: tuple[Size, ...]


def _unflatten_shape(a: UnflattenArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape))
    inner = _reshape_shape(ReshapeArgs(shape=a.sizes), TensorType((t.shape[i],), "F"))
    return named((*t.shape[:i], *inner.shape, *t.shape[i + 1:]))


def _unflatten_sym(a: dict, shape: tuple) -> tuple:
    i = _sym_axis(a["dim"], len(shape))
    items = _items(a["sizes"])
    if i is None or items is None:
        return None
    sizes = [None if _minus_one(s) else s for s in items]
    others = _product([s for s in sizes if s is not None])
    if None in sizes and shape[i] is not None and others is not None:  # -1: what the others leave of the axis
        sizes[sizes.index(None)] = n.BinOp("//", shape[i], others, _SPAN)
    return (*shape[:i], *sizes, *shape[i + 1:])


class TransposeArgs(Args):
    dim0: int
    dim1: int


def _transpose_shape(a: TransposeArgs, t: TensorType) -> TensorType:
    i, j = axis(a.dim0, len(t.shape), "dim0"), axis(a.dim1, len(t.shape), "dim1")
    shape = list(t.shape)
    shape[i], shape[j] = shape[j], shape[i]
    return named(tuple(shape)) if i != j else t


def _transpose_sym(a: dict, shape: tuple) -> tuple | None:
    i, j = _sym_axis(a["dim0"], len(shape)), _sym_axis(a["dim1"], len(shape))
    if i is None or j is None:
        return None
    out = list(shape)
    out[i], out[j] = out[j], out[i]
    return tuple(out)


class FlattenDimsArgs(Args):
    start_dim: int
    end_dim: int = -1


def _merge_shape(a: FlattenDimsArgs, t: TensorType) -> TensorType:
    rank = len(t.shape)
    i, j = axis(a.start_dim, rank, "start_dim"), axis(a.end_dim, rank, "end_dim")
    if j < i:
        raise ShapeError(f"end_dim {a.end_dim} comes before start_dim {a.start_dim}")
    return named((*t.shape[:i], math.prod(t.shape[i:j + 1]), *t.shape[j + 1:]))


def _merge_sym(a: dict, shape: tuple) -> tuple | None:
    rank = len(shape)
    i, j = _sym_axis(a["start_dim"], rank), _sym_axis(a.get("end_dim") or _num(-1), rank)
    if i is None or j is None:
        return None
    return (*shape[:i], _product(shape[i:j + 1]), *shape[j + 1:])


def _num(v: int):
    return n.Num(v, _SPAN)


class SelectArgs(Args):
    dim: int
    index: int


def _select_shape(a: SelectArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape))
    if not -t.shape[i] <= a.index < t.shape[i]:
        raise ShapeError(f"index {a.index} is out of range for dim {a.dim} of size {t.shape[i]}")
    if len(t.shape) == 1:
        raise ShapeError("selecting from flat features would leave the batch alone")
    return named(t.shape[:i] + t.shape[i + 1:])


def _select_sym(a: dict, shape: tuple) -> tuple | None:
    i = _sym_axis(a["dim"], len(shape))
    return None if i is None else shape[:i] + shape[i + 1:]


class NarrowArgs(Args):
    dim: int
    start: NonNeg
    length: Pos


def _narrow_shape(a: NarrowArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape))
    if a.start + a.length > t.shape[i]:
        raise ShapeError(f"{a.start} + {a.length} runs past dim {a.dim}, of size {t.shape[i]}",
                         hint="narrow(dim, start, length) keeps start to start + length - 1")
    shape = list(t.shape)
    shape[i] = a.length
    return TensorType(tuple(shape), t.layout)


def _narrow_sym(a: dict, shape: tuple) -> tuple | None:
    i = _sym_axis(a["dim"], len(shape))
    if i is None:
        return None
    out = list(shape)
    out[i] = a["length"]
    return tuple(out)


class ReduceArgs(Args):
    dim: int
    keepdim: bool = False


def _reduce_shape(a: ReduceArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape))
    if a.keepdim:
        shape = list(t.shape)
        shape[i] = 1
        return TensorType(tuple(shape), t.layout)
    if len(t.shape) == 1:
        raise ShapeError("reducing flat features without keepdim would leave the batch alone",
                         hint="keepdim = true")
    return named(t.shape[:i] + t.shape[i + 1:])


def _reduce_sym(a: dict, shape: tuple) -> tuple | None:
    i = _sym_axis(a["dim"], len(shape))
    keep = a.get("keepdim")
    if i is None or (keep is not None and not isinstance(keep, n.Const)):
        return None
    if keep is not None and keep.value:
        return (*shape[:i], _num(1), *shape[i + 1:])
    return shape[:i] + shape[i + 1:]


def _run(f):
    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        return f(xs, a)

    return run


def _reshape_run(xs, a):
    x = xs[0]
    sizes = list(a["shape"])
    if -1 in sizes:
        sizes[sizes.index(-1)] = x[0].numel() // math.prod(s for s in sizes if s != -1)
    return x.reshape(x.shape[0], *sizes)


def _unflatten_run(xs, a):
    x = xs[0]
    i = a["dim"] if a["dim"] > 0 else x.dim() + a["dim"]
    sizes = list(a["sizes"])
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[i] // math.prod(s for s in sizes if s != -1)
    return x.reshape(*x.shape[:i], *sizes, *x.shape[i + 1:])


def _merge_run(xs, a):
    x = xs[0]
    i = a["start_dim"] if a["start_dim"] > 0 else x.dim() + a["start_dim"]
    j = a["end_dim"] if a["end_dim"] > 0 else x.dim() + a["end_dim"]
    return x.reshape(*x.shape[:i], -1, *x.shape[j + 1:])


def _reduce_run(how: str):
    def run(xs, a):
        x, dim = xs[0], a["dim"]
        if how == "sum":
            return x.sum(dim, keepdim=a["keepdim"])
        if how == "mean":
            return x.sum(dim, keepdim=a["keepdim"]) / x.shape[dim]
        return x.max(dim, keepdim=a["keepdim"]).values

    return run


def _primitive(name: str, args, shape, template: str, sym, run, doc: str, view: bool = True, saves=NOTHING,
               reshapes: bool = False, scatters: bool = False) -> None:
    """A primitive of one tensor, of any layout."""
    _register(OpKind(name, args, shape, layouts=ANY, template=template, view=view, sym=sym,
                     run=_run(run), doc=doc, saves=saves, reshapes=reshapes, scatters=scatters))


_primitive("reshape", ReshapeArgs, _reshape_shape, "{x}.reshape({x}.shape[0], *{shape})", _reshape_sym, _reshape_run,
           "the same elements in the sizes given (the batch kept; one size may be -1, worked out)", reshapes=True)
_primitive("unflatten", UnflattenArgs, _unflatten_shape, "{x}.unflatten({dim}, {sizes})", _unflatten_sym,
           _unflatten_run, "splits dimension dim into the sizes given (one may be -1)")
_primitive("flatten_dims", FlattenDimsArgs, _merge_shape, "{x}.flatten({start_dim}, {end_dim})", _merge_sym,
           _merge_run, "merges dimensions start_dim to end_dim into one (torch's flatten with its dims)",
           reshapes=True)
_primitive("transpose", TransposeArgs, _transpose_shape, "{x}.transpose({dim0}, {dim1})", _transpose_sym,
           lambda xs, a: xs[0].transpose(a["dim0"], a["dim1"]), "swaps two dimensions", scatters=True)
_primitive("select", SelectArgs, _select_shape, "{x}.select({dim}, {index})", _select_sym,
           lambda xs, a: xs[0].select(a["dim"], a["index"]),
           "index `index` of dimension dim, which goes (q, k and v out of a packed projection)", scatters=True)
_primitive("narrow", NarrowArgs, _narrow_shape, "{x}.narrow({dim}, {start}, {length})", _narrow_sym,
           lambda xs, a: xs[0].narrow(a["dim"], a["start"], a["length"]),
           "length entries of dimension dim from start on: a slice, as uneven as wanted", scatters=True)
for _how, _doc in (("sum", "the sum"), ("mean", "the mean"), ("amax", "the maximum")):
    _primitive(_how, ReduceArgs, _reduce_shape, f"{{x}}.{_how}({{dim}}, keepdim={{keepdim}})", _reduce_sym,
               _reduce_run(_how), f"{_doc} over dimension dim (kept as size 1 with keepdim)", view=False,
               saves=BOTH if _how == "amax" else NOTHING)  # where the maximum was: the input against the output


class VectorNormArgs(Args):
    dim: int | tuple[int, ...]
    ord: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2.0
    keepdim: bool = False


def _norm_axes(a: VectorNormArgs, rank: int) -> set[int]:
    dims = (a.dim,) if isinstance(a.dim, int) else a.dim
    if not dims:
        raise ShapeError("no dim to take the norm over", hint="dim = (2, 3): over the H x W of a map")
    axes = [axis(d, rank) for d in dims]
    if len(set(axes)) < len(axes):
        raise ShapeError(f"dim {a.dim} names a dimension twice")
    return set(axes)


def _norm_shape(a: VectorNormArgs, t: TensorType) -> TensorType:
    axes = _norm_axes(a, len(t.shape))
    if a.keepdim:
        return TensorType(tuple(1 if i in axes else s for i, s in enumerate(t.shape)), t.layout)
    if len(axes) == len(t.shape):
        raise ShapeError("reducing every dimension without keepdim would leave the batch alone",
                         hint="keepdim = true")
    return named(tuple(s for i, s in enumerate(t.shape) if i not in axes))


def _norm_sym(a: dict, shape: tuple) -> tuple | None:
    dims = _items(a["dim"]) or [a["dim"]]
    axes = [_sym_axis(d, len(shape)) for d in dims]
    keep = a.get("keepdim")
    if None in axes or (keep is not None and not isinstance(keep, n.Const)):
        return None
    if keep is not None and keep.value:
        return tuple(_num(1) if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _norm_run(xs, a):
    """(sum of |x|^ord over the dims)^(1 / ord), from the definition."""
    dims = a["dim"] if isinstance(a["dim"], int) else tuple(a["dim"])
    return xs[0].abs().pow(a["ord"]).sum(dims, keepdim=a["keepdim"]).pow(1 / a["ord"])


_register(OpKind(
    "vector_norm", VectorNormArgs, _norm_shape, layouts=ANY,
    template="torch.linalg.vector_norm({x}, {ord}, {dim}, keepdim={keepdim})", sym=_norm_sym, run=_run(_norm_run),
    macs=lambda a, t, o: math.prod(t.shape),
    doc="the ord-norm, (sum of |x|^ord)^(1/ord), over dimension dim or a tuple of them (kept as size 1 with "
        "keepdim): ConvNeXt V2's global response norm takes each channel's L2 norm over the map", saves=BOTH))
