"""Dotted names (``convs.{i} = conv(...)``, ``heads.cls = linear(...)``): the containers they build in ``__init__``
and how ``forward`` reads their members.

A container is an ``nn.ModuleList`` where appending is sure to give the spec's keys for any arguments: one
statement names its members, ``NAME.{i}``, in a loop ``for i in range(n)`` that no other loop holds, under no
condition, and every elaboration gave the keys 0, 1, 2, ... in order as whole numbers. ``__init__`` appends to
it, ``forward`` indexes it with the loop's variable (``self.convs[i]``). Any other is an ``nn.ModuleDict``,
set and read by its string keys (a list whose keys follow from a factory's arguments, ``for i in order``, keeps
them right that way). Either way its state_dict keys are the spec's
(``convs.0.weight``). The container is made where the class first names it: before the statement of the body
(a loop, say) that holds its first member.
"""

from __future__ import annotations

from ...lang import nodes as n
from . import ir
from .irbuild import interpolated

LIST, DICT = "list", "dict"


def split(target: n.Target) -> tuple[str, n.Target]:
    """A dotted name's container (its text up to the first '.', which the elaborator made sure is written out)
    and its key, as a target of its own."""
    head, *rest = target.parts
    assert isinstance(head, str)
    container, key = head.split(".", 1)
    return container, n.Target(([key] if key else []) + rest, target.span)


def container_kinds(body: list[n.Stmt], info) -> dict[str, str]:
    """Each container a class body names: LIST or DICT (see the module's docstring). ``info``: the records of
    every elaboration (``StmtInfo``), where the elaborator noted each member's position, key and key type."""
    found: dict[str, list[tuple[n.Target, bool]]] = {}  # container -> its members, and whether each is positional

    def visit(node: n.Node, conditional: bool, loops: tuple[n.For, ...]) -> None:
        conditional = conditional or isinstance(node, n.If) or getattr(node, "cond", None) is not None
        if isinstance(node, n.For):
            loops += (node,)
        if isinstance(node, n.Target) and node.dotted:
            found.setdefault(split(node)[0], []).append((node, not conditional and _positional(node, loops)))
        for child in node.children():
            visit(child, conditional, loops)

    for stmt in body:
        visit(stmt, False, ())
    kinds = {}
    for container, members in found.items():
        seen = info.get(("member", members[0][0]))
        listed = len(members) == 1 and members[0][1] and seen and all(
            is_int and key == str(position) for position, key, is_int in seen)
        kinds[container] = LIST if listed else DICT
    return kinds


def _positional(target: n.Target, loops: tuple[n.For, ...]) -> bool:
    """``NAME.{i}`` in ``for i in range(n)``, the one loop around it: its key is its position."""
    key = split(target)[1].parts
    if len(loops) != 1 or len(key) != 1 or not isinstance(key[0], n.Var):
        return False
    loop, it = loops[0], loops[0].iterable
    return (loop.var == key[0].name and isinstance(it, n.Call) and isinstance(it.func, n.Var)
            and it.func.name == "range" and len(it.args) == 1 and not it.kwargs)


def first_named(stmt: n.Stmt) -> list[str]:
    """The containers a top-level statement of a body names, in order."""
    out: list[str] = []
    for node in stmt.walk():
        if isinstance(node, n.Target) and node.dotted and split(node)[0] not in out:
            out.append(split(node)[0])
    return out


def make(container: str, kind: str) -> ir.Node:
    """``self.convs = nn.ModuleList()``."""
    cls = "nn.ModuleList" if kind == LIST else "nn.ModuleDict"
    return ir.Assign(ir.Attr(ir.Name("self"), container), ir.call(ir.attr(cls)))


def put(target: n.Target, kind: str, value: ir.Node, lower) -> ir.Node:
    """``self.convs.append(value)`` or ``self.heads["cls"] = value``; ``lower`` gives an interpolation's IR."""
    container, key = split(target)
    holder = ir.Attr(ir.Name("self"), container)
    if kind == LIST:
        return ir.Expr(ir.call(ir.Attr(holder, "append"), value))
    return ir.Assign(ir.Index(holder, interpolated(key, lower)), value)


def get(owner: ir.Node, target: n.Target, kind: str, lower) -> ir.Node:
    """``self.convs[i]`` (the key's expression indexes a list) or ``self.heads["cls"]``."""
    container, key = split(target)
    holder = ir.Attr(owner, container)
    if kind == LIST:
        index = ir.Const(int(key.parts[0])) if isinstance(key.parts[0], str) else lower(key.parts[0])
        return ir.Index(holder, index)
    return ir.Index(holder, interpolated(key, lower))
