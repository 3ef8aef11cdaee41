"""The layer kinds that move channels and dimensions, regularise, or hold a learned tensor: registry entries
like those of ``ops.base``, with their meanings for the graph interpreter (torch imported inside each function)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..lang.exprnodes import ListExpr, Num
from ..sema.layout import TensorType, named
from .base import ANY, INPUT, NOTHING, Args, NonNeg, OpKind, Pos, Prob, ShapeError, _register, _same

FLOAT32_MAX = 3.4028235e38


def _float32(v: float) -> float:
    if abs(v) > FLOAT32_MAX:
        raise ValueError(f"{v!r} is not finite in float32 (|v| > {FLOAT32_MAX}), the parameter's type")
    return float(v)  # an integer written (init = 1) still fills a float tensor


# A learned tensor's initial value: a float32 parameter holds it.
Init = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_float32)]


def _full_make(shape):
    """The ``make`` of a learned tensor of ``shape(args, input type)``, filled with the ``init`` argument."""

    def make(a: dict, t: TensorType):
        import torch
        from torch import nn

        return nn.Parameter(torch.full(tuple(shape(a, t)), float(a["init"])))

    return make


# ------------------------------------------------------------ channels and layout


class SubsampleArgs(Args):
    stride: Pos


def _subsample_shape(a: SubsampleArgs, t: TensorType) -> TensorType:
    c, h, w = t.shape
    return TensorType((c, -(-h // a.stride), -(-w // a.stride)))


def _subsample_run(m, a: dict, t: TensorType, xs: list, training: bool):
    s = a["stride"]
    return xs[0][:, :, ::s, ::s]


def _pad_channels_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch

    x = xs[0]
    n, _, h, w = x.shape
    zeros = [x.new_zeros(n, k, h, w) for k in (a["before"], a["after"])]
    return torch.cat([zeros[0], x, zeros[1]], 1)


class PadChannelsArgs(Args):
    before: NonNeg
    after: NonNeg


class PadArgs(Args):
    pad: tuple[NonNeg, NonNeg, NonNeg, NonNeg]  # left, right, top, bottom, as F.pad takes them


def _pad_shape(a: PadArgs, t: TensorType) -> TensorType:
    c, h, w = t.shape
    left, right, top, bottom = a.pad
    return TensorType((c, h + top + bottom, w + left + right))


def _pad_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    return F.pad(xs[0], tuple(a["pad"]))


def _plus(cur, args, keys):
    from ..lang.nodes import BinOp

    out = cur
    for key in keys:
        if key in args:
            out = BinOp("+", out, args[key], args[key].span)
    return out


class ChunkArgs(Args):
    chunks: Pos
    index: NonNeg


def _chunk_shape(a: ChunkArgs, t: TensorType) -> TensorType:
    c = t.shape[0]
    if c % a.chunks:
        raise ShapeError(f"{c} channels do not split into {a.chunks} equal chunks")
    if a.index >= a.chunks:
        raise ShapeError(f"chunk {a.index} of {a.chunks} does not exist (they are numbered from 0)")
    return t.with_features(c // a.chunks)


def _chunk_rule(cur, args):
    from ..lang.nodes import BinOp

    return BinOp("//", cur, args["chunks"], args["chunks"].span)


def _chunk_run(m, a: dict, t: TensorType, xs: list, training: bool):
    size = t.shape[0] // a["chunks"]
    return xs[0].narrow(1, a["index"] * size, size)


class ShuffleArgs(Args):
    groups: Pos


def _shuffle_shape(a: ShuffleArgs, t: TensorType) -> TensorType:
    if t.shape[0] % a.groups:
        raise ShapeError(f"{t.shape[0]} channels do not split into {a.groups} groups")
    return t


def _shuffle_run(m, a: dict, t: TensorType, xs: list, training: bool):
    # channel g * (C / groups) + i moves to i * groups + g
    x, g = xs[0], a["groups"]
    n, c, h, w = x.shape
    return x.reshape(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class PermuteArgs(Args):
    dims: tuple[NonNeg, ...]


def _permute_shape(a: PermuteArgs, t: TensorType) -> TensorType:
    rank = len(t.shape)
    if sorted(a.dims) != list(range(rank + 1)) or a.dims[0] != 0:
        raise ShapeError(f"dims {a.dims} must keep the batch first and order all of 1 to {rank}",
                         hint="(0, 2, 3, 1) makes a C x H x W map channels-last" if rank == 3 else
                         f"one entry a dimension: 0, then 1 to {rank} in the order wanted")
    shape = tuple(t.shape[d - 1] for d in a.dims[1:])
    if t.layout in ("CHW", "HWC"):
        layout = "".join(t.layout[d - 1] for d in a.dims[1:])
        if layout in ("CHW", "HWC"):  # a map's axes stay named: channels-last and back
            return TensorType(shape, layout)
    return named(shape) if a.dims != tuple(range(rank + 1)) else t


def _permute_sym(a: dict, shape: tuple) -> tuple | None:
    dims = a["dims"].items if isinstance(a["dims"], ListExpr) else None
    if dims is None or not all(isinstance(d, Num) and isinstance(d.value, int) for d in dims):
        return None
    order = [d.value for d in dims]
    if sorted(order) != list(range(len(shape) + 1)):
        return None
    return tuple(shape[d - 1] for d in order[1:])


_register(OpKind(
    "subsample", SubsampleArgs, _subsample_shape, template="{x}[:, :, ::{stride}, ::{stride}]", run=_subsample_run,
    doc="keeps every stride-th row and column (the option-A shortcut of CIFAR ResNets)",
    label=lambda a: f"subsample /{a['stride']}", saves=NOTHING, scatters=True, torch_view=True))
_register(OpKind(
    "pad_channels", PadChannelsArgs, lambda a, t: TensorType((t.shape[0] + a.before + a.after, *t.shape[1:])),
    template="F.pad({x}, (0, 0, 0, 0, {before}, {after}))", run=_pad_channels_run,
    channels_rule=lambda cur, args: _plus(cur, args, ("before", "after")),
    doc="adds zero channels before and after the input's (the option-A shortcut of CIFAR ResNets)",
    label=lambda a: f"pad_channels {a['before']}+{a['after']}", saves=NOTHING))
_register(OpKind(
    "zero_pad", PadArgs, _pad_shape,
    template="F.pad({x}, {pad})", run=_pad_run,
    doc="zeros around the map: `pad` columns on the left and right, rows on the top and bottom, as F.pad takes them "
        "(TensorFlow's uneven 'same' padding before a strided conv)",
    label=lambda a: "zero_pad " + "/".join(map(str, a["pad"])), saves=NOTHING))
_register(OpKind(
    "chunk", ChunkArgs, _chunk_shape, template="{x}.chunk({chunks}, 1)[{index}]", channels_rule=_chunk_rule, run=_chunk_run,
    doc="chunk `index` of the channels split into `chunks` equal parts (ShuffleNetV2's channel split)", saves=NOTHING,
    scatters=True, torch_view=True))
_register(OpKind(
    "channel_shuffle", ShuffleArgs, _shuffle_shape, template="_channel_shuffle({x}, {groups})", run=_shuffle_run,
    doc="interleaves the channels of `groups` groups (ShuffleNet)", saves=NOTHING))
_register(OpKind(
    "permute", PermuteArgs, _permute_shape, layouts=ANY, module="_Permute", sym=_permute_sym,
    template="torch.permute({x}, {dims})", view=True, run=lambda m, a, t, xs, training: xs[0].permute(a["dims"]),
    doc="reorders the dimensions of a tensor of any rank, batch first: (0, 2, 3, 1) makes a map channels-last, "
        "(0, 3, 1, 2) undoes it; another order of a map's axes, or of other axes, gives a tensor of unnamed axes",
    saves=NOTHING, scatters=True))


# ------------------------------------------------------------ regularisation


class StochasticDepthArgs(Args):
    p: Prob
    mode: Literal["row", "batch"] = "row"


def _stochastic_depth(x, p: float, mode: str, training: bool):
    """Zero ``x`` with probability p per sample or for the batch, survivors scaled by 1 / (1 - p); training only."""
    if not training or p == 0:
        return x
    import torch

    # one Bernoulli draw per sample (or one for the batch), in the generated code's order, so seeds agree
    size = (x.shape[0],) + (1,) * (x.dim() - 1) if mode == "row" else (1,) * x.dim()
    keep = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    return x * keep / (1 - p) if p < 1 else x * keep


_register(OpKind(
    "stochastic_depth", StochasticDepthArgs, _same, layouts=ANY,
    template="_stochastic_depth({x}, {p}, {mode}, self.training)", eval_identity=True,
    run=lambda m, a, t, xs, training: _stochastic_depth(xs[0], a["p"], a["mode"], training),
    doc="in training, zeroes the whole input with probability p, per sample (row) or for the batch, "
        "and scales survivors by 1 / (1 - p); identity in eval", saves=NOTHING))  # (and one number per sample)


# ------------------------------------------------------------ learned tensors


class LearnedArgs(Args):
    shape: tuple[Pos, ...]
    init: Init = 1.0


def _broadcasts(a: LearnedArgs, t: TensorType) -> TensorType:
    shape = a.shape  # may have one more dimension than the input, of size 1: the batch's
    full = t.shape if len(shape) <= len(t.shape) else (1, *t.shape)
    if len(shape) > len(full) or any(p not in (1, s) for p, s in zip(reversed(shape), reversed(full))):
        raise ShapeError(f"a learned tensor of shape {' x '.join(map(str, shape))} does not broadcast over "
                         f"the input {t.describe()}")
    return t


_register(OpKind(
    "learned_scale", LearnedArgs, _broadcasts, layouts=ANY, template="{x} * {param}",
    learned=lambda a, t: a.shape, learned_init="nn.Parameter(torch.full({shape}, {init}))",
    params=lambda a, t: math.prod(a.shape), make=_full_make(lambda a, t: a["shape"]),
    run=lambda m, a, t, xs, training: xs[0] * m,
    doc="multiplies by a learned tensor of the given shape, broadcast over the input, initialised to `init` "
        "(ConvNeXt's layer scale)", saves=INPUT))
