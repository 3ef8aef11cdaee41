"""torch's functions and tensor methods as the language's ops: for each name a forward may call (``F.relu``,
``torch.cat``, ``x.mean``, ...), the registry op it is and how torch's arguments become the op's fields.

``map_call`` gives the op and its arguments, the tensors first, then every field of the op in order (defaults
filled in), so that two calls of the same op compare field by field."""

from __future__ import annotations

import math

from ..ops.base import REGISTRY
from . import ir
from .ir import normalise

# operators between values (``x + y``, ``torch.add``, ``x.mul(2)``, in place or not)
BINARY = {
    "add": "+", "iadd": "+", "add_": "+", "sub": "-", "isub": "-", "sub_": "-", "mul": "*", "imul": "*",
    "mul_": "*", "truediv": "/", "itruediv": "/", "div": "/", "div_": "/", "pow": "**", "neg": "neg",
}

# name -> (op, torch's parameters after the tensor(s) with their defaults, how many tensors lead)
_SIMPLE = ("relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "selu", "mish", "softsign",
           "tanhshrink", "logsigmoid", "sin", "cos")
_TABLE: dict[str, tuple[str, tuple[tuple[str, object], ...], int]] = {
    **{name: (name, (("inplace", False),), 1) for name in _SIMPLE},
    **{name + "_": (name, (), 1) for name in _SIMPLE},
    "gelu": ("gelu", (("approximate", "none"),), 1),
    "leaky_relu": ("leaky_relu", (("negative_slope", 0.01), ("inplace", False)), 1),
    "elu": ("elu", (("alpha", 1.0), ("inplace", False)), 1),
    "celu": ("celu", (("alpha", 1.0), ("inplace", False)), 1),
    "softplus": ("softplus", (("beta", 1.0), ("threshold", 20.0)), 1),
    "hardtanh": ("hardtanh", (("min_val", -1.0), ("max_val", 1.0), ("inplace", False)), 1),
    "softmax": ("softmax", (("dim", None), ("_stacklevel", 3), ("dtype", None)), 1),
    "log_softmax": ("log_softmax", (("dim", None), ("_stacklevel", 3), ("dtype", None)), 1),
    "dropout": ("dropout", (("p", 0.5), ("training", True), ("inplace", False)), 1),
    "adaptive_avg_pool2d": ("adaptive_avgpool", (("output_size", None),), 1),
    "adaptive_max_pool2d": ("adaptive_maxpool", (("output_size", None), ("return_indices", False)), 1),
    "max_pool2d": ("maxpool", (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1),
                               ("ceil_mode", False), ("return_indices", False)), 1),
    "avg_pool2d": ("avgpool", (("kernel_size", None), ("stride", None), ("padding", 0), ("ceil_mode", False),
                               ("count_include_pad", True), ("divisor_override", None)), 1),
    "flatten": ("flatten_dims", (("start_dim", 0), ("end_dim", -1)), 1),
    "mean": ("mean", (("dim", None), ("keepdim", False), ("dtype", None)), 1),
    "sum": ("sum", (("dim", None), ("keepdim", False), ("dtype", None)), 1),
    "amax": ("amax", (("dim", ()), ("keepdim", False)), 1),
    "transpose": ("transpose", (("dim0", None), ("dim1", None)), 1),
    "swapaxes": ("transpose", (("dim0", None), ("dim1", None)), 1),
    "swapdims": ("transpose", (("dim0", None), ("dim1", None)), 1),
    "unflatten": ("unflatten", (("dim", None), ("sizes", None)), 1),
    "cat": ("cat", (("dim", 0),), 1),
    "concat": ("cat", (("dim", 0),), 1),
    "stack": ("stack", (("dim", 0),), 1),
    "matmul": ("matmul", (), 2),
    "scaled_dot_product_attention": ("scaled_dot_product_attention", (
        ("attn_mask", None), ("dropout_p", 0.0), ("is_causal", False), ("scale", None)), 3),
    "normalize": ("normalize", (("p", 2.0), ("dim", 1), ("eps", 1e-12), ("out", None)), 1),
    "_patch_merging_pad": ("patch_merge", (), 1),  # torchvision's Swin: each 2 x 2 patch into 4 C channels
    "interpolate": ("upsample", (("size", None), ("scale_factor", None), ("mode", "nearest"),
                                 ("align_corners", None), ("recompute_scale_factor", None), ("antialias", False)), 1),
}
_VARARGS = {"reshape", "view", "permute"}  # x.view(2, 3) or x.view((2, 3))
FUNCTIONS = set(_TABLE) | _VARARGS | {"unsqueeze", "squeeze", "pad"}
_DROPPED = {"inplace", "training", "_stacklevel", "return_indices", "divisor_override", "out", "dtype",
            "recompute_scale_factor", "antialias", "align_corners", "size", "attn_mask"}


