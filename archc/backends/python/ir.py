"""The Python code generator's IR: statements and expressions of the generated module as trees.

Lowering builds these; analyses (which names a body reads, which attributes it stores) walk them;
``irprint`` is the only place text is made from them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ...lang.nodes import Node

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Const(Node):
    value: object  # int, float, str, bool or None

    def __eq__(self, other) -> bool:  # 1, 1.0 and True print differently: equal only if of one type
        return isinstance(other, Const) and type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))


@dataclass(frozen=True)
class Attr(Node):
    value: Node
    attr: str


@dataclass(frozen=True)
class Call(Node):
    func: Node
    args: tuple = ()
    kwargs: tuple = ()  # (name, value) pairs


@dataclass(frozen=True)
class Stacked(Call):
    """A call written one argument a line whatever its length (``nn.Sequential(`` of a stack of layers, as a
    person lists them), each argument itself left unbroken."""


@dataclass(frozen=True)
class Index(Node):
    value: Node
    index: Node  # an expression, a Slice or a Tuple of them


@dataclass(frozen=True)
class Slice(Node):
    lower: Node | None = None
    upper: Node | None = None
    step: Node | None = None


@dataclass(frozen=True)
class Tuple(Node):
    items: tuple = ()


@dataclass(frozen=True)
class List(Node):
    items: tuple = ()


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * / // % ** and or
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary(Node):
    op: str  # - + not
    operand: Node


@dataclass(frozen=True)
class Compare(Node):
    ops: tuple  # == != < <= > >= is is not in not in
    operands: tuple  # one more than ops


@dataclass(frozen=True)
class IfExp(Node):
    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True)
class Comp(Node):
    """A list or set comprehension: ``[element for target in iterable if cond ...]``, clauses nested in order."""

    kind: str  # "list" or "set"
    element: Node
    clauses: tuple  # (target, iterable, conditions) triples


@dataclass(frozen=True)
class FString(Node):
    parts: tuple  # literal text and expressions


@dataclass(frozen=True)
class Starred(Node):
    """``*items`` inside a list display."""

    value: Node


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign(Node):
    target: Node
    value: Node
    comment: str = ""
    annotation: str = ""  # ``local: Tensor | None = None``
    let: bool = False  # binds a spec ``let``: dropped when nothing reads it (``irbuild.prune_lets``)


@dataclass(frozen=True)
class AugAssign(Node):
    """``target op= value`` (the residual's sum in place: ``out += identity``)."""

    target: Node
    op: str
    value: Node
    comment: str = ""


@dataclass(frozen=True)
class Expr(Node):
    value: Node
    comment: str = ""


@dataclass(frozen=True)
class If(Node):
    test: Node
    body: tuple
    orelse: tuple = ()


@dataclass(frozen=True)
class For(Node):
    target: Node
    iterable: Node
    body: tuple


@dataclass(frozen=True)
class Return(Node):
    value: Node | None = None


@dataclass(frozen=True)
class Pass(Node):
    pass


@dataclass(frozen=True)
class Raise(Node):
    value: Node


@dataclass(frozen=True)
class Delete(Node):
    targets: tuple
    comment: str = ""


@dataclass(frozen=True)
class Arg(Node):
    """A parameter of a ``def``: ``name: annotation = default``; the name ``*`` alone marks the keyword-only ones."""

    name: str
    annotation: Node | None = None
    default: Node | None = None


@dataclass(frozen=True)
class FunctionDef(Node):
    name: str
    params: tuple  # Arg
    body: tuple
    returns: Node | None = None
    doc: str = ""  # the docstring's text, as ``formatting.docstring`` writes it


# ---------------------------------------------------------------- building


def name(text: str) -> Name:
    return Name(text)


def is_not_none(value: Node) -> Compare:
    return Compare(("is not",), (value, Const(None)))


def attr(path: str) -> Node:
    """``self.layer1.conv`` from its dotted text (every part an identifier)."""
    first, *rest = path.split(".")
    node: Node = Name(first)
    for part in rest:
        node = Attr(node, part)
    return node


def call(func: str | Node, *args: Node, **kwargs: Node) -> Call:
    return Call(attr(func) if isinstance(func, str) else func, tuple(args), tuple(kwargs.items()))


def const(value) -> Node:
    """A Python value as a literal; a negative number is a unary minus of its magnitude."""
    if isinstance(value, (list, tuple)):
        items = tuple(const(v) for v in value)
        return Tuple(items) if isinstance(value, tuple) else List(items)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.copysign(1, value) < 0:
        return Unary("-", Const(-value))
    return Const(value)


def reads(node: Node) -> set[str]:
    """The plain names an expression or statement reads: not those it assigns, nor a comprehension's own."""
    found: set[str] = set()

    def go(n: Node, bound: frozenset) -> None:
        if isinstance(n, Name):
            if n.id not in bound:
                found.add(n.id)
        elif isinstance(n, (Assign, For)):
            go(n.value if isinstance(n, Assign) else n.iterable, bound)
            store(n.target, bound)
            for s in () if isinstance(n, Assign) else n.body:
                go(s, bound)
        elif isinstance(n, Comp):
            inner = bound | {t.id for c in n.clauses for t in _target_names(c[0])}
            for _, iterable, conds in n.clauses:
                go(iterable, inner)
                for c in conds:
                    go(c, inner)
            go(n.element, inner)
        else:
            for child in n.children():
                go(child, bound)

    def store(target: Node, bound: frozenset) -> None:
        if isinstance(target, (Attr, Index)):  # self.conv = ...: reads self
            go(target, bound)
        elif isinstance(target, Tuple):
            for item in target.items:
                store(item, bound)

    go(node, frozenset())
    return found


def transform(node, fn):
    """``node`` rebuilt bottom-up, each node replaced by ``fn(node)`` (None keeps it); tuples of nodes and of
    keyword pairs are rebuilt too."""
    def go(value):
        if isinstance(value, Node):
            changes = {f.name: go(getattr(value, f.name)) for f in dataclasses.fields(value)}
            same = all(changes[k] is getattr(value, k) for k in changes)
            rebuilt = value if same else dataclasses.replace(value, **changes)
            replaced = fn(rebuilt)
            return rebuilt if replaced is None else replaced
        if isinstance(value, tuple):
            items = tuple(go(v) for v in value)
            return value if all(a is b for a, b in zip(items, value)) else items
        return value

    return go(node)


def substitute(node, mapping: dict[str, Node]):
    """``node`` with each plain name in ``mapping`` replaced by its tree; where that leaves a literal tuple starred
    in a call's arguments (``f(a, *(b, c))``), its items stand there instead, and a conditional whose branches
    became equal (``p if self.training else p``) is its branch."""
    return transform(transform(node, lambda x: mapping.get(x.id) if isinstance(x, Name) else None), _tidy)


def _tidy(node):
    if isinstance(node, Call) and any(isinstance(a, Starred) and isinstance(a.value, (Tuple, List)) for a in node.args):
        args = []
        for a in node.args:
            args.extend(a.value.items if isinstance(a, Starred) and isinstance(a.value, (Tuple, List)) else (a,))
        return dataclasses.replace(node, args=tuple(args))
    if isinstance(node, IfExp) and node.body == node.orelse:
        return node.body
    return None


def _target_names(target: Node) -> list[Name]:
    return [n for n in target.walk() if isinstance(n, Name)]


__all__ = [
    "Arg",
    "Assign",
    "Attr",
    "AugAssign",
    "BinOp",
    "Call",
    "Comp",
    "Compare",
    "Const",
    "Delete",
    "Expr",
    "FString",
    "For",
    "FunctionDef",
    "If",
    "IfExp",
    "Index",
    "List",
    "Name",
    "Node",
    "Pass",
    "Raise",
    "Return",
    "Slice",
    "Stacked",
    "Starred",
    "Tuple",
    "Unary",
    "attr",
    "call",
    "const",
    "is_not_none",
    "name",
    "reads",
    "substitute",
    "transform",
]
