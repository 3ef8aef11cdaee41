"""Moving and picking entries: ``roll`` and ``constant_pad`` along any axes, a ``learned`` tensor read whole, and ``lookup``,
which picks entries along one axis by a fixed table of indices that its module holds as a buffer.

Like the tensor primitives (``ops.tensor``) they take a tensor of any layout and count dimensions as torch does,
the batch as 0, which none of them moves. ``learned`` reads nothing of its tensor but its batch size: its value
is the parameter itself, for every sample (as ``coordinates`` is a table for every sample). ``lookup``'s table
is worked out from its arguments, never stored in the spec: its entry at each index (i_0, i_1, ...) of a grid of
``sizes`` is ``offset + steps[0] * i_0 + steps[1] * i_1 + ...``, row by row (a relative position index is such a
table). Each ``run`` is written from the definition, not from the torch call the code generator writes.
"""

from __future__ import annotations

import math

from ..lang import nodes as n
from ..sema.layout import TensorType, named
from .base import ANY, NOTHING, Args, Finite, NonNeg, OpKind, Pos, ShapeError, _register, axis, sym_axis
from .layout import Init, _full_make
from .tensor import _items

_SPAN = n.Span("<generated>", 1, 1, 1, 1)
Ints = int | tuple[int, ...]


def _ints(v) -> tuple[int, ...]:
    return (v,) if isinstance(v, int) else tuple(v)


# ------------------------------------------------------------ roll


class RollArgs(Args):
    shifts: Ints
    dims: Ints


def _roll_axes(shifts: Ints, dims: Ints, rank: int) -> list[tuple[int, int]]:
    """Each rolled axis (an index into the shape without the batch) and its shift."""
    shifts, dims = _ints(shifts), _ints(dims)
    if len(shifts) != len(dims):
        raise ShapeError(f"{len(shifts)} shifts for {len(dims)} dims", hint="one shift a dimension")
    axes = [axis(d, rank, "dims") for d in dims]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"dims {dims} name a dimension twice")
    return list(zip(axes, shifts))


def _roll_shape(a: RollArgs, t: TensorType) -> TensorType:
    _roll_axes(a.shifts, a.dims, len(t.shape))
    return t


def _roll_run(m, a: dict, t, xs: list, training: bool):
    """Entry i of each rolled axis of size s is the input's entry (i - shift) mod s."""
    import torch

    x = xs[0]
    for i, shift in _roll_axes(a["shifts"], a["dims"], x.dim() - 1):
        size = x.shape[i + 1]
        x = x.index_select(i + 1, (torch.arange(size, device=x.device) - shift) % size)
    return x


_register(OpKind(
    "roll", RollArgs, _roll_shape, layouts=ANY, template="torch.roll({x}, {shifts}, {dims})", view=False,
    sym=lambda a, shape: shape, run=_roll_run,
    doc="torch.roll: the entries moved cyclically by `shifts` along `dims` (one shift a dimension; those that "
        "leave one end come in at the other)", saves=NOTHING))


# ------------------------------------------------------------ constant_pad


class PadArgs(Args):
    pad: tuple[NonNeg, ...]
    value: Finite = 0.0


