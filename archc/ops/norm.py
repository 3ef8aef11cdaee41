"""The layer kinds of normalisation, activations and fully connected layers: registry entries like those of
``ops.base``, with their meanings for the graph interpreter (torch imported inside each function)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from ..sema.layout import TensorType
from .base import ANY, Args, Finite, NoArgs, OpKind, Pos, Prob, _register, _same


def _identity_run(m, a: dict, t: TensorType, xs: list, training: bool):
    return xs[0]


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


def _batchnorm_make(a: dict, t: TensorType):
    from torch import nn

    cls = nn.BatchNorm2d if t.layout == "CHW" else nn.BatchNorm1d
    return cls(t.features, eps=a["eps"], momentum=a["momentum"], affine=a["affine"])


def _batchnorm_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    if training:  # as nn.BatchNorm's forward keeps it, though a set momentum never reads it
        m.num_batches_tracked.add_(1)
    return F.batch_norm(xs[0], m.running_mean, m.running_var, m.weight, m.bias, training, a["momentum"], a["eps"])


def _layernorm_make(a: dict, t: TensorType):
    from torch import nn

    return nn.LayerNorm(t.features, eps=a["eps"], elementwise_affine=a["elementwise_affine"], bias=a["bias"])


def _layernorm_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch

    x = xs[0].movedim(1, -1) if t.layout == "CHW" else xs[0]  # the features last
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).square().mean(-1, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + a["eps"])
    if m.weight is not None:
        y = y * m.weight
    if m.bias is not None:
        y = y + m.bias
    return y.movedim(-1, 1) if t.layout == "CHW" else y


def _lrn_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    # the mean of squares over a window of `size` channels, size // 2 before and (size - 1) // 2 after
    x = xs[0]
    sq = F.pad(x.square().unsqueeze(1), (0, 0, 0, 0, a["size"] // 2, (a["size"] - 1) // 2))
    mean = F.avg_pool3d(sq, (a["size"], 1, 1), stride=1).squeeze(1)
    return x / (a["k"] + a["alpha"] * mean).pow(a["beta"])


_register(OpKind(
    "batchnorm", BatchNormArgs, _same, layouts=("CHW", "F"), module="nn.BatchNorm2d",
    modules={"F": "nn.BatchNorm1d"}, in_arg=True, params=lambda a, t: 2 * t.features if a.affine else 0,
    make=_batchnorm_make, run=_batchnorm_run, doc="batch normalisation over channels (or features, after flatten)"))
_register(OpKind(
    "layernorm", LayerNormArgs, _same, layouts=ANY, module="nn.LayerNorm", modules={"CHW": "_LayerNorm2d"},
    in_arg=True, params=_layernorm_params, make=_layernorm_make, run=_layernorm_run,
    doc="layer normalisation over the feature dimension: the last one, or the channels of a C x H x W map"))
_register(OpKind(
    "lrn", LRNArgs, _same, module="nn.LocalResponseNorm", functional="F.local_response_norm", run=_lrn_run,
    doc="local response normalisation across channels",
    label=lambda a: f"lrn {a['size']}"))


# ---------------------------------------------------------------- activations


class GeluArgs(Args):
    approximate: Literal["none", "tanh"] = "none"


def _activation(name: str, module: str, functional: str, doc: str, inplace: bool = True, args=NoArgs,
                keeps_output: bool = False) -> None:
    _register(OpKind(name, args, _same, layouts=ANY, module=module, functional=functional, inplace=inplace,
                     value=True, keeps_output=keeps_output, run=_ACTIVATIONS[name], doc=doc))


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
}


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


def _linear_make(a: dict, t: TensorType):
    from torch import nn

    return nn.Linear(t.features, a["out_features"], bias=a["bias"])


def _linear_run(m, a: dict, t: TensorType, xs: list, training: bool):
    y = xs[0] @ m.weight.T
    return y if m.bias is None else y + m.bias


def _dropout_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    return F.dropout(xs[0], a["p"], training)


_register(OpKind(
    "linear", LinearArgs, _linear_shape, layouts=("F", "HWC", "LD", "GLD"), module="nn.Linear", in_arg=True,
    channels_from="out_features", params=lambda a, t: t.features * a.out_features + (a.out_features if a.bias else 0),
    macs=lambda a, t, o: math.prod(t.shape) * a.out_features, make=_linear_make, run=_linear_run,
    doc="fully connected layer on the feature dimension (the last one)",
    label=lambda a: f"linear {a['out_features']}"))
_register(OpKind(
    "dropout", DropoutArgs, _same, layouts=ANY, module="nn.Dropout", functional="F.dropout",
    functional_extra=("training=self.training",), value=True, view=True,  # p = 0 or eval: the input itself
    run=_dropout_run, doc="dropout, active in training mode only",
    label=lambda a: f"dropout {a['p']}"))
_register(OpKind(
    "flatten", NoArgs, _flatten_shape, layouts=("CHW", "HWC", "LD"), module="nn.Flatten",
    functional="torch.flatten", functional_extra=("1",), flattens=True, view=True,
    run=lambda m, a, t, xs, training: xs[0].reshape(xs[0].shape[0], -1), doc="C x H x W -> C*H*W features"))
_register(OpKind(
    "identity", NoArgs, _same, layouts=ANY, module="nn.Identity", functional="", value=True, run=_identity_run,
    doc="passes its input through (a concat branch that keeps the input)"))

