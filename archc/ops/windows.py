"""The layer kinds of windowed attention on channels-last maps (Swin): registry entries like those of ``ops.base``.

``window_attention`` is one entry whose arguments say what varies (window and shift sizes, heads, Swin V1's
bias table or V2's cosine attention with a bias MLP); its module is a helper class the generated file carries
only where it is used. ``patch_merge`` is Swin's space-to-depth step before a stage.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from ..lang import nodes as n
from ..sema.layout import TensorType
from .base import (
    ANY,
    NOTHING,
    Args,
    Makes,
    NoArgs,
    OpKind,
    PadPair,
    Pair,
    Pos,
    Prob,
    Saves,
    ShapeError,
    _register,
    pair,
    size_text,
)

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
    if a.version == 2 and 1 in pair(a.window_size):
        # V2 scales the relative coordinates by 1 / (window - 1): undefined for a window one position wide
        raise ShapeError(f"version 2 needs windows at least 2 positions on each side, got {a.window_size}",
                         hint="use a larger window_size, or version = 1")
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


def _window_make(a: dict, t: TensorType):
    """The parameters and buffers of the generated ``_WindowAttention``, under its names."""
    import torch
    from torch import nn

    (wh, ww), dim, heads = pair(a["window_size"]), t.features, a["num_heads"]
    m = nn.Module()
    m.qkv = nn.Linear(dim, 3 * dim, bias=a["qkv_bias"])
    m.proj = nn.Linear(dim, dim, bias=a["proj_bias"])
    if a["version"] == 1:
        m.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads))
    else:
        m.register_buffer("relative_coords_table", _coords_table(wh, ww))
    m.register_buffer("relative_position_index", _relative_index(wh, ww).flatten())
    if a["version"] == 2:
        m.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        m.cpb_mlp = nn.Sequential(nn.Linear(2, CPB_HIDDEN), nn.ReLU(), nn.Linear(CPB_HIDDEN, heads, bias=False))
    return m


def _relative_index(wh: int, ww: int, device=None):
    """N x N: the row of a (2 wh - 1)(2 ww - 1) table that holds the offset from token j to token i."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + (wh - 1)
    dx = xs[:, None] - xs[None, :] + (ww - 1)
    return dy * (2 * ww - 1) + dx


def _coords_table(wh: int, ww: int, device=None, scale: float = 8.0):
    """1 x (2 wh - 1) x (2 ww - 1) x 2: Swin V2's relative offsets, scaled to [-scale, scale], as
    sign * log2(1 + |.|) / log2(scale), in float32 as torchvision computes them."""
    import torch

    dy = torch.arange(1 - wh, wh, dtype=torch.float32, device=device) / (wh - 1) * scale
    dx = torch.arange(1 - ww, ww, dtype=torch.float32, device=device) / (ww - 1) * scale
    table = torch.stack([dy[:, None].expand(-1, 2 * ww - 1), dx[None, :].expand(2 * wh - 1, -1)], -1)
    return (torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(scale)).unsqueeze(0)


def _shift_mask(height: int, width: int, window: tuple[int, int], shift: tuple[int, int], like):
    """windows x N x N: -100 where two tokens of a shifted window came from different regions of the map."""
    import torch

    labels = torch.zeros(height, width, device=like.device)
    region = 0
    for rows in ((0, height - window[0]), (height - window[0], height - shift[0]), (height - shift[0], height)):
        for cols in ((0, width - window[1]), (width - window[1], width - shift[1]), (width - shift[1], width)):
            labels[rows[0]:rows[1], cols[0]:cols[1]] = region
            region += 1
    cells = _windows(labels[None, :, :, None], window).squeeze(-1)  # windows x N
    apart = cells[:, :, None] != cells[:, None, :]
    return torch.zeros(apart.shape, dtype=like.dtype, device=like.device).masked_fill(apart, -100.0)


