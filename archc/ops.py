"""The layer kinds the language knows: one registry entry each.

An entry holds everything about a kind: its argument schema (a pydantic
model, field order = positional order), how it transforms a shape, how many
parameters and multiply-accumulates it costs, and how it is written in
PyTorch, as a module (``nn.Conv2d(...)``) and, for parameter-free kinds, as a
function call in ``forward``. Adding a layer kind means adding one entry here.

Shapes exclude the batch dimension: ``(C, H, W)`` or, once flattened, ``(F,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Shape = tuple[int, ...]
Pos = Annotated[int, Field(gt=0)]
NonNeg = Annotated[int, Field(ge=0)]
Pair = Pos | tuple[Pos, Pos]
PadPair = NonNeg | tuple[NonNeg, NonNeg]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]


class ShapeError(ValueError):
    """A shape rule failed; the elaborator adds the location."""


class Args(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


@dataclass(frozen=True)
class OpKind:
    name: str
    args: type[Args]
    shape: Callable[[Args, Shape], Shape]
    module: str | None = None  # the torch.nn class
    in_arg: str | None = None  # how the inferred input size reaches the module: "channels" or "features"
    functional: str | None = None  # the function that does it in forward ("" for identity); None: needs a module
    functional_extra: tuple[str, ...] = ()  # trailing arguments of that call
    params: Callable[[Args, Shape], int] = lambda a, s: 0
    macs: Callable[[Args, Shape, Shape], int] = lambda a, s, o: 0
    flat_input: bool = False  # works on (F,) inputs rather than (C, H, W)
    inplace: bool = False  # may be written inplace=True where its input is not shared
    channels_from: str | None = None  # the argument that sets the output channels (features); None: unchanged
    channels_rule: Callable | None = None  # (input channels, {arg: expr}) -> output channels, as expressions
    template: str | None = None  # forward-only form as a Python expression over {x} and the arguments
    flattens: bool = False
    flat_module: str | None = None  # the torch.nn class for a flat (F,) input, where it differs
    doc: str = ""

    @property
    def has_params(self) -> bool:
        return self.functional is None and self.template is None

    @cached_property
    def positional(self) -> list[str]:
        return list(self.args.model_fields)


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def _spatial(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{what} needs a C x H x W input, got a flat tensor of {shape[0]} features",)
    return shape  # type: ignore[return-value]


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


def _window2d(shape: Shape, k, s, p, d, ceil, what) -> Shape:
    c, h, w = _spatial(shape, what)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(s), pair(p), pair(d)
    for kk, pp in ((kh, ph), (kw, pw)):
        if pp * 2 > kk and what != "conv":  # PyTorch's pooling rule
            raise ShapeError(f"padding {pp} must be at most half the kernel size {kk}")
    return (c, _window(h, kh, sh, ph, dh, ceil, "height"), _window(w, kw, sw, pw, dw, ceil, "width"))


# ---------------------------------------------------------------- convolution


class ConvArgs(Args):
    out_channels: Pos
    kernel_size: Pair
    stride: Pair = 1
    padding: PadPair = 0
    dilation: Pair = 1
    groups: Pos = 1
    bias: bool = True


def _conv_shape(a: ConvArgs, s: Shape) -> Shape:
    c = _spatial(s, "conv")[0]
    if c % a.groups or a.out_channels % a.groups:
        raise ShapeError(f"groups={a.groups} must divide both the input ({c}) and output ({a.out_channels}) channels")
    _, h, w = _window2d(s, a.kernel_size, a.stride, a.padding, a.dilation, False, "conv")
    return (a.out_channels, h, w)


def _conv_params(a: ConvArgs, s: Shape) -> int:
    kh, kw = pair(a.kernel_size)
    return a.out_channels * (s[0] // a.groups) * kh * kw + (a.out_channels if a.bias else 0)


def _conv_macs(a: ConvArgs, s: Shape, o: Shape) -> int:
    kh, kw = pair(a.kernel_size)
    return o[0] * o[1] * o[2] * (s[0] // a.groups) * kh * kw


# -------------------------------------------------------------------- pooling


class PoolArgs(Args):
    kernel_size: Pair
    stride: Pair | None = None
    padding: PadPair = 0
    dilation: Pair = 1
    ceil_mode: bool = False


class AvgPoolArgs(Args):
    kernel_size: Pair
    stride: Pair | None = None
    padding: PadPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


def _pool_shape(a, s: Shape) -> Shape:
    stride = a.stride if a.stride is not None else a.kernel_size
    return _window2d(s, a.kernel_size, stride, a.padding, getattr(a, "dilation", 1), a.ceil_mode, "pool")


class AdaptiveArgs(Args):
    output_size: Pair


def _adaptive_shape(a: AdaptiveArgs, s: Shape) -> Shape:
    c = _spatial(s, "adaptive pooling")[0]
    return (c, *pair(a.output_size))


# ------------------------------------------------------------- normalisation


class BatchNormArgs(Args):
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = True


class LRNArgs(Args):
    size: Pos
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


class NoArgs(Args):
    pass


class DropoutArgs(Args):
    p: Prob = 0.5


class LinearArgs(Args):
    out_features: Pos
    bias: bool = True


def _same(a, s: Shape) -> Shape:
    return s


def _same_spatial(a, s: Shape) -> Shape:
    _spatial(s, "this layer")
    return s


def _flat(s: Shape) -> int:
    return math.prod(s)


def _linear_shape(a: LinearArgs, s: Shape) -> Shape:
    if len(s) != 1:
        raise ShapeError(f"linear needs a flat input, got {' x '.join(map(str, s))}",)
    return (a.out_features,)


REGISTRY: dict[str, OpKind] = {}


def _register(kind: OpKind) -> None:
    REGISTRY[kind.name] = kind


_register(OpKind(
    "conv", ConvArgs, _conv_shape, module="nn.Conv2d", in_arg="channels", channels_from="out_channels",
    params=_conv_params, macs=_conv_macs, doc="2-D convolution"))
_register(OpKind(
    "batchnorm", BatchNormArgs, _same, module="nn.BatchNorm2d", in_arg="channels", flat_module="nn.BatchNorm1d",
    params=lambda a, s: 2 * s[0] if a.affine else 0, flat_input=True,
    doc="batch normalisation over channels (or features, after flatten)"))
_register(OpKind(
    "linear", LinearArgs, _linear_shape, module="nn.Linear", in_arg="features", channels_from="out_features",
    params=lambda a, s: s[0] * a.out_features + (a.out_features if a.bias else 0),
    macs=lambda a, s, o: s[0] * a.out_features, flat_input=True, doc="fully connected layer"))
_register(OpKind(
    "relu", NoArgs, _same, module="nn.ReLU", functional="F.relu", flat_input=True, inplace=True,
    doc="rectified linear unit"))
_register(OpKind(
    "maxpool", PoolArgs, _pool_shape, module="nn.MaxPool2d", functional="F.max_pool2d",
    doc="max pooling; stride defaults to the kernel size"))
_register(OpKind(
    "avgpool", AvgPoolArgs, _pool_shape, module="nn.AvgPool2d", functional="F.avg_pool2d",
    doc="average pooling; stride defaults to the kernel size"))
_register(OpKind(
    "adaptive_avgpool", AdaptiveArgs, _adaptive_shape, module="nn.AdaptiveAvgPool2d",
    functional="F.adaptive_avg_pool2d", doc="average pooling to a fixed output size"))
_register(OpKind(
    "adaptive_maxpool", AdaptiveArgs, _adaptive_shape, module="nn.AdaptiveMaxPool2d",
    functional="F.adaptive_max_pool2d", doc="max pooling to a fixed output size"))
_register(OpKind(
    "lrn", LRNArgs, _same_spatial, module="nn.LocalResponseNorm",
    functional="F.local_response_norm", doc="local response normalisation across channels"))
_register(OpKind(
    "dropout", DropoutArgs, _same, module="nn.Dropout", functional="F.dropout", functional_extra=("training=self.training",),
    flat_input=True, doc="dropout, active in training mode only"))
_register(OpKind(
    "flatten", NoArgs, lambda a, s: (_flat(s),), module="nn.Flatten", functional="torch.flatten", functional_extra=("1",), flattens=True,
    doc="C x H x W -> C*H*W features"))
_register(OpKind(
    "identity", NoArgs, _same, module="nn.Identity", functional="", flat_input=True,
    doc="passes its input through (a concat branch that keeps the input)"))


class SubsampleArgs(Args):
    stride: Pos


def _subsample_shape(a: SubsampleArgs, s: Shape) -> Shape:
    c, h, w = _spatial(s, "subsample")
    return (c, -(-h // a.stride), -(-w // a.stride))


class PadChannelsArgs(Args):
    before: NonNeg
    after: NonNeg


def _pad_channels_rule(cur, args):
    from .nodes import BinOp

    out = cur
    for key in ("before", "after"):
        if key in args:
            out = BinOp("+", out, args[key], args[key].span)
    return out


_register(OpKind(
    "subsample", SubsampleArgs, _subsample_shape, template="{x}[:, :, ::{stride}, ::{stride}]",
    doc="keeps every stride-th row and column (the option-A shortcut of CIFAR ResNets)"))
_register(OpKind(
    "pad_channels", PadChannelsArgs, lambda a, s: (s[0] + a.before + a.after, *s[1:]),
    template="F.pad({x}, (0, 0, 0, 0, {before}, {after}))", channels_rule=_pad_channels_rule,
    doc="adds zero channels before and after the input's (the option-A shortcut of CIFAR ResNets)"))
