"""Windows folded into the batch (timm's ``window_partition``: ``x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1,
3, 2, 4, 5).view(-1, ws, ws, C)``, then ``view(-1, ws * ws, C)``): a tensor of B * G rows, the G windows of each
sample. The language keeps the batch apart, so such a tensor is written as the groups of tokens it is, N x G x L x C
(the language's ``partition`` of the map it came from, the layout attention within groups reads), and the steps that
fold and unfold the batch are not written one by one: from the first step whose result is folded, the rearranging
steps after it (views, permutes, ``window_reverse``) are followed on their recorded values until a result is
``partition(map, ws, kind)`` (a channels-last map permuted to channels first for it) or, back, ``departition`` of the
groups (permuted to channels last where the original is), which is then written. A child applied to the groups is
written on them: its forward, traced with B * G rows, has each of its steps moved one dimension on (``fold_dag``).
Anything else done with a folded tensor is a ``LiftError``. A mixin of ``lowering._Lowering``."""

from __future__ import annotations

import math

import torch
import torch.fx as fx

from ..ops.base import REGISTRY
from ..ops.partition import _departition_run, _partition_run
from . import ir
from .errors import LiftError
from .functions import BINARY

# torch calls that only move a tensor's values (a folded tensor's steps between partition and departition)
_MOVING = {"view", "reshape", "permute", "contiguous", "transpose", "flatten", "unflatten"}
_DIMS = {"dim", "dim0", "dim1", "start_dim", "end_dim"}  # an op's fields that count dimensions (the batch 0)
# ops whose every step on the groups is the same on N x G x L x C as on (N G) x L x C, their dims moved on
_ON_GROUPS = {"+", "-", "*", "/", "**", "neg", "transpose", "flatten_dims", "unflatten", "select", "narrow",
              "softmax", "log_softmax", "mean", "sum", "amax", "normalize", "reshape", "matmul",
              "scaled_dot_product_attention", "linear", "layernorm", "rmsnorm", "dropout", "identity"}


class _Moved:
    """A rearrangement of folded values, not yet written: ``src`` (a Ref) is the map (``to_groups``) or the groups
    it starts from, ``value`` the recorded tensor it has come to."""

    def __init__(self, src: ir.Ref, value: torch.Tensor, to_groups: bool):
        self.src, self.value, self.to_groups = src, value, to_groups


class _FoldedBatch:
    """The batch size times a number of windows: may only be a view's first size (a fold of the batch)."""

    def __repr__(self) -> str:
        return "BATCH * G"


FOLDED_BATCH = _FoldedBatch()


