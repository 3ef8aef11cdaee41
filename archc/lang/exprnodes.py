"""The expressions of the .arch language's AST: one small class per grammar rule (``nodes`` holds the rest and
re-exports these)."""

from __future__ import annotations

from dataclasses import dataclass

from .tree import Node, Span


@dataclass(eq=False)
class Num(Node):
    value: int | float
    span: Span


@dataclass(eq=False)
class Str(Node):
    value: str
    span: Span


@dataclass(eq=False)
class Const(Node):
    """``true``, ``false`` or ``none``."""

    value: bool | None
    span: Span


@dataclass(eq=False)
class Var(Node):
    name: str
    span: Span


@dataclass(eq=False)
class TensorRef(Node):
    """``in`` (the block's input) or ``out`` (the tensor at this point)."""

    which: str
    span: Span


@dataclass(eq=False)
class Attr(Node):
    value: Expr
    name: str
    span: Span


@dataclass(eq=False)
class ListExpr(Node):
    items: list[Expr]
    span: Span
    tuple: bool = False


@dataclass(eq=False)
class BinOp(Node):
    op: str  # + - * / // % ** == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


@dataclass(eq=False)
class Compare(Node):
    """A chain of two or more comparisons, ``a < b <= c``: as in Python, ``a < b and b <= c`` with each
    operand evaluated once. A single comparison is a ``BinOp``."""

    ops: list[str]  # == != < <= > >=
    operands: list[Expr]  # one more than ops
    span: Span


@dataclass(eq=False)
class UnaryOp(Node):
    op: str  # - + not
    operand: Expr
    span: Span


@dataclass(eq=False)
class IfExp(Node):
    cond: Expr
    then: Expr
    orelse: Expr
    span: Span


@dataclass(eq=False)
class Index(Node):
    value: Expr
    index: Expr
    span: Span


@dataclass(eq=False)
class Slice(Node):
    """``value[lower:upper]``, either bound optional."""

    value: Expr
    lower: Expr | None
    upper: Expr | None
    span: Span


@dataclass(eq=False)
class Call(Node):
    func: Expr
    args: list[Expr]
    kwargs: list[tuple[str, Expr]]
    span: Span


# A loop variable: a name, or a tuple of them to unpack (``for t, (c, n) in ...``).
Pattern = str | tuple


@dataclass(eq=False)
class ListComp(Node):
    """``[element for pattern in iterable if cond]``."""

    element: Expr
    pattern: Pattern
    iterable: Expr
    cond: Expr | None
    span: Span


Expr = (Num | Str | Const | Var | TensorRef | Attr | ListExpr | BinOp | Compare | UnaryOp | IfExp | Index | Slice | Call
        | ListComp)


def pattern_names(pattern: Pattern) -> list[str]:
    """The names a pattern binds, in order."""
    if isinstance(pattern, str):
        return [pattern]
    return [name for p in pattern for name in pattern_names(p)]
