"""1-D and 3-D convolution and pooling: ``conv1d``, ``conv3d`` and their pools, on C x L signals and C x D x H x W
volumes (layouts ``CL`` and ``CDHW``), registry entries like the 2-D ones of ``ops.conv``.

Each size argument is one number for every spatial axis, or one per axis (a 1-tuple, as torch's modules hold them,
or a triple); the shape rule is PyTorch's, one axis at a time, with the same messages as the 2-D ops'.
"""

from __future__ import annotations

import math

from pydantic import create_model

from ..sema.layout import TensorType
from .base import INPUT, NOTHING, Args, NonNeg, OpKind, Pos, Saves, ShapeError, _register
from .conv import _window
from .initsizes import WEIGHT_BIAS, bias_if, conv_sizes

One = Pos | tuple[Pos]  # torch's own modules hold 1-tuples
PadOne = NonNeg | tuple[NonNeg]
Triple = Pos | tuple[Pos, Pos, Pos]
PadTriple = NonNeg | tuple[NonNeg, NonNeg, NonNeg]
# per rank: the layout, its spatial axes' names, the types of a size and of a padding
RANKS = {1: ("CL", ("length",), One, PadOne), 3: ("CDHW", ("depth", "height", "width"), Triple, PadTriple)}


def _each(v, rank: int) -> tuple[int, ...]:
    return (v,) * rank if isinstance(v, int) else tuple(v)


def _spatial(t: TensorType, rank: int, k, s, p, d, ceil: bool, pool: bool) -> tuple[int, ...]:
    _, names, _, _ = RANKS[rank]
    ks, ss, ps, ds = (_each(v, rank) for v in (k, s, p, d))
    if pool:
        for kk, pp in zip(ks, ps):
            if pp * 2 > kk:  # PyTorch's pooling rule
                raise ShapeError(f"padding {pp} must be at most half the kernel size {kk}")
    return tuple(_window(size, *w, ceil, name) for size, name, w in zip(t.shape[1:], names, zip(ks, ss, ps, ds)))


def _size_text(v, rank: int) -> str:
    return "x".join(map(str, _each(v, rank)))


# ---------------------------------------------------------------- convolution


def _conv_args(rank: int) -> type[Args]:
    _, _, size, pad = RANKS[rank]
    return create_model(f"Conv{rank}dArgs", __base__=Args, out_channels=(Pos, ...), kernel_size=(size, ...),
                        stride=(size, 1), padding=(pad, 0), dilation=(size, 1), groups=(Pos, 1), bias=(bool, True))


