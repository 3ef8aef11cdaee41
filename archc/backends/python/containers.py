"""Dotted names (``convs.{i} = conv(...)``, ``heads.cls = linear(...)``, ``stages.{s}.blocks.{i} = Block(...)``):
the containers they build in ``__init__`` and how ``forward`` reads their members.

A dotted name is a path: a container (an attribute), then one key for each level of containers below it. A
container is an ``nn.ModuleList`` where appending is sure to give the spec's keys for any arguments, and an
``nn.ModuleDict`` otherwise, set and read by its string keys (a list whose keys follow from a factory's arguments,
``for i in order``, keeps them right that way). Either way its state_dict keys are the spec's (``convs.0.weight``).

Where each container is made: the outermost (``convs``) where the class first names it, before the statement of
the body that holds its first member; one in a container (``stages.{s}``, ``stages.{s}.blocks``), in the body of
the innermost loop whose variable its keys read (the class's body where they read none), before the statement of
that body that holds its first member: once an iteration of that loop.

It is a list where its members are made by one statement of a loop ``for i in range(n)`` and named ``.{i}``:
between where the container is made and where its member is made (the member's statement, or where that member,
itself a container, is made) stands that one loop and no condition, every path through it writes the member the
same way, and every elaboration gave the keys 0, 1, 2, ... in order as whole numbers.
"""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.exprfold import free_names
from ...sema.scope import path_segments
from . import ir
from .irbuild import interpolated
from .lower import lower

LIST, DICT = "list", "dict"
SELF = ir.Name("self")


def split(target: n.Target) -> tuple[str, n.Target]:
    """A dotted name's container (its text up to the first '.', which the elaborator made sure is written out)
    and the rest of its path, as a target of its own."""
    head, *rest = target.parts
    assert isinstance(head, str)
    container, key = head.split(".", 1)
    return container, n.Target(([key] if key else []) + rest, target.span)


def node(target: n.Target, depth: int) -> str | tuple:
    """The container at ``depth`` of a dotted name's path as written: its name at 0 (``convs``), else the name and
    the keys down to it, each key's expressions in their IR form (``stages.{s}``), the same for every statement that
    writes it alike."""
    segments = path_segments(target)
    if depth == 0:
        return segments[0][0]
    return (segments[0][0], *(tuple(p if isinstance(p, str) else lower(p, ir.Name) for p in seg)
                              for seg in segments[1:depth + 1]))


class _Found:
    """The dotted names of a class body, with the statements around each."""

    def __init__(self) -> None:
        self.paths: list[tuple[n.Target, tuple[n.Node, ...]]] = []  # each, and the nodes from the body down to it

    def visit(self, node_: n.Node, path: tuple[n.Node, ...]) -> None:
        if isinstance(node_, n.Tap):  # its name is a feature map's, not a module's
            return
        if isinstance(node_, n.Target) and node_.dotted:
            self.paths.append((node_, path))
        for child in node_.children():
            self.visit(child, path + (node_,))


def _home(target: n.Target, depth: int, path: tuple[n.Node, ...]) -> int:
    """Where the container at ``depth`` (1 or more) is made: the position in ``path`` of the innermost loop whose
    variable its keys read (or the innermost body with a let they read), -1 for the class's body."""
    read = set()
    for seg in path_segments(target)[1:depth + 1]:
        for p in seg:
            if not isinstance(p, str):
                read |= free_names(p)
    homes = [i for i, x in enumerate(path) if _binds(x) & read]
    return homes[-1] if homes else -1


def _binds(x: n.Node) -> set[str]:
    """The names a node binds for the statements of its body: a loop's variables, the lets of its body."""
    names = set(n.pattern_names(x.var)) if isinstance(x, n.For) else set()
    for body in (getattr(x, "body", None), getattr(x, "orelse", None)):
        if isinstance(body, list):
            names |= {name for s in body if isinstance(s, n.Let) for name in [s.name, *s.more]}
    return names


def _positional(target: n.Target, depth: int, path: tuple[n.Node, ...], start: int, end: int) -> bool:
    """Whether the key at ``depth`` + 1 is ``{i}`` of the one loop ``for i in range(n)`` among ``path[start + 1:end]``,
    with no condition there."""
    between = path[start + 1:end]
    loops = [x for x in between if isinstance(x, n.For)]
    if any(isinstance(x, n.If) or getattr(x, "cond", None) is not None for x in between):
        return False
    key = path_segments(target)[depth + 1]
    if len(loops) != 1 or len(key) != 1 or not isinstance(key[0], n.Var):
        return False
    loop, it = loops[0], loops[0].iterable
    return (loop.var == key[0].name and isinstance(it, n.Call) and isinstance(it.func, n.Var)
            and it.func.name == "range" and len(it.args) == 1 and not it.kwargs)


class Containers(dict):
    """Each container a class body names (``node``'s key) -> LIST or DICT; ``made``: for each statement (by id),
    the containers in containers made just before it, as (a path through each, its depth)."""

    made: dict[int, list[tuple[n.Target, int]]]


