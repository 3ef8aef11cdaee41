"""torch.nn's layers as the language's ops: which registry entry a module is, and its arguments read back
from the module. The registry says which ``nn`` class each op builds; this module reads the other way, and
refuses a module whose state the op could not build (a conv with reflect padding, a batch norm without running
statistics, ...), naming the module's path."""

from __future__ import annotations

import math
from functools import lru_cache

import torch.fx as fx
from torch import nn

from ..ops.base import REGISTRY
from . import ir
from .errors import LiftError
from .functions import FUNCTIONS, map_call
from .ir import normalise

# layers of libraries built on torch that are registry ops, by their class's full name (the registry's own
# helpers for these are the same computation with the same state_dict keys)
_LIBRARY = {
    "torchvision.ops.stochastic_depth.StochasticDepth": "stochastic_depth",
    "torchvision.ops.misc.Permute": "permute",
    "torchvision.models.convnext.LayerNorm2d": "layernorm",
    "timm.layers.norm.LayerNorm": "layernorm",
    "timm.layers.norm.LayerNorm2d": "layernorm",
    "timm.layers.drop.DropPath": "stochastic_depth",
    "timm.layers.norm_act.BatchNormAct2d": "batchnorm",  # then its drop and act children (``then``)
    "timm.layers.norm_act.LayerNormAct": "layernorm",  # and so are timm's other norms with their activation
    "timm.layers.norm_act.LayerNormAct2d": "layernorm",
    "timm.layers.norm_act.GroupNormAct": "groupnorm",
    "timm.layers.norm_act.GroupNorm1Act": "groupnorm",
    "timm.layers.norm.GroupNorm": "groupnorm",
    "timm.layers.norm.GroupNorm1": "groupnorm",
    "timm.layers.linear.Linear": "linear",
    "timm.layers.norm.RmsNorm": "rmsnorm",  # x * rsqrt(mean(x ** 2) + eps) * weight, over the last dimension
    "timm.layers.norm.RmsNorm2d": "rmsnorm",  # and over a map's channels (the op's module on a map)
    "timm.layers.std_conv.ScaledStdConv2d": "ws_conv",  # the registry's conv with scaled weight standardisation
    "timm.layers.std_conv.ScaledStdConv2dSame": "ws_conv",  # and its padding for the input, where it has one
    "torchvision.models.swin_transformer.ShiftedWindowAttention": "window_attention",
    "torchvision.models.swin_transformer.ShiftedWindowAttentionV2": "window_attention",
    "torchvision.models.maxvit.RelativePositionalMultiHeadAttention": "relative_attention",
}
# a layer and parameter-free children it applies after it
_COMPOSITES = {"timm.layers.norm_act.BatchNormAct2d", "timm.layers.norm_act.LayerNormAct",
               "timm.layers.norm_act.LayerNormAct2d", "timm.layers.norm_act.GroupNormAct",
               "timm.layers.norm_act.GroupNorm1Act"}
_ATTRIBUTES = {"timm.layers.drop.DropPath": {"p": "drop_prob"}}  # the op's argument -> the module's attribute


@lru_cache(maxsize=1)
def _by_class() -> dict[str, str]:
    """``nn`` class name -> op name, from the registry's ``module`` and ``modules``."""
    out: dict[str, str] = {}
    for name, kind in REGISTRY.items():
        for cls in (kind.module, *kind.modules.values()):
            if cls and cls.startswith("nn.") and hasattr(nn, cls[3:]):
                out.setdefault(cls[3:], name)
    return out


def _refuse(path: str, m: nn.Module, why: str):
    raise LiftError(f"{path or 'the model'} ({type(m).__name__}): {why}")