def _conv_entry(rank: int) -> OpKind:
    layout = RANKS[rank][0]

    def shape(a, t: TensorType) -> TensorType:
        c = t.shape[0]
        if c % a.groups or a.out_channels % a.groups:
            raise ShapeError(f"groups={a.groups} must divide both the input ({c}) and output ({a.out_channels}) "
                             "channels")
        return TensorType((a.out_channels, *_spatial(t, rank, a.kernel_size, a.stride, a.padding, a.dilation,
                                                     False, False)), layout)

    def weights(a, t: TensorType) -> int:  # one output channel's
        return (t.shape[0] // a.groups) * math.prod(_each(a.kernel_size, rank))

    def make(a: dict, t: TensorType):
        from torch import nn

        cls = getattr(nn, f"Conv{rank}d")
        return cls(t.shape[0], a["out_channels"], a["kernel_size"], bias=a["bias"], groups=a["groups"])

    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        import torch.nn.functional as F

        conv = getattr(F, f"conv{rank}d")
        return conv(xs[0], m.weight, m.bias, a["stride"], a["padding"], a["dilation"], a["groups"])

    def label(a: dict) -> str:
        stride = a.get("stride", 1)
        text = f"conv{rank}d {_size_text(a['kernel_size'], rank)}"
        if stride != 1 and set(_each(stride, rank)) != {1}:
            text += f"/{_size_text(stride, rank)}"
        return text + f", {a['out_channels']}" + (f", groups {a['groups']}" if a.get("groups", 1) != 1 else "")

    return OpKind(
        f"conv{rank}d", _conv_args(rank), shape, layouts=(layout,), module=f"nn.Conv{rank}d", in_arg=True,
        channels_from="out_channels", params=lambda a, t: a.out_channels * weights(a, t) + (a.out_channels if a.bias
                                                                                            else 0),
        macs=lambda a, t, o: math.prod(o.shape) * weights(a, t), make=make, run=run, label=label, saves=INPUT,
        doc=f"{rank}-D convolution", init_params=WEIGHT_BIAS, init_has=bias_if("bias"), init_sizes=conv_sizes)


# -------------------------------------------------------------------- pooling


def _pool_entry(rank: int, reduce: str) -> OpKind:
    layout, _, size, pad = RANKS[rank]
    fields = {"kernel_size": (size, ...), "stride": (size | None, None), "padding": (pad, 0)}
    if reduce == "max":
        fields["dilation"] = (size, 1)
    fields["ceil_mode"] = (bool, False)
    if reduce == "avg":
        fields["count_include_pad"] = (bool, True)
    args = create_model(f"{reduce.title()}Pool{rank}dArgs", __base__=Args, **fields)
    name, func = f"{reduce}pool{rank}d", f"{reduce}_pool{rank}d"

    def shape(a, t: TensorType) -> TensorType:
        stride = a.stride if a.stride is not None else a.kernel_size
        return TensorType((t.shape[0], *_spatial(t, rank, a.kernel_size, stride, a.padding,
                                                 getattr(a, "dilation", 1), a.ceil_mode, True)), layout)

    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        import torch.nn.functional as F

        k = a["kernel_size"]
        if reduce == "max":
            return F.__dict__[func](xs[0], k, a["stride"] or k, a["padding"], a["dilation"], a["ceil_mode"])
        return F.__dict__[func](xs[0], k, a["stride"] or k, a["padding"], a["ceil_mode"], a["count_include_pad"])

    def label(a: dict) -> str:
        stride = a.get("stride") or a["kernel_size"]
        return f"{name} {_size_text(a['kernel_size'], rank)}" + ("" if stride == 1 else f"/{_size_text(stride, rank)}")

    # a max pool keeps its input and the int64 index of each output's maximum
    saves = (lambda a, ins, out: Saves((0,), extra=((math.prod(out), 8),))) if reduce == "max" else INPUT
    return OpKind(
        name, args, shape, layouts=(layout,), module=f"nn.{reduce.title()}Pool{rank}d", functional=f"F.{func}",
        run=run, label=label, saves=saves, doc=f"{rank}-D {reduce} pooling; stride defaults to the kernel size")


def _adaptive_entry(rank: int, reduce: str) -> OpKind:
    layout, _, size, _ = RANKS[rank]
    args = create_model(f"Adaptive{reduce.title()}Pool{rank}dArgs", __base__=Args, output_size=(size, ...))
    name, func = f"adaptive_{reduce}pool{rank}d", f"adaptive_{reduce}_pool{rank}d"

    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        import torch.nn.functional as F

        return F.__dict__[func](xs[0], a["output_size"])

    def saves(a: dict, ins: tuple, out: tuple) -> Saves:
        """A max pool keeps its input and the int64 index of each output's maximum. To a single position torch
        takes the mean, which keeps nothing; to another size an average pool keeps its input."""
        if reduce == "max":
            return Saves((0,), extra=((math.prod(out), 8),))
        return NOTHING if math.prod(out[1:]) == 1 else INPUT

    return OpKind(
        name, args, lambda a, t: TensorType((t.shape[0], *_each(a.output_size, rank)), layout),
        layouts=(layout,), module=f"nn.Adaptive{reduce.title()}Pool{rank}d", functional=f"F.{func}", run=run,
        label=lambda a: f"{name} {_size_text(a['output_size'], rank)}", saves=saves,
        doc=f"{rank}-D {'average' if reduce == 'avg' else 'max'} pooling to a fixed output size")


for _rank in (1, 3):
    _register(_conv_entry(_rank))
    _register(_pool_entry(_rank, "max"))
    _register(_pool_entry(_rank, "avg"))
    _register(_adaptive_entry(_rank, "avg"))
    _register(_adaptive_entry(_rank, "max"))
