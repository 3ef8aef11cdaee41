"""From module instances to the spec's blocks: one block per module class (per shape of its forward, where
instances of one class compute different things), with a parameter for each value that differs between the
instances and the values that stay the same written out.

Every instance is turned into a *skeleton* (what it computes, constants left out) and the list of its
constants, its *slots*, in one order, and into a *template*: the instance with each constant replaced by its
``Slot``. Instances of a class with equal skeletons are one block; a slot whose value is the same in all of
them is a literal, the others are parameters, one per distinct list of values (a list that is another's times
a whole number is written as that multiple, ``4 * planes``). A block's call in its parent passes its instance's
parameter values, which are slots of the parent in turn: classes are worked out children first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..ops.base import REGISTRY
from . import ir
from .errors import LiftError
from .names import Names
from .optional import merge_groups


@dataclass(frozen=True)
class Slot:
    index: int


@dataclass(frozen=True)
class Param:
    name: str
    times: int = 1


@dataclass
class Call:
    """A block applied: its definition and one slot per parameter."""

    block: BlockDef
    args: list


class _Wild:
    """A slot of a child an instance lacks (a projection shortcut it does not have): any value does."""

    def __repr__(self) -> str:
        return "WILD"


WILD = _Wild()


@dataclass
class BlockDef:
    name: str
    kind: str  # "dag" or "seq"
    template: object  # the first instance with Slots for constants
    params: list[str] = field(default_factory=list)
    exprs: list = field(default_factory=list)  # per slot: a literal value or a Param
    values: dict[int, list] = field(default_factory=dict)  # id(instance) -> its parameters' values
    conditions: dict[str, Slot] = field(default_factory=dict)  # children that only some instances have: their flag

    def expr(self, s):
        return self.exprs[s.index] if isinstance(s, Slot) else s


class _Walk:
    """One instance's skeleton, slots and template."""

    def __init__(self, defs: dict[int, BlockDef]):
        self.defs = defs
        self.values: list = []
        self.sites: list[list[str]] = []  # per slot: candidate parameter names
        self.wild = False  # walking a child this instance lacks: its slots hold WILD

    def slot(self, value, *names: str) -> Slot:
        self.values.append(WILD if self.wild else value)
        self.sites.append([n for n in names if n])
        return Slot(len(self.values) - 1)

    def child(self, name: str, part: ir.Part):
        if isinstance(part, ir.Leaf) and _as_value(part):  # an activation: the op itself may be a parameter
            op = self.slot(OpValue(part.op), "activation", f"{name}_activation")
            return ("opvalue", part.stateful), ir.Leaf(op, {}, part.stateful, part.path)
        if isinstance(part, ir.Leaf):
            fields = list(part.args)
            args = {f: self.slot(v, *_site(name, f)) for f, v in part.args.items()}
            then = [self.child("", t) for t in part.then]
            before = [self.child("", t) for t in part.before]
            return (("leaf", part.op, part.stateful, tuple(fields), tuple(sk for sk, _ in then),
                     tuple(sk for sk, _ in before)),
                    ir.Leaf(part.op, args, part.stateful, part.path, [t for _, t in then], [t for _, t in before]))
        if isinstance(part, ir.Seq) and part.cls is None:
            sk, kids = [], []
            for n, c in part.children:
                s, t = self.child(n, c)
                sk.append((n, s))
                kids.append((n, t))
            return ("seq", tuple(sk)), ir.Seq(None, part.path, kids)
        d = self.defs[id(part)]
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", re.sub(r"\d+$", "", d.name)).lower()
        args = [self.slot(v, *_site(name, p), f"{snake}_{p}") for p, v in zip(d.params, d.values[id(part)])]
        return ("block", id(d)), Call(d, args)

    def body(self, part: ir.Dag | ir.Seq, like: ir.Dag | None = None):
        """``like``: an instance of the same class with more children, whose slots this walk keeps (as WILD where
        this instance lacks the child), so that the two line up."""
        if isinstance(part, ir.Seq):
            sk, t = self.child("", ir.Seq(None, part.path, part.children))
            return ("seqblock", sk), ir.Seq(part.cls, part.path, t.children)
        kids, sk_kids = [], []
        own = dict(part.children)
        for n, c in (like or part).children:
            self.wild = n not in own
            s, t = self.child(n, own.get(n, c))
            self.wild = False
            sk_kids.append((n, s))
            kids.append((n, t))
        sizes = []
        if any(nd.fn in _SIZING for nd in part.nodes):  # __init__ cannot follow widths through these: say them
            for shape in part.input_shapes:
                names = _DIMS.get(len(shape), [f"size{i}" for i in range(len(shape))])
                sizes.append(tuple(self.slot(v, nm) for v, nm in zip(shape, names)))
        nodes, sk_nodes = [], []
        for nd in part.nodes:
            args, sk = self.args(nd.args, nd.fn)
            nodes.append(ir.Node(nd.fn, args, nd.child, nd.shape, nd.name, nd.in_order))
            sk_nodes.append((nd.fn, nd.child, sk))
        dag = ir.Dag(part.cls, part.path, kids, list(part.inputs), list(part.input_shapes), nodes, part.output, sizes,
                     part.dense, list(part.sides))
        # the inputs' ranks: one block's named inputs have one layout each, so a class applied to maps and to
        # tokens (MetaFormer's StarReLU) is two blocks
        skeleton = ("dag", tuple(part.inputs), tuple(sk_kids), tuple(sk_nodes), part.output.index, len(sizes),
                    part.dense, tuple(part.sides), tuple(len(s) for s in part.input_shapes))
        return skeleton, dag

    def args(self, args: tuple, fn: str):
        fields = list(REGISTRY[fn].args.model_fields) if fn in REGISTRY else []
        n_tensors = sum(1 for a in args if isinstance(a, (ir.Ref, list)))
        out, sk = [], []
        for i, a in enumerate(args):
            if isinstance(a, ir.Ref):
                out.append(a)
                sk.append(("ref", a.index))
            elif isinstance(a, list):
                out.append(a)
                sk.append(("refs", tuple(r.index for r in a)))
            else:
                k = i - n_tensors
                site = fields[k] if 0 <= k < len(fields) else ""
                names = _site(fn, site) if site else ()
                if isinstance(a, tuple) and a and all(isinstance(v, int) and not isinstance(v, bool) for v in a):
                    out.append(tuple(self.slot(v, *names) for v in a))  # sizes one by one: each may be a parameter
                    sk.append(("#",) * len(a))
                else:
                    out.append(self.slot(a, *names))
                    sk.append("#")
        return tuple(out), tuple(sk)


