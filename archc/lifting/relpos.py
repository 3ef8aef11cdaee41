"""Relative position biases in a traced forward: a module's own bias table (a parameter) read through its own fixed
index (a buffer timm keeps out of its state_dict), ``self.table[self.index.view(-1)]`` or ``self.table[self.index]``,
as the language's ``learned`` table and ``lookup(..., persistent = false)`` over its rows, with the module's keys.
The index's formula (``offset + steps[0] * i_0 + ...`` over a grid) is read back from its values; a table no such
formula gives is refused. The bias has no batch in the module; here it is a tensor for every sample
(``_Unbatched``), its views and permutes moved one dimension on, until ``unsqueeze(0)`` gives it the batch of
one it is broadcast from, or arithmetic broadcasts it as it is. A mixin of ``lowering._Lowering``, which gives
``own``, ``refs``, ``shape``, ``add``, ``tensor_node``, ``apply_steps``, ``learned_child``, ``fail``, ``children``
and ``dag``."""

from __future__ import annotations

import torch

from ..ops.indexing import index_table
from . import ir
from .functions import BINARY, transposes
from .own import _Own

HELD = "_held"  # the op of a child that holds a bias table and its index and is never called (held_child)


def held_child(m, path: str) -> ir.Leaf | None:
    """A module never called that holds only parameters and indices kept out of the state_dict (timm's
    ``RelPosBias``, whose parent reads ``get_bias()``), held until its parent's trace reads it; else None."""
    buffers = list(m.named_buffers(recurse=False))
    if any(True for _ in m.children()) or not buffers or \
            any(n not in m._non_persistent_buffers_set or b.dtype != torch.int64 for n, b in buffers):
        return None
    return ir.Leaf(op=HELD, args={"module": m}, stateful=True, path=path)


def held_tensors(children: list) -> tuple[dict, dict]:
    """The parameters and the indices of the held children, by their dotted names (``rel_pos.relative_...``)."""
    params, indices = {}, {}
    for name, part in children:
        if isinstance(part, ir.Leaf) and part.op == HELD:
            m = part.args["module"]
            params.update({f"{name}.{k}": p.detach() for k, p in m.named_parameters(recurse=False)})
            indices.update({f"{name}.{k}": b for k, b in m.named_buffers(recurse=False)})
    return params, indices


def learned_leaf(p: torch.Tensor, path: str) -> ir.Leaf:
    """A parameter as the language's ``learned`` tensor of its shape (``init``, where it is one number, that)."""
    flat = p.flatten()
    init = flat[0].item() if flat.numel() and not flat.is_meta and bool((flat == flat[0]).all()) else 0.0
    return ir.Leaf(op="learned", args={"shape": tuple(p.shape), "init": init}, stateful=True, path=path)


class _Unbatched:
    """A tensor the module computes without a batch (``shape``, all of it), held for every sample in ``ref``."""

    def __init__(self, ref: ir.Ref, shape: tuple[int, ...]):
        self.ref, self.shape = ref, tuple(shape)


def index_formula(index: torch.Tensor) -> dict | None:
    """lookup's ``sizes``, ``steps``, ``offset`` (and ``absolute``) that give the table: a linear one, or LeViT's
    distances; None where neither does."""
    linear = _linear(index)
    if linear is not None:
        return dict(zip(("sizes", "steps", "offset"), linear))
    return _distances(index)


def _distances(index: torch.Tensor) -> dict | None:
    """LeViT's table over a q_0 x q_1 grid of queries (every ``stride``-th position) and an r_0 x r_1 grid of keys:
    ``r_1 |stride i_0 - j_0| + |stride i_1 - j_1|``."""
    if index.dim() != 2:
        return None
    nq, nk = index.shape
    for r0 in (d for d in range(1, nk + 1) if nk % d == 0):
        r1 = nk // r0
        for stride in range(1, 5):
            q0, q1 = -(-r0 // stride), -(-r1 // stride)
            if q0 * q1 != nq:
                continue
            args = {"sizes": (q0, q1, r0, r1), "steps": (0, 0, 0, 0), "offset": 0,
                    "absolute": ((stride * r1, 0, -r1, 0), (0, stride, 0, -1))}
            if torch.equal(index_table(**args).view(index.shape), index):
                return args
    return None


def _linear(index: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...], int] | None:
    """``(sizes, steps, offset)`` such that the flat table is ``offset + sum(steps[k] * i_k)`` over the grid of
    ``sizes``, row by row, the innermost size the longest run that steps evenly; None where there is none."""
    flat = index.flatten().to(torch.int64)
    sizes: list[int] = []
    steps: list[int] = []
    while flat.numel() > 1:
        length = flat.numel()
        for d in sorted((d for d in range(2, length + 1) if length % d == 0), reverse=True):
            rows = flat.view(-1, d)
            step = int(rows[0, 1] - rows[0, 0])
            if bool((rows - rows[:, :1] == torch.arange(d) * step).all()):
                break
        else:
            return None
        sizes.insert(0, d)
        steps.insert(0, step)
        flat = rows[:, 0]
    if not sizes:
        return None
    return tuple(sizes), tuple(steps), int(flat[0])