def _windows(x, window: tuple[int, int]):
    """N x H x W x C -> (N * windows) x (wh * ww) x C, windows row by row."""
    n, h, w, c = x.shape
    wh, ww = window
    return x.reshape(n, h // wh, wh, w // ww, ww, c).transpose(2, 3).reshape(-1, wh * ww, c)


def _window_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Swin's shifted window attention (torchvision's ``shifted_window_attention``), V1 or V2."""
    import torch
    import torch.nn.functional as F

    x = xs[0]
    n, h, w, c = x.shape
    window, heads, v2 = pair(a["window_size"]), a["num_heads"], a["version"] == 2
    x = F.pad(x, (0, 0, 0, -w % window[1], 0, -h % window[0]))
    height, width = x.shape[1], x.shape[2]
    shift = tuple(s if size < side else 0 for s, size, side in zip(pair(a["shift_size"]), window, (height, width)))
    if any(shift):
        x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
    tokens = _windows(x, window)
    qkv_bias = m.qkv.bias
    if v2 and qkv_bias is not None:  # V2 has no key bias
        qkv_bias = qkv_bias * torch.cat([torch.ones(c), torch.zeros(c), torch.ones(c)]).to(qkv_bias)
    qkv = F.linear(tokens, m.qkv.weight, qkv_bias)
    size = window[0] * window[1]
    q, k, v = qkv.reshape(-1, size, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    if v2:
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        scores = scores * torch.clamp(m.logit_scale, max=math.log(100.0)).exp()
        table = m.cpb_mlp(_coords_table(*window, device=x.device).to(x.dtype)).reshape(-1, heads)
    else:
        scores = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        table = m.relative_position_bias_table
    bias = table[_relative_index(*window, device=x.device).flatten()].reshape(size, size, heads).permute(2, 0, 1)
    scores = scores + (16 * torch.sigmoid(bias) if v2 else bias)
    if any(shift):
        mask = _shift_mask(height, width, window, shift, scores)
        count = mask.shape[0]
        scores = (scores.reshape(n, count, heads, size, size) + mask[None, :, None]).reshape(-1, heads, size, size)
    scores = F.dropout(scores.softmax(-1), a["attention_dropout"], training)
    out = (scores @ v).transpose(1, 2).reshape(-1, size, c)
    out = F.dropout(m.proj(out), a["dropout"], training)
    wh, ww = window
    x = out.reshape(n, height // wh, width // ww, wh, ww, c).transpose(2, 3).reshape(n, height, width, c)
    if any(shift):
        x = torch.roll(x, shift, (1, 2))
    return x[:, :h, :w]


def _window_label(a: dict) -> str:
    """Heads, window, shift, and whether V2's cosine attention."""
    text = f"window_attention {a['num_heads']} heads, window {size_text(a['window_size'])}"
    if a.get("shift_size", 0) not in (0, [0, 0], (0, 0)):
        text += f", shift {size_text(a['shift_size'])}"
    if a.get("version", 1) == 2:
        text += ", cosine"
    return text


def _window_effective(a: dict, ins: tuple) -> tuple[dict, str | None]:
    """torchvision's ``shifted_window_attention`` shifts no side that one window covers (the map is padded to
    whole windows, so a window at least the map's side is the only window): the shift in effect, and a note."""
    window, shift = pair(a["window_size"]), pair(a.get("shift_size", 0))
    sides = tuple(ins[0][:2])  # channels last: H x W x C
    acting = tuple(s if size < side else 0 for s, size, side in zip(shift, window, sides))
    if acting == shift:
        return a, None
    note = f"shift {size_text(shift)} off: the {size_text(window)} window covers the {'×'.join(map(str, sides))} map"
    return {**a, "shift_size": acting if any(acting) else 0}, note


