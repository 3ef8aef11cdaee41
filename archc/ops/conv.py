"""Convolution and pooling: the first family of kinds (``base`` holds the registry and the shape rules they share)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from ..sema.layout import TensorType
from .base import (
    INPUT,
    NOTHING,
    Args,
    Makes,
    NoArgs,
    OpKind,
    Padding,
    Pair,
    Pos,
    Saves,
    ShapeError,
    _register,
    one,
    pair,
    size_text,
    stride_text,
)
from .initsizes import WEIGHT_BIAS, bias_if, conv_sizes


def _window(size: int, k: int, s: int, p: int, d: int, ceil: bool, dim: str) -> int:
    span = d * (k - 1) + 1
    if size + 2 * p < span:
        raise ShapeError(f"kernel ({span}) is larger than the padded input {dim} ({size} + 2*{p})")
    num = size + 2 * p - span
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= size + p:  # PyTorch drops a window that starts in the padding
        out -= 1
    if out <= 0:
        raise ShapeError(f"output {dim} would be {out}")
    return out


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's "same" padding along a side of ``size``: the total that gives ceil(size / s) outputs, the odd
    one after (bottom, right), as timm's pad_same computes it."""
    total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _same_input(x, a: dict, t: TensorType, value: float = 0.0):
    """A conv's or a pool's input as it windows it: padded with ``value`` where its padding is "same", from the
    input's static size (a pool's stride defaults to its kernel size, and an average pool has no dilation)."""
    import torch.nn.functional as F

    if a["padding"] != "same":
        return x, pair(a["padding"])
    k = a["kernel_size"]
    (kh, kw), (sh, sw), (dh, dw) = pair(k), pair(a.get("stride") or k), pair(a.get("dilation", 1))
    _, h, w = t.shape
    return F.pad(x, same_pads(w, kw, sw, dw) + same_pads(h, kh, sh, dh), value=value), (0, 0)


def _window2d(t: TensorType, k, s, p, d, ceil, what) -> TensorType:
    c, h, w = t.shape
    (kh, kw), (sh, sw), (dh, dw) = pair(k), pair(s), pair(d)
    if p == "same":  # padded by the input's size (same_pads) to ceil(size / stride), then windowed without padding
        h, w = h + sum(same_pads(h, kh, sh, dh)), w + sum(same_pads(w, kw, sw, dw))
        return TensorType((c, _window(h, kh, sh, 0, dh, ceil, "height"), _window(w, kw, sw, 0, dw, ceil, "width")))
    ph, pw = pair(p)
    for kk, pp in ((kh, ph), (kw, pw)):
        if pp * 2 > kk and what != "conv":  # PyTorch's pooling rule
            raise ShapeError(f"padding {pp} must be at most half the kernel size {kk}")
    return TensorType((c, _window(h, kh, sh, ph, dh, ceil, "height"), _window(w, kw, sw, pw, dw, ceil, "width")))


# ---------------------------------------------------------------- convolution


class ConvArgs(Args):
    out_channels: Pos
    kernel_size: Pair
    stride: Pair = 1
    padding: Padding = 0
    dilation: Pair = 1
    groups: Pos = 1
    bias: bool = True


def _conv_shape(a: ConvArgs, t: TensorType) -> TensorType:
    c = t.shape[0]
    if c % a.groups or a.out_channels % a.groups:
        raise ShapeError(f"groups={a.groups} must divide both the input ({c}) and output ({a.out_channels}) channels")
    _, h, w = _window2d(t, a.kernel_size, a.stride, a.padding, a.dilation, False, "conv").shape
    return TensorType((a.out_channels, h, w))


