"""The layer kinds of partitioned attention (MaxViT): a map cut into groups of tokens, attention within each
group, and the map put back together. Registry entries like those of ``ops.base``.

``partition(size, "window")`` cuts a C x H x W map into (H/size)(W/size) windows of size x size neighbouring
positions; ``partition(size, "grid")`` into size x size groups of positions spread over the whole map on a
regular grid (MaxViT's block and grid attention). Either gives G groups of L tokens of D = C features, the
``GLD`` layout, on which ``layernorm``, ``linear``, activations and dropout act per token and
``relative_attention`` lets the tokens of each group attend to each other; ``departition`` undoes the cut.
"""

from __future__ import annotations

import math
from typing import Literal

from ..sema.layout import TensorType
from .base import NOTHING, Args, Makes, OpKind, Pos, Saves, ShapeError, _register

Kind = Literal["window", "grid"]


class PartitionArgs(Args):
    size: Pos
    kind: Kind = "window"


def _partition(a: PartitionArgs, t: TensorType) -> TensorType:
    c, h, w = t.shape
    if h % a.size or w % a.size:
        raise ShapeError(f"a {h} x {w} map does not cut into {a.size} x {a.size} partitions")
    if h != w:
        raise ShapeError(f"partitions need a square map, got {h} x {w}")
    groups, tokens = (h // a.size) ** 2, a.size * a.size
    return TensorType((groups, tokens, c), "GLD")  # a grid: as many groups, of positions h // size apart


def _departition(a: PartitionArgs, t: TensorType) -> TensorType:
    groups, tokens, c = t.shape
    size, cells = math.isqrt(tokens), math.isqrt(groups)
    side = cells * size
    if size != a.size or size * size != tokens or cells * cells != groups:
        raise ShapeError(f"{groups} groups of {tokens} tokens are not {a.kind} partitions of size {a.size}")
    return TensorType((c, side, side), "CHW")


def _partition_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """A window holds the positions (i * size + dy, j * size + dx) of window (i, j); grid group (dy, dx) holds
    the positions (i * step + dy, j * step + dx), step = side / size, its tokens (i, j), row by row."""
    x, size = xs[0], a["size"]
    n, c, h, w = x.shape
    if a["kind"] == "window":
        x = x.reshape(n, c, h // size, size, w // size, size)  # n, c, i, dy, j, dx
        return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // size) * (w // size), size * size, c)
    step = h // size
    x = x.reshape(n, c, size, step, size, step)  # n, c, i, dy, j, dx
    return x.permute(0, 3, 5, 2, 4, 1).reshape(n, step * step, size * size, c)


def _departition_run(m, a: dict, t: TensorType, xs: list, training: bool):
    x, size = xs[0], a["size"]
    n, groups, tokens, c = x.shape
    cells = math.isqrt(groups)
    if a["kind"] == "window":  # n, i, j, dy, dx, c
        x = x.reshape(n, cells, cells, size, size, c).permute(0, 5, 1, 3, 2, 4)
    else:  # n, dy, dx, i, j, c
        x = x.reshape(n, cells, cells, size, size, c).permute(0, 5, 3, 1, 4, 2)
    return x.reshape(n, c, cells * size, cells * size)


_register(OpKind(
    "partition", PartitionArgs, _partition, template="_partition({x}, {size}, {kind})", run=_partition_run,
    doc="cuts a square C x H x W map into groups of tokens: windows of size x size neighbours, or a size x size "
        "grid of positions spread over the map (MaxViT's block and grid attention); a `_partition` helper",
    label=lambda a: f"partition {a.get('kind', 'window')} {a['size']}x{a['size']}", saves=NOTHING))
_register(OpKind(
    "departition", PartitionArgs, _departition, layouts=("GLD",), template="_departition({x}, {size}, {kind})",
    run=_departition_run,
    doc="the inverse of partition with the same arguments: the groups back into a C x H x W map",
    label=lambda a: f"departition {a.get('kind', 'window')} {a['size']}x{a['size']}", saves=NOTHING))


class RelativeArgs(Args):
    head_dim: Pos
    size: Pos


def _relative_shape(a: RelativeArgs, t: TensorType) -> TensorType:
    groups, tokens, dim = t.shape
    if dim % a.head_dim:
        raise ShapeError(f"{dim} features do not split into heads of {a.head_dim}")
    if tokens != a.size * a.size:
        raise ShapeError(f"groups of {tokens} tokens are not {a.size} x {a.size} partitions")
    return t


def _relative_params(a: RelativeArgs, t: TensorType) -> int:
    dim = t.features
    return 3 * dim * dim + 3 * dim + dim * dim + dim + (2 * a.size - 1) ** 2 * (dim // a.head_dim)


def _relative_macs(a: RelativeArgs, t: TensorType, o: TensorType) -> int:
    groups, tokens, dim = t.shape
    return groups * tokens * 4 * dim * dim + 2 * groups * tokens * tokens * dim


def _relative_make(a: dict, t: TensorType):
    """The parameters and buffers of the generated ``_RelativeAttention``, under its names."""
    import torch
    from torch import nn

    dim, size = t.features, a["size"]
    m = nn.Module()
    m.to_qkv = nn.Linear(dim, 3 * dim)
    m.merge = nn.Linear(dim, dim)
    m.relative_position_bias_table = nn.Parameter(torch.zeros((2 * size - 1) ** 2, dim // a["head_dim"]))
    m.register_buffer("relative_position_index", _offsets(size))
    return m


def _offsets(size: int, device=None):
    """L x L: the bias table row of the offset between two positions of a size x size partition."""
    import torch

    rows = torch.arange(size, device=device)[:, None].expand(size, size).flatten()
    cols = torch.arange(size, device=device)[None, :].expand(size, size).flatten()
    return (rows[:, None] - rows[None, :] + size - 1) * (2 * size - 1) + (cols[:, None] - cols[None, :] + size - 1)


def _relative_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Attention per group and head; MaxViT scales by the full width's D ** -0.5, not the head's."""
    import torch

    x = xs[0]
    n, g, length, d = x.shape
    heads, hd = d // a["head_dim"], a["head_dim"]
    q, k, v = (p.reshape(n, g, length, heads, hd).transpose(2, 3) for p in m.to_qkv(x).split(d, -1))
    index = _offsets(a["size"], x.device).flatten()
    bias = m.relative_position_bias_table[index].reshape(length, length, heads).permute(2, 0, 1)
    scores = torch.softmax(q @ k.transpose(-1, -2) * d**-0.5 + bias, -1)
    return m.merge((scores @ v).transpose(2, 3).reshape(n, g, length, d))


def _relative_makes(a: dict, ins: tuple, out: tuple) -> Makes:
    """What the helper makes on the way, over T tokens of D channels and H heads: the queries, keys and values (3
    T D), the scaled keys, the weighted values and their heads side by side (a copy for more than one head and
    token), 6 T D before the projection (its output); the scores H L T, with the bias, and their softmax; whatever
    the batch, the gathered bias (H L L)."""
    groups, length, d = ins[0]
    heads = d // a["head_dim"]
    maps = 5 + (heads > 1 and length > 1)
    return Makes(extra=((maps * groups * length * d + 3 * heads * length * groups * length, 0),),
                 fixed=((length * length * heads, 0),))


def _relative_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """The input, copies of the scaled queries, the keys and the values, the output before its projection (4 T D
    over T tokens), and the attention weights (heads x L a token)."""
    groups, length, d = ins[0]
    return Saves((0,), extra=((4 * groups * length * d + d // a["head_dim"] * length * groups * length, 0),))


_register(OpKind(
    "relative_attention", RelativeArgs, _relative_shape, layouts=("GLD",), module="_RelativeAttention",
    in_arg=True, params=_relative_params, macs=_relative_macs, make=_relative_make, run=_relative_run,
    doc="multi-head self-attention among the tokens of each group, with a learned bias per relative position in "
        "a size x size partition (MaxViT's); a `_RelativeAttention` helper",
    label=lambda a: f"relative_attention {a['size']}x{a['size']}, heads of {a['head_dim']}",
    saves=_relative_saves, makes=_relative_makes,
    buffers=lambda a, ins, out: ((a["size"] ** 4, 8),)))  # each position pair's table row
