"""The Python code generator's IR: statements and expressions of the generated module as trees.

Lowering builds these; analyses (which names a body reads, which attributes it stores) walk them; the
``Printer`` is the only place text is made. Expressions print with the parentheses precedence needs, so a
tree means what it prints; a statement longer than 100 columns breaks at its last call's arguments, one a
line, as a person (or black) breaks it; ``If`` with a lone ``If`` in its ``orelse`` prints as ``elif``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ...lang.nodes import Node

WIDTH = 100


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
    """``node`` with each plain name in ``mapping`` replaced by its tree."""
    return transform(node, lambda x: mapping.get(x.id) if isinstance(x, Name) else None)


def _target_names(target: Node) -> list[Name]:
    return [n for n in target.walk() if isinstance(n, Name)]


# ---------------------------------------------------------------- printing

_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "|": 5, "^": 6, "&": 7, "<<": 8, ">>": 8, "+": 9, "-": 9,
         "*": 10, "/": 10, "//": 10, "%": 10, "@": 10, "unary": 11, "**": 12, "await": 13}
_ATOM = 20


def _prec(e: Node) -> int:
    if isinstance(e, IfExp):
        return 0
    if isinstance(e, BinOp):
        return _PREC[e.op]
    if isinstance(e, Compare):
        return _PREC["cmp"]
    if isinstance(e, Unary):
        return _PREC["not"] if e.op == "not" else _PREC["unary"]
    if isinstance(e, Const) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool) and \
            math.copysign(1, e.value) < 0:
        return _PREC["unary"]
    return _ATOM


class Printer:
    """Prints the IR: one method per node kind (``expr_<Kind>``, ``stmt_<Kind>``)."""

    def expr(self, e: Node, minimum: int = 0) -> str:
        text = getattr(self, "expr_" + type(e).__name__)(e)
        return f"({text})" if _prec(e) < minimum else text

    def expr_Name(self, e: Name) -> str:
        return e.id

    def expr_Const(self, e: Const) -> str:
        v = e.value
        if isinstance(v, str):
            plain = all(c.isprintable() for c in v) and not any(c in v for c in "\"\\")
            return f'"{v}"' if plain else _double_quoted(v)
        if isinstance(v, float) and not math.isfinite(v):
            return f'float("{v}")'
        return repr(v)

    def expr_Attr(self, e: Attr) -> str:
        inner = self.expr(e.value, _ATOM)
        if isinstance(e.value, Const) and isinstance(e.value.value, int) and not isinstance(e.value.value, bool):
            inner = f"({inner})"  # 1 .real, not 1.real
        return f"{inner}.{e.attr}"

    def expr_Call(self, e: Call) -> str:
        return f"{self.expr(e.func, _ATOM)}({', '.join(self.arguments(e))})"

    def arguments(self, e: Call) -> list[str]:
        return [self.expr(a) for a in e.args] + [f"{k}={self.expr(v)}" for k, v in e.kwargs]

    def expr_Index(self, e: Index) -> str:
        index = e.index
        if isinstance(index, Tuple) and index.items:
            inner = ", ".join(self.expr(i) for i in index.items) + ("," if len(index.items) == 1 else "")
        else:
            inner = self.expr(index)
        return f"{self.expr(e.value, _ATOM)}[{inner}]"

    def expr_Slice(self, e: Slice) -> str:
        parts = ["" if x is None else self.expr(x, 1) for x in (e.lower, e.upper)]
        text = ":".join(parts)
        return text + ("" if e.step is None else f":{self.expr(e.step, 1)}")

    def expr_Tuple(self, e: Tuple) -> str:
        inner = ", ".join(self.expr(i) for i in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"

    def expr_List(self, e: List) -> str:
        return f"[{', '.join(self.expr(i) for i in e.items)}]"

    def expr_BinOp(self, e: BinOp) -> str:
        p = _PREC[e.op]
        if e.op == "**":  # right-associative; its right side may be a unary minus: 2 ** -x
            return f"{self.expr(e.left, p + 1)} ** {self.expr(e.right, _PREC['unary'])}"
        return f"{self.expr(e.left, p)} {e.op} {self.expr(e.right, p + 1)}"

    def expr_Unary(self, e: Unary) -> str:
        if e.op == "not":  # not (a < b): parentheses for the reader where a comparison follows
            inner = self.expr(e.operand, _PREC["not"])
            return f"not ({inner})" if isinstance(e.operand, Compare) else f"not {inner}"
        return f"{e.op}{self.expr(e.operand, _PREC['unary'])}"

    def expr_Compare(self, e: Compare) -> str:
        p = _PREC["cmp"] + 1  # a comparison inside a comparison keeps its parentheses: no chain
        text = self.expr(e.operands[0], p)
        for op, right in zip(e.ops, e.operands[1:]):
            text += f" {op} {self.expr(right, p)}"
        return text

    def expr_IfExp(self, e: IfExp) -> str:
        return f"{self.expr(e.body, 1)} if {self.expr(e.test, 1)} else {self.expr(e.orelse, 0)}"

    def expr_Comp(self, e: Comp) -> str:
        text = self.expr(e.element, 1)
        for target, iterable, conds in e.clauses:
            text += f" for {self.target(target)} in {self.expr(iterable, 1)}"
            text += "".join(f" if {self.expr(c, 1)}" for c in conds)
        return f"[{text}]" if e.kind == "list" else "{" + text + "}"

    def expr_FString(self, e: FString) -> str:
        inner = ""
        for part in e.parts:
            if isinstance(part, str):
                inner += part.replace("{", "{{").replace("}", "}}")
            else:  # braces delimit the expression: it needs no parentheses of its own
                inner += "{" + self.expr(part) + "}"
        if '"' in inner or "\\" in inner:
            raise ValueError(f"an f-string part holds a quote or a backslash: {inner!r}")
        return f'f"{inner}"'

    def expr_Starred(self, e: Starred) -> str:
        return "*" + self.expr(e.value, _PREC["|"])  # *(a + b): the star takes an or-expression

    def target(self, e: Node, top: bool = True) -> str:
        """An assignment's or loop's target: ``a, (b, c)`` (an inner tuple keeps its parentheses)."""
        if isinstance(e, Tuple):
            inner = ", ".join(self.target(i, False) for i in e.items)
            return inner if top else f"({inner})"
        return self.expr(e)

    # ------------------------------------------------------------ statements

    def lines(self, body, depth: int) -> list[str]:
        out: list[str] = []
        for s in body:
            out += getattr(self, "stmt_" + type(s).__name__)(s, "    " * depth, depth)
        return out

    def simple(self, indent: str, head: str, value: Node | None, comment: str = "") -> list[str]:
        """``head value  # comment``, broken at ``value``'s last call's arguments if too long; a statement with a
        (shape) comment stays on its line, the comment beside the whole statement."""
        text = head + ("" if value is None else self.expr(value))
        if comment:
            return [f"{indent}{text}  # {comment}"]
        if len(indent + text) <= WIDTH or not isinstance(value, Call) or not (value.args or value.kwargs):
            return [indent + text]
        return self.broken(indent, head, value, "")

    def broken(self, indent: str, head: str, value: Call, end: str, tail: str = "") -> list[str]:
        """A call one argument a line (an argument that is itself a long call, broken the same way)."""
        out = [f"{indent}{head}{self.expr(value.func, _ATOM)}({tail}"]
        inner = indent + "    "
        items = [(None, a) for a in value.args] + list(value.kwargs)
        for key, arg in items:
            prefix = "" if key is None else f"{key}="
            text = prefix + self.expr(arg)
            if len(inner + text) + 1 > WIDTH and isinstance(arg, Call) and (arg.args or arg.kwargs):
                out += self.broken(inner, prefix, arg, ",")
            else:
                out.append(f"{inner}{text},")
        out.append(f"{indent}){end}")
        return out

    def stmt_Assign(self, s: Assign, indent: str, depth: int) -> list[str]:
        annotation = f": {s.annotation}" if s.annotation else ""
        return self.simple(indent, f"{self.target(s.target)}{annotation} = ", s.value, s.comment)

    def stmt_AugAssign(self, s: AugAssign, indent: str, depth: int) -> list[str]:
        return self.simple(indent, f"{self.target(s.target)} {s.op}= ", s.value, s.comment)

    def stmt_Expr(self, s: Expr, indent: str, depth: int) -> list[str]:
        return self.simple(indent, "", s.value, s.comment)

    def stmt_Return(self, s: Return, indent: str, depth: int) -> list[str]:
        if s.value is None:
            return [indent + "return"]
        if isinstance(s.value, Tuple) and s.value.items:
            return [indent + "return " + ", ".join(self.expr(i) for i in s.value.items)]
        return self.simple(indent, "return ", s.value)

    def stmt_Pass(self, s: Pass, indent: str, depth: int) -> list[str]:
        return [indent + "pass"]

    def stmt_For(self, s: For, indent: str, depth: int) -> list[str]:
        return [f"{indent}for {self.target(s.target)} in {self.expr(s.iterable)}:"] + \
            self.lines(s.body or (Pass(),), depth + 1)

    def stmt_If(self, s: If, indent: str, depth: int, keyword: str = "if") -> list[str]:
        out = [f"{indent}{keyword} {self.expr(s.test)}:"] + self.lines(s.body or (Pass(),), depth + 1)
        if len(s.orelse) == 1 and isinstance(s.orelse[0], If):  # else: if ... is elif
            return out + self.stmt_If(s.orelse[0], indent, depth, "elif")
        if s.orelse:
            out += [f"{indent}else:"] + self.lines(s.orelse, depth + 1)
        return out


def _double_quoted(text: str) -> str:
    """A string literal in double quotes with Python's escapes."""
    body = repr(text)[1:-1] if repr(text)[0] == '"' else repr(text)[1:-1].replace("\\'", "'").replace('"', '\\"')
    return f'"{body}"'


def print_expr(e: Node) -> str:
    return Printer().expr(e)


def print_body(body, depth: int) -> list[str]:
    return Printer().lines(body, depth)


__all__ = [
    "Assign",
    "Attr",
    "AugAssign",
    "BinOp",
    "Call",
    "Comp",
    "Compare",
    "Const",
    "Expr",
    "FString",
    "For",
    "If",
    "IfExp",
    "Index",
    "List",
    "Name",
    "Node",
    "Pass",
    "Printer",
    "Return",
    "Slice",
    "Starred",
    "Tuple",
    "Unary",
    "attr",
    "call",
    "const",
    "is_not_none",
    "name",
    "print_body",
    "print_expr",
    "reads",
    "substitute",
    "transform",
]
