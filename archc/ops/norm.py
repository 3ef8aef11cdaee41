"""The layer kinds of normalisation and fully connected layers: registry entries like those of ``ops.base``, with
their meanings for the graph interpreter (torch imported inside each function). Activations are in
``ops.activations``."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from ..sema.layout import TensorType
from .base import (
    ANY,
    INPUT,
    NOTHING,
    Args,
    Finite,
    NoArgs,
    NonNeg,
    OpKind,
    Pos,
    Prob,
    Saves,
    ShapeError,
    _register,
    _same,
)
from .initsizes import WEIGHT_BIAS, affine_if, bias_if, features_sizes, linear_sizes, shape_sizes


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


class RMSNormArgs(Args):
    eps: Annotated[float, Field(gt=0)] | None = None  # None: torch's, the machine epsilon of the input's dtype
    elementwise_affine: bool = True


def _rmsnorm_shape(a: RMSNormArgs, t: TensorType) -> TensorType:
    if t.layout in ("CL", "CDHW"):
        raise ShapeError(f"rmsnorm normalises the last dimension, or the channels of a C x H x W map; on "
                         f"{t.describe()} the channels are not last",
                         hint="transpose the channels last first, or use groupnorm(1) for all of them at once")
    return t


class InstanceNormArgs(Args):
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = False
    track_running_stats: bool = False


def _instancenorm_shape(a: InstanceNormArgs, t: TensorType) -> TensorType:
    if math.prod(t.shape[1:]) < 2:
        noun = _SPATIAL[t.layout]
        where = "length 1" if t.layout == "CL" else " x ".join(["1"] * (len(t.shape) - 1))
        what = f"a {noun} of {where}" if t.layout == "CL" else f"a {where} {noun}"
        raise ShapeError(f"{what} has one value per channel and sample: it would normalise to 0 (and "
                         "torch refuses it in training)",
                         hint=f"normalise before the {noun} is pooled to {where}, or use batchnorm")
    return t


_SPATIAL = {"CHW": "map", "CL": "signal", "CDHW": "volume"}  # the layouts whose channels are dimension 1


def _per_channel(v, x):
    """A per-channel vector shaped to broadcast over x's positions (C, then 1 for each spatial axis)."""
    return v.reshape(-1, *[1] * (x.dim() - 2))


class GroupNormArgs(Args):
    num_groups: Pos
    eps: Annotated[float, Field(gt=0)] = 1e-5
    affine: bool = True
    bias: bool = True


def _groupnorm_shape(a: GroupNormArgs, t: TensorType) -> TensorType:
    if t.features % a.num_groups:
        raise ShapeError(f"{t.features} channels do not split into {a.num_groups} groups",
                         hint=f"groups that divide {t.features}: "
                              f"{', '.join(str(g) for g in range(1, t.features + 1) if t.features % g == 0)}")
    return t


def _groupnorm_make(a: dict, t: TensorType):
    from torch import nn

    # `bias` only where it is false: only recent torch releases' nn.GroupNorm take it
    return nn.GroupNorm(a["num_groups"], t.features, eps=a["eps"], affine=a["affine"],
                        **({} if a["bias"] else {"bias": False}))


