"""The layer kinds of windowed attention on channels-last maps (Swin): registry entries like those of ``ops.py``.

``window_attention`` is one entry whose arguments say what varies (window and shift sizes, heads, Swin V1's
bias table or V2's cosine attention with a bias MLP); its module is a helper class the generated file carries
only where it is used. ``patch_merge`` is Swin's space-to-depth step before a stage.
"""

from __future__ import annotations

from typing import Literal

from .layout import TensorType
from .ops import Args, NoArgs, OpKind, PadPair, Pair, Pos, Prob, ShapeError, _register, pair

CPB_HIDDEN = 512  # the width of Swin V2's position-bias MLP


class WindowArgs(Args):
    window_size: Pair
    num_heads: Pos
    shift_size: PadPair = 0
    version: Literal[1, 2] = 1
    attention_dropout: Prob = 0.0
    dropout: Prob = 0.0
    qkv_bias: bool = True
    proj_bias: bool = True


def _window_shape(a: WindowArgs, t: TensorType) -> TensorType:
    if t.features % a.num_heads:
        raise ShapeError(f"{t.features} channels do not split into {a.num_heads} heads")
    for shift, size, side in zip(pair(a.shift_size), pair(a.window_size), ("height", "width")):
        if shift >= size:
            raise ShapeError(f"a shift of {shift} is not within a window {side} of {size}")
    return t


def _padded(a: WindowArgs, t: TensorType) -> tuple[int, int]:
    (wh, ww), (h, w) = pair(a.window_size), (t.size("H"), t.size("W"))
    return -(-h // wh) * wh, -(-w // ww) * ww


def _window_params(a: WindowArgs, t: TensorType) -> int:
    (wh, ww), dim = pair(a.window_size), t.features
    params = 3 * dim * dim + dim * dim + (3 * dim if a.qkv_bias else 0) + (dim if a.proj_bias else 0)
    if a.version == 1:
        return params + (2 * wh - 1) * (2 * ww - 1) * a.num_heads
    return params + a.num_heads + 2 * CPB_HIDDEN + CPB_HIDDEN + CPB_HIDDEN * a.num_heads


def _window_macs(a: WindowArgs, t: TensorType, o: TensorType) -> int:
    (wh, ww), dim = pair(a.window_size), t.features
    height, width = _padded(a, t)
    positions = height * width
    # the projections of every (padded) position, then within each window of N tokens the scores and the
    # weighted values, N * N * dim each; V2 adds its bias MLP over the (2 wh - 1)(2 ww - 1) relative positions
    macs = positions * 4 * dim * dim + 2 * positions * wh * ww * dim
    if a.version == 2:
        macs += (2 * wh - 1) * (2 * ww - 1) * (2 * CPB_HIDDEN + CPB_HIDDEN * a.num_heads)
    return macs


_register(OpKind(
    "window_attention", WindowArgs, _window_shape, layouts=("HWC",), module="_WindowAttention", in_arg=True,
    params=_window_params, macs=_window_macs,
    doc="multi-head self-attention within windows of a channels-last map, optionally shifted cyclically with "
        "the mask that keeps rolled-in regions apart, with a relative position bias (version 1: a learned table; "
        "2: Swin V2's cosine attention and bias MLP); a `_WindowAttention` helper"))


def _merge_shape(a, t: TensorType) -> TensorType:
    h, w, c = t.shape
    return TensorType((-(-h // 2), -(-w // 2), 4 * c), "HWC")


def _merge_rule(cur, args):
    from .nodes import BinOp, Num, Span

    here = Span("<generated>", 1, 1, 1, 1)
    return BinOp("*", Num(4, here), cur, here)


_register(OpKind(
    "patch_merge", NoArgs, _merge_shape, layouts=("HWC",), template="_patch_merge({x})", channels_rule=_merge_rule,
    doc="each 2 x 2 patch of a channels-last map into one position of 4 C channels (Swin's patch merging; an "
        "odd side padded with zeros); a `_patch_merge` helper"))
