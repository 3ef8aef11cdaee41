"""One module's traced forward (a ``torch.fx`` graph and the values it computed) as a ``Dag``: children
applied, registry ops on tensors and arithmetic between them. Shape arithmetic is folded into constants
(the language's shapes are static); the batch size may only pass into a reshape as its first size. Anything
else is a ``LiftError`` that names the module and the operation."""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

from . import ir, passes
from .errors import LiftError
from .folds import FOLDED_BATCH, Folds, _Moved
from .functions import BINARY, FUNCTIONS, PREVIOUS, map_call, step_shape, transposes
from .indexing import Indexing, Permuted
from .layouts import Layouts
from .own import OwnParameters, _Expanded, _Own
from .relpos import RelativePositions
from .tables import Table
from .windows import fold_grids


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


class _Lowering(Indexing, OwnParameters, RelativePositions, Layouts, Folds):
    def __init__(self, cls, path, children, graph: fx.Graph, values, where, own=None, buffers=None):
        self.where = f"{where} ({cls})"
        self.own = own or {}  # the module's own parameters: learned tensors, by name
        self.buffers = buffers or {}  # and its index buffers (relpos), not persistent
        self.layer = None  # (op, args) where the module computes its own norm (own_norm)
        self.gone: set[int] = set()  # values a later node took the place of, read by nothing else (tokens_to_map)
        self.used_own: set[str] = set()
        self.children = dict(children)
        self.values = values
        self.refs: dict[fx.Node, object] = {}  # fx node -> Ref, a constant, BATCH, or a list of Refs (chunk)
        self.dag = ir.Dag(cls=cls, path=path, children=children, inputs=[], input_shapes=[])
        self.graph = graph
        self.batch = None  # the batch size of the recorded input (of this forward's own first tensor)
        self.folded: dict[int, tuple] = {}  # values with windows folded into the batch: (G, the recorded value)

    def fail(self, what: str):
        raise LiftError(f"{self.where}: {what}")

    def arg(self, a):
        """An fx argument as a lifted one."""
        if isinstance(a, fx.Node):
            if isinstance(self.refs[a], _Moved):  # windows folded into the batch, read: the groups or their map
                self.refs[a] = self.resolved(self.refs[a])
            if self.refs[a] is FOLDED_BATCH:
                self.fail("computes with the batch size times a number of windows other than as a view's first size")
            if self.refs[a] is _UNREAD:
                self.fail("reads the attention weights, which the language's attention does not give")
            if isinstance(self.refs[a], _Listed) and not (a.users and all(_concatenates(u) for u in a.users)):
                self.fail(f"uses its list of inputs '{a.target}' other than by concatenating it along the channels")
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
                if isinstance(out, list) and len(out) == 1:  # flattened by fx, where a constant argument is a list
                    out = out[0]
                if isinstance(out, tuple) and out and isinstance(out[0], ir.Ref) and not ir.refs_in(out[1:]):
                    out = out[0]  # a tensor and constants (its grid size): the constants are the caller's too
                if not isinstance(out, ir.Ref):
                    self.fail("only a forward that returns one tensor can be written yet")
                self.dag.output = out
                if self.gone:
                    passes.drop_nodes(self.dag, self.gone)
                passes.dead_values(self.dag)
                passes.fold_items(self.dag, self.children, self.fail)
                passes.fuse_dense(self.dag, self.fail)
                passes.fuse_tokens(self.dag, self.shape)
                fold_grids(self.dag, self.children)
                passes.unused(self.dag, self.fail)
            elif nd.op == "get_attr":
                if nd.target not in self.own and nd.target not in self.buffers:
                    self.fail(f"reads the tensor '{nd.target}', which is not a parameter of its own")
                self.refs[nd] = _Own(nd.target)
            elif nd.op == "call_module":
                self.call_module(nd, value)
            else:
                self.call(nd, value)
        return self.dag

    def placeholder(self, nd: fx.Node, value):
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) and v.dim() == 4 for v in value):
            # a list of maps (a dense layer's inputs): one input, their concatenation, which the caller makes
            self.dag.inputs.append(nd.target)
            shape = (sum(v.shape[1] for v in value), *value[0].shape[2:])
            self.dag.input_shapes.append(tuple(shape))
            self.refs[nd] = _Listed(ir.Ref(len(self.dag.inputs) - 1))
            return
        if isinstance(value, torch.Tensor):
            self.batch = value.shape[0] if self.batch is None else self.batch
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
        shape = self.folded_shape(args, value) if self.folded else None
        ref = self.add(ir.Node(fn=fn, args=args, child=child, shape=shape or tuple(value.shape[1:])))
        if shape:
            self.folded[ref.index] = (shape[0], value)
        return ref

    def call_module(self, nd: fx.Node, value):
        head, _, item = nd.target.partition(".")
        if item and "." not in item and isinstance(self.children.get(head), ir.Seq):
            pass  # an item of a container, applied on its own: folded into one call of the container (fold_items)
        elif nd.target not in self.children:
            self.fail(f"calls '{nd.target}', a module that is not its own child: only direct children can be "
                      "called yet")
        child = self.children.get(nd.target)
        if isinstance(child, Table):
            self.table(nd, child, value)
            return
        if isinstance(child, ir.Leaf) and child.op == "self_attention":
            self.attention(nd, value)
            return
        args = tuple(self.expanded(a) if isinstance(a, _Expanded) else a for a in map(self.arg, nd.args))
        kwargs = {k: self.arg(v) for k, v in nd.kwargs.items()}
        if not isinstance(child, ir.Leaf) or child.op in _CALLED_WITH_SIZES:
            # a block's constant arguments are in its own trace (its instance's), a partition's in its arguments
            args = tuple(a for a in args if isinstance(a, ir.Ref) or (isinstance(a, list) and ir.refs_in(a)))
            kwargs = {k: v for k, v in kwargs.items() if isinstance(v, ir.Ref) or (isinstance(v, list) and
                                                                                   ir.refs_in(v))}
        if kwargs:
            self.fail(f"calls '{nd.target}' with tensors as keyword arguments")
        folded = self.fold_call(nd.target, args, value)  # a child applied to windows folded into the batch
        if folded is not None:
            self.refs[nd] = folded
            return
        if len(args) == 1 and isinstance(args[0], list) and args[0] and all(isinstance(a, ir.Ref) for a in args[0]):
            args = (list(args[0]),)  # a list of tensors: a dense member's inputs (fuse_dense)
        elif not all(isinstance(a, ir.Ref) for a in args):
            self.fail(f"calls '{nd.target}' with something other than tensors")
        if isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor) and \
                not any(isinstance(v, torch.Tensor) for v in value[1:]):
            ref = self.tensor_node("call", args, value[0], child=nd.target)
            self.refs[nd] = [ref, *(tuple(v) if isinstance(v, torch.Size) else v for v in value[1:])]
            return
        self.refs[nd] = self.tensor_node("call", args, value, child=nd.target)

    def table(self, nd: fx.Node, table: Table, value):
        """A child that builds a fixed table from sizes (``self.pos_embed(B, H, W)``): its forward written on the
        tensor computed last before the call, of which it reads only the batch size."""
        if not self.dag.inputs:
            self.fail(f"calls '{nd.target}', which builds a table from sizes alone, with no tensor to read the batch "
                      "size of")
        x = ir.Ref(len(self.dag.inputs) + len(self.dag.nodes) - 1)
        dag = table.dag(self.shape(x), tuple(self.arg(a) for a in (*nd.args, *nd.kwargs.values())))
        self.children[nd.target] = dag
        self.dag.children = [(n, dag if n == nd.target else c) for n, c in self.dag.children]
        self.refs[nd] = self.tensor_node("call", (x,), value, child=nd.target)

    def call(self, nd: fx.Node, value):
        name = nd.target if nd.op == "call_method" else getattr(nd.target, "__name__", str(nd.target))
        if ((nd.op == "call_method" and name.endswith("_") and not name.startswith("_")) or
                nd.kwargs.get("inplace") is True) and _read_after(nd, self.graph):
            if not _changes_unshared(nd, self.values):
                self.fail(f"changes a tensor in place ('{name}') and reads it again after: it cannot be written yet")
            self.compute(nd, value)
            self.refs[nd.args[0]] = self.refs[nd]  # ``out.mul_(g)``: what reads ``out`` after it reads the product
            return
        self.compute(nd, value)

    def compute(self, nd: fx.Node, value):
        name = nd.target if nd.op == "call_method" else getattr(nd.target, "__name__", str(nd.target))
        if self.folds_batch(nd, name, value):  # windows folded into the batch, or back (folds)
            return
        args = tuple(self.arg(a) for a in nd.args)
        kwargs = {k: self.arg(v) for k, v in nd.kwargs.items()}
        self.refuse_folded(name, (args, list(kwargs.values())))
        if args and isinstance(args[0], Permuted) and name != "getitem":
            if name != "unbind" or (kwargs.get("dim", args[1] if len(args) > 1 else 0) != 0):
                self.fail(f"'{name}' of a permute that moves the batch cannot be written")
            self.refs[nd] = [("permuted", args[0], i, v) for i, v in enumerate(value)]
            return
        if args and isinstance(args[0], _Listed):  # torch.cat(inputs, 1): the concatenation the input already is
            self.refs[nd] = args[0].ref
            return
        read = self.biases(nd, name, args, kwargs, value)  # relative position biases (relpos)
        if read is None:
            return
        args, kwargs = read
        own = [a for a in ir.flat(list(args) + list(kwargs.values())) if isinstance(a, _Own)]
        if own and name in ("layer_norm", "group_norm"):
            self.own_norm(nd, name, args, kwargs, value)
            return
        if own:
            self.learned(nd, name, args, kwargs, own[0], value)
            return
        tensors = ir.refs_in(list(args) + list(kwargs.values()))
        if name == "getitem" and isinstance(args[0], (Permuted, list)) and not isinstance(value, (int, float)):
            self.getitem(nd, args, value)
            return
        if not tensors:  # shape arithmetic: folded
            if _is_batch_read(nd):
                self.refs[nd] = ir.BATCH
            elif any(a is ir.BATCH for a in ir.flat(args)):
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
        if name in _CASTS and nd.op == "call_method" and _same_kind(self.values[nd.args[0]], value):
            self.refs[nd] = args[0]  # a cast to the dtype and device the tensor has: itself
            return
        if name == "expand_as" and _only_broadcast(nd, self.values):
            self.refs[nd] = args[0]  # expanded only to be an operand of arithmetic, which broadcasts it itself
            return
        if name == "getitem":
            self.getitem(nd, args, value)
            return

        if name == "square" and len(args) == 1 and not kwargs:
            self.refs[nd] = self.tensor_node("**", (args[0], 2), value)  # torch.square is pow(x, 2)
            return
        if name in BINARY:
            op = BINARY[name]
            if op == "neg":
                self.refs[nd] = self.tensor_node("neg", args, value)
            else:
                if kwargs.get("alpha", 1) != 1:
                    self.fail(f"'{name}' with alpha cannot be written")
                self.refs[nd] = self.tensor_node(op, args[:2], value)
                a, b = (self.values.get(x) if isinstance(x, fx.Node) else None for x in nd.args[:2])
                if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
                        a.stride() != b.stride():
                    self.dag.nodes[self.refs[nd].index - len(self.dag.inputs)].in_order = True
            return
        if name == "permute":
            rest = args[1:] if not (len(args) == 2 and isinstance(args[1], (tuple, list))) else tuple(args[1])
            dims = [d % len(rest) for d in rest]
            if dims[0] != 0:  # the batch moved: only taking one index of the new first dimension can be written
                self.refs[nd] = Permuted(args[0], dims)
                return
            if dims == [0, 3, 1, 2] and self.tokens_to_map(nd, args[0], value):
                return
            if dims == [0, 3, 1, 2] and self.unnamed(args[0]):  # the layout op would read it as C x H x W
                self.refs[nd] = self.apply_steps(transposes(args[0], dims), value)
                return
        if name in ("chunk", "split", "unbind", "tensor_split"):
            self.refs[nd] = self.pieces(name, args, kwargs, value)
            return
        if name not in FUNCTIONS:
            self.fail(f"calls '{name}', which has no counterpart in the language yet")
        if name in ("reshape", "view") and self.tokens_to_grid(nd, args[0], value):
            return
        steps = map_call(name, args, kwargs, self.shape, self.fail)
        self.refs[nd] = self.apply_steps(steps, value) if steps else args[0]  # no steps: the tensor unchanged

    def apply_steps(self, steps: list, value) -> ir.Ref:
        """The nodes of a call written as one op or several, each after the one before; the last gives ``value``."""
        ref = None
        for i, (op, fields) in enumerate(steps):
            fields = tuple(ref if f is PREVIOUS else f for f in fields)
            if i < len(steps) - 1:  # a step before the last: its shape is worked out by the registry
                ref = self.add(ir.Node(fn=op, args=fields, shape=step_shape(op, fields, self.shape)))
            else:
                if op == "reshape" and isinstance(value, torch.Tensor):  # every size said (a -1 worked out): the
                    fields = (fields[0], tuple(value.shape[1:]))  # widths after it are then known in __init__
                ref = self.tensor_node(op, fields, value)
        return ref

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