def container_kinds(body: list[n.Stmt], info) -> Containers:
    """Each container a class body names: LIST or DICT (see the module's docstring). ``info``: the records of
    every elaboration (``StmtInfo``), where the elaborator noted each new key's position, text and type."""
    found = _Found()
    for stmt in body:
        found.visit(stmt, ())
    members: dict = {}  # container -> (its member as written, whether positional, the elaborations' records)
    homes: dict = {}  # container in a container -> (the loop it is made in, None for the body; the first path)
    kinds = Containers()
    kinds.made = {}
    for target, full in found.paths:  # full: the nodes from the body's statement down to the target's statement
        levels = len(path_segments(target)) - 1
        starts = [-1] + [_home(target, d, full) for d in range(1, levels)]
        for depth in range(levels):
            if depth:  # made in its home's body, before the statement there that holds this path
                home = starts[depth]
                loop = full[home] if home >= 0 else None
                seen = homes.setdefault(node(target, depth), (loop, target))
                if seen[0] is not loop:
                    raise SpecError(f"'{target.text}' makes a container that another loop makes too", target.span,
                                    notes=[("made there", seen[1].span)],
                                    hint="name a container in a container in one loop, the loop over its keys")
                if seen[1] is target:
                    kinds.made.setdefault(id(full[home + 1]), []).append((target, depth))
            end = len(full) if depth == levels - 1 else starts[depth + 1] + 1
            member = node(target, depth + 1) if depth < levels - 1 else target
            positional = _positional(target, depth, full, starts[depth], end)
            records = info.get(("member", target, depth))
            members.setdefault(node(target, depth), []).append((member, positional, records))
    for container, listed in members.items():
        distinct = {id(m) if isinstance(m, n.Target) else m for m, _, _ in listed}
        records = [r for _, _, rs in listed for r in rs]
        kinds[container] = LIST if len(distinct) == 1 and all(p for _, p, _ in listed) and records and all(
            is_int and key == str(position) for position, key, is_int in records) else DICT
    return kinds


def first_named(stmt: n.Stmt) -> list[str]:
    """The outermost containers a top-level statement of a body names, in order."""
    found = _Found()
    found.visit(stmt, ())
    return list(dict.fromkeys(split(target)[0] for target, _ in found.paths))


def make(container: str, kind: str) -> ir.Node:
    """``self.convs = nn.ModuleList()``."""
    return ir.Assign(ir.Attr(SELF, container), _new(kind))


def _new(kind: str) -> ir.Node:
    return ir.call(ir.attr("nn.ModuleList" if kind == LIST else "nn.ModuleDict"))


def make_inner(target: n.Target, depth: int, kinds: dict, lower_part) -> ir.Node:
    """``self.stages.append(nn.ModuleDict())``, ``self.stages[s]["blocks"] = nn.ModuleList()``: the container at
    ``depth`` of the path ``target`` made in the one above it."""
    return _put(target, depth, kinds, _new(kinds[node(target, depth)]), lower_part)


def put(target: n.Target, kinds: dict, value: ir.Node, lower_part) -> ir.Node:
    """``self.convs.append(value)`` or ``self.heads["cls"] = value``, through the containers above it;
    ``lower_part`` gives an interpolation's IR."""
    return _put(target, len(path_segments(target)) - 1, kinds, value, lower_part)


def _put(target: n.Target, depth: int, kinds: dict, value: ir.Node, lower_part) -> ir.Node:
    holder = _holder(SELF, target, depth - 1, kinds, lower_part)
    if kinds[node(target, depth - 1)] == LIST:
        return ir.Expr(ir.call(ir.Attr(holder, "append"), value))
    return ir.Assign(_key(holder, target, depth, DICT, lower_part), value)


def get(owner: ir.Node, target: n.Target, kinds: dict, lower_part) -> ir.Node:
    """``self.convs[i]`` (the key's expression indexes a list) or ``self.heads["cls"]``, or
    ``self.stages[s]["blocks"][i]``."""
    depth = len(path_segments(target)) - 1
    return _key(_holder(owner, target, depth - 1, kinds, lower_part), target, depth,
                kinds[node(target, depth - 1)], lower_part)


def _holder(owner: ir.Node, target: n.Target, depth: int, kinds: dict, lower_part) -> ir.Node:
    """The container at ``depth`` of the path."""
    out = ir.Attr(owner, path_segments(target)[0][0])
    for d in range(1, depth + 1):
        out = _key(out, target, d, kinds[node(target, d - 1)], lower_part)
    return out


def _key(holder: ir.Node, target: n.Target, depth: int, kind: str, lower_part) -> ir.Node:
    """``holder[i]`` or ``holder["cls"]``: the key at ``depth`` of the path."""
    key = path_segments(target)[depth]
    if kind == LIST:
        return ir.Index(holder, ir.Const(int(key[0])) if isinstance(key[0], str) else lower_part(key[0]))
    return ir.Index(holder, interpolated(n.Target(key, target.span), lower_part))
