"""Dotted names (``convs.{i} = conv(...)``, ``heads.cls = linear(...)``): the containers they build in ``__init__``
and how ``forward`` reads their members.

A container whose members every elaboration gave the keys 0, 1, 2, ... in order, each key a whole number (one
interpolated int or written out), none of them made under a condition, is an ``nn.ModuleList``: ``__init__``
appends to it, ``forward`` indexes it with the key's expression (``self.convs[i]``). Any other is an
``nn.ModuleDict``, set and read by its string keys. Either way its state_dict keys are the spec's
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
    found: dict[str, list[tuple[n.Target, bool]]] = {}

    def visit(node: n.Node, conditional: bool) -> None:
        conditional = conditional or isinstance(node, n.If) or getattr(node, "cond", None) is not None
        if isinstance(node, n.Target) and node.dotted:
            found.setdefault(split(node)[0], []).append((node, conditional))
        for child in node.children():
            visit(child, conditional)

    for stmt in body:
        visit(stmt, False)
    kinds = {}
    for container, members in found.items():
        records = [info.get(("member", t)) for t, _ in members]
        listed = all(records) and not any(cond for _, cond in members) and all(
            is_int and key == str(position) for seen in records for position, key, is_int in seen)
        kinds[container] = LIST if listed else DICT
    return kinds


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
