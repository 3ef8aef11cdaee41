"""The layer kinds of partitioned attention (MaxViT): a map cut into groups of tokens, attention within each
group, and the map put back together. Registry entries like those of ``ops.py``.

``partition(size, "window")`` cuts a C x H x W map into (H/size)(W/size) windows of size x size neighbouring
positions; ``partition(size, "grid")`` into size x size groups of positions spread over the whole map on a
regular grid (MaxViT's block and grid attention). Either gives G groups of L tokens of D = C features, the
``GLD`` layout, on which ``layernorm``, ``linear``, activations and dropout act per token and
``relative_attention`` lets the tokens of each group attend to each other; ``departition`` undoes the cut.
"""

from __future__ import annotations

import math
from typing import Literal

from .layout import TensorType
from .ops import Args, OpKind, Pos, ShapeError, _register

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


_register(OpKind(
    "partition", PartitionArgs, _partition, template="_partition({x}, {size}, {kind})",
    doc="cuts a square C x H x W map into groups of tokens: windows of size x size neighbours, or a size x size "
        "grid of positions spread over the map (MaxViT's block and grid attention); a `_partition` helper"))
_register(OpKind(
    "departition", PartitionArgs, _departition, layouts=("GLD",), template="_departition({x}, {size}, {kind})",
    doc="the inverse of partition with the same arguments: the groups back into a C x H x W map"))


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


_register(OpKind(
    "relative_attention", RelativeArgs, _relative_shape, layouts=("GLD",), module="_RelativeAttention",
    in_arg=True, params=_relative_params, macs=_relative_macs,
    doc="multi-head self-attention among the tokens of each group, with a learned bias per relative position in "
        "a size x size partition (MaxViT's); a `_RelativeAttention` helper"))
