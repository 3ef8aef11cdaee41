"""The layer kinds the language knows: one registry entry each.

An entry holds everything about a kind: its argument schema (a pydantic model, field order =
positional order), the input layouts it accepts and how it transforms a tensor type, how many
parameters and multiply-accumulates it costs, and how it is written in PyTorch: as a module
(``nn.Conv2d(...)``, or a small helper class of ``helpers.py`` where torch has none), as a
function call in ``forward`` for parameter-free kinds, as a forward-only expression
(``template``), or as a learned tensor (``learned``). Adding a layer kind means adding one entry
here.

Shapes exclude the batch dimension and follow the tensor's layout (``layout.TensorType``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .layout import TensorType

Pos = Annotated[int, Field(gt=0)]
NonNeg = Annotated[int, Field(ge=0)]
Pair = Pos | tuple[Pos, Pos]
PadPair = NonNeg | tuple[NonNeg, NonNeg]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
ANY = None  # an entry's ``layouts``: every layout


class ShapeError(ValueError):
    """A shape rule failed; the elaborator adds the location."""


class Args(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


def _zero(a, t) -> int:
    return 0


def _zero_macs(a, t, o) -> int:
    return 0


@dataclass(frozen=True)
class OpKind:
    name: str
    args: type[Args]
    shape: Callable[[Args, TensorType], TensorType]
    layouts: tuple[str, ...] | None = ("CHW",)  # accepted input layouts (ANY: all)
    module: str | None = None  # the torch.nn class (or helper class) that does it
    modules: dict[str, str] = field(default_factory=dict)  # per input layout, where it differs from ``module``
    in_arg: bool = False  # the module takes the input's feature size (channels) first
    functional: str | None = None  # the function that does it in forward ("" for identity); None: needs a module
    functional_extra: tuple[str, ...] = ()  # trailing arguments of that call
    params: Callable[[Args, TensorType], int] = _zero
    macs: Callable[[Args, TensorType, TensorType], int] = _zero_macs
    inplace: bool = False  # may be written inplace=True where its input is not shared
    keeps_output: bool = False  # its backward reads its output: nothing may change that in place
    view: bool = False  # its output may be its input or a view of it: as fresh as the input was
    channels_from: str | None = None  # the argument that sets the output features; None: unchanged
    channels_rule: Callable | None = None  # (input features, {arg: expr}) -> output features, as expressions
    template: str | None = None  # forward-only form as a Python expression over {x} and the arguments
    call: str | None = None  # how forward calls the module, over {module} and {x}, where not ``{module}({x})``
    ctor_extra: tuple[str, ...] = ()  # trailing keyword arguments of the module's construction
    learned: Callable[[Args, TensorType], tuple[int, ...]] | None = None  # a learned tensor of this shape
    learned_init: str | None = None  # the nn.Parameter's construction over {shape} and the arguments
    flattens: bool = False
    value: bool = False  # may be passed as a value (``activation = relu6``) and called without arguments
    doc: str = ""

    @property
    def has_params(self) -> bool:
        return (self.functional is None and self.template is None) or self.learned is not None

    @cached_property
    def positional(self) -> list[str]:
        return list(self.args.model_fields)

    def module_for(self, layout: str) -> str | None:
        return self.modules.get(layout, self.module)


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


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


def _window2d(t: TensorType, k, s, p, d, ceil, what) -> TensorType:
    c, h, w = t.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(s), pair(p), pair(d)
    for kk, pp in ((kh, ph), (kw, pw)):
        if pp * 2 > kk and what != "conv":  # PyTorch's pooling rule
            raise ShapeError(f"padding {pp} must be at most half the kernel size {kk}")
    return TensorType((c, _window(h, kh, sh, ph, dh, ceil, "height"), _window(w, kw, sw, pw, dw, ceil, "width")))


def _same(a, t: TensorType) -> TensorType:
    return t


REGISTRY: dict[str, OpKind] = {}


def _register(kind: OpKind) -> None:
    REGISTRY[kind.name] = kind


# ---------------------------------------------------------------- convolution


class ConvArgs(Args):
    out_channels: Pos
    kernel_size: Pair
    stride: Pair = 1
    padding: PadPair = 0
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


_register(OpKind(
    "conv", ConvArgs, _conv_shape, module="nn.Conv2d", in_arg=True, channels_from="out_channels",
    params=_conv_params, macs=_conv_macs, doc="2-D convolution"))


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


def _pool_shape(a, t: TensorType) -> TensorType:
    stride = a.stride if a.stride is not None else a.kernel_size
    return _window2d(t, a.kernel_size, stride, a.padding, getattr(a, "dilation", 1), a.ceil_mode, "pool")


class AdaptiveArgs(Args):
    output_size: Pair


def _adaptive_shape(a: AdaptiveArgs, t: TensorType) -> TensorType:
    return TensorType((t.shape[0], *pair(a.output_size)))


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


class NoArgs(Args):
    pass


_register(OpKind(
    "global_avgpool", NoArgs, lambda a, t: TensorType((t.shape[0],), "F"), template="{x}.mean([2, 3])",
    doc="the mean over height and width: C x H x W -> C features"))


# ------------------------------------------------------------- normalisation


class BatchNormArgs(Args):
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = True


class LayerNormArgs(Args):
    eps: Annotated[float, Field(gt=0)] = 1e-5
    elementwise_affine: bool = True
    bias: bool = True


def _layernorm_params(a: LayerNormArgs, t: TensorType) -> int:
    return t.features * (a.elementwise_affine + (a.elementwise_affine and a.bias))


class LRNArgs(Args):
    size: Pos
    alpha: Finite = 1e-4
    beta: Finite = 0.75
    k: Finite = 1.0


_register(OpKind(
    "batchnorm", BatchNormArgs, _same, layouts=("CHW", "F"), module="nn.BatchNorm2d",
    modules={"F": "nn.BatchNorm1d"}, in_arg=True, params=lambda a, t: 2 * t.features if a.affine else 0,
    doc="batch normalisation over channels (or features, after flatten)"))
_register(OpKind(
    "layernorm", LayerNormArgs, _same, layouts=ANY, module="nn.LayerNorm", modules={"CHW": "_LayerNorm2d"},
    in_arg=True, params=_layernorm_params,
    doc="layer normalisation over the feature dimension: the last one, or the channels of a C x H x W map"))
_register(OpKind(
    "lrn", LRNArgs, _same, module="nn.LocalResponseNorm", functional="F.local_response_norm",
    doc="local response normalisation across channels"))


# ---------------------------------------------------------------- activations


class GeluArgs(Args):
    approximate: Literal["none", "tanh"] = "none"


def _activation(name: str, module: str, functional: str, doc: str, inplace: bool = True, args=NoArgs,
                keeps_output: bool = False) -> None:
    _register(OpKind(name, args, _same, layouts=ANY, module=module, functional=functional, inplace=inplace,
                     value=True, keeps_output=keeps_output, doc=doc))


_activation("relu", "nn.ReLU", "F.relu", "rectified linear unit, max(0, x)", keeps_output=True)
_activation("relu6", "nn.ReLU6", "F.relu6", "min(max(0, x), 6) (MobileNet)")
_activation("silu", "nn.SiLU", "F.silu", "x * sigmoid(x), also called swish (EfficientNet)")
_activation("sigmoid", "nn.Sigmoid", "torch.sigmoid", "1 / (1 + exp(-x))", inplace=False, keeps_output=True)
_activation("tanh", "nn.Tanh", "torch.tanh", "hyperbolic tangent", inplace=False, keeps_output=True)
_activation("hardsigmoid", "nn.Hardsigmoid", "F.hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3)")
_activation("hardswish", "nn.Hardswish", "F.hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)")
_activation("gelu", "nn.GELU", "F.gelu", "x * Phi(x), the Gaussian error linear unit (ConvNeXt, ViT)",
            inplace=False, args=GeluArgs)


# ------------------------------------------------------------ linear and more


class DropoutArgs(Args):
    p: Prob = 0.5


class LinearArgs(Args):
    out_features: Pos
    bias: bool = True


def _linear_shape(a: LinearArgs, t: TensorType) -> TensorType:
    return t.with_features(a.out_features)


def _flatten_shape(a, t: TensorType) -> TensorType:
    return TensorType((math.prod(t.shape),), "F")


_register(OpKind(
    "linear", LinearArgs, _linear_shape, layouts=("F", "HWC", "LD", "GLD"), module="nn.Linear", in_arg=True,
    channels_from="out_features", params=lambda a, t: t.features * a.out_features + (a.out_features if a.bias else 0),
    macs=lambda a, t, o: math.prod(t.shape) * a.out_features,
    doc="fully connected layer on the feature dimension (the last one)"))
_register(OpKind(
    "dropout", DropoutArgs, _same, layouts=ANY, module="nn.Dropout", functional="F.dropout",
    functional_extra=("training=self.training",), value=True, view=True,  # p = 0 or eval: the input itself
    doc="dropout, active in training mode only"))
_register(OpKind(
    "flatten", NoArgs, _flatten_shape, layouts=("CHW", "HWC", "LD"), module="nn.Flatten",
    functional="torch.flatten", functional_extra=("1",), flattens=True, view=True, doc="C x H x W -> C*H*W features"))
_register(OpKind(
    "identity", NoArgs, _same, layouts=ANY, module="nn.Identity", functional="", value=True,
    doc="passes its input through (a concat branch that keeps the input)"))


# ------------------------------------------------------------ channels and layout


class SubsampleArgs(Args):
    stride: Pos


def _subsample_shape(a: SubsampleArgs, t: TensorType) -> TensorType:
    c, h, w = t.shape
    return TensorType((c, -(-h // a.stride), -(-w // a.stride)))


class PadChannelsArgs(Args):
    before: NonNeg
    after: NonNeg


def _plus(cur, args, keys):
    from .nodes import BinOp

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
    from .nodes import BinOp

    return BinOp("//", cur, args["chunks"], args["chunks"].span)


class ShuffleArgs(Args):
    groups: Pos


def _shuffle_shape(a: ShuffleArgs, t: TensorType) -> TensorType:
    if t.shape[0] % a.groups:
        raise ShapeError(f"{t.shape[0]} channels do not split into {a.groups} groups")
    return t


class PermuteArgs(Args):
    dims: tuple[NonNeg, NonNeg, NonNeg, NonNeg]


def _permute_shape(a: PermuteArgs, t: TensorType) -> TensorType:
    if sorted(a.dims) != [0, 1, 2, 3] or a.dims[0] != 0:
        raise ShapeError(f"dims {a.dims} must keep the batch first and permute 1, 2, 3 (e.g. (0, 2, 3, 1))")
    layout = "".join(t.layout[d - 1] for d in a.dims[1:])
    if layout not in ("CHW", "HWC"):
        raise ShapeError(f"{a.dims} would give the layout {layout}; archc knows C x H x W and H x W x C")
    return TensorType(tuple(t.shape[d - 1] for d in a.dims[1:]), layout)


_register(OpKind(
    "subsample", SubsampleArgs, _subsample_shape, template="{x}[:, :, ::{stride}, ::{stride}]",
    doc="keeps every stride-th row and column (the option-A shortcut of CIFAR ResNets)"))
_register(OpKind(
    "pad_channels", PadChannelsArgs, lambda a, t: TensorType((t.shape[0] + a.before + a.after, *t.shape[1:])),
    template="F.pad({x}, (0, 0, 0, 0, {before}, {after}))",
    channels_rule=lambda cur, args: _plus(cur, args, ("before", "after")),
    doc="adds zero channels before and after the input's (the option-A shortcut of CIFAR ResNets)"))
_register(OpKind(
    "chunk", ChunkArgs, _chunk_shape, template="{x}.chunk({chunks}, 1)[{index}]", channels_rule=_chunk_rule,
    doc="chunk `index` of the channels split into `chunks` equal parts (ShuffleNetV2's channel split)"))
_register(OpKind(
    "channel_shuffle", ShuffleArgs, _shuffle_shape, template="_channel_shuffle({x}, {groups})",
    doc="interleaves the channels of `groups` groups (ShuffleNet)"))
_register(OpKind(
    "permute", PermuteArgs, _permute_shape, layouts=("CHW", "HWC"), module="_Permute",
    template="torch.permute({x}, {dims})", view=True,
    doc="reorders the dimensions, batch first: (0, 2, 3, 1) makes a map channels-last, (0, 3, 1, 2) undoes it"))


# ------------------------------------------------------------ regularisation


class StochasticDepthArgs(Args):
    p: Prob
    mode: Literal["row", "batch"] = "row"


_register(OpKind(
    "stochastic_depth", StochasticDepthArgs, _same, layouts=ANY,
    template="_stochastic_depth({x}, {p}, {mode}, self.training)",
    doc="in training, zeroes the whole input with probability p, per sample (row) or for the batch, "
        "and scales survivors by 1 / (1 - p); identity in eval"))


# ------------------------------------------------------------ learned tensors


class LearnedArgs(Args):
    shape: tuple[Pos, ...]
    init: Finite = 1.0


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
    params=lambda a, t: math.prod(a.shape),
    doc="multiplies by a learned tensor of the given shape, broadcast over the input, initialised to `init` "
        "(ConvNeXt's layer scale)"))


from . import opspartition, opstokens, opswindows  # noqa: E402, F401  (register the token, window, partition kinds)