def _window_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """Over the padded map's T tokens of C channels and H heads: the windows' tokens, the scaled queries, copies of
    the keys and values, the output before its projection (5 T C), and the attention weights (H N a token, N a
    window's tokens). Cosine attention (version 2) keeps the queries, keys and values whole (the normalisation's
    input), the normalised queries and keys, a copy of the values and the output before its projection (8 T C),
    each query's and key's norm and its clamped copy (4 T H), the scores before their scale and the weights (2 H N
    a token); and whatever the batch, the bias MLP's hidden layer, the bias's sigmoid and the scale."""
    (wh, ww), (h, w, c) = pair(a["window_size"]), ins[0]
    tokens, heads, size = -(-h // wh) * wh * -(-w // ww) * ww, a["num_heads"], wh * ww
    if a["version"] == 1:
        return Saves(extra=((5 * tokens * c + heads * size * tokens, 0),))
    rows = (2 * wh - 1) * (2 * ww - 1)
    return Saves(extra=((8 * tokens * c + 4 * heads * tokens + 2 * heads * size * tokens, 0),),
                 fixed=((rows * CPB_HIDDEN + size * size * heads + heads, 0),))


def _window_makes(a: dict, ins: tuple, out: tuple) -> Makes:
    """What the helper makes on the way, over the padded map's T tokens of C channels, N a window's tokens and H
    heads: the padded map, the rolled one (shifted), the windows' tokens (a copy where windows sit side by side in
    rows more than one token high), the queries, keys and values (3 T C), the scaled queries (or, version 2, the
    normalised queries and keys), the weighted values, their heads side by side (a copy for more than one head),
    the projection, the map from its windows (a copy, as before) and rolled back; the scores H N T, with the bias,
    (version 2: scaled) the mask, and their softmax. Whatever the batch: the gathered bias (version 2: the MLP's
    tensors, its sigmoid and scale; the scale's clamp; the qkv bias without keys) and the mask (and its zeros).
    Its output is the last of these but where the map was padded (then a copy of the map without it)."""
    (wh, ww), (h, w, c), heads = pair(a["window_size"]), ins[0], a["num_heads"]
    height, width = -(-h // wh) * wh, -(-w // ww) * ww
    tokens, size, v2 = height * width, wh * ww, a["version"] == 2
    shifted = any(s and k < side for s, k, side in zip(pair(a["shift_size"]), (wh, ww), (height, width)))
    moved = wh > 1 and width // ww > 1  # partitioning into windows (and back) copies the tokens
    maps = 1 + 2 * shifted + 2 * moved + 3 + (2 if v2 else 1) + 1 + (heads > 1 and size > 1) + 1
    scores = 3 + shifted + v2
    padded = (height, width) != (h, w)
    fixed = [(size * size * heads, 0)]
    if v2:
        rows = (2 * wh - 1) * (2 * ww - 1)
        fixed += [(rows * CPB_HIDDEN + rows * heads + 2 * size * size * heads + 2 * heads, 0)]
        fixed += [(4 * c, 0)] if a["qkv_bias"] else []
    if shifted:
        fixed.append((2 * tokens // size * size * size, 0))
    return Makes(extra=((maps * tokens * c + scores * heads * size * tokens - (0 if padded else h * w * c), 0),),
                 fixed=tuple(fixed))


def _window_buffers(a: dict, ins: tuple, out: tuple) -> tuple[tuple[int, int], ...]:
    """The relative position of each pair of a window's tokens (int64), and Swin V2's table of their offsets."""
    wh, ww = pair(a["window_size"])
    index = ((wh * ww) ** 2, 8)
    return (index,) if a["version"] == 1 else (index, ((2 * wh - 1) * (2 * ww - 1) * 2, 0))


_register(OpKind(
    "window_attention", WindowArgs, _window_shape, layouts=("HWC",), module="_WindowAttention", in_arg=True,
    params=_window_params, macs=_window_macs, make=_window_make, run=_window_run,
    doc="multi-head self-attention within windows of a channels-last map, optionally shifted cyclically with "
        "the mask that keeps rolled-in regions apart, with a relative position bias (version 1: a learned table; "
        "2: Swin V2's cosine attention and bias MLP); a `_WindowAttention` helper",
    label=_window_label, effective=_window_effective, saves=_window_saves, buffers=_window_buffers,
    makes=_window_makes))


# ------------------------------------------------------------ relative_coords


class CoordsArgs(Args):
    window_size: Pair
    scale: Annotated[float, Field(gt=1.0, allow_inf_nan=False)] = 8.0


def _coords_sides(a) -> tuple[int, int]:
    wh, ww = pair(a.window_size)
    if 1 in (wh, ww):  # the offsets are over (wh - 1, ww - 1)
        raise ShapeError(f"relative coordinates need windows at least 2 positions on each side, got {a.window_size}")
    return 2 * wh - 1, 2 * ww - 1


def _coords_sym(a: dict, shape: tuple) -> tuple | None:
    """(2 ws - 1, 2 ws - 1, 2) as expressions of a square window's side; the last size alone for a pair."""
    side, here = a["window_size"], n.Span("<generated>", 1, 1, 1, 1)
    if isinstance(side, n.ListExpr):
        return None, None, n.Num(2, here)
    rows = n.BinOp("-", n.BinOp("*", n.Num(2, here), side, here), n.Num(1, here), here)
    return rows, rows, n.Num(2, here)


def _coords_run(m, a: dict, t, xs: list, training: bool):
    """The table once for each sample."""
    import torch

    return torch.cat([m] * xs[0].shape[0])


_register(OpKind(
    "relative_coords", CoordsArgs, lambda a, t: TensorType((*_coords_sides(a), 2), "HWC"), layouts=ANY,
    template="{param}.expand({x}.shape[0], -1, -1, -1)", learned=lambda a, t: (1, *_coords_sides(a), 2), buffer=True,
    learned_init="_relative_coords_table({window_size}, {scale})",
    make=lambda a, t: _coords_table(*pair(a["window_size"]), scale=a["scale"]), sym=_coords_sym, run=_coords_run,
    channels_rule=lambda cur, args: n.Num(2, n.Span("<generated>", 1, 1, 1, 1)),  # (dy, dx), whatever comes in
    torch_view=True,  # (an expand of the buffer)
    buffers=lambda a, ins, out: ((math.prod(out), 0),),
    doc="Swin V2's table of the relative coordinates of a window's tokens, a float buffer named after the statement "
        "(1 x (2 wh - 1) x (2 ww - 1) x 2, torchvision's relative_coords_table): each offset (dy, dx) over "
        "(wh - 1, ww - 1), times `scale`, log-spaced, sign(t) · log2(1 + |t|) / log2(scale); applied to a tensor, "
        "the table for each of its samples, a channels-last map of 2 channels (its values are not read)",
    saves=NOTHING))


def _merge_shape(a, t: TensorType) -> TensorType:
    h, w, c = t.shape
    return TensorType((-(-h // 2), -(-w // 2), 4 * c), "HWC")


def _merge_rule(cur, args):
    from ..lang.nodes import BinOp, Num, Span

    here = Span("<generated>", 1, 1, 1, 1)
    return BinOp("*", Num(4, here), cur, here)


def _merge_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """Each 2 x 2 patch's positions in the channels: (0, 0), (1, 0), (0, 1), (1, 1) as (row, column)."""
    import torch.nn.functional as F

    x = xs[0]
    x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
    n, h, w, c = x.shape
    # rows as (h/2, dy), columns as (w/2, dx); the channels ordered by dx, then dy
    return x.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(n, h // 2, w // 2, 4 * c)


_register(OpKind(
    "patch_merge", NoArgs, _merge_shape, layouts=("HWC",), template="_patch_merge({x})", channels_rule=_merge_rule, run=_merge_run,
    doc="each 2 x 2 patch of a channels-last map into one position of 4 C channels (Swin's patch merging; an "
        "odd side padded with zeros); a `_patch_merge` helper", saves=NOTHING,
    makes=lambda a, ins, out: Makes(extra=((math.prod(out[:2]) * 4 * ins[0][2], 0),))))  # the padded map
