"""Transposed convolutions: ``conv_transpose`` on a C x H x W map, ``conv_transpose1d`` on a C x L signal and
``conv_transpose3d`` on a C x D x H x W volume, torch's ``nn.ConvTranspose1d/2d/3d`` (the gradient of a conv with
respect to its input: each input position scatters its kernel-sized patch into the output, ``stride`` apart).

The arguments are in the order of torch's constructors after ``in_channels``: out_channels, kernel_size, stride,
padding, output_padding, groups, bias, dilation, padding_mode (only ``"zeros"``, the one mode torch's transposed
convolutions take). Along each axis of size n the output has (n - 1) * stride - 2 * padding + dilation *
(kernel_size - 1) + output_padding + 1 positions; output_padding, which only adds positions at the end (so that a
strided conv's several input sizes each have a transposed conv that gives them back), must be smaller than the
stride or the dilation, as torch requires.

The weight is in_channels x out_channels / groups x kernel, as torch holds it (the transpose of a conv's); its fans
are torch's for that shape: fan_in = out_channels / groups x kernel, fan_out = in_channels x kernel. MACs are
counted as fvcore, ptflops and torch's own FlopCounterMode count them: every input position times its kernel,
in_channels x out_channels / groups x kernel x the input's positions (products that land in the cropped padding
count too). A batch norm after one stays a batch norm in ``archc.deploy`` (its fold would scale the weight's second
dimension, group by group, which the deployed conv's fold does not do).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import create_model

from ..sema.layout import TensorType
from .base import INPUT, Args, OpKind, PadPair, Pair, Pos, ShapeError, _register
from .conv_nd import One, PadOne, PadTriple, Triple
from .initsizes import WEIGHT_BIAS, bias_if, conv_sizes

# per rank: the op's name, its layout, its spatial axes' names, the types of a size and of a padding (or an
# output padding, which may be 0 too)
RANKS = {1: ("conv_transpose1d", "CL", ("length",), One, PadOne),
         2: ("conv_transpose", "CHW", ("height", "width"), Pair, PadPair),
         3: ("conv_transpose3d", "CDHW", ("depth", "height", "width"), Triple, PadTriple)}


def _each(v, rank: int) -> tuple[int, ...]:
    return (v,) * rank if isinstance(v, int) else tuple(v)


def _size_text(v, rank: int) -> str:
    """A kernel's sizes, every axis's (``3x3``, ``1x3x3``)."""
    return "x".join(map(str, _each(v, rank)))


def _text(v) -> str:
    """A stride, a padding or a dilation as written: ``2``, or ``2x1`` for one per axis (as conv's labels)."""
    return str(v) if isinstance(v, int) else "x".join(map(str, v))


def _axis(n: int, k: int, s: int, p: int, op: int, d: int, axis: str) -> int:
    """The output's size along one axis, or why there is none."""
    if op >= s and op >= d:  # torch's rule: output_padding < stride or output_padding < dilation
        raise ShapeError(f"output_padding {op} must be smaller than the stride ({s}) or the dilation ({d})",
                         hint="output_padding adds up to stride - 1 positions at the end, to undo a strided conv "
                              "whose input size the stride did not divide")
    out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    if out <= 0:
        raise ShapeError(f"output {axis} would be {out}: ({n} - 1) * {s} - 2 * {p} + {d} * ({k} - 1) + {op} + 1",
                         hint="the padding crops each side of the output; use less of it")
    return out


def conv_transpose_sizes(a: dict, in_shape: tuple, out: TensorType) -> dict:
    """A conv's sizes with torch's fans for a transposed conv's weight (in x out / groups x kernel)."""
    sizes = conv_sizes(a, in_shape, out)
    area = math.prod(sizes["kernel_size"])
    return {**sizes, "fan_in": a["out_channels"] // a["groups"] * area, "fan_out": in_shape[0] * area}


def _entry(rank: int) -> OpKind:
    name, layout, axes, size, pad = RANKS[rank]
    args = create_model(f"ConvTranspose{rank}dArgs", __base__=Args, out_channels=(Pos, ...),
                        kernel_size=(size, ...), stride=(size, 1), padding=(pad, 0), output_padding=(pad, 0),
                        groups=(Pos, 1), bias=(bool, True), dilation=(size, 1),
                        padding_mode=(Literal["zeros"], "zeros"))

    def shape(a, t: TensorType) -> TensorType:
        c = t.shape[0]
        if c % a.groups or a.out_channels % a.groups:
            raise ShapeError(f"groups={a.groups} must divide both the input ({c}) and output ({a.out_channels}) "
                             "channels")
        each = (_each(v, rank) for v in (a.kernel_size, a.stride, a.padding, a.output_padding, a.dilation))
        return TensorType((a.out_channels, *(_axis(n, *w, axis) for n, axis, w in zip(t.shape[1:], axes,
                                                                                       zip(*each)))), layout)

    def weights(a, t: TensorType) -> int:  # one input channel's
        return (a.out_channels // a.groups) * math.prod(_each(a.kernel_size, rank))

    def make(a: dict, t: TensorType):
        from torch import nn

        cls = getattr(nn, f"ConvTranspose{rank}d")
        return cls(t.shape[0], a["out_channels"], a["kernel_size"], bias=a["bias"], groups=a["groups"])

    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        """By its definition as a conv: the input with stride - 1 zeros between neighbours, padded with
        dilation * (kernel_size - 1) - padding zeros on each side (cropped where that is negative) and
        output_padding more at the end, convolved at stride 1 with the kernel flipped, each group's weight's first
        two dimensions swapped."""
        import torch.nn.functional as F

        x, g = xs[0], a["groups"]
        ks, ss, ps, ops, ds = (_each(a[f], rank) for f in ("kernel_size", "stride", "padding", "output_padding",
                                                           "dilation"))
        spread = x.new_zeros(*x.shape[:2], *((n - 1) * s + 1 for n, s in zip(x.shape[2:], ss)))
        spread[(slice(None), slice(None), *(slice(None, None, s) for s in ss))] = x
        pads = []  # F.pad's order: the last axis first
        for k, p, op, d in reversed(list(zip(ks, ps, ops, ds))):
            pads += [d * (k - 1) - p, d * (k - 1) - p + op]
        w = m.weight  # in x out / groups x kernel
        c_in, c_out = w.shape[0], w.shape[1] * g
        w = w.reshape(g, c_in // g, c_out // g, *ks).transpose(1, 2).reshape(c_out, c_in // g, *ks)
        conv = getattr(F, f"conv{rank}d")
        return conv(F.pad(spread, pads), w.flip(list(range(2, 2 + rank))), m.bias, 1, 0, ds, g)

    def label(a: dict) -> str:
        text = f"{name} {_size_text(a['kernel_size'], rank)}"
        if set(_each(a.get("stride", 1), rank)) != {1}:
            text += f"/{_text(a['stride'])}"
        text += f", {a['out_channels']}"
        if set(_each(a.get("output_padding", 0), rank)) != {0}:
            text += f", output_padding {_text(a['output_padding'])}"
        if set(_each(a.get("dilation", 1), rank)) != {1}:
            text += f", dilation {_text(a['dilation'])}"
        return text + (f", groups {a['groups']}" if a.get("groups", 1) != 1 else "")

    return OpKind(
        name, args, shape, layouts=(layout,), module=f"nn.ConvTranspose{rank}d", in_arg=True,
        channels_from="out_channels",
        params=lambda a, t: t.shape[0] * weights(a, t) + (a.out_channels if a.bias else 0),
        macs=lambda a, t, o: math.prod(t.shape) * weights(a, t), make=make, run=run, label=label, saves=INPUT,
        doc=f"{rank}-D transposed convolution", init_params=WEIGHT_BIAS, init_has=bias_if("bias"),
        init_sizes=conv_transpose_sizes)


for _rank in (1, 2, 3):
    _register(_entry(_rank))
