"""The layer kinds of token sequences (N x L x D, vision transformers): registry entries like those of
``ops.base``, kept apart to keep that module small.

A feature map becomes a sequence with ``to_tokens`` (and back with ``to_map``) (its H x W positions, row by row, each a token of its C
channels), a learned class token is put in front with ``prepend_token``, a position embedding is added with
``learned_add``, tokens attend to each other with ``self_attention``, and ``select_token`` takes one token's
features for a head.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from ..sema.layout import TensorType
from .base import ANY, NOTHING, Args, NoArgs, OpKind, Pos, Prob, Saves, ShapeError, _register
from .layout import Init, LearnedArgs, _broadcasts, _full_make

NonNeg = Annotated[int, Field(ge=0)]


def _to_tokens_run(m, a: dict, t: TensorType, xs: list, training: bool):
    n, c, h, w = xs[0].shape
    return xs[0].reshape(n, c, h * w).permute(0, 2, 1)


def _to_map_run(m, a: dict, t: TensorType, xs: list, training: bool):
    n, length, d = xs[0].shape
    return xs[0].permute(0, 2, 1).reshape(n, d, a["height"], a["width"])


def _prepend_run(m, a: dict, t: TensorType, xs: list, training: bool):
    import torch

    x = xs[0]
    return torch.cat([m.expand(x.shape[0], -1, -1), x], 1)


def _to_tokens(a, t: TensorType) -> TensorType:
    c, h, w = t.shape
    return TensorType((h * w, c), "LD")


_register(OpKind(
    "to_tokens", NoArgs, _to_tokens, template="{x}.flatten(2).transpose(1, 2)", view=True, run=_to_tokens_run,
    doc="C x H x W map -> (H*W) x C tokens, row by row (a patch embedding's output as a sequence)", saves=NOTHING,
    scatters=True))


class MapArgs(Args):
    height: Pos
    width: Pos


def _to_map(a: MapArgs, t: TensorType) -> TensorType:
    length, dim = t.shape
    if a.height * a.width != length:
        raise ShapeError(f"{length} tokens are not a {a.height} x {a.width} map")
    return TensorType((dim, a.height, a.width), "CHW")


_register(OpKind(
    "to_map", MapArgs, _to_map, layouts=("LD",),
    template="{x}.transpose(1, 2).reshape({x}.shape[0], -1, {height}, {width})", run=_to_map_run,
    doc="L x D tokens -> D x height x width map, row by row (to_tokens undone; L must be height * width)",
    saves=NOTHING, scatters=True, torch_view=True))


class TokenArgs(Args):
    init: Init = 0.0
    count: Pos = 1


def _prepend(a, t: TensorType) -> TensorType:
    return TensorType((t.shape[0] + a.count, t.shape[1]), "LD")


_register(OpKind(
    "prepend_token", TokenArgs, _prepend, layouts=("LD",),
    template="torch.cat([{param}.expand({x}.shape[0], -1, -1), {x}], dim=1)",
    learned=lambda a, t: (1, a.count, t.features),
    learned_init="nn.Parameter(torch.full((1, {count}, {features}), {init}))",
    params=lambda a, t: a.count * t.features, make=_full_make(lambda a, t: (1, a["count"], t.features)),
    run=_prepend_run,
    doc="puts `count` learned tokens (1 x count x D, filled with `init`) before the sequence: L x D -> "
        "(L+count) x D (ViT's class token; register tokens)", saves=NOTHING))


class LearnedAddArgs(LearnedArgs):
    init: Init = 0.0


_register(OpKind(
    "learned_add", LearnedAddArgs, _broadcasts, layouts=ANY, template="{x} + {param}",
    learned=lambda a, t: a.shape, learned_init="nn.Parameter(torch.full({shape}, {init}))",
    params=lambda a, t: math.prod(a.shape), make=_full_make(lambda a, t: a["shape"]),
    run=lambda m, a, t, xs, training: xs[0] + m,
    doc="adds a learned tensor of the given shape, broadcast over the input, filled with `init` "
        "(ViT's position embedding)", saves=NOTHING))


class SelectArgs(Args):
    index: NonNeg = 0


def _select(a: SelectArgs, t: TensorType) -> TensorType:
    if a.index >= t.shape[0]:
        raise ShapeError(f"token {a.index} of a sequence of {t.shape[0]}")
    return TensorType((t.shape[1],), "F")


_register(OpKind(
    "select_token", SelectArgs, _select, layouts=("LD",), template="{x}[:, {index}]", view=True,
    run=lambda m, a, t, xs, training: xs[0].select(1, a["index"]),
    doc="one token's D features: L x D -> D features (ViT's class token, for the head)", saves=NOTHING,
    scatters=True))


class AttentionArgs(Args):
    num_heads: Pos
    dropout: Prob = 0.0
    bias: bool = True


def _attention_shape(a: AttentionArgs, t: TensorType) -> TensorType:
    if t.features % a.num_heads:
        raise ShapeError(f"{t.features} features do not split into {a.num_heads} heads")
    return t


def _attention_macs(a: AttentionArgs, t: TensorType, o: TensorType) -> int:
    length, dim = t.shape
    projections = length * dim * 4 * dim  # queries, keys and values, then the output projection
    return projections + 2 * length * length * dim  # the attention scores, then their weighted sum of values


def _attention_make(a: dict, t: TensorType):
    from torch import nn

    return nn.MultiheadAttention(t.features, a["num_heads"], dropout=a["dropout"], bias=a["bias"], batch_first=True)


def _attention_run(m, a: dict, t: TensorType, xs: list, training: bool):
    """softmax(q k^T / sqrt(head size)) v per head, from the module's packed input projection."""
    import torch
    import torch.nn.functional as F

    x = xs[0]
    n, length, d = x.shape
    heads = a["num_heads"]
    qkv = x @ m.in_proj_weight.T
    if m.in_proj_bias is not None:
        qkv = qkv + m.in_proj_bias
    q, k, v = (p.reshape(n, length, heads, d // heads).transpose(1, 2) for p in qkv.split(d, -1))
    scores = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1)
    scores = F.dropout(scores, a["dropout"], training)
    out = (scores @ v).transpose(1, 2).reshape(n, length, d) @ m.out_proj.weight.T
    return out if m.out_proj.bias is None else out + m.out_proj.bias


def _attention_saves(a: dict, ins: tuple, out: tuple) -> Saves:
    """The input (its projection's), the projected queries, keys and values, and the attention's output (which the
    output projection reads as it is): four times the tokens after the input."""
    return Saves((0,), extra=((4 * math.prod(out), 0),))


_register(OpKind(
    "self_attention", AttentionArgs, _attention_shape, layouts=("LD",), module="nn.MultiheadAttention",
    in_arg=True, ctor_extra=("batch_first=True",), call="{module}({x}, {x}, {x}, need_weights=False)[0]",
    params=lambda a, t: 4 * t.features * t.features + (4 * t.features if a.bias else 0), macs=_attention_macs,
    make=_attention_make, run=_attention_run,
    doc="multi-head self-attention over the tokens (torchvision's nn.MultiheadAttention, batch first; "
        "the multiply-adds count the projections and both matrix products)",
    label=lambda a: f"self_attention {a['num_heads']} heads", saves=_attention_saves))