def _bind(name, args, kwargs, params, lead, fail) -> dict:
    values = dict(params)
    for (p, _), a in zip(params, args[lead:]):
        values[p] = a
    for k, v in kwargs.items():
        if k not in values:
            fail(f"calls '{name}' with the argument '{k}', which cannot be written")
        values[k] = v
    return values


PREVIOUS = object()  # in a later step of a call written as several ops: the step before's output


def map_call(name, args, kwargs, shape_of, fail) -> list[tuple[str, tuple]]:
    """The ops for a call of ``name``, each with its arguments: the tensors, then the op's fields in order. Mostly
    one op; a few calls are several (``x.mean((2, 3), keepdim=True)``), each applied to the output before."""
    if name in ("unsqueeze", "squeeze"):
        return _unsqueeze(name, args, kwargs, shape_of, fail)
    if name == "pad":
        v = _bind(name, args, kwargs, (("pad", None), ("mode", "constant"), ("value", None)), 1, fail)
        pad = tuple(v["pad"]) if isinstance(v["pad"], (tuple, list)) else ()
        if pad and all(p == 0 for p in pad) and v["mode"] in ("constant", "reflect", "replicate", "circular"):
            return []  # nothing added on any side (a window that already divides the map): the tensor itself
        if v["mode"] != "constant" or not pad or len(pad) % 2 or len(pad) // 2 > len(shape_of(args[0])) or \
                any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in pad) or \
                not isinstance(v["value"], (int, float, type(None))):
            fail("'pad' other than with a constant, by sizes none negative and not over the batch, cannot be "
                 "written yet")
        value = v["value"] or 0
        if len(shape_of(args[0])) == 3 and len(pad) in (2, 4) and value == 0:
            return [("zero_pad", (args[0], pad + (0, 0) if len(pad) == 2 else pad))]  # around a map
        # any other constant, or a tensor of any other layout (EfficientViT's values padded with ones)
        return [("constant_pad", (args[0], pad, float(value)))]
    if name in _VARARGS:
        return _varargs(name, args, kwargs, fail)
    op, params, lead = _TABLE[name]
    tensors = tuple(args[:lead])
    if name in ("cat", "concat", "stack"):
        if not isinstance(args[0], (list, tuple)) or not all(isinstance(t, ir.Ref) for t in args[0]):
            fail(f"'{name}' of something other than a list of tensors cannot be written")
        tensors = (list(args[0]),)
    elif not all(isinstance(t, ir.Ref) for t in tensors):
        fail(f"'{name}' of something other than tensors cannot be written")
    v = _bind(name, args, kwargs, params, lead, fail)
    defaults = dict(params)
    for k in ("return_indices", "divisor_override", "out", "dtype", "recompute_scale_factor", "size", "antialias"):
        if k in v and v[k] != defaults[k] and not (k == "size" and op == "upsample"):
            fail(f"'{name}' with {k}={v[k]!r} cannot be written")
    if v.get("align_corners"):
        fail(f"'{name}' with align_corners cannot be written")
    if op == "upsample":
        v = _upsample(v, tensors[0], shape_of, fail)
    if op == "scaled_dot_product_attention" and v["attn_mask"] is not None:
        if not isinstance(v["attn_mask"], ir.Ref):
            fail("an attention mask that is not a tensor cannot be written")
        tensors = tensors + (v["attn_mask"],)
    if op in ("mean", "sum", "amax") and v["dim"] in (None, ()):
        fail(f"'{name}' over every dimension (the batch among them) cannot be written")
    if op in ("mean", "sum", "amax") and isinstance(v["dim"], (tuple, list)):
        rank = len(shape_of(tensors[0])) + 1
        dims = sorted(d % rank for d in v["dim"])
        if op == "mean" and rank == 4 and dims == [2, 3]:  # the same reduction as x.mean((2, 3))
            if not v["keepdim"]:
                return [("global_avgpool", tensors)]
            return [("global_avgpool", tensors), ("unflatten", (PREVIOUS, 1, (-1, 1, 1)))]
        if len(dims) > 1 and dims != list(range(dims[0], dims[-1] + 1)):
            fail(f"'{name}' over the dimensions {tuple(v['dim'])} cannot be written yet")
        if len(dims) > 1:  # neighbouring dimensions (a channels-last map's H and W): merged, then one reduction
            merged = [("flatten_dims", (tensors[0], dims[0], dims[-1])),
                      (op, (PREVIOUS, dims[0], v["keepdim"]))]
            sizes = (1,) * len(dims)
            return merged + ([("unflatten", (PREVIOUS, dims[0], sizes))] if v["keepdim"] else [])
        v["dim"] = dims[0]
    if op == "flatten_dims" and v["start_dim"] == 0:
        fail("flattening the batch into other dimensions cannot be written")
    if op in ("softmax", "log_softmax") and v["dim"] is None:
        fail(f"'{name}' without a dim cannot be written")
    if op == "maxpool" and v["stride"] in (None, ()):
        v["stride"] = None
    fields = []
    for f, info in REGISTRY[op].args.model_fields.items():
        if f in v and f not in _DROPPED:
            fields.append(normalise(v[f]))
        else:
            fields.append(info.default)
    return [(op, tensors + tuple(fields))]


