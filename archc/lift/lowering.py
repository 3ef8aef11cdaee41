"""One module's traced forward (a ``torch.fx`` graph and the values it computed) as a ``Dag``: children
applied, registry ops on tensors and arithmetic between them. Shape arithmetic is folded into constants
(the language's shapes are static); the batch size may only pass into a reshape as its first size. Anything
else is a ``LiftError`` that names the module and the operation."""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

from . import ir
from .errors import LiftError
from .functions import BINARY, FUNCTIONS, PREVIOUS, map_call


def _is_batch_read(nd: fx.Node) -> bool:
    """``x.size(0)``, ``x.shape[0]``, ``x.size()[0]``: the batch size."""
    if nd.op == "call_method" and nd.target == "size" and (nd.args[1:] or nd.kwargs.get("dim") is not None):
        return (nd.args[1] if len(nd.args) > 1 else nd.kwargs["dim"]) == 0
    if nd.op == "call_function" and nd.target is operator.getitem and isinstance(nd.args[0], fx.Node):
        src = nd.args[0]
        shape_read = (src.op == "call_method" and src.target == "size" and len(src.args) == 1) or \
            (src.op == "call_function" and src.target is getattr and src.args[1] == "shape")
        return shape_read and nd.args[1] == 0
    return False


class _Lowering:
    def __init__(self, cls, path, children, graph: fx.Graph, values, where, own=None):
        self.where = f"{where} ({cls})"
        self.own = own or {}  # the module's own parameters: learned tensors, by name
        self.used_own: set[str] = set()
        self.children = dict(children)
        self.values = values
        self.refs: dict[fx.Node, object] = {}  # fx node -> Ref, a constant, BATCH, or a list of Refs (chunk)
        self.dag = ir.Dag(cls=cls, path=path, children=children, inputs=[], input_shapes=[])
        self.graph = graph

    def fail(self, what: str):
        raise LiftError(f"{self.where}: {what}")

    def arg(self, a):
        """An fx argument as a lifted one."""
        if isinstance(a, fx.Node):
            if self.refs[a] is _UNREAD:
                self.fail("reads the attention weights, which the language's attention does not give")
            return self.refs[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(x) for x in a)
        if isinstance(a, slice):
            return slice(self.arg(a.start), self.arg(a.stop), self.arg(a.step))
        if isinstance(a, (torch.Tensor, torch.nn.Module)):
            self.fail("a tensor or module held as a constant cannot be written")
        return a

    def shape(self, ref: ir.Ref) -> tuple[int, ...]:
        n_in = len(self.dag.inputs)
        return self.dag.input_shapes[ref.index] if ref.index < n_in else self.dag.nodes[ref.index - n_in].shape

    def add(self, node: ir.Node) -> ir.Ref:
        node.name = self.current
        self.dag.nodes.append(node)
        return ir.Ref(len(self.dag.inputs) + len(self.dag.nodes) - 1)

    def run(self) -> ir.Dag:
        for nd in self.graph.nodes:
            value = self.values.get(nd)
            self.current = nd.name
            if nd.op == "placeholder":
                self.placeholder(nd, value)
            elif nd.op == "output":
                out = self.arg(nd.args[0])
                if not isinstance(out, ir.Ref):
                    self.fail("only a forward that returns one tensor can be written yet")
                self.dag.output = out
                self.fold_items()
                self.fuse_tokens()
                self.unused()
            elif nd.op == "get_attr":
                if nd.target not in self.own:
                    self.fail(f"reads the tensor '{nd.target}', which is not a parameter of its own")
                self.refs[nd] = _Own(nd.target)
            elif nd.op == "call_module":
                self.call_module(nd, value)
            else:
                self.call(nd, value)
        return self.dag

    def fold_items(self):
        """The items of a container applied one after another, each to the one before's output (``for blk in
        self.blocks: x = blk(x)``), as one call of the container, a named seq."""
        n_in = len(self.dag.inputs)
        runs: dict[str, list[int]] = {}
        for k, nd in enumerate(self.dag.nodes, start=n_in):
            if nd.fn == "call" and "." in nd.child:
                runs.setdefault(nd.child.partition(".")[0], []).append(k)
        if not runs:
            return
        uses = self.dag.uses()
        replace: dict[int, int] = {}  # the last item's value -> the first item's node, which becomes the call
        dropped: set[int] = set()
        for head, ks in runs.items():
            items = [n for n, _ in self.children[head].children]
            called = [self.dag.nodes[k - n_in].child.partition(".")[2] for k in ks]
            chained = all(self.dag.nodes[b - n_in].args == (ir.Ref(a),) and uses.get(a) == 1
                          for a, b in zip(ks, ks[1:]))
            if called != items or not chained or len(self.dag.nodes[ks[0] - n_in].args) != 1:
                self.fail(f"applies the items of '{head}' other than each once, in order, one to the one before's "
                          "output: it cannot be written yet")
            first = self.dag.nodes[ks[0] - n_in]
            first.child, first.shape = head, self.dag.nodes[ks[-1] - n_in].shape
            replace[ks[-1]] = ks[0]
            dropped.update(ks[1:])
        self.drop_nodes(dropped, replace)

    def fuse_tokens(self):
        """A map flattened to H·W positions and transposed (``x.flatten(2).transpose(1, 2)``) is the language's
        ``to_tokens``: the transpose becomes it, and the flatten, read by nothing else, goes."""
        n_in = len(self.dag.inputs)
        uses = self.dag.uses()
        gone = set()
        for nd in self.dag.nodes:
            if nd.fn != "transpose" or list(nd.args[1:]) not in ([1, 2], [2, 1]):
                continue
            src = nd.args[0].index
            if src < n_in or uses.get(src) != 1:
                continue
            flat = self.dag.nodes[src - n_in]
            x = flat.args[0]
            shape = self.shape(x) if isinstance(x, ir.Ref) else ()
            if len(shape) != 3 or flat.shape != (shape[0], shape[1] * shape[2]):
                continue
            if (flat.fn, flat.args[1:]) in (("flatten_dims", (2, -1)), ("reshape", ((shape[0], shape[1] * shape[2]),)),
                                            ("reshape", ((shape[0], -1),))):
                nd.fn, nd.args = "to_tokens", (x,)
                gone.add(src)
        if gone:
            self.drop_nodes(gone)

    def drop_nodes(self, gone: set[int], replace: dict[int, int] | None = None):
        """Take out nodes (those in ``replace`` read as the value it names instead), renumbering the values."""
        n_in = len(self.dag.inputs)
        index = {i: i for i in range(n_in)}
        nodes = []
        for k, nd in enumerate(self.dag.nodes, start=n_in):
            if k not in gone:
                nodes.append(nd)
                index[k] = n_in + len(nodes) - 1
        for k, target in (replace or {}).items():
            index[k] = index[target]

        def remap(a):
            if isinstance(a, ir.Ref):
                return ir.Ref(index[a.index])
            if isinstance(a, (list, tuple)):
                return type(a)(remap(x) for x in a)
            return a

        for nd in nodes:
            nd.args = remap(nd.args)
        self.dag.nodes = nodes
        self.dag.output = remap(self.dag.output)

    def unused(self):
        calls: dict[str, int] = {}
        for nd in self.dag.nodes:
            if nd.fn == "call":
                calls[nd.child] = calls.get(nd.child, 0) + 1
        called = set(calls)
        for name, part in self.dag.children:
            if calls.get(name, 0) > 1 and _holds_state(part):
                self.fail(f"its child '{name}' is called {calls[name]} times: a module with weights applied more "
                          "than once (weight sharing) cannot be written yet")
        kept = []
        for name, part in self.dag.children:
            if name in called or not _holds_state(part):
                kept.append((name, part))
            else:
                self.fail(f"its child '{name}' holds weights but is never called in forward (on the example input): "
                          "it cannot be written yet")
        self.dag.children = [(n, p) for n, p in kept if n in called]

    def placeholder(self, nd: fx.Node, value):
        if isinstance(value, torch.Tensor):
            self.dag.inputs.append(nd.target)
            self.dag.input_shapes.append(tuple(value.shape[1:]))
            self.refs[nd] = ir.Ref(len(self.dag.inputs) - 1)
        elif isinstance(value, (int, float, bool, str, type(None))):
            self.refs[nd] = value  # a default argument, constant
        else:
            self.fail(f"its argument '{nd.target}' is a {type(value).__name__}: only tensors can be passed")

    def tensor_node(self, fn: str, args: tuple, value, child: str | None = None) -> ir.Ref:
        if not isinstance(value, torch.Tensor):
            self.fail(f"'{fn}' gives a {type(value).__name__}, not one tensor: it cannot be written yet")
        return self.add(ir.Node(fn=fn, args=args, child=child, shape=tuple(value.shape[1:])))

    def call_module(self, nd: fx.Node, value):
        head, _, item = nd.target.partition(".")
        if item and "." not in item and isinstance(self.children.get(head), ir.Seq):
            pass  # an item of a container, applied on its own: folded into one call of the container (fold_items)
        elif nd.target not in self.children:
            self.fail(f"calls '{nd.target}', a module that is not its own child: only direct children can be "
                      "called yet")
        child = self.children.get(nd.target)
        if isinstance(child, ir.Leaf) and child.op == "self_attention":
            self.attention(nd, value)
            return
        if nd.kwargs:
            self.fail(f"calls '{nd.target}' with keyword arguments")
        args = tuple(self.arg(a) for a in nd.args)
        if not all(isinstance(a, ir.Ref) for a in args):
            self.fail(f"calls '{nd.target}' with something other than tensors")
        self.refs[nd] = self.tensor_node("call", args, value, child=nd.target)

    def call(self, nd: fx.Node, value):
        args = tuple(self.arg(a) for a in nd.args)
        kwargs = {k: self.arg(v) for k, v in nd.kwargs.items()}
        name = nd.target if nd.op == "call_method" else getattr(nd.target, "__name__", str(nd.target))
        own = [a for a in _flat(list(args) + list(kwargs.values())) if isinstance(a, _Own)]
        if own:
            self.learned(nd, name, args, kwargs, own[0], value)
            return
        tensors = ir.refs_in(list(args) + list(kwargs.values()))
        if not tensors:  # shape arithmetic: folded
            if _is_batch_read(nd):
                self.refs[nd] = ir.BATCH
            elif any(a is ir.BATCH for a in _flat(args)):
                self.fail(f"computes with the batch size ('{name}'): it cannot be written")
            else:
                self.refs[nd] = value if not isinstance(value, torch.Size) else tuple(value)
            return
        if nd.op == "call_method" and name in ("size", "dim", "numel") or name in ("getattr", "len"):
            if name == "getattr" and args[1] not in ("shape", "ndim"):
                self.fail(f"reads the tensor attribute '{args[1]}'")
            if _is_batch_read(nd):
                self.refs[nd] = ir.BATCH
            else:
                self.refs[nd] = tuple(value) if isinstance(value, torch.Size) else value
            return
        if name in ("contiguous", "clone", "detach") and nd.op == "call_method":
            self.refs[nd] = args[0]
            return
        if name == "getitem":
            self.getitem(nd, args, value)
            return
        if name in BINARY:
            op = BINARY[name]
            if op == "neg":
                self.refs[nd] = self.tensor_node("neg", args, value)
            else:
                if kwargs.get("alpha", 1) != 1:
                    self.fail(f"'{name}' with alpha cannot be written")
                self.refs[nd] = self.tensor_node(op, args[:2], value)
            return
        if name in ("chunk", "split", "unbind", "tensor_split"):
            self.refs[nd] = self.pieces(name, args, kwargs, value)
            return
        if name not in FUNCTIONS:
            self.fail(f"calls '{name}', which has no counterpart in the language yet")
        steps = map_call(name, args, kwargs, self.shape, self.fail)
        ref = None
        for i, (op, fields) in enumerate(steps):
            fields = tuple(ref if f is PREVIOUS else f for f in fields)
            if i < len(steps) - 1:  # a step before the last: its shape is worked out by the registry
                ref = self.add(ir.Node(fn=op, args=fields, shape=_step_shape(op, fields, self.shape)))
            else:
                ref = self.tensor_node(op, fields, value)
        self.refs[nd] = ref

    def attention(self, nd, value):
        """``self.attn(x, x, x, need_weights=False)``: the tokens attending to themselves, a pair whose first is
        the output; its second (no weights) may not be read."""
        args = tuple(self.arg(a) for a in nd.args)
        kwargs = {k: self.arg(v) for k, v in nd.kwargs.items()}
        if len(args) != 3 or not isinstance(args[0], ir.Ref) or args.count(args[0]) != 3 or \
                kwargs.get("need_weights") is not False or set(kwargs) - {"need_weights"}:
            self.fail(f"calls '{nd.target}' other than on one tensor as query, key and value, with "
                      "need_weights=False: it cannot be written yet")
        ref = self.tensor_node("call", (args[0],), value[0], child=nd.target)
        self.refs[nd] = [ref, _UNREAD]

    def learned(self, nd, name, args, kwargs, own, value):
        """A parameter of the module's own, used as the language's learned tensors use one: multiplied with a
        tensor (``learned_scale``), added to one (``learned_add``), or expanded over the batch and put before a
        sequence (``prepend_token``). The parameter becomes a child of that name."""
        tensors = ir.refs_in(args)
        p = self.own.get(own.name)
        if name == "expand" and isinstance(own, _Own) and args[1:] == (ir.BATCH, -1, -1) and p.dim() == 3:
            self.refs[nd] = _Expanded(own.name)
            return
        if name in ("cat", "concat") and isinstance(own, _Expanded) and len(args[0]) == 2 and \
                args[0][0] is own and isinstance(args[0][1], ir.Ref) and kwargs.get("dim", args[1:2] or [0]) in (1, [1]):
            op, x = "prepend_token", args[0][1]
        elif name in BINARY and BINARY[name] in ("*", "+") and isinstance(own, _Own) and len(tensors) == 1 and \
                len(args) == 2 and not kwargs:
            op, x = ("learned_scale" if BINARY[name] == "*" else "learned_add"), tensors[0]
        else:
            self.fail(f"uses its parameter '{own.name}' in '{name}', which cannot be written yet (a learned tensor "
                      "may multiply a tensor, be added to one, or be expanded and put before a sequence)")
        if own.name in self.used_own:
            self.fail(f"uses its parameter '{own.name}' more than once: it cannot be written yet")
        self.used_own.add(own.name)
        flat = p.flatten()
        init = flat[0].item() if flat.numel() and bool((flat == flat[0]).all()) else None
        args_ = {"init": init if init is not None else (0.0 if op != "learned_scale" else 1.0)}
        if op != "prepend_token":
            args_ = {"shape": tuple(p.shape), **args_}
        leaf = ir.Leaf(op=op, args=args_, stateful=True, path=f"{self.dag.path}.{own.name}".lstrip("."))
        self.dag.children.insert(0, (own.name, leaf))
        self.children[own.name] = leaf
        self.refs[nd] = self.tensor_node("call", (x,), value, child=own.name)

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
        if isinstance(src, list):  # a piece of chunk/split/unbind
            piece = src[index]
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

    def index(self, x: ir.Ref, index: tuple, value) -> ir.Ref:
        """``x[...]`` as selects and narrows, one per dimension indexed (a select takes its dimension away)."""
        cur, dim, ref = self.shape(x), 0, x
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


_UNREAD = object()  # a value that exists in the traced graph but may not be read (attention's weights: None)


class _Own:
    """A parameter of the module's own, read (``self.layer_scale``)."""

    def __init__(self, name: str):
        self.name = name


class _Expanded(_Own):
    """Such a parameter expanded over the batch (``self.class_token.expand(n, -1, -1)``)."""


def _step_shape(op: str, fields: tuple, shape_of) -> tuple[int, ...]:
    if op == "global_avgpool":
        return shape_of(fields[0])[:1]
    if op == "transpose":
        shape = list(shape_of(fields[0]))
        i, j = fields[1] - 1, fields[2] - 1
        shape[i], shape[j] = shape[j], shape[i]
        return tuple(shape)
    raise AssertionError(f"no shape rule for an intermediate {op}")


def _holds_state(part) -> bool:
    if isinstance(part, ir.Leaf):
        return part.stateful
    return any(_holds_state(c) for _, c in part.children)


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


def lower_graph(cls, path, children, graph, values, where, own=None) -> ir.Dag:
    return _Lowering(cls, path, children, graph, values, where, own).run()
