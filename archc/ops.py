"""The layer kinds the language knows: one registry entry each.

An entry holds everything about a kind: its argument schema (a pydantic model, field order =
positional order), the input layouts it accepts and how it transforms a tensor type, how many
parameters and multiply-accumulates it costs, and how it is written in PyTorch: as a module
(``nn.Conv2d(...)``, or a small helper class of ``helpers.py`` where torch has none), as a
function call in ``forward`` for parameter-free kinds, as a forward-only expression
(``template``), or as a learned tensor (``learned``). Adding a layer kind means adding one entry
here.

An entry also carries its functional meaning for the graph interpreter (``interpret.py``), the independent
oracle of the code generator: ``make`` builds the op's module (or learned tensor) from its arguments and input
type, with the generated model's parameter and buffer names; ``run`` computes its output. Both import torch
inside their bodies, so the registry stays importable without it. The kinds are kept in family modules:
``ops_norm`` (normalisation, activations, linear), ``ops_layout`` (channels, layout, regularisation, learned
tensors), ``opstokens``, ``opswindows`` and ``opspartition``.

Shapes exclude the batch dimension and follow the tensor's layout (``layout.TensorType``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

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
    """A shape rule failed; the elaborator adds the location (and ``hint``, where one helps)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


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
    make: Callable[[dict, TensorType], object] | None = None  # interpreter: its module or learned tensor
    run: Callable[..., object] | None = None  # interpreter: (module, args, input type, inputs, training) -> output
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


def _conv_make(a: dict, t: TensorType):
    from torch import nn

    return nn.Conv2d(t.shape[0], a["out_channels"], a["kernel_size"], bias=a["bias"], groups=a["groups"])


def _conv_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    return F.conv2d(xs[0], m.weight, m.bias, pair(a["stride"]), pair(a["padding"]), pair(a["dilation"]), a["groups"])


_register(OpKind(
    "conv", ConvArgs, _conv_shape, module="nn.Conv2d", in_arg=True, channels_from="out_channels",
    params=_conv_params, macs=_conv_macs, make=_conv_make, run=_conv_run, doc="2-D convolution"))


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


def _maxpool_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    k = a["kernel_size"]
    return F.max_pool2d(xs[0], k, a["stride"] or k, a["padding"], a["dilation"], a["ceil_mode"])


def _avgpool_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    k = a["kernel_size"]
    return F.avg_pool2d(xs[0], k, a["stride"] or k, a["padding"], a["ceil_mode"], a["count_include_pad"])


def _adaptive_run(reduce: str):
    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        import torch.nn.functional as F

        pool = F.adaptive_avg_pool2d if reduce == "avg" else F.adaptive_max_pool2d
        return pool(xs[0], pair(a["output_size"]))

    return run


_register(OpKind(
    "maxpool", PoolArgs, _pool_shape, module="nn.MaxPool2d", functional="F.max_pool2d",
    run=_maxpool_run, doc="max pooling; stride defaults to the kernel size"))
_register(OpKind(
    "avgpool", AvgPoolArgs, _pool_shape, module="nn.AvgPool2d", functional="F.avg_pool2d",
    run=_avgpool_run, doc="average pooling; stride defaults to the kernel size"))
_register(OpKind(
    "adaptive_avgpool", AdaptiveArgs, _adaptive_shape, module="nn.AdaptiveAvgPool2d",
    functional="F.adaptive_avg_pool2d", run=_adaptive_run("avg"), doc="average pooling to a fixed output size"))
_register(OpKind(
    "adaptive_maxpool", AdaptiveArgs, _adaptive_shape, module="nn.AdaptiveMaxPool2d",
    functional="F.adaptive_max_pool2d", run=_adaptive_run("max"), doc="max pooling to a fixed output size"))


class NoArgs(Args):
    pass


_register(OpKind(
    "global_avgpool", NoArgs, lambda a, t: TensorType((t.shape[0],), "F"), template="{x}.mean([2, 3])",
    run=lambda m, a, t, xs, training: xs[0].mean(dim=(-2, -1)),
    doc="the mean over height and width: C x H x W -> C features"))


from . import ops_norm, ops_layout  # noqa: E402, F401, I001  (register the other families, in this order)
from . import opspartition, opstokens, opswindows  # noqa: E402, F401  (register the token, window, partition kinds)