def _check(m: nn.Module, op: str, path: str) -> dict[str, object]:
    """The op's arguments that do not come straight from attributes of the same name, and the refusals."""
    extra: dict[str, object] = {}
    if op in ("conv", "ws_conv", "conv1d", "conv3d", "conv_transpose", "conv_transpose1d", "conv_transpose3d"):
        if m.padding == "same" and all(s == 1 for s in m.stride) and \
                all(d * (k - 1) % 2 == 0 for d, k in zip(m.dilation, m.kernel_size)):
            extra["padding"] = normalise(tuple(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size)))
        elif m.padding_mode != "zeros" or isinstance(m.padding, str):
            _refuse(path, m, f"padding {m.padding!r} with mode '{m.padding_mode}': only numeric zero padding "
                    "can be written")
        extra["bias"] = m.bias is not None
        if op == "ws_conv":
            extra["gamma"] = _gamma(m, path)
    elif op in ("batchnorm", "instancenorm"):
        if op == "batchnorm" and (not m.track_running_stats or m.momentum is None):
            _refuse(path, m, "a batch norm without running statistics (or with a cumulative average) cannot be "
                    "written")
    elif op == "layernorm":
        if len(m.normalized_shape) != 1:
            _refuse(path, m, f"normalises over {tuple(m.normalized_shape)}: only the last dimension can be written")
        extra["bias"] = m.bias is not None or not m.elementwise_affine
    elif op == "rmsnorm" and len(m.normalized_shape) != 1:
        _refuse(path, m, f"normalises over {tuple(m.normalized_shape)}: only one dimension can be written")
    elif op == "groupnorm":
        extra["bias"] = m.bias is not None or not m.affine
    elif op == "linear":
        extra["bias"] = m.bias is not None
    elif op in ("maxpool", "adaptive_maxpool") and m.return_indices:
        _refuse(path, m, "pooling that returns indices cannot be written")
    elif op == "avgpool" and m.divisor_override is not None:
        _refuse(path, m, "an average pool with a divisor override cannot be written")
    elif op == "flatten" and (m.start_dim, m.end_dim) != (1, -1):
        _refuse(path, m, f"flattens dims {m.start_dim} to {m.end_dim}: as a layer only 1 to -1 can be written")
    elif op in ("softmax", "log_softmax") and m.dim is None:
        _refuse(path, m, "a softmax without a dim cannot be written")
    elif op == "upsample":
        sf = m.scale_factor
        if m.size is not None or sf is None or float(sf) != int(sf) or m.align_corners:
            _refuse(path, m, "only upsampling by a whole factor, corners not aligned, can be written")
        extra["scale_factor"] = int(sf)
    elif op == "window_attention":
        extra["version"] = 2 if type(m).__name__.endswith("V2") else 1
        extra["qkv_bias"] = m.qkv.bias is not None
        extra["proj_bias"] = m.proj.bias is not None
    elif op == "self_attention":
        if not m.batch_first or not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            _refuse(path, m, "only batch-first attention with one input projection, without extra key and value "
                    "biases, can be written (or write attention from its primitives)")
        extra["bias"] = m.in_proj_bias is not None
    return extra


_SAME_PADDING = {"timm.layers.conv2d_same.Conv2dSame"}  # TensorFlow's 'same': padded for the input it gets


def _gamma(m: nn.Module, path: str) -> float:
    """The gamma of a scaled weight-standardised conv, which keeps only ``gamma * fan_in ** -0.5``: the float that
    gives that scale back exactly, as the built layer computes it."""
    fan_in = m.weight[0].numel()
    guess = m.scale * fan_in ** 0.5
    for gamma in (guess, math.nextafter(guess, math.inf), math.nextafter(guess, -math.inf)):
        if gamma * fan_in ** -0.5 == m.scale:
            return gamma
    _refuse(path, m, f"no gamma gives its scale {m.scale!r} exactly")


def _same_padding(m: nn.Module, path: str, input_shape) -> list[ir.Leaf]:
    """The zero padding TensorFlow's 'same' puts before a conv on this input (uneven where it must be)."""
    if input_shape is None or len(input_shape) != 3:
        _refuse(path, m, "a conv padded for its input ('same') that is never called on a map")
    pads = []
    for size, k, s, d in zip(input_shape[1:], m.kernel_size, m.stride, m.dilation):
        pads.append(max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0))
    (ph, pw) = pads
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return [ir.Leaf(op="zero_pad", args={"pad": pad}, stateful=False, path=path)] if any(pad) else []