_UNREAD = object()  # a value that exists in the traced graph but may not be read (attention's weights: None)


class _Listed:
    """An input that is a list of maps, read only through its concatenation along the channels."""

    def __init__(self, ref: ir.Ref):
        self.ref = ref


def _concatenates(node: fx.Node) -> bool:
    return node.op == "call_function" and getattr(node.target, "__name__", "") in ("cat", "concat") and \
        (node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) == 1)


def lower_graph(cls, path, children, graph, values, where, own=None, sides=(), buffers=None) -> ir.Dag | ir.Leaf:
    lowering = _Lowering(cls, path, children, graph, values, where, own, buffers)
    lowering.dag.sides = list(sides)
    dag = lowering.run()
    return lowering.as_layer() or dag


_CALLED_WITH_SIZES = {"partition", "departition"}  # layers found from a call whose sizes are forward arguments
_CASTS = {"float", "to", "type_as", "type"}  # methods that give a tensor of another dtype or device, or itself


def _same_kind(before, after) -> bool:
    return isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor) and before.dtype == after.dtype \
        and before.device == after.device and before.shape == after.shape


def _only_broadcast(nd: fx.Node, values: dict) -> bool:
    """An expand of a tensor of the same rank whose every use is arithmetic with a tensor of the expanded shape."""
    before, after = values[nd.args[0]], values[nd]
    if not isinstance(before, torch.Tensor) or before.dim() != after.dim() or not nd.users:
        return False
    for user in nd.users:
        name = user.target if user.op == "call_method" else getattr(user.target, "__name__", "")
        if BINARY.get(name) not in ("+", "-", "*", "/") or user.kwargs or \
                not isinstance(values.get(user), torch.Tensor) or values[user].shape != after.shape:
            return False
    return True


def _read_after(nd: fx.Node, graph: fx.Graph) -> bool:
    """Whether the tensor that ``nd`` changes in place is read by a node after it (not through ``nd``'s output)."""
    x = nd.args[0] if nd.args else None
    if not isinstance(x, fx.Node):
        return False
    order = {n: i for i, n in enumerate(graph.nodes)}
    return any(order[u] > order[nd] for u in x.users)


def _changes_unshared(nd: fx.Node, values: dict) -> bool:
    """Whether the tensor that ``nd`` changes in place is a value of this forward's own (no input, no parameter)
    that no other value read after ``nd`` shares memory with: then reading it after is reading ``nd``'s output."""
    x = nd.args[0] if nd.args else None
    if not isinstance(x, fx.Node) or x.op in ("placeholder", "get_attr") or not isinstance(values.get(x), torch.Tensor):
        return False
    order = {n: i for i, n in enumerate(nd.graph.nodes)}
    memory = values[x].untyped_storage().data_ptr()
    for other, v in values.items():
        if other is x or other is nd or not isinstance(v, torch.Tensor) or v.is_meta:
            continue
        if v.untyped_storage().data_ptr() == memory and any(order[u] > order[nd] for u in other.users):
            return False
    return True
