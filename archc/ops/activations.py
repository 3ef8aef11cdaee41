"""The activation layer kinds: elementwise functions (some with arguments), prelu's learned slopes, and softmax
over one dimension. Registry entries like those of ``ops.base``; each ``run`` is written from the function's
definition, not from the torch call the code generator writes (torch imported inside each function)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from ..lang import nodes as n
from ..sema.layout import NAMES, TensorType
from .base import (
    ANY,
    INPUT,
    OUTPUT,
    Args,
    Finite,
    NoArgs,
    OpKind,
    Pos,
    Saves,
    ShapeError,
    _register,
    _same,
    axis,
    sym_axis,
)


class GeluArgs(Args):
    approximate: Literal["none", "tanh"] = "none"


class LeakyReluArgs(Args):
    negative_slope: Finite = 0.01


class EluArgs(Args):
    alpha: Finite = 1.0


class CeluArgs(Args):
    alpha: Annotated[float, Field(gt=0)] = 1.0  # it divides by alpha


class SoftplusArgs(Args):
    beta: Annotated[float, Field(gt=0)] = 1.0
    threshold: Finite = 20.0


class HardtanhArgs(Args):
    min_val: Finite = -1.0
    max_val: Finite = 1.0


class PReLUArgs(Args):
    num_parameters: Pos = 1
    init: Finite = 0.25


class SoftmaxArgs(Args):
    dim: int


class ShrinkArgs(Args):
    lambd: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.5  # torch's name (lambda is Python's)


class ThresholdArgs(Args):
    threshold: Finite
    value: Finite


class GluArgs(Args):
    dim: int = -1


def _hardtanh_shape(a: HardtanhArgs, t: TensorType) -> TensorType:
    if a.min_val >= a.max_val:
        raise ShapeError(f"min_val ({a.min_val}) must be below max_val ({a.max_val})",
                         hint="hardtanh(min_val, max_val) clamps to [min_val, max_val]")
    return t


def _prelu_shape(a: PReLUArgs, t: TensorType) -> TensorType:
    """One slope, or one per channel: torch's PReLU reads dimension 1, the features of a map or flat features
    only (of tokens it is the length, of a channels-last map the height)."""
    if a.num_parameters == 1:
        return t
    if t.layout not in ("CHW", "F"):
        raise ShapeError(f"{a.num_parameters} slopes need one per channel of a C x H x W map or of flat features, "
                         f"not of {NAMES[t.layout]}", hint="learn one slope: prelu(1)")
    if a.num_parameters != t.features:
        raise ShapeError(f"{a.num_parameters} slopes for {t.features} channels",
                         hint=f"one per channel, prelu({t.features}), or one for all, prelu(1)")
    return t


def _softmax_shape(a: SoftmaxArgs, t: TensorType) -> TensorType:
    """``dim`` counts as torch does, the batch first (as ``permute``'s dims): 1 to the rank, or -1 from the end."""
    rank = len(t.shape)
    feature = t.feature_axis + 1
    hint = f"dim counts the batch as 0: here 1 to {rank} (or -1 to -{rank}); the features are dim {feature}"
    if a.dim in (0, -rank - 1):
        raise ShapeError(f"dim {a.dim} is the batch: it would normalise across the samples", hint=hint)
    if not -rank <= a.dim <= rank:
        raise ShapeError(f"dim {a.dim} is out of range for {NAMES[t.layout]} and the batch", hint=hint)
    return t


def _pointwise(f):
    """A run of an elementwise function ``f(torch, x, args)``."""

    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        import torch

        return f(torch, xs[0], a)

    return run


def _gelu(torch, x, a):
    if a["approximate"] == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _softplus(torch, x, beta: float = 1.0):
    """log(1 + exp(beta x)) / beta."""
    return torch.log1p(torch.exp(beta * x)) / beta


# SELU's constants, from Klambauer et al. (2017): the fixed point of mean 0 and variance 1
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _softmax(torch, x, a):
    shifted = x - x.amax(a["dim"], keepdim=True)  # the same quotient, without overflow
    e = shifted.exp()
    return e / e.sum(a["dim"], keepdim=True)


def _log_softmax(torch, x, a):
    shifted = x - x.amax(a["dim"], keepdim=True)
    return shifted - shifted.exp().sum(a["dim"], keepdim=True).log()


# Written from each function's definition, not from the torch call the code generator writes.
_ACTIVATIONS = {
    "relu": _pointwise(lambda torch, x, a: x.clamp(min=0)),
    "relu6": _pointwise(lambda torch, x, a: x.clamp(0, 6)),
    "silu": _pointwise(lambda torch, x, a: x / (1 + torch.exp(-x))),
    "sigmoid": _pointwise(lambda torch, x, a: 1 / (1 + torch.exp(-x))),
    "tanh": _pointwise(lambda torch, x, a: torch.tanh(x)),
    "hardsigmoid": _pointwise(lambda torch, x, a: (x + 3).clamp(0, 6) / 6),
    "hardswish": _pointwise(lambda torch, x, a: x * (x + 3).clamp(0, 6) / 6),
    "gelu": _pointwise(_gelu),
    "leaky_relu": _pointwise(lambda torch, x, a: torch.where(x >= 0, x, a["negative_slope"] * x)),
    "elu": _pointwise(lambda torch, x, a: torch.where(x > 0, x, a["alpha"] * torch.expm1(x))),
    "celu": _pointwise(lambda torch, x, a: x.clamp(min=0) + (a["alpha"] * torch.expm1(x / a["alpha"])).clamp(max=0)),
    "selu": _pointwise(lambda torch, x, a: _SELU_SCALE * (x.clamp(min=0)
                                                          + (_SELU_ALPHA * torch.expm1(x)).clamp(max=0))),
    "mish": _pointwise(lambda torch, x, a: x * torch.tanh(_softplus(torch, x))),
    "softplus": _pointwise(lambda torch, x, a: torch.where(a["beta"] * x > a["threshold"], x,
                                                           _softplus(torch, x, a["beta"]))),
    "hardtanh": _pointwise(lambda torch, x, a: x.clamp(a["min_val"], a["max_val"])),
    "softsign": _pointwise(lambda torch, x, a: x / (1 + x.abs())),
    "tanhshrink": _pointwise(lambda torch, x, a: x - torch.tanh(x)),
    # log(1 / (1 + exp(-x))), as min(x, 0) - log(1 + exp(-|x|)) so that exp cannot overflow
    "logsigmoid": _pointwise(lambda torch, x, a: x.clamp(max=0) - torch.log1p(torch.exp(-x.abs()))),
    "softmax": _pointwise(_softmax),
    "log_softmax": _pointwise(_log_softmax),
    "softmin": _pointwise(lambda torch, x, a: _softmax(torch, -x, a)),
    "softmax2d": _pointwise(lambda torch, x, a: _softmax(torch, x, {"dim": 1})),  # a map's channels
    "hardshrink": _pointwise(lambda torch, x, a: torch.where(x.abs() > a["lambd"], x, torch.zeros_like(x))),
    "softshrink": _pointwise(lambda torch, x, a: x - x.clamp(-a["lambd"], a["lambd"])),
    "threshold": _pointwise(lambda torch, x, a: torch.where(x > a["threshold"], x, torch.full_like(x, a["value"]))),
}


def _one_more(a: dict, ins: tuple, out: tuple) -> Saves:
    """Composed in torch of two ops, whose first result (of the input's size) the second one keeps: tanhshrink's
    tanh(x)."""
    return Saves(extra=((math.prod(out), 0),))


def _and_one_more(a: dict, ins: tuple, out: tuple) -> Saves:
    """The input and a tensor of its size: softsign's 1 + |x|, logsigmoid's buffer (on the CPU)."""
    return Saves((0,), extra=((math.prod(out), 0),))


# saves: what backward keeps, from torch's derivatives.yaml: the input (most), the output (relu, sigmoid, tanh,
# softmax); run in place, the two are one tensor
def _activation(name: str, module: str, functional: str, doc: str, inplace: bool = True, args=NoArgs,
                keeps_output: bool = False, shape=_same, value: bool = True, label=None, inplace_if=None,
                post_op: tuple | None = None, saves=INPUT) -> None:
    _register(OpKind(name, args, shape, layouts=ANY, module=module, functional=functional, inplace=inplace,
                     inplace_if=inplace_if, value=value, keeps_output=keeps_output, run=_ACTIVATIONS[name],
                     label=label, doc=doc, post_op=post_op, saves=saves))


def _at_least_zero(field: str):
    """torch cannot differentiate leaky_relu or elu computed in place with a negative slope: such a layer (or one
    whose slope is not a constant) is written out of place."""
    return lambda a: a[field] >= 0


# post_op: oneDNN's name for it (with its scalars and algorithm) where a conv can apply it as it writes its output,
# for the arguments' defaults; deploy fuses an activation written without arguments into the conv before it
# keeps_output: the backward reads the output, always (sigmoid, tanh, softmax) or when run in place (relu,
# leaky_relu, elu, celu, selu), so the next layer may not change it in place (checked with torch's autograd)
_activation("relu", "nn.ReLU", "F.relu", "rectified linear unit, max(0, x)", keeps_output=True,
            post_op=("relu", (), ""), saves=OUTPUT)
_activation("relu6", "nn.ReLU6", "F.relu6", "min(max(0, x), 6) (MobileNet)", post_op=("hardtanh", (0.0, 6.0), ""))
_activation("silu", "nn.SiLU", "F.silu", "x * sigmoid(x), also called swish (EfficientNet)",
            post_op=("swish", (), ""))
_activation("sigmoid", "nn.Sigmoid", "torch.sigmoid", "1 / (1 + exp(-x))", inplace=False, keeps_output=True,
            post_op=("sigmoid", (), ""), saves=OUTPUT)
_activation("tanh", "nn.Tanh", "torch.tanh", "hyperbolic tangent", inplace=False, keeps_output=True,
            post_op=("tanh", (), ""), saves=OUTPUT)
_activation("hardsigmoid", "nn.Hardsigmoid", "F.hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3)",
            post_op=("hardsigmoid", (), ""))
_activation("hardswish", "nn.Hardswish", "F.hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)",
            post_op=("hardswish", (), ""))
_activation("gelu", "nn.GELU", "F.gelu", "x * Phi(x), the Gaussian error linear unit (ConvNeXt, ViT)",
            inplace=False, args=GeluArgs, post_op=("gelu", (), "none"))
_activation("leaky_relu", "nn.LeakyReLU", "F.leaky_relu", "x, or negative_slope * x below zero",
            args=LeakyReluArgs, keeps_output=True, label=lambda a: f"leaky_relu {a['negative_slope']}",
            inplace_if=_at_least_zero("negative_slope"))
_activation("elu", "nn.ELU", "F.elu", "x, or alpha * (exp(x) - 1) below zero, the exponential linear unit",
            args=EluArgs, keeps_output=True, inplace_if=_at_least_zero("alpha"))
_activation("celu", "nn.CELU", "F.celu", "max(0, x) + min(0, alpha * (exp(x / alpha) - 1)), ELU made smooth "
            "for every alpha", args=CeluArgs, keeps_output=True)
_activation("selu", "nn.SELU", "F.selu", "scale * elu(x, alpha) with the self-normalising constants "
            "(alpha 1.6733, scale 1.0507)", keeps_output=True)
_activation("mish", "nn.Mish", "F.mish", "x * tanh(softplus(x)) (YOLOv4)")
_activation("softplus", "nn.Softplus", "F.softplus", "log(1 + exp(beta * x)) / beta, a smooth relu; x itself "
            "where beta * x > threshold", inplace=False, args=SoftplusArgs)
_activation("hardtanh", "nn.Hardtanh", "F.hardtanh", "x clamped to [min_val, max_val]", args=HardtanhArgs,
            shape=_hardtanh_shape)
_activation("softsign", "nn.Softsign", "F.softsign", "x / (1 + |x|)", inplace=False, saves=_and_one_more)
_activation("tanhshrink", "nn.Tanhshrink", "F.tanhshrink", "x - tanh(x)", inplace=False, saves=_one_more)
_activation("logsigmoid", "nn.LogSigmoid", "F.logsigmoid", "log(sigmoid(x))", inplace=False, saves=_and_one_more)
_activation("softmax", "nn.Softmax", "F.softmax", "exp(x) / sum(exp(x)) over dimension dim (counting the batch "
            "as 0)", inplace=False, args=SoftmaxArgs, keeps_output=True, shape=_softmax_shape, value=False,
            label=lambda a: f"softmax dim {a['dim']}", saves=OUTPUT)
_activation("log_softmax", "nn.LogSoftmax", "F.log_softmax", "log(softmax(x)) over dimension dim (counting the "
            "batch as 0)", inplace=False, args=SoftmaxArgs, keeps_output=True, shape=_softmax_shape, value=False,
            label=lambda a: f"log_softmax dim {a['dim']}", saves=OUTPUT)
_activation("softmin", "nn.Softmin", "F.softmin", "softmax(-x) over dimension dim (counting the batch as 0)",
            inplace=False, args=SoftmaxArgs, keeps_output=True, shape=_softmax_shape, value=False,
            label=lambda a: f"softmin dim {a['dim']}", saves=OUTPUT)
_register(OpKind(
    "softmax2d", NoArgs, _same, module="nn.Softmax2d", functional="F.softmax", functional_extra=("-3",),
    keeps_output=True, value=True, run=_ACTIVATIONS["softmax2d"], saves=OUTPUT,
    doc="softmax over the channels at each position of a C x H x W map (softmax dim 1 as a module of its own)"))
_activation("hardshrink", "nn.Hardshrink", "F.hardshrink", "x where |x| > lambd, else 0", inplace=False,
            args=ShrinkArgs, label=lambda a: f"hardshrink {a['lambd']}")
_activation("softshrink", "nn.Softshrink", "F.softshrink", "x moved towards 0 by lambd, 0 within lambd of it",
            inplace=False, args=ShrinkArgs, label=lambda a: f"softshrink {a['lambd']}")
_activation("threshold", "nn.Threshold", "F.threshold", "x where x > threshold, else value", inplace=False,
            args=ThresholdArgs, value=False, label=lambda a: f"threshold {a['threshold']} -> {a['value']}")


# ---------------------------------------------------------------- glu: half the axis gates the other half

_GLU_SPAN = n.Span("<generated>", 1, 1, 1, 1)  # sizes __init__ works out, which no spec line wrote


def _glu_shape(a: GluArgs, t: TensorType) -> TensorType:
    i = axis(a.dim, len(t.shape))
    if t.shape[i] % 2:
        raise ShapeError(f"glu halves dimension {a.dim}, of odd size {t.shape[i]}",
                         hint="give it an even size: its first half is gated by its second")
    return TensorType((*t.shape[:i], t.shape[i] // 2, *t.shape[i + 1:]), t.layout)


def _glu_sym(a: dict, shape: tuple) -> tuple | None:
    """The halved axis as __init__ knows it (None where it does not)."""
    i = sym_axis(a.get("dim", -1), len(shape))
    if i is None:
        return None
    half = None if shape[i] is None else n.BinOp("//", shape[i], n.Num(2, _GLU_SPAN), _GLU_SPAN)
    return (*shape[:i], half, *shape[i + 1:])


def _glu_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch

    x = xs[0]
    half = x.shape[a["dim"]] // 2
    first, second = x.narrow(a["dim"], 0, half), x.narrow(a["dim"], half, half)
    return first / (1 + torch.exp(-second))


_register(OpKind(
    "glu", GluArgs, _glu_shape, layouts=ANY, module="nn.GLU", functional="F.glu", sym=_glu_sym, run=_glu_run,
    label=lambda a: f"glu dim {a['dim']}", saves=INPUT,
    doc="the gated linear unit: the first half of dimension dim times the sigmoid of the second (the size halves)"))


# ---------------------------------------------------------------- prelu: a learned slope


def _prelu_make(a: dict, t: TensorType):
    from torch import nn

    return nn.PReLU(a["num_parameters"], a["init"])


def _prelu_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch

    x = xs[0]
    slope = m.weight.reshape(-1, *(1,) * (x.dim() - 2))  # one for all, or one per channel (dimension 1)
    return torch.where(x >= 0, x, slope * x)


_register(OpKind(
    "prelu", PReLUArgs, _prelu_shape, layouts=ANY, module="nn.PReLU", params=lambda a, t: a.num_parameters,
    make=_prelu_make, run=_prelu_run, label=lambda a: f"prelu {a['num_parameters']}", saves=INPUT,
    doc="x, or a learned slope times x below zero: one slope, or one per channel (num_parameters = channels)",
    init_params=("weight",)))
