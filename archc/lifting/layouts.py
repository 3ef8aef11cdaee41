"""Layouts in a traced forward: where torch's permute is the language's ``to_map`` or plain transposes rather
than the layout op ``permute``, which reads a tensor of three unnamed axes (a reshape's) as a C x H x W map. A
mixin of ``lowering._Lowering``, which gives ``dag``, ``shape``, ``gone``, ``refs`` and ``tensor_node``."""

from __future__ import annotations

import torch.fx as fx

from . import ir

# ops whose result has unnamed axes, and those whose result has their (first) tensor's layout
_UNNAMING = {"reshape", "unflatten", "flatten_dims", "transpose", "select", "narrow", "matmul",
             "scaled_dot_product_attention", "einsum", "stack"}
_KEEPING = {"+", "-", "*", "/", "**", "neg", "sin", "cos", "normalize", "softmax", "log_softmax"}


class Layouts:
    def tokens_to_map(self, nd: fx.Node, x, value) -> bool:
        """``x.reshape(B, h, w, C).permute(0, 3, 1, 2)`` of L x C tokens (L = h w), the reshape read by nothing
        else: the language's ``to_map(h, w)``, the same values. False where it is no such pair."""
        n_in = len(self.dag.inputs)
        src = nd.args[0]
        if not isinstance(x, ir.Ref) or x.index < n_in or len(src.users) != 1:
            return False
        reshape = self.dag.nodes[x.index - n_in]
        tokens = reshape.args[0] if reshape.fn == "reshape" else None
        if not isinstance(tokens, ir.Ref) or len(self.shape(tokens)) != 2 or len(self.shape(x)) != 3:
            return False
        (length, dim), (h, w, c) = self.shape(tokens), self.shape(x)
        if h * w != length or c != dim:
            return False
        self.gone.add(x.index)
        self.refs[nd] = self.tensor_node("to_map", (tokens, h, w), value)
        return True

    def unnamed(self, x) -> bool:
        """Whether ``x`` has unnamed axes: a reshape's, a product of tensors', ... (or arithmetic on one), which the
        language reads as a C x H x W map where it has three."""
        n_in = len(self.dag.inputs)
        while isinstance(x, ir.Ref) and x.index >= n_in:
            nd = self.dag.nodes[x.index - n_in]
            if nd.fn in _UNNAMING:
                return True
            if nd.fn not in _KEEPING:
                return False
            x = next(iter(ir.refs_in(nd.args)), None)
        return False

    def tokens_to_grid(self, nd: fx.Node, x, value) -> bool:
        """``x.reshape(B, h, w, D)`` of L x D tokens (L = h w) that a child or a layer reads next (EdgeNeXt's tokens
        back on their grid, channels last, for its norm and MLP): ``to_map(h, w)`` then ``permute((0, 2, 3, 1))``,
        the same values, read as the channels-last map they are. A reshape that another reshape, permute or index
        reads (a window partition) stays a reshape; False then, or where it is no such reshape."""
        if not isinstance(x, ir.Ref) or len(self.shape(x)) != 2 or value.dim() != 4:
            return False
        (length, dim), (h, w, c) = self.shape(x), tuple(value.shape[1:])
        if h * w != length or c != dim or not nd.users or \
                any(u.op not in ("call_module", "call_function", "call_method") or _name(u) in _REARRANGING
                    for u in nd.users):
            return False
        grid = self.add(ir.Node(fn="to_map", args=(x, h, w), shape=(dim, h, w)))
        self.refs[nd] = self.tensor_node("permute", (grid, (0, 2, 3, 1)), value)
        return True


# what reads a reshape's axes as they are laid out (a window partition's next steps): a grid reshape stays for them
_REARRANGING = {"reshape", "view", "permute", "transpose", "flatten", "unflatten", "getitem", "chunk", "split",
                "unbind", "contiguous", "squeeze", "unsqueeze", "expand", "matmul", "roll", "pad"}


def _name(nd: fx.Node) -> str:
    return nd.target if nd.op == "call_method" else getattr(nd.target, "__name__", str(nd.target))