def _groupnorm_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Each sample's channels in ``num_groups`` consecutive groups, each group normalised over its channels and
    H x W together; then a scale and shift per channel."""
    import torch

    x = xs[0]
    g = x.reshape(x.shape[0], a["num_groups"], -1)
    mean = g.mean(-1, keepdim=True)
    var = (g - mean).square().mean(-1, keepdim=True)
    y = ((g - mean) * torch.rsqrt(var + a["eps"])).reshape(x.shape)
    if m.weight is not None:
        y = y * _per_channel(m.weight, x)
    if m.bias is not None:
        y = y + _per_channel(m.bias, x)
    return y


class LRNArgs(Args):
    size: Pos
    alpha: Finite = 1e-4
    beta: Finite = 0.75
    k: Finite = 1.0


def _batchnorm_make(a: dict, t: TensorType):
    from torch import nn

    cls = {"CHW": nn.BatchNorm2d, "CDHW": nn.BatchNorm3d}.get(t.layout, nn.BatchNorm1d)
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


def _rmsnorm_make(a: dict, t: TensorType):
    from torch import nn

    return nn.RMSNorm(t.features, eps=a["eps"], elementwise_affine=a["elementwise_affine"])


def _rmsnorm_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Each position's features over the root of their mean square plus eps (torch's default eps: the dtype's
    machine epsilon), then a learned scale per feature; no mean is taken off (Zhang and Sennrich, 2019)."""
    import torch

    x = xs[0].movedim(1, -1) if t.layout == "CHW" else xs[0]  # the features last
    eps = torch.finfo(x.dtype).eps if a["eps"] is None else a["eps"]
    y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    if m.weight is not None:
        y = y * m.weight
    return y.movedim(-1, 1) if t.layout == "CHW" else y


def _instancenorm_make(a: dict, t: TensorType):
    from torch import nn

    cls = {"CL": nn.InstanceNorm1d, "CDHW": nn.InstanceNorm3d}.get(t.layout, nn.InstanceNorm2d)
    return cls(t.features, eps=a["eps"], momentum=a["momentum"], affine=a["affine"],
               track_running_stats=a["track_running_stats"])