class Folds:
    def folds_batch(self, nd: fx.Node, name: str, value) -> bool:
        """Whether ``nd`` is a step of a fold or an unfold, or reads the sizes of a folded tensor (then its value is
        set). A rearrangement read by anything else is written by ``arg`` (``resolved``) where it can be."""
        inputs = [self.refs.get(a) for a in nd.all_input_nodes]
        moved = [a for a in inputs if isinstance(a, _Moved)]
        tensors = [a for a in inputs if isinstance(a, ir.Ref)]
        if name in ("getattr", "size", "dim") and not isinstance(value, torch.Tensor) and (moved or any(
                a.index in self.folded for a in tensors)):
            self.refs[nd] = tuple(value) if isinstance(value, torch.Size) else value  # its sizes: constants
            return True
        factors = [self.refs.get(a, a) if isinstance(a, fx.Node) else a for a in nd.args]
        if name == "mul" and isinstance(value, int) and any(a is ir.BATCH or a is FOLDED_BATCH for a in factors) and \
                all(a is ir.BATCH or a is FOLDED_BATCH or (isinstance(a, int) and not isinstance(a, bool))
                    for a in factors):
            self.refs[nd] = FOLDED_BATCH  # B * G, TinyViT's windows' count: a view's first size, nothing else
            return True
        if not isinstance(value, torch.Tensor) or len(moved) + len(tensors) != 1 or nd.args[0] not in \
                nd.all_input_nodes:
            return False
        sizes = self._sizes(nd) if name in ("view", "reshape") else None
        if moved and (name in _MOVING or _library_function(nd)):
            self.refs[nd] = _Moved(moved[0].src, value, moved[0].to_groups)  # a step on: written once read
            return True
        x = tensors[0] if tensors else None
        if x is not None and x.index in self.folded and sizes is not None:  # the groups viewed as windows again
            self.refs[nd] = _Moved(x, value, False)  # (or as the batch's, TinyViT's): the unfold starts
            return True
        if moved or sizes is None or sizes[0] is ir.BATCH:  # the batch kept first: a view of the language
            return False
        if value.is_meta:  # too large to run: the fold is read from the values
            self.fail("folds windows into the batch on the meta device (a model too large to run), where which "
                      "partition it is cannot be read from the values")
        for src in _sources(nd.args[0]):  # the fold: from which map before it, and how
            ref = self.refs.get(src)
            if isinstance(ref, ir.Ref) and isinstance(self.values.get(src), torch.Tensor):
                start = self.values[src]
                found = _as_partition(start, value, self.batch)
                if found is not None:
                    self.refs[nd] = _Moved(self.partition_of(ref, start, *found), value, True)
                    return True
        return False

    def _sizes(self, nd: fx.Node) -> tuple:
        rest = tuple(self.refs.get(a, a) if isinstance(a, fx.Node) else a for a in nd.args[1:])
        return tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest

    def resolved(self, m: _Moved) -> ir.Ref:
        """A rearrangement read by a step that does not only move values: the groups or their map, else refused."""
        out = self.moved(m.src, m.value, m.to_groups)
        if isinstance(out, _Moved):
            self.fail("moves windows folded into the batch otherwise than into the language's partition of a map "
                      "and back: it cannot be written yet")
        return out

    def refuse_folded(self, name: str, args: tuple):
        """Steps on folded tensors other than arithmetic (whose result is folded too, ``folded_shape``)."""
        if any(a.index in self.folded for a in ir.refs_in(args)) and \
                BINARY.get(name) not in ("+", "-", "*", "/", "neg"):
            self.fail(f"'{name}' of windows folded into the batch cannot be written (only arithmetic, and moving "
                      "them into the language's partition of a map and back, can)")

    def partition_of(self, ref: ir.Ref, start: torch.Tensor, size: int, kind: str, channels_last: bool) -> ir.Ref:
        chw = start.permute(0, 3, 1, 2) if channels_last else start
        c, h, w = chw.shape[1:]
        if channels_last:
            ref = self.add(ir.Node(fn="permute", args=(ref, (0, 3, 1, 2)), shape=(c, h, w)))
        groups = _partition_run(None, {"size": size, "kind": kind}, None, [chw], False)
        out = self.add(ir.Node(fn="partition", args=(ref, size, kind), shape=tuple(groups.shape[1:])))
        self.folded[out.index] = (groups.shape[1], groups.reshape(-1, *groups.shape[2:]))
        return out

    def moved(self, src: ir.Ref, value: torch.Tensor, to_groups: bool) -> object:
        """The rearrangement written where ``value`` is the groups (``to_groups``) or their map, else kept."""
        g, real = self.folded[src.index]  # real: the groups as the original holds them, (N G) x L x C
        if to_groups:
            same = value.shape == real.shape and (value.is_meta or torch.equal(value, real))
            return src if same else _Moved(src, value, True)  # (each window's rows and columns swapped: no)
        groups = real.reshape(self.batch, g, *real.shape[1:])
        size = math.isqrt(groups.shape[2])
        if size * size == groups.shape[2] and math.isqrt(g) ** 2 == g:
            for kind in ("window", "grid"):
                back = _departition_run(None, {"size": size, "kind": kind}, None, [groups], False)
                for last in (False, True):
                    want = back.permute(0, 2, 3, 1) if last else back
                    if want.shape == value.shape and torch.equal(want, value):
                        return self.departition_of(src, size, kind, last, tuple(back.shape[1:]), value)
        return _Moved(src, value, False)

    def folded_shape(self, args: tuple, value: torch.Tensor) -> tuple | None:
        """The shape (without the batch) of arithmetic's result on folded tensors: N x G x ..., and it is folded."""
        gs = {self.folded[a.index][0] for a in ir.refs_in(args) if a.index in self.folded}
        if len(gs) != 1 or value.shape[0] != self.batch * next(iter(gs)):
            return None
        return (next(iter(gs)), *value.shape[1:])

    def departition_of(self, src: ir.Ref, size: int, kind: str, channels_last: bool, chw: tuple,
                       value: torch.Tensor) -> ir.Ref:
        """The map of the groups, laid out in memory as the original's ``value`` (torch's pools and convs after it
        round by the layout): ``departition`` (a contiguous C x H x W map), or, for windows whose map the original
        holds contiguous channels last (timm's ``window_reverse``), the reshapes and the transpose that it is; either
        permuted to the other layout where the original permutes it."""
        c, h, w = chw
        hwc = value.permute(0, 2, 3, 1) if not channels_last else value
        if kind == "window" and hwc.is_contiguous():
            cells = (h // size, w // size, size, size, c)
            ref = self.add(ir.Node(fn="reshape", args=(src, cells), shape=cells))
            ref = self.add(ir.Node(fn="transpose", args=(ref, 2, 3), shape=(h // size, size, w // size, size, c)))
            ref = self.add(ir.Node(fn="reshape", args=(ref, (h, w, c)), shape=(h, w, c)))
            return ref if channels_last else self.add(ir.Node(fn="permute", args=(ref, (0, 3, 1, 2)), shape=chw))
        ref = self.add(ir.Node(fn="departition", args=(src, size, kind), shape=chw))
        return self.add(ir.Node(fn="permute", args=(ref, (0, 2, 3, 1)), shape=(h, w, c))) if channels_last else ref

    def fold_call(self, target: str, args: tuple, value) -> ir.Ref | None:
        """A child applied to the groups: written on them, its forward's steps moved one dimension on."""
        folded = self.folded
        if any(isinstance(a, _Moved) for a in args):
            self.fail(f"calls '{target}' on windows folded into the batch other than as groups of tokens")
        groups = [folded[a.index] for a in args if isinstance(a, ir.Ref) and a.index in folded]
        if not groups:
            return None
        g = groups[0][0]
        if len(args) != 1 or not isinstance(value, torch.Tensor) or value.shape[0] != self.batch * g:
            self.fail(f"calls '{target}' on windows folded into the batch with other arguments")
        try:
            fold_part(self.children[target], g)
        except LiftError as e:
            self.fail(f"calls '{target}' on windows folded into the batch: {e}")
        ref = self.add(ir.Node(fn="call", args=args, child=target, shape=(g, *value.shape[1:])))
        self.folded[ref.index] = (g, value)
        return ref


def _library_function(nd: fx.Node) -> bool:
    """A function of the model's library kept whole in the trace (timm's ``window_reverse``, not traced through): a
    step that may only move values, which the recorded values then say."""
    module = getattr(nd.target, "__module__", None) or ""
    return nd.op == "call_function" and not module.startswith(("torch", "_operator", "operator", "builtins", "math"))


def _sources(x):
    """The fx nodes a fold may start from: ``x`` and those before it through moving steps, nearest first."""
    while isinstance(x, fx.Node):
        yield x
        name = x.target if x.op == "call_method" else getattr(x.target, "__name__", "")
        if name not in _MOVING or not x.args:
            return
        x = x.args[0]


def _as_partition(start: torch.Tensor, value: torch.Tensor, batch: int):
    """(size, kind, channels_last) where ``value`` is ``partition(start, size, kind)`` with the batch folded."""
    if start.dim() != 4 or start.shape[0] != batch or value.numel() != start.numel():
        return None
    for channels_last in (True, False):
        chw = start.permute(0, 3, 1, 2) if channels_last else start
        h, w = chw.shape[2:]
        if h != w:
            continue
        for kind in ("window", "grid"):
            for size in range(2, h + 1):
                if h % size:
                    continue
                groups = _partition_run(None, {"size": size, "kind": kind}, None, [chw], False)
                if groups.shape[1] * batch != value.shape[0]:
                    continue
                if torch.equal(groups.reshape(value.shape), value):
                    return size, kind, channels_last
    return None


def fold_part(part, g: int) -> None:
    """A child traced with B * G rows rewritten for N x G x ...: shapes get G first, dims move one on."""
    if isinstance(part, ir.Leaf):
        if part.op not in _ON_GROUPS or part.then or part.before:
            raise LiftError(f"'{part.op}' on groups of tokens cannot be written")
        part.args = _moved_fields(part.op, part.args, g)
        return
    if not isinstance(part, ir.Dag):
        raise LiftError("a sequence on groups of tokens cannot be written yet")
    n_in = len(part.inputs)
    folded = set(range(n_in))
    part.input_shapes = [(g, *s) for s in part.input_shapes]
    children = dict(part.children)
    index = {i: i for i in range(n_in)}
    nodes: list[ir.Node] = []

    def add(nd: ir.Node) -> int:
        nodes.append(nd)
        return n_in + len(nodes) - 1

    for k, nd in enumerate(part.nodes, start=n_in):
        nd.args = _remap(nd.args, index)
        if not any(r.index in folded for r in ir.refs_in(nd.args)):
            index[k] = add(nd)
            continue
        if nd.fn == "call" and isinstance(children[nd.child], ir.Leaf) and children[nd.child].op == "learned":
            index[k] = add(nd)  # a learned table (relpos) reads its tensor for the batch only: not folded
            continue
        nd.shape = (g, *nd.shape)
        if nd.fn != "call":  # a tensor of every sample beside the groups (a bias): given a leading 1 to broadcast
            nd.args = _broadcast_unfolded(nd.args, folded, add, lambda r: part.input_shapes[r.index]
                                          if r.index < n_in else nodes[r.index - n_in].shape)
        if nd.fn == "call":
            fold_part(children[nd.child], g)
        elif nd.fn not in _ON_GROUPS:
            raise LiftError(f"'{nd.fn}' on groups of tokens cannot be written yet")
        elif nd.fn == "scaled_dot_product_attention" and not isinstance(nd.args[3], ir.Ref):
            index[k] = _attention(nd, g, add, lambda r: part.input_shapes[r.index] if r.index < n_in
                                  else nodes[r.index - n_in].shape)
            folded.add(index[k])
            continue
        elif nd.fn in REGISTRY:
            fields = list(REGISTRY[nd.fn].args.model_fields)
            lead = len(nd.args) - len(fields)
            moved = _moved_fields(nd.fn, dict(zip(fields, nd.args[lead:])), g)
            nd.args = (*nd.args[:lead], *moved.values())
        index[k] = add(nd)
        folded.add(index[k])
    part.nodes = nodes
    part.output = _remap(part.output, index)
    if part.output.index not in folded:
        raise LiftError("its output is not computed from the groups")


def _remap(a, index: dict):
    if isinstance(a, ir.Ref):
        return ir.Ref(index[a.index])
    if isinstance(a, (list, tuple)):
        return type(a)(_remap(x, index) for x in a)
    return a


def _broadcast_unfolded(args, folded: set, add, shape_of):
    """Each tensor among ``args`` that is not folded, ``unflatten``ed to a leading 1 (its sizes after the batch
    then align with the groups' after theirs, as torch aligned them after the B x G rows)."""
    def one(a):
        if isinstance(a, ir.Ref) and a.index not in folded:
            shape = shape_of(a)
            if not shape:
                raise LiftError("a tensor of one sample's sizes beside groups of tokens cannot be written")
            return ir.Ref(add(ir.Node(fn="unflatten", args=(a, 1, (1, shape[0])), shape=(1, *shape))))
        if isinstance(a, (list, tuple)):
            return type(a)(one(x) for x in a)
        return a
    return one(args)


def _attention(nd: ir.Node, g: int, add, shape_of) -> int:
    """Attention on N x G x heads x L x D as on N x (G heads) x L x D, unflattened after: torch's kernel on four
    dimensions, as the original's on (N G) x heads x L x D (on five it rounds otherwise)."""
    q, k, v, *rest = nd.args  # (with a mask torch computes it alike on five dimensions: the node stays)
    flat = []
    for t in (q, k, v):
        shape = shape_of(t)
        if len(shape) != 4 or shape[0] != g:
            raise LiftError("attention on groups of tokens other than of heads x L x D each cannot be written yet")
        flat.append(ir.Ref(add(ir.Node(fn="flatten_dims", args=(t, 1, 2), shape=(g * shape[1], *shape[2:]),
                                       name=nd.name))))
    heads = nd.shape[1]
    out = add(ir.Node(fn=nd.fn, args=(*flat, *rest), shape=(g * heads, *nd.shape[2:]), name=nd.name))
    return add(ir.Node(fn="unflatten", args=(ir.Ref(out), 1, (g, heads)), shape=nd.shape, name=nd.name))


def _moved_fields(op: str, args: dict, g: int) -> dict:
    out = dict(args)
    for f, v in args.items():
        if f in _DIMS and isinstance(v, int) and not isinstance(v, bool):
            if v == 0:
                raise LiftError(f"'{op}' over the batch of the groups cannot be written")
            out[f] = v + 1 if v > 0 else v
        elif f in _DIMS and isinstance(v, tuple):
            out[f] = tuple(d + 1 if d > 0 else d for d in v)
        elif op == "reshape" and f == "shape":
            out[f] = (g, *v)  # (N G) x shape: N x G x shape
    return out