def _conv_params(a: ConvArgs, t: TensorType) -> int:
    kh, kw = pair(a.kernel_size)
    return a.out_channels * (t.shape[0] // a.groups) * kh * kw + (a.out_channels if a.bias else 0)


def _conv_macs(a: ConvArgs, t: TensorType, o: TensorType) -> int:
    kh, kw = pair(a.kernel_size)
    return math.prod(o.shape) * (t.shape[0] // a.groups) * kh * kw


def _conv_make(a: dict, t: TensorType):
    from torch import nn

    return nn.Conv2d(t.shape[0], a["out_channels"], a["kernel_size"], bias=a["bias"], groups=a["groups"])


def _conv_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    x, padding = _same_input(xs[0], a, t)
    return F.conv2d(x, m.weight, m.bias, pair(a["stride"]), padding, pair(a["dilation"]), a["groups"])


def _conv_label(a: dict) -> str:
    stride = one(a.get("stride", 1))
    text = f"conv {size_text(a['kernel_size'])}"
    if stride != 1:
        text += f"/{stride_text(stride)}"
    text += f", {a['out_channels']}"
    if one(a.get("dilation", 1)) != 1:
        text += f", dilation {one(a['dilation'])}"
    if a.get("groups", 1) != 1:
        text += f", groups {a['groups']}"
    return text


def _pool_label(kind: str):
    def label(a: dict) -> str:
        stride = one(a.get("stride") or a["kernel_size"])
        return f"{kind} {size_text(a['kernel_size'])}" + ("" if stride == 1 else f"/{stride_text(stride)}")

    return label


_register(OpKind(
    "conv", ConvArgs, _conv_shape, module="nn.Conv2d", same_module="_Conv2dSame", in_arg=True,
    channels_from="out_channels", params=_conv_params, macs=_conv_macs, make=_conv_make, run=_conv_run, doc="2-D convolution",
    label=_conv_label, fuses_into="conv_act", saves=INPUT, init_params=WEIGHT_BIAS, init_has=bias_if("bias"),
    init_sizes=conv_sizes))


# ------------------------------------------- convolution with scaled weight standardisation


class WSConvArgs(ConvArgs):
    gamma: float = 1.0  # finite, as every argument (Args' allow_inf_nan=False)
    eps: Annotated[float, Field(gt=0)] = 1e-6


def _ws_conv_shape(a: WSConvArgs, t: TensorType) -> TensorType:
    kh, kw = pair(a.kernel_size)
    if t.shape[0] % a.groups == 0 and t.shape[0] // a.groups * kh * kw == 1:
        raise ShapeError("each output channel has a single weight (a 1x1 kernel on one input channel a group): "
                         "standardised, it is 0, and torch refuses it in training",
                         hint="a plain conv, or a larger kernel or more input channels a group")
    return _conv_shape(a, t)


def _ws_conv_params(a: WSConvArgs, t: TensorType) -> int:
    return _conv_params(a, t) + a.out_channels  # and a gain per output channel


def _ws_conv_make(a: dict, t: TensorType):
    import torch
    from torch import nn

    m = _conv_make(a, t)
    m.gain = nn.Parameter(torch.ones(a["out_channels"], 1, 1, 1))
    return m


def _ws_conv_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Scaled weight standardisation (Brock, De and Smith 2021), with eps as timm adds it: each output channel's
    weights less their mean, over the root of their (biased) variance plus eps, times the channel's learned gain
    and gamma / sqrt(fan_in), fan_in its weights' count; then the conv."""
    import torch
    import torch.nn.functional as F

    w = m.weight
    fan_in = w[0].numel()
    mean = w.mean((1, 2, 3), keepdim=True)
    var = (w - mean).square().mean((1, 2, 3), keepdim=True)
    w = (w - mean) / torch.sqrt(var + a["eps"]) * m.gain * (a["gamma"] / math.sqrt(fan_in))
    x, padding = _same_input(xs[0], a, t)
    return F.conv2d(x, w, m.bias, pair(a["stride"]), padding, pair(a["dilation"]), a["groups"])


def _ws_conv_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """Its input, and whatever the batch, the standardised weights it convolves with (made anew in each pass) and
    their means and deviations (float32)."""
    kh, kw = pair(a["kernel_size"])
    return Saves((0,), fixed=((a["out_channels"] * ins[0][0] // a["groups"] * kh * kw, 0),
                              (3 * a["out_channels"], 4)))


def _ws_conv_makes(a: dict, ins: tuple, out: tuple) -> Makes:
    """Whatever the batch, each pass: the standardised weights, and the gain times the scale (one an output
    channel)."""
    kh, kw = pair(a["kernel_size"])
    return Makes(fixed=((a["out_channels"] * ins[0][0] // a["groups"] * kh * kw + a["out_channels"], 0),))


_register(OpKind(
    "ws_conv", WSConvArgs, _ws_conv_shape, module="_WSConv2d", same_module="_WSConv2dSame", in_arg=True,
    channels_from="out_channels", params=_ws_conv_params, macs=_conv_macs, make=_ws_conv_make, run=_ws_conv_run,
    doc="2-D convolution with scaled weight standardisation (NF-ResNets, NFNets): weight, bias and a gain",
    label=lambda a: "ws_" + _conv_label(a), saves=_ws_conv_saves, makes=_ws_conv_makes,
    init_params=("weight", "bias", "gain"), init_sizes=conv_sizes,
    init_has=lambda a: ("weight", "bias", "gain") if a.get("bias", True) else ("weight", "gain")))


# -------------------------------------------------------------------- pooling


class PoolArgs(Args):
    kernel_size: Pair
    stride: Pair | None = None
    padding: Padding = 0
    dilation: Pair = 1
    ceil_mode: bool = False


class AvgPoolArgs(Args):
    kernel_size: Pair
    stride: Pair | None = None
    padding: Padding = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


def _pool_shape(a, t: TensorType) -> TensorType:
    stride = a.stride if a.stride is not None else a.kernel_size
    return _window2d(t, a.kernel_size, stride, a.padding, getattr(a, "dilation", 1), a.ceil_mode, "pool")


class AdaptiveArgs(Args):
    output_size: Pair


def _adaptive_shape(a: AdaptiveArgs, t: TensorType) -> TensorType:
    return TensorType((t.shape[0], *pair(a.output_size)))


def _maxpool_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    k = a["kernel_size"]
    x, padding = _same_input(xs[0], a, t, -math.inf)  # "same": timm's MaxPool2dSame pads with -inf
    return F.max_pool2d(x, k, a["stride"] or k, padding, a["dilation"], a["ceil_mode"])


def _avgpool_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    k = a["kernel_size"]
    x, padding = _same_input(xs[0], a, t)  # "same": timm's AvgPool2dSame pads with zeros, which count
    return F.avg_pool2d(x, k, a["stride"] or k, padding, a["ceil_mode"], a["count_include_pad"])


def _adaptive_run(reduce: str):
    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        import torch.nn.functional as F

        pool = F.adaptive_avg_pool2d if reduce == "avg" else F.adaptive_max_pool2d
        return pool(xs[0], pair(a["output_size"]))

    return run


def _with_indices(a: dict, ins: tuple, out: tuple) -> Saves:
    """A max pool keeps its input and the int64 index of each output's maximum."""
    return Saves((0,), extra=((math.prod(out), 8),))


def _adaptive_avg_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """To 1 x 1, torch takes the mean, which keeps nothing; to another size, the pool keeps its input."""
    return NOTHING if math.prod(out[1:]) == 1 else INPUT


_register(OpKind(
    "maxpool", PoolArgs, _pool_shape, module="nn.MaxPool2d", functional="F.max_pool2d",
    same_module="_MaxPool2dSame", same_functional="_max_pool2d_same",
    run=_maxpool_run, doc="max pooling; stride defaults to the kernel size",
    label=_pool_label("maxpool"), saves=_with_indices))
_register(OpKind(
    "avgpool", AvgPoolArgs, _pool_shape, module="nn.AvgPool2d", functional="F.avg_pool2d",
    same_module="_AvgPool2dSame", same_functional="_avg_pool2d_same", run=_avgpool_run, doc="average pooling; stride defaults to the kernel size",
    label=_pool_label("avgpool"), saves=INPUT))
_register(OpKind(
    "adaptive_avgpool", AdaptiveArgs, _adaptive_shape, module="nn.AdaptiveAvgPool2d",
    functional="F.adaptive_avg_pool2d", run=_adaptive_run("avg"), doc="average pooling to a fixed output size",
    label=lambda a: f"adaptive_avgpool {size_text(a['output_size'])}", saves=_adaptive_avg_saves))
_register(OpKind(
    "adaptive_maxpool", AdaptiveArgs, _adaptive_shape, module="nn.AdaptiveMaxPool2d",
    functional="F.adaptive_max_pool2d", run=_adaptive_run("max"), doc="max pooling to a fixed output size",
    label=lambda a: f"adaptive_maxpool {size_text(a['output_size'])}", saves=_with_indices))


_register(OpKind(
    "global_avgpool", NoArgs, lambda a, t: TensorType((t.shape[0],), "F"), template="{x}.mean([2, 3])",
    run=lambda m, a, t, xs, training: xs[0].mean(dim=(-2, -1)),
    doc="the mean over height and width: C x H x W -> C features", saves=NOTHING))


# ------------------------------------------------------------------- upsampling


class UpsampleArgs(Args):
    scale_factor: Pos
    mode: Literal["nearest", "bilinear"] = "nearest"


def _upsample_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch

    x = xs[0]
    s = a["scale_factor"]
    if a["mode"] == "nearest":  # each pixel repeated s x s times
        return x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
    # bilinear without corner alignment: output pixel i samples the input at (i + 0.5) / s - 0.5, clamped at 0
    h, w = x.shape[2], x.shape[3]

    def weights(size: int):
        pos = ((torch.arange(size * s, dtype=x.dtype) + 0.5) / s - 0.5).clamp(min=0)
        lo = pos.floor().long().clamp(max=size - 1)
        hi = (lo + 1).clamp(max=size - 1)
        return lo, hi, pos - lo

    (r0, r1, fr), (c0, c1, fc) = weights(h), weights(w)
    rows = x[:, :, r0] * (1 - fr)[:, None] + x[:, :, r1] * fr[:, None]
    return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


_register(OpKind(
    "upsample", UpsampleArgs,
    lambda a, t: TensorType((t.shape[0], t.shape[1] * a.scale_factor, t.shape[2] * a.scale_factor)),
    module="nn.Upsample", template="F.interpolate({x}, scale_factor={scale_factor}, mode={mode})",
    run=_upsample_run, doc="enlarges the map by an integer factor: nearest neighbour, or bilinear",
    label=lambda a: f"upsample x{a['scale_factor']} {a['mode']}", saves=NOTHING))