def _instancenorm_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Each sample's channels normalised over their own positions (H x W, L, D x H x W); with running statistics,
    those in eval, and in training the samples' statistics averaged into them (the variance unbiased, as batchnorm
    keeps it)."""
    import torch

    x = xs[0]
    axes = tuple(range(2, x.dim()))
    if training or not a["track_running_stats"]:
        mean = x.mean(axes, keepdim=True)
        var = (x - mean).square().mean(axes, keepdim=True)
        if training and a["track_running_stats"]:
            n = math.prod(x.shape[2:])
            with torch.no_grad():
                m.running_mean.lerp_(mean.mean(0).flatten(), a["momentum"])
                m.running_var.lerp_((var * n / (n - 1)).mean(0).flatten(), a["momentum"])
    else:
        mean, var = _per_channel(m.running_mean, x), _per_channel(m.running_var, x)
    y = (x - mean) * torch.rsqrt(var + a["eps"])
    if m.weight is not None:
        y = y * _per_channel(m.weight, x) + _per_channel(m.bias, x)
    return y


def _lrn_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    # the mean of squares over a window of `size` channels, size // 2 before and (size - 1) // 2 after, at each
    # position (a map's, a signal's or a volume's: read as one axis of positions)
    x = xs[0]
    flat = x.flatten(2)
    sq = F.pad(flat.square().unsqueeze(1), (0, 0, a["size"] // 2, (a["size"] - 1) // 2))
    mean = F.avg_pool2d(sq, (a["size"], 1), stride=1).squeeze(1).reshape(x.shape)
    return x / (a["k"] + a["alpha"] * mean).pow(a["beta"])


def _lrn_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """torch composes it: the padded squares (which its average pool keeps), their mean, its power (both kept by
    the division), and the input."""
    return Saves((0,), extra=((math.prod(out), 0),) * 3)


def _rms_has(a: dict) -> tuple[str, ...]:
    return ("weight",) if a.get("elementwise_affine", True) else ()


_register(OpKind(
    "batchnorm", BatchNormArgs, _same, layouts=("CHW", "F", "CL", "CDHW"), module="nn.BatchNorm2d",
    modules={"F": "nn.BatchNorm1d", "CL": "nn.BatchNorm1d", "CDHW": "nn.BatchNorm3d"}, in_arg=True,
    params=lambda a, t: 2 * t.features if a.affine else 0,
    folds_into=("conv", "linear"), make=_batchnorm_make, run=_batchnorm_run, value=True,
    doc="batch normalisation over channels (of a map, a C x L signal or a volume; or features, after flatten)",
    saves=lambda a, ins, out: Saves((0,), fixed=((2 * out[0], 4),)),  # and the batch's mean and 1 / deviation
    buffers=lambda a, ins, out: ((2 * out[0], 0), (1, 8)),  # running mean and variance, step count
    init_params=WEIGHT_BIAS, init_has=affine_if("affine"), init_sizes=features_sizes))
_register(OpKind(
    "layernorm", LayerNormArgs, _same, layouts=ANY, module="nn.LayerNorm", modules={"CHW": "_LayerNorm2d"},
    in_arg=True, params=_layernorm_params, make=_layernorm_make, run=_layernorm_run, value=True,
    doc="layer normalisation over the feature dimension: the last one, or the channels of a C x H x W map",
    saves=INPUT, init_params=WEIGHT_BIAS, init_has=affine_if("elementwise_affine", "bias"), init_sizes=shape_sizes))
_register(OpKind(
    "rmsnorm", RMSNormArgs, _rmsnorm_shape, layouts=ANY, module="nn.RMSNorm", modules={"CHW": "_RMSNorm2d"},
    in_arg=True, params=lambda a, t: t.features if a.elementwise_affine else 0, make=_rmsnorm_make,
    run=_rmsnorm_run, value=True,
    doc="root-mean-square normalisation over the feature dimension: the last one, or the channels of a map",
    saves=INPUT,  # (and one reciprocal root a position)
    init_params=("weight",), init_has=_rms_has, init_sizes=shape_sizes))
_register(OpKind(
    "rmsnorm2d", RMSNormArgs, _same, module="_RMSNorm2d", in_arg=True,
    params=lambda a, t: t.features if a.elementwise_affine else 0, make=_rmsnorm_make, run=_rmsnorm_run, value=True,
    doc="rmsnorm over the channels of a C x H x W map with a class of its own (timm's RmsNorm2d), so that a network "
        "may hold it as its norm_layer", saves=INPUT, init_params=("weight",), init_has=_rms_has, init_sizes=shape_sizes))
_register(OpKind(
    "instancenorm", InstanceNormArgs, _instancenorm_shape, layouts=tuple(_SPATIAL), module="nn.InstanceNorm2d",
    modules={"CL": "nn.InstanceNorm1d", "CDHW": "nn.InstanceNorm3d"}, in_arg=True,
    params=lambda a, t: 2 * t.features if a.affine else 0, make=_instancenorm_make, run=_instancenorm_run, value=True,
    doc="instance normalisation: each sample's channels over their own H x W (L of a signal, D x H x W of a volume; "
        "style transfer, GANs)", saves=INPUT,
    buffers=lambda a, ins, out: ((2 * out[0], 0), (1, 8)) if a["track_running_stats"] else (),
    init_params=WEIGHT_BIAS, init_has=affine_if("affine"), init_sizes=features_sizes))
_register(OpKind(
    "groupnorm", GroupNormArgs, _groupnorm_shape, layouts=tuple(_SPATIAL), module="nn.GroupNorm",
    in_arg="num_channels",
    params=lambda a, t: t.features * (a.affine + (a.affine and a.bias)), make=_groupnorm_make, run=_groupnorm_run,
    doc="group normalisation: each sample's channels in groups, normalised over the group and its positions (H x W, "
        "a signal's L, a volume's D x H x W; Wu and He)",
    saves=INPUT, init_params=WEIGHT_BIAS, init_has=affine_if("affine", "bias")))
_register(OpKind(
    "lrn", LRNArgs, _same, layouts=tuple(_SPATIAL), module="nn.LocalResponseNorm",
    functional="F.local_response_norm", run=_lrn_run,
    doc="local response normalisation across channels (of a map, a signal or a volume)",
    label=lambda a: f"lrn {a['size']}", saves=_lrn_saves))


# ------------------------------------------------------------ linear and more


class DropoutArgs(Args):
    p: Prob = 0.5


class LinearArgs(Args):
    out_features: Pos
    bias: bool = True


class LinearKindArgs(LinearArgs):
    # (start, stop): the bias entries from start up to stop count as 0 in forward, whatever the parameter holds, so
    # they never learn (torchvision's Swin V2 zeroes its key bias so: F.linear with the bias's key third zeroed)
    zero_bias: tuple[NonNeg, NonNeg] | None = None


def _linear_shape(a: LinearArgs, t: TensorType) -> TensorType:
    part = getattr(a, "zero_bias", None)
    if part is not None and not a.bias:
        raise ShapeError("zero_bias zeroes part of a bias, but this layer has none", hint="bias = true, or drop zero_bias")
    if part is not None and not part[0] < part[1] <= a.out_features:
        raise ShapeError(f"zero_bias {part} is no part of {a.out_features} bias entries",
                         hint=f"(start, stop), 0 <= start < stop <= {a.out_features}: the entries start to stop - 1")
    return t.with_features(a.out_features)


def _flatten_shape(a, t: TensorType) -> TensorType:
    return TensorType((math.prod(t.shape),), "F")


def _linear_make(a: dict, t: TensorType):
    import torch
    from torch import nn

    m = nn.Linear(t.features, a["out_features"], bias=a["bias"])
    if a.get("zero_bias") is not None:  # as torchvision makes Swin V2's qkv
        with torch.no_grad():
            m.bias[a["zero_bias"][0]:a["zero_bias"][1]] = 0.0
    return m


def _linear_run(m, a: dict, t: TensorType, xs: list, training: bool):
    y = xs[0] @ m.weight.T
    if m.bias is None:
        return y
    part = a.get("zero_bias")
    if part is None:
        return y + m.bias
    import torch

    kept = torch.ones_like(m.bias)  # 1 where the bias counts, 0 from start up to stop
    kept[part[0]:part[1]] = 0.0
    return y + m.bias * kept


def _dropout_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch.nn.functional as F

    return F.dropout(xs[0], a["p"], training)


def _dropout_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """In training, its mask (a byte an element) where it drops anything."""
    return Saves(extra=((math.prod(out), 1),)) if a["p"] > 0 else NOTHING


_register(OpKind(
    "linear", LinearKindArgs, _linear_shape, layouts=("F", "HWC", "LD", "GLD"), module="nn.Linear", in_arg=True,
    arg_modules={"zero_bias": "_LinearZeroedBias"},
    channels_from="out_features", params=lambda a, t: t.features * a.out_features + (a.out_features if a.bias else 0),
    macs=lambda a, t, o: math.prod(t.shape) * a.out_features, make=_linear_make, run=_linear_run,
    doc="fully connected layer on the feature dimension (the last one); with `zero_bias = (start, stop)`, the bias "
        "entries start to stop - 1 count as 0 (a `_LinearZeroedBias` helper, an nn.Linear)",
    label=lambda a: f"linear {a['out_features']}", fuses_into="linear_act", saves=INPUT, init_params=WEIGHT_BIAS,
    init_has=bias_if("bias"), init_sizes=linear_sizes))
_register(OpKind(
    "dropout", DropoutArgs, _same, layouts=ANY, module="nn.Dropout", functional="F.dropout",
    functional_extra=("training=self.training",), value=True, view=True,  # p = 0 or eval: the input itself
    eval_identity=True, run=_dropout_run, doc="dropout, active in training mode only",
    label=lambda a: f"dropout {a['p']}", saves=_dropout_saves))
_register(OpKind(
    "flatten", NoArgs, _flatten_shape, layouts=("CHW", "HWC", "LD", "CL", "CDHW"), module="nn.Flatten",
    functional="torch.flatten", functional_extra=("1",), flattens=True, view=True,
    run=lambda m, a, t, xs, training: xs[0].reshape(xs[0].shape[0], -1), doc="C x H x W -> C*H*W features",
    saves=NOTHING, reshapes=True))
_register(OpKind(
    "identity", NoArgs, _same, layouts=ANY, module="nn.Identity", functional="", value=True, view=True, run=_identity_run,
    doc="passes its input through (a concat branch that keeps the input)", saves=NOTHING))