class OpValue:
    """A parameter-free op as a value (``relu``): what an activation parameter holds."""

    def __init__(self, op: str):
        self.op = op

    def __repr__(self) -> str:
        return self.op

    def __eq__(self, other) -> bool:
        return isinstance(other, OpValue) and other.op == self.op

    def __hash__(self) -> int:
        return hash(self.op)


def _as_value(leaf: ir.Leaf) -> bool:
    """An activation written by its name alone (its arguments the defaults): one that a parameter may hold."""
    kind = REGISTRY[leaf.op]
    if not kind.value or leaf.stateful or leaf.then or leaf.before or leaf.op in ("identity", "dropout"):
        return False
    return all(_key(v) == _key(info.default) for v, info in zip(leaf.args.values(), kind.args.model_fields.values()))


_SIZING = {"reshape", "unflatten", "transpose", "flatten_dims", "select", "narrow", "permute"}
_DIMS = {1: ["dim"], 2: ["seq_len", "dim"], 3: ["in_c", "in_h", "in_w"]}
_READABLE = {"out_channels": "channels", "out_features": "features", "kernel_size": "kernel", "num_groups": "groups"}


def _site(owner: str, name: str) -> tuple[str, ...]:
    """A parameter's candidate names: the argument's (shortened), then with its owner's name before it."""
    short = _READABLE.get(name, name)
    return (short, f"{owner}_{short}") if owner and owner.isidentifier() else (short,)


def _key(v):
    """A value's identity for comparison: 1 and True and 1.0 differ."""
    return (type(v).__name__, repr(v))