class RelativePositions:
    def own_index(self, nd, name, args, kwargs, value) -> bool:
        """A buffer of the module's own viewed flat, or a parameter's rows (or columns) picked by it; False where
        the call is none of these."""
        buffers = [a for a in ir.flat(list(args)) if isinstance(a, _Own) and a.name in self.buffers]
        if not buffers:
            return False
        index = buffers[0]
        if name in ("view", "reshape", "flatten") and args[0] is index and value.dim() == 1:
            self.refs[nd] = index  # the index flat, as lookup reads it anyway
            return True
        if name != "getitem" or not isinstance(args[0], _Own) or args[0].name in self.buffers:
            self.fail(f"uses its buffer '{index.name}' in '{name}': only a parameter's rows picked by it (a relative "
                      "position bias) can be written yet")
        table, key = args[0], args[1]
        dim = 0 if key is index else 1 if key == (slice(None), index) else None
        if dim is None:
            self.fail(f"picks entries of '{table.name}' by its buffer '{index.name}' otherwise than along its first "
                      "or second dimension")
        self.refs[nd] = self.bias_lookup(table, index, dim, value)
        return True

    def bias_lookup(self, table: _Own, index: _Own, dim: int, value) -> _Unbatched:
        """The table as a ``learned`` child on the tensor computed last, its entries along ``dim`` picked by a
        ``lookup`` child of the index's name (no state_dict key), the result reshaped as the module's."""
        if not self.dag.inputs:
            self.fail(f"reads its table '{table.name}' with no tensor to read the batch size of")
        buf = self.buffers[index.name]
        if buf.is_meta:  # (a model too large to run, made without values)
            self.fail(f"its index '{index.name}' is on the meta device: its formula cannot be read from its values")
        formula = index_formula(buf)
        if formula is None or buf.dtype != torch.int64:
            self.fail(f"its index '{index.name}' is no table of offset + steps[0] * i_0 + ... over a grid (nor "
                      "LeViT's distances): it cannot be written yet")
        p = self.own[table.name]
        x = ir.Ref(len(self.dag.inputs) + len(self.dag.nodes) - 1)
        args = {"dim": dim + 1, "sizes": formula["sizes"], "steps": formula["steps"], "offset": formula["offset"],
                "shape": tuple(buf.shape) if buf.dim() > 1 else None, "persistent": False}  # (the op's order)
        if "absolute" in formula:
            args["absolute"] = formula["absolute"]
        picked = list(p.shape)
        picked[dim] = buf.numel()
        head, dot, _ = table.name.rpartition(".")
        if dot:  # a child's table, read through its own method (timm's rel_pos.get_bias()): that child written so
            ref = self.add(ir.Node(fn="call", args=(x,), child=head, shape=tuple(picked)))
            self.held_bias(head, table.name, index.name, self.shape(x), args, tuple(picked))
        else:
            ref = self.learned_child(table, "learned", x, tuple(p.shape))
            leaf = ir.Leaf(op="lookup", args=args, stateful=True, path=f"{self.dag.path}.{index.name}".lstrip("."))
            at = [n for n, _ in self.dag.children].index(table.name) + 1  # declared after its table
            self.dag.children.insert(at, (index.name, leaf))
            self.children[index.name] = leaf
            ref = self.add(ir.Node(fn="call", args=(ref,), child=index.name, shape=tuple(picked)))
        if tuple(picked) != tuple(value.shape):  # a 2-d index: its entries' shape, as the module has them
            ref = self.add(ir.Node(fn="reshape", args=(ref, tuple(value.shape)), shape=tuple(value.shape)))
        return _Unbatched(ref, tuple(value.shape))

    def held_bias(self, head: str, table: str, index: str, x_shape: tuple, args: dict, picked: tuple) -> None:
        """The child ``head``, a bias its parent reads through a method and never calls (``held``), as a block that
        gives its table's entries picked by its index, on a tensor of which it reads only the batch size."""
        held = self.children.get(head)
        if not (isinstance(held, ir.Leaf) and held.op == HELD) or not index.startswith(head + "."):
            self.fail(f"reads the bias table '{table}' of '{head}' otherwise than through its own index")
        path = held.path
        names = table[len(head) + 1:], index[len(head) + 1:]
        dag = ir.Dag(cls=type(held.args["module"]).__name__, path=path, children=[
            (names[0], learned_leaf(self.own[table], f"{path}.{names[0]}")),
            (names[1], ir.Leaf(op="lookup", args=args, stateful=True, path=f"{path}.{names[1]}"))],
            inputs=["x"], input_shapes=[tuple(x_shape)])
        shape = tuple(self.own[table].shape)
        dag.nodes = [ir.Node(fn="call", args=(ir.Ref(0),), child=names[0], shape=shape),
                     ir.Node(fn="call", args=(ir.Ref(1),), child=names[1], shape=picked)]
        dag.output = ir.Ref(2)
        self.children[head] = dag
        self.dag.children = [(n, dag if n == head else c) for n, c in self.dag.children]

    def unbatched(self, nd, name, args, kwargs, value) -> bool:
        """An op on a bias with no batch; False where it is one that reads it as it is (arithmetic with a tensor
        of as many dimensions a sample, which broadcasts it the same)."""
        u = args[0] if args else None
        if not isinstance(u, _Unbatched):
            for a in ir.flat(list(args) + list(kwargs.values())):
                if isinstance(a, _Unbatched) and not (name in BINARY or name == "scaled_dot_product_attention"):
                    self.fail(f"uses a relative position bias in '{name}', which cannot be written yet")
            return False
        if name in ("contiguous", "clone") and nd.op == "call_method":
            self.refs[nd] = u
        elif name == "unsqueeze" and (args[1:] or (kwargs.get("dim"),))[0] == 0:
            self.refs[nd] = u.ref  # a batch of one, broadcast: the same as the bias for every sample
        elif name in ("view", "reshape"):
            shape = tuple(value.shape)
            self.refs[nd] = _Unbatched(self.add(ir.Node(fn="reshape", args=(u.ref, shape), shape=shape)), shape)
        elif name == "permute":
            dims = args[1:] if not (len(args) == 2 and isinstance(args[1], (tuple, list))) else tuple(args[1])
            dims = [0] + [d % len(u.shape) + 1 for d in dims]
            self.refs[nd] = _Unbatched(self.apply_steps(transposes(u.ref, dims), value.unsqueeze(0)),
                                       tuple(value.shape))
        elif name in BINARY and not kwargs and len(args) == 2 and not isinstance(args[1], _Unbatched):
            return False  # (the bias first, a number or a tensor second: the caller unwraps it)
        else:
            self.fail(f"computes '{name}' on a relative position bias, which cannot be written yet")
        return True

    def biases(self, nd, name, args, kwargs, value):
        """Where the call reads a bias with no batch or an index buffer: None where it is written here, else its
        arguments, each bias as its tensor for every sample."""
        if not any(isinstance(a, _Unbatched) for a in ir.flat(list(args) + list(kwargs.values()))):
            return None if self.own_index(nd, name, args, kwargs, value) else (args, kwargs)
        if self.unbatched(nd, name, args, kwargs, value):
            return None
        ranks = [len(self.shape(r)) for r in ir.refs_in(list(args) + list(kwargs.values()))]
        rank = ranks[0] if ranks else len(value.shape) - 1
        return tuple(self.batched(a, rank) for a in args), {k: self.batched(v, rank) for k, v in kwargs.items()}

    def batched(self, a, per_sample: int):
        """The bias as the tensor held for every sample, where it broadcasts against tensors of ``per_sample``
        dimensions a sample as the module's broadcasts against them."""
        if isinstance(a, _Unbatched):
            if len(a.shape) != per_sample:
                self.fail("adds a relative position bias to a tensor of another rank: it cannot be written yet")
            return a.ref
        return a
