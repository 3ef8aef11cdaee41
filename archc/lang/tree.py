"""What every tree node is (the AST's, and the code generator's IR's): a dataclass whose fields hold its children,
and the ``Span`` of source text it came from, so any later stage can point an error at the spec line that caused it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass


class Node:
    """Base of every tree node (the AST's, and the code generator's IR's): its child nodes come from its fields,
    so no walker can forget one."""

    def children(self) -> Iterator[Node]:
        """The nodes held by this node's fields, in field order (inside lists and tuples too: keyword arguments
        are (name, expr[, span]))."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # asking dataclasses each time was most of the cost of a walk
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        for name in names:
            value = getattr(self, name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, (list, tuple)):
                yield from _nodes(value)

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, depth first in source order (without recursion)."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children())))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a node class -> its fields' names, in order


def _nodes(value) -> Iterator[Node]:
    if isinstance(value, Node):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _nodes(item)


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    column: int
    end_line: int
    end_column: int


def same_ast(a, b) -> bool:
    """Whether two ASTs (or values in them) are equal, leaving out where things stand in the source."""
    if isinstance(a, Span) and isinstance(b, Span):
        return True
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(same_ast(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
                   if f.compare and f.name not in ("span", "file", "source") and not f.name.endswith("_span"))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_ast(x, y) for x, y in zip(a, b))
    return a == b
