"""Indexing in a traced forward: ``x[...]``, the pieces of ``chunk``/``split``/``unbind``, and one index of a
permute that moved the batch (timm's ``q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)``), as the language's
``select`` and ``narrow``. A mixin of ``lowering._Lowering``, which gives ``refs``, ``shape``, ``add``,
``tensor_node``, ``apply_steps``, ``fail`` and ``dag``."""

from __future__ import annotations

from . import ir
from .functions import map_call


class Permuted:
    """A permute that moves the batch from the front, not yet read: only one index of its first dimension may be."""

    def __init__(self, x, dims):
        self.x, self.dims = x, dims


class Indexing:
    def pieces(self, name, args, kwargs, value) -> list:
        """``chunk``/``split``/``unbind``: one narrow (or select) per piece, made when a piece is read."""
        x = args[0]
        dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
        if name == "unbind":
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        dim = dim % (len(self.shape(x)) + 1)
        if dim == 0:
            self.fail(f"'{name}' over the batch cannot be written")
        out, start = [], 0
        for piece in value:
            if name == "unbind":
                out.append(("select", x, dim, start, piece))
                start += 1
            else:
                length = piece.shape[dim]
                out.append(("narrow", x, dim, start, piece, length))
                start += length
        return out

    def getitem(self, nd, args, value):
        src, index = args
        if isinstance(src, list) and isinstance(src[0], ir.Ref):  # the output of attention, or its weights
            self.refs[nd] = src[index]
            return
        if isinstance(src, Permuted) and isinstance(index, int):
            self.refs[nd] = self.select_permuted(src, index, value)
            return
        if isinstance(src, list):  # a piece of chunk/split/unbind
            piece = src[index]
            if piece[0] == "permuted":
                self.refs[nd] = self.select_permuted(piece[1], piece[2], piece[3])
                return
            if piece[0] == "select":
                _, x, dim, i, v = piece
                self.refs[nd] = self.tensor_node("select", (x, dim, i), v)
            else:
                _, x, dim, start, v, length = piece
                self.refs[nd] = self.tensor_node("narrow", (x, dim, start, length), v)
            return
        if not isinstance(src, ir.Ref):
            self.fail("indexes something other than a tensor")
        self.refs[nd] = self.index(src, index if isinstance(index, tuple) else (index,), value)

    def select_permuted(self, p: Permuted, i: int, value) -> ir.Ref:
        """``x.permute(2, 0, 3, 1, 4)[i]`` (timm's ``q, k, v = qkv.unbind(0)``) as ``x.select(2, i)`` permuted: the
        same view, with the batch first throughout."""
        s = p.dims[0]
        rest = [d - (d > s) for d in p.dims[1:]]
        if rest[0] != 0:
            self.fail("a permute that moves the batch away from the front cannot be written")
        shape = self.shape(p.x)
        ref = self.add(ir.Node(fn="select", args=(p.x, s, i % shape[s - 1]), shape=shape[:s - 1] + shape[s:]))
        return self.apply_steps(map_call("permute", (ref, *rest), {}, self.shape, self.fail), value)

    def index(self, x: ir.Ref, index: tuple, value) -> ir.Ref:
        """``x[...]`` as selects and narrows, one per dimension indexed (a select takes its dimension away)."""
        cur, dim, ref = self.shape(x), 0, x
        if Ellipsis in index:  # as many whole dimensions as the other items leave
            i = index.index(Ellipsis)
            rest = sum(1 for item in index if item is not Ellipsis and item is not None)
            index = index[:i] + (slice(None),) * (len(cur) + 1 - rest) + index[i + 1:]
        for item in index:
            if isinstance(item, int) and not isinstance(item, bool):
                if dim == 0:
                    self.fail("indexing the batch cannot be written")
                i = item % cur[dim - 1]
                cur = cur[:dim - 1] + cur[dim:]
                ref = self.add(ir.Node(fn="select", args=(ref, dim, i), shape=cur))
                continue
            if not isinstance(item, slice) or item.step not in (None, 1):
                self.fail(f"indexing with {item!r} cannot be written yet")
            if dim == 0:
                if (item.start, item.stop) != (None, None):
                    self.fail("slicing the batch cannot be written")
            else:
                start, stop, _ = item.indices(cur[dim - 1])
                if (start, stop) != (0, cur[dim - 1]):
                    cur = cur[:dim - 1] + (stop - start,) + cur[dim:]
                    ref = self.add(ir.Node(fn="narrow", args=(ref, dim, start, stop - start), shape=cur))
            dim += 1
        if isinstance(ref, ir.Ref) and ref.index >= len(self.dag.inputs) and cur != tuple(value.shape[1:]):
            self.fail("an index whose result's shape was not worked out")
        return ref