def _unsqueeze(name, args, kwargs, shape_of, fail):
    """``x.unsqueeze(d)`` as an unflatten into (1, size), ``x.squeeze(d)`` as a flatten of a size-1 dimension with
    its neighbour: the same views, which the language's primitives say."""
    x, dims = args[0], args[1:] or tuple(kwargs.values())
    shape = shape_of(x)
    if len(dims) != 1 or not isinstance(dims[0], int):
        fail(f"'{name}' without one dimension cannot be written")
    rank = len(shape) + 1
    if name == "unsqueeze":
        d = dims[0] % (rank + 1)
        if d == 0:
            fail("'unsqueeze' before the batch cannot be written")
        if d < rank:
            return [("unflatten", (x, d, (1, shape[d - 1])))]
        return [("unflatten", (x, d - 1, (shape[d - 2], 1)))]
    d = dims[0] % rank
    if d == 0 or shape[d - 1] != 1:
        fail("'squeeze' of the batch, or of a dimension whose size is not 1, cannot be written")
    if rank == 2:
        fail("'squeeze' of the only feature dimension cannot be written")
    return [("flatten_dims", (x, d - 1, d) if d > 1 else (x, 1, 2))]


def _upsample(v, x, shape_of, fail) -> dict:
    sf = v["scale_factor"]
    if v["size"] is not None:
        size = v["size"] if isinstance(v["size"], (tuple, list)) else (v["size"], v["size"])
        h, w = shape_of(x)[1:3]
        if size[0] % h or size[1] % w or size[0] // h != size[1] // w:
            fail(f"upsampling to {tuple(size)} from {h} x {w} is no whole factor")
        sf = size[0] // h
    if isinstance(sf, (tuple, list)):
        sf = sf[0] if len(set(sf)) == 1 else sf
    if sf is None or isinstance(sf, (tuple, list)) or float(sf) != int(sf):
        fail(f"upsampling by {sf!r}: only a whole factor can be written")
    if v["mode"] not in ("nearest", "bilinear"):
        fail(f"upsampling with mode '{v['mode']}' cannot be written")
    return {"scale_factor": int(sf), "mode": v["mode"]}


def _varargs(name, args, kwargs, fail):
    x, rest = args[0], args[1:]
    if kwargs:
        fail(f"'{name}' with keyword arguments cannot be written")
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        rest = tuple(rest[0])
    if name == "permute":
        dims = [d % len(rest) for d in rest]
        if dims[0] != 0:
            fail("a permute that moves the batch cannot be written")
        if len(dims) == 4 and dims in ([0, 2, 3, 1], [0, 3, 1, 2]):
            return [("permute", (x, tuple(dims)))]  # a map to channels-last and back: the layout op
        return transposes(x, dims)
    if not rest or rest[0] is not ir.BATCH:
        fail(f"'{name}' whose first size is not the batch size (read from a tensor's shape) cannot be written")
    if any(r is ir.BATCH for r in rest[1:]):
        fail(f"'{name}' with the batch size in another place cannot be written")
    return [("reshape", (x, tuple(rest[1:])))]


def transposes(x, dims: list[int]) -> list[tuple[str, tuple]]:
    """``x.permute(*dims)`` (the batch staying first) as transposes, each swapping a dimension into place: the same
    view, for a tensor of any layout."""
    steps, order = [], list(range(len(dims)))
    for i, want in enumerate(dims):
        j = order.index(want)
        if j != i:
            order[i], order[j] = order[j], order[i]
            steps.append(("transpose", (PREVIOUS if steps else x, i, j)))
    return steps or [("transpose", (x, 1, 1))]


def step_shape(op: str, fields: tuple, shape_of) -> tuple[int, ...]:
    """The shape of a step before the last of a call written as several ops (its last gives the traced value)."""
    if op == "global_avgpool":
        return shape_of(fields[0])[:1]
    if op == "transpose":
        shape = list(shape_of(fields[0]))
        i, j = fields[1] - 1, fields[2] - 1
        shape[i], shape[j] = shape[j], shape[i]
        return tuple(shape)
    if op == "flatten_dims":  # dims counting the batch, as functions writes them
        shape = list(shape_of(fields[0]))
        i, j = fields[1] - 1, fields[2] - 1
        return (*shape[:i], math.prod(shape[i:j + 1]), *shape[j + 1:])
    if op in ("mean", "sum", "amax"):
        shape = list(shape_of(fields[0]))
        shape[fields[1] - 1:fields[1]] = [1] if fields[2] else []
        return tuple(shape)
    raise AssertionError(f"no shape rule for an intermediate {op}")