def make_defs(instances: list[ir.Dag | ir.Seq], names: Names) -> dict[int, BlockDef]:
    """Block definitions for the instances, listed children first; id(instance) -> its BlockDef."""
    defs: dict[int, BlockDef] = {}
    by_class: dict[str, list] = {}
    for inst in instances:
        by_class.setdefault(inst.cls, []).append(inst)
    for cls in _children_first(instances):
        inst = by_class[cls][0]
        groups: dict[object, list] = {}
        for member in by_class[inst.cls]:
            walk = _Walk(defs)
            skeleton, template = walk.body(member)
            groups.setdefault(skeleton, []).append((member, walk, template))
        for members, conditions in merge_groups(list(groups.values()), lambda: _Walk(defs)):
            name = names.block(inst.cls)
            d = _abstract(name, members, names)
            d.conditions = conditions
            for member, _, _ in members:
                defs[id(member)] = d
    return defs


def _uses(part, out: set) -> set:
    """The classes of the blocks a part applies (through plain sequences)."""
    for _, c in getattr(part, "children", []):
        if isinstance(c, ir.Dag) or (isinstance(c, ir.Seq) and c.cls is not None):
            out.add(c.cls)
        elif isinstance(c, ir.Seq):
            _uses(c, out)
    return out


def _children_first(instances) -> list[str]:
    """The classes in an order where every class comes after those its instances apply."""
    deps: dict[str, set] = {}
    for inst in instances:
        deps.setdefault(inst.cls, set()).update(_uses(inst, set()))
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(cls):
        if state.get(cls) == 2:
            return
        if state.get(cls) == 1:
            raise LiftError(f"the module class {cls} contains itself: a recursive structure cannot be written yet")
        state[cls] = 1
        for d in sorted(deps.get(cls, ()), key=list(deps).index):
            visit(d)
        state[cls] = 2
        order.append(cls)

    for cls in deps:
        visit(cls)
    return order


def _abstract(name: str, members: list, names: Names) -> BlockDef:
    first = members[0]
    kind = "seq" if isinstance(first[0], ir.Seq) else "dag"
    d = BlockDef(name=name, kind=kind, template=first[2])
    for i, nd in enumerate(getattr(first[2], "nodes", [])):  # an operator whose order sets the layout in one
        nd.in_order = any(i < len(m[2].nodes) and m[2].nodes[i].in_order for m in members)  # instance is
        # written in that order in all
    taken = names.taken_in(first[2])
    vectors: dict[tuple, Param] = {}
    per_param: list[list] = []
    for s in range(len(first[1].values)):
        column = [walk.values[s] for _, walk, _ in members]
        known = [v for v in column if v is not WILD]
        if len({_key(v) for v in known}) == 1:
            d.exprs.append(known[0])
            continue
        key = tuple(_key(v) for v in column)
        if key not in vectors:
            vectors[key] = _agreeing(column, per_param, d.params) or _multiple(column, per_param, d.params) or \
                _new_param(first[1].sites[s], d, taken, [known[0] if v is WILD else v for v in column], per_param)
        d.exprs.append(vectors[key])
    for i, (member, _, _) in enumerate(members):
        d.values[id(member)] = [col[i] for col in per_param]
    return d


def _agreeing(column, per_param, params) -> Param | None:
    """A parameter whose values are the column's wherever the column has one (WILD agrees with anything)."""
    for p, values in zip(params, per_param):
        if all(c is WILD or _key(c) == _key(v) for c, v in zip(column, values)):
            return Param(p)
    return None


def _multiple(column, per_param, params) -> Param | None:
    """The column as a whole multiple of a parameter's values, where it is one."""
    def whole(v):
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if not all(whole(v) or v is WILD for v in column):
        return None
    for p, values in zip(params, per_param):
        pairs = [(c, v) for c, v in zip(column, values) if c is not WILD]
        if pairs and all(whole(v) and c % v == 0 for c, v in pairs):
            k = pairs[0][0] // pairs[0][1]
            if k > 1 and all(c == k * v for c, v in pairs):
                return Param(p, k)
    return None


def _new_param(sites, d: BlockDef, taken: set[str], column, per_param) -> Param:
    for candidate in sites + [f"p{len(d.params) + 1}"]:
        if candidate.isidentifier() and candidate not in taken and candidate not in d.params:
            break
    d.params.append(candidate)
    per_param.append(column)
    return Param(candidate)