def _pad_shape(a: PadArgs, t: TensorType) -> TensorType:
    if not a.pad or len(a.pad) % 2:
        raise ShapeError(f"pad {a.pad} is no list of pairs", hint="(before, after) for the last dimension, then the "
                                                                 "one before it, ...: F.pad's order")
    if len(a.pad) // 2 > len(t.shape):
        raise ShapeError(f"pad {a.pad} pads {len(a.pad) // 2} dimensions of a tensor of {len(t.shape)} and the "
                         "batch", hint="the batch is never padded")
    shape = list(t.shape)
    for k in range(len(a.pad) // 2):
        shape[-1 - k] += a.pad[2 * k] + a.pad[2 * k + 1]
    return TensorType(tuple(shape), t.layout)


def _pad_sym(a: dict, shape: tuple) -> tuple | None:
    items = _items(a["pad"])
    if items is None or len(items) % 2 or len(items) // 2 > len(shape):
        return None
    out = list(shape)
    for k in range(len(items) // 2):
        if out[-1 - k] is not None and not all(isinstance(e, n.Num) and e.value == 0 for e in items[2 * k:2 * k + 2]):
            out[-1 - k] = n.BinOp("+", out[-1 - k], n.BinOp("+", items[2 * k], items[2 * k + 1], _SPAN), _SPAN)
    return tuple(out)


def _pad_run(m, a: dict, t, xs: list, training: bool):
    """``value`` everywhere, the input in its place: ``before`` entries ahead of it along each padded axis."""
    import torch

    x, pad = xs[0], a["pad"]
    shape, place = list(x.shape), [slice(None)] * x.dim()
    for k in range(len(pad) // 2):
        shape[-1 - k] += pad[2 * k] + pad[2 * k + 1]
        place[-1 - k] = slice(pad[2 * k], pad[2 * k] + x.shape[-1 - k])
    out = torch.full(shape, float(a["value"]), dtype=x.dtype, device=x.device)
    out[tuple(place)] = x
    return out


_register(OpKind(
    "constant_pad", PadArgs, _pad_shape, layouts=ANY, template="F.pad({x}, {pad}, value={value})", view=False,
    sym=_pad_sym, run=_pad_run,
    doc="F.pad with a constant: `pad` is (before, after) for the last dimension, then for the one before it, and "
        "so on (never the batch), each at least 0", saves=NOTHING))


# ------------------------------------------------------------ learned


class TableArgs(Args):
    shape: tuple[Pos, ...]
    init: Init = 0.0


def _learned_shape(a: TableArgs, t: TensorType) -> TensorType:
    if not a.shape:
        raise ShapeError("a learned tensor needs at least one size")
    return named(tuple(a.shape))


def _learned_sym(a: dict, shape: tuple) -> tuple | None:
    items = _items(a["shape"])
    return None if items is None else tuple(items)


_register(OpKind(
    "learned", TableArgs, _learned_shape, layouts=ANY, template="{param}.expand({x}.shape[0], *{param}.shape)",
    learned=lambda a, t: a.shape, learned_init="nn.Parameter(torch.full({shape}, {init}))",
    params=lambda a, t: math.prod(a.shape), make=_full_make(lambda a, t: a["shape"]), sym=_learned_sym,
    torch_view=True,  # (an expand of the parameter: no storage of its own)
    run=lambda m, a, t, xs, training: _per_sample(m, xs[0].shape[0]),
    doc="a learned tensor of the given shape (an nn.Parameter named after the statement, filled with `init`), "
        "the same for every sample of its input, whose values are not read (a relative position bias table)",
    saves=NOTHING))


def _per_sample(param, batch: int):
    """The tensor once for each sample."""
    import torch

    return torch.stack([param] * batch)


# ------------------------------------------------------------ lookup


class LookupArgs(Args):
    dim: int
    sizes: tuple[Pos, ...]
    steps: tuple[int, ...]
    offset: int = 0
    shape: tuple[Pos, ...] | None = None  # the buffer's, as the reference holds it (flat: none)
    persistent: bool = True  # a state_dict key (torchvision's), or not (timm's: register_buffer(persistent=False))
    absolute: tuple[tuple[int, ...], ...] = ()  # terms |c_0 i_0 + c_1 i_1 + ...| added, one a tuple c (LeViT's)


def _extremes(a) -> tuple[int, int]:
    """The table's least and greatest entry (with absolute terms, bounds: each term from 0 to its greatest)."""
    low = high = a.offset
    for size, step in zip(a.sizes, a.steps):
        low, high = low + min(0, step * (size - 1)), high + max(0, step * (size - 1))
    for coefs in a.absolute:  # |c . i| is greatest at a corner of the grid
        ends = [c * (size - 1) for c, size in zip(coefs, a.sizes)]
        high += max(sum(max(0, e) for e in ends), -sum(min(0, e) for e in ends))
    return low, high


def _lookup_shape(a: LookupArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape))
    if len(a.sizes) != len(a.steps):
        raise ShapeError(f"{len(a.sizes)} sizes and {len(a.steps)} steps", hint="one step a size")
    if any(len(c) != len(a.sizes) for c in a.absolute):
        raise ShapeError(f"an absolute term of other than {len(a.sizes)} coefficients", hint="one coefficient a size")
    if math.prod(a.sizes) > 2 ** 24:
        raise ShapeError(f"a table of {math.prod(a.sizes)} entries is too large", hint="at most 2 ** 24")
    if a.shape is not None and math.prod(a.shape) != math.prod(a.sizes):
        raise ShapeError(f"a table of {math.prod(a.sizes)} entries cannot be held as {a.shape}",
                         hint="the shape's sizes multiply to the grid's")
    low, high = _extremes(a)
    if low < 0 or high >= t.shape[i]:
        raise ShapeError(f"the table's entries run from {low} to {high}, outside dim {a.dim} of size {t.shape[i]}",
                         hint="each entry is offset + steps[0] * i_0 + steps[1] * i_1 + ...: check the offset")
    shape = list(t.shape)
    shape[i] = math.prod(a.sizes)
    return named(tuple(shape))


def _lookup_sym(a: dict, shape: tuple) -> tuple | None:
    i, items = sym_axis(a["dim"], len(shape)), _items(a["sizes"])
    if i is None or items is None:
        return None
    out = list(shape)
    out[i] = items[0]
    for s in items[1:]:
        out[i] = n.BinOp("*", out[i], s, _SPAN)
    return tuple(out)


def index_table(sizes, steps, offset: int, shape=None, absolute=()):
    """The table: ``offset + sum(steps[k] * i_k)`` plus ``|sum(c[k] * i_k)|`` for each ``c`` of ``absolute``, for
    each index of the grid, row by row (int64), flat or of ``shape``. Entry by entry, from the formula (the
    generated ``_index_table`` builds it by broadcasting: this is the oracle it is held to)."""
    import itertools

    import torch

    entries = [offset + sum(s * i for s, i in zip(steps, index))
               + sum(abs(sum(c * i for c, i in zip(coefs, index))) for coefs in absolute)
               for index in itertools.product(*(range(size) for size in sizes))]
    table = torch.tensor(entries, dtype=torch.int64)
    return table if shape is None else table.reshape(tuple(shape))


def _lookup_run(m, a: dict, t, xs: list, training: bool):
    """The entries picked one at a time, along the axis, in the table's order."""
    import torch

    x, d = xs[0], axis(a["dim"], xs[0].dim() - 1) + 1
    return torch.stack([x.select(d, int(j)) for j in m.flatten().tolist()], d)


_register(OpKind(
    "lookup", LookupArgs, _lookup_shape, layouts=ANY, template="{x}.index_select({dim}, {param}.view(-1))",
    learned=lambda a, t: (math.prod(a.sizes),), buffer=True,
    learned_init="_index_table({sizes}, {steps}, {offset}, {shape})",
    make=lambda a, t: index_table(a["sizes"], a["steps"], a["offset"], a["shape"], a.get("absolute", ())),
    sym=_lookup_sym,
    run=_lookup_run,
    buffers=lambda a, ins, out: ((math.prod(a["sizes"]), 8),),
    doc="the input's entries along dimension `dim` picked by a fixed table of indices (an int64 buffer named "
        "after the statement, flat or of `shape`): the entry at each index (i_0, i_1, ...) of a grid of `sizes`, row by row, is "
        "offset + steps[0] · i_0 + steps[1] · i_1 + ... (Swin's relative position index); with `persistent = false` "
        "the buffer is no state_dict key (timm's); `absolute` adds |c[0] · i_0 + c[1] · i_1 + ...| for each "
        "tuple c (LeViT's distances)", saves=NOTHING))