def leaf_of(m: nn.Module, path: str, input_shape: tuple[int, ...] | None = None) -> ir.Leaf | None:
    """The module as a registry op, or None where it is not one (a container, a block, ...). ``input_shape``:
    what it was called on (without the batch), where known."""
    qualname = f"{type(m).__module__}.{type(m).__qualname__}"
    op = "conv" if qualname in _SAME_PADDING else _LIBRARY.get(qualname)  # Conv2dSame: a conv after its padding
    if op is None:
        op = _by_class().get(type(m).__name__)
        if op is not None and type(m) is not getattr(nn, type(m).__name__):
            op = None
    if op is None and not type(m).__module__.startswith("torch.nn.modules"):
        return _one_activation(m, path)
    if op is None:
        if type(m).__module__.startswith("torch.nn.modules") and not list(m.children()) and \
                not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            _refuse(path, m, "this torch.nn layer is not one the language has")
        return None
    extra = _check(m, op, path)
    if getattr(m, "_fast_norm", False) or getattr(m, "scale_by_keep", True) is not True:
        _refuse(path, m, "a fast norm kernel, or a drop path that does not rescale, cannot be written")
    renamed = _ATTRIBUTES.get(qualname, {})
    args = {}
    for f in REGISTRY[op].args.model_fields:
        if f in extra:
            args[f] = extra[f]
        elif hasattr(m, renamed.get(f, f)):
            args[f] = normalise(getattr(m, renamed.get(f, f)))
        else:
            args[f] = REGISTRY[op].args.model_fields[f].default
    stateful = any(True for _ in m.parameters()) or any(True for _ in m.buffers())
    then = []
    for name, child in m.named_children() if qualname in _COMPOSITES else ():  # the layers after it (drop, act)
        leaf = leaf_of(child, f"{path}.{name}")
        if leaf is None or leaf.stateful or leaf.then:
            _refuse(path, m, f"its '{name}' ({type(child).__name__}) is not a parameter-free layer of the language")
        if leaf.op != "identity":
            then.append(leaf)
    same = qualname in _SAME_PADDING or getattr(m, "same_pad", False)
    before = _same_padding(m, path, input_shape) if same else []
    return ir.Leaf(op=op, args=args, stateful=stateful, path=path, then=then, before=before)


def _one_activation(m: nn.Module, path: str) -> ir.Leaf | None:
    """A module of a library that holds nothing and whose forward is one call of an activation of the language on
    its input (timm's ``GELU``, which calls ``F.gelu``): that activation. None for any other module."""
    if any(True for _ in m.children()) or any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
        return None
    try:
        nodes = list(fx.Tracer().trace(m).nodes)
    except Exception:  # noqa: BLE001  (a forward fx cannot trace is no single call: the module is lifted as a block)
        return None
    if [nd.op for nd in nodes[::2]] != ["placeholder", "output"] or len(nodes) != 3:
        return None
    x, call, out = nodes
    rest = (*call.args[1:], *call.kwargs.values())
    if call.op not in ("call_function", "call_method") or out.args[0] is not call or call.args[:1] != (x,) or \
            any(isinstance(a, fx.Node) for a in rest):
        return None
    name = call.target if call.op == "call_method" else getattr(call.target, "__name__", "")
    if name not in FUNCTIONS:
        return None

    def refuse(why: str):
        raise LiftError(why)

    try:
        steps = map_call(name, (ir.Ref(0), *call.args[1:]), dict(call.kwargs), lambda _: refuse("no shape"), refuse)
    except LiftError:
        return None
    if len(steps) != 1 or not REGISTRY[steps[0][0]].value:
        return None
    op, args = steps[0]
    return ir.Leaf(op=op, args=dict(zip(REGISTRY[op].args.model_fields, args[1:])), stateful=False, path=path)
