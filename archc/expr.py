"""Expressions: safe evaluation, partial evaluation, and printing as Python.

Nothing here calls ``eval``: the evaluator walks the AST and allows only the
operators and the handful of builtins the language documents.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import nodes as n
from .errors import SpecError, did_you_mean

MAX_INT = 2**62
MAX_LIST = 100_000


@dataclass(frozen=True)
class BlockRef:
    """A block used as a value (``ResNet(Bottleneck, ...)``)."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TensorInfo:
    """What ``in`` / ``out`` expose to expressions."""

    channels: int | None
    height: int | None = None
    width: int | None = None
    features: int | None = None


def _check_int(value, span):
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise SpecError("number too large", span, hint=f"values are limited to {MAX_INT}")
    return value


def _div(a, b):
    return a / b


def _floordiv(a, b):
    return a // b


_BINARY: dict[str, Callable] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
    "//": _floordiv,
    "%": operator.mod,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _range(*args):
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in args) or not 1 <= len(args) <= 3:
        raise TypeError("range() takes one to three integers")
    r = range(*args)
    if len(r) > MAX_LIST:
        raise ValueError(f"{len(r)} items, more than the limit of {MAX_LIST}")
    return list(r)


def _int(x):
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError("int() of an infinite number")
    return int(x)


BUILTINS: dict[str, Callable] = {
    "len": len,
    "min": min,
    "max": max,
    "int": _int,
    "float": float,
    "abs": abs,
    "sum": sum,
    "range": _range,
}


def type_name(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, BlockRef):
        return "block"
    return {int: "int", float: "float", str: "string", list: "list", tuple: "tuple"}.get(type(value), type(value).__name__)


class Evaluator:
    """Evaluates expressions in ``env``; ``tensors`` answers ``in`` and ``out``."""

    def __init__(self, env: Mapping[str, object], tensors: Callable[[str, n.Span], TensorInfo] | None = None):
        self.env = env
        self.tensors = tensors

    def __call__(self, e: n.Expr):
        method = getattr(self, "_" + type(e).__name__)
        return method(e)

    def _Num(self, e: n.Num):
        return _check_int(e.value, e.span)

    def _Str(self, e: n.Str):
        return e.value

    def _Const(self, e: n.Const):
        return e.value

    def _Var(self, e: n.Var):
        if e.name in self.env:
            return self.env[e.name]
        if e.name in BUILTINS:
            return BUILTINS[e.name]
        raise SpecError(f"undefined name '{e.name}'", e.span, hint=did_you_mean(e.name, list(self.env)))

    def _TensorRef(self, e: n.TensorRef):
        if self.tensors is None:
            raise SpecError(f"'{e.which}' refers to a tensor and can only be used inside a block body", e.span)
        return self.tensors(e.which, e.span)

    def _Attr(self, e: n.Attr):
        value = self(e.value)
        if isinstance(value, TensorInfo) and e.name in ("channels", "height", "width", "features"):
            result = getattr(value, e.name)
            if result is None:
                kind = "a flat tensor" if value.features is not None else "a C x H x W tensor"
                raise SpecError(f"'{e.name}' is not defined for {kind}", e.span)
            return result
        raise SpecError(f"no attribute '{e.name}' on a {type_name(value)}", e.span,
                        hint="tensors have .channels, .height, .width (and .features once flattened)")

    def _ListExpr(self, e: n.ListExpr):
        items = [self(i) for i in e.items]
        return tuple(items) if e.tuple else items

    def _UnaryOp(self, e: n.UnaryOp):
        value = self(e.operand)
        if e.op == "not":
            return not value
        if not _is_number(value):
            raise SpecError(f"bad operand type for unary {e.op}: {type_name(value)}", e.span)
        return -value if e.op == "-" else value

    def _BinOp(self, e: n.BinOp):
        if e.op == "and":
            left = self(e.left)
            return self(e.right) if left else left
        if e.op == "or":
            left = self(e.left)
            return left if left else self(e.right)
        left, right = self(e.left), self(e.right)
        if e.op == "**":
            if not (_is_number(left) and _is_number(right)):
                raise SpecError(f"unsupported operand types for **: {type_name(left)} and {type_name(right)}", e.span)
            if abs(right) > 64 and abs(left) > 1:
                raise SpecError("exponent too large", e.span)
            return _check_int(left**right, e.span)
        if e.op in ("/", "//", "%") and _is_number(right) and right == 0:
            raise SpecError("division by zero", e.span)
        if e.op == "*" and isinstance(right, int) and isinstance(left, (list, tuple, str)) or (
            e.op == "*" and isinstance(left, int) and isinstance(right, (list, tuple, str))
        ):
            size = len(left if not isinstance(left, int) else right) * (right if isinstance(right, int) else left)
            if size > MAX_LIST:
                raise SpecError(f"list of {size} items is too long (limit {MAX_LIST})", e.span)
        try:
            return _check_int(_BINARY[e.op](left, right), e.span)
        except TypeError:
            raise SpecError(
                f"unsupported operand types for {e.op}: {type_name(left)} and {type_name(right)}", e.span
            ) from None
        except (OverflowError, ValueError) as exc:
            raise SpecError(str(exc), e.span) from None

    def _IfExp(self, e: n.IfExp):
        return self(e.then) if self(e.cond) else self(e.orelse)

    def _Index(self, e: n.Index):
        value, index = self(e.value), self(e.index)
        if not isinstance(value, (list, tuple, str)):
            raise SpecError(f"a {type_name(value)} cannot be indexed", e.span)
        if not isinstance(index, int) or isinstance(index, bool):
            raise SpecError(f"indices must be integers, not {type_name(index)}", e.index.span)
        if not -len(value) <= index < len(value):
            raise SpecError(f"index {index} out of range for a {type_name(value)} of length {len(value)}", e.span)
        return value[index]

    def _Call(self, e: n.Call):
        if not (isinstance(e.func, n.Var) and e.func.name in BUILTINS and e.func.name not in self.env):
            name = e.func.name if isinstance(e.func, n.Var) else "this"
            raise SpecError(f"'{name}' cannot be called in an expression", e.span,
                            hint="expressions may call " + ", ".join(sorted(BUILTINS)))
        if e.kwargs:
            raise SpecError(f"{e.func.name}() takes no keyword arguments", e.span)
        args = [self(a) for a in e.args]
        try:
            return BUILTINS[e.func.name](*args)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SpecError(f"{e.func.name}(): {exc}", e.span) from None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def evaluate(e: n.Expr, env: Mapping[str, object], tensors=None):
    return Evaluator(env, tensors)(e)


# ------------------------------------------------------------------ printing

_PREC = {
    "ifexp": 0, "or": 1, "and": 2, "not": 3,
    "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6, "unary": 7, "**": 8,
}
_ATOM = 10


def literal(value, span: n.Span) -> n.Expr:
    """A value turned back into an expression node."""
    if isinstance(value, bool) or value is None:
        return n.Const(value, span)
    if isinstance(value, (int, float)):
        return n.Num(value, span)
    if isinstance(value, str):
        return n.Str(value, span)
    if isinstance(value, (list, tuple)):
        return n.ListExpr([literal(v, span) for v in value], span, tuple=isinstance(value, tuple))
    if isinstance(value, BlockRef):
        return n.Var(value.name, span)
    raise TypeError(f"no literal for {value!r}")


def to_python(e: n.Expr, name: Callable[[str], str] = lambda s: s, tensor: Callable[[str, str], str] | None = None) -> str:
    """Print ``e`` as Python source, with the fewest parentheses."""

    def prec(x: n.Expr) -> int:
        if isinstance(x, n.IfExp):
            return 0
        if isinstance(x, n.BinOp):
            return _PREC[x.op]
        if isinstance(x, n.UnaryOp):
            return _PREC["not"] if x.op == "not" else _PREC["unary"]
        if isinstance(x, n.Num) and x.value < 0:
            return _PREC["unary"]
        return _ATOM

    def wrap(x: n.Expr, minimum: int) -> str:
        text = go(x)
        return f"({text})" if prec(x) < minimum else text

    def go(x: n.Expr) -> str:
        if isinstance(x, n.Num):
            return repr(x.value)
        if isinstance(x, n.Str):
            plain = '"' not in x.value and "\\" not in x.value and "\n" not in x.value
            return f'"{x.value}"' if plain else repr(x.value)
        if isinstance(x, n.Const):
            return repr(x.value)
        if isinstance(x, n.Var):
            return name(x.name)
        if isinstance(x, n.Attr) and isinstance(x.value, n.TensorRef) and tensor is not None:
            return tensor(x.value.which, x.name)
        if isinstance(x, n.TensorRef):
            raise SpecError(f"'{x.which}' must be followed by .channels here", x.span)
        if isinstance(x, n.Attr):
            return f"{wrap(x.value, _ATOM)}.{x.name}"
        if isinstance(x, n.ListExpr):
            inner = ", ".join(go(i) for i in x.items)
            if x.tuple:
                return f"({inner},)" if len(x.items) == 1 else f"({inner})"
            return f"[{inner}]"
        if isinstance(x, n.UnaryOp):
            if x.op == "not":
                return f"not {wrap(x.operand, _PREC['not'])}"
            return f"{x.op}{wrap(x.operand, _PREC['unary'])}"
        if isinstance(x, n.BinOp):
            p = _PREC[x.op]
            if x.op == "**":  # right-associative
                return f"{wrap(x.left, p + 1)} ** {wrap(x.right, p)}"
            right_min = p + 1 if x.op not in ("and", "or") else p
            return f"{wrap(x.left, p)} {x.op} {wrap(x.right, right_min)}"
        if isinstance(x, n.IfExp):
            return f"{wrap(x.then, 1)} if {wrap(x.cond, 1)} else {wrap(x.orelse, 0)}"
        if isinstance(x, n.Index):
            return f"{wrap(x.value, _ATOM)}[{go(x.index)}]"
        if isinstance(x, n.Call):
            args = [go(a) for a in x.args] + [f"{k}={go(v)}" for k, v in x.kwargs]
            return f"{wrap(x.func, _ATOM)}({', '.join(args)})"
        raise TypeError(type(x))

    return go(e)


# --------------------------------------------------------- partial evaluation


def fold(e: n.Expr, known: Mapping[str, object], subst: Mapping[str, n.Expr] | None = None,
         tensors: Callable[[n.TensorRef, str], n.Expr | None] | None = None) -> n.Expr:
    """Substitute what is known and fold constant parts.

    ``known`` maps names to values, ``subst`` maps names to expressions (the
    symbols of the generated code); names in neither stay as they are.
    """
    subst = subst or {}

    def is_lit(x: n.Expr) -> bool:
        if isinstance(x, (n.Num, n.Str, n.Const)):
            return True
        if isinstance(x, n.ListExpr):
            return all(is_lit(i) for i in x.items)
        return False

    def value(x: n.Expr):
        return Evaluator({})(x)

    def go(x: n.Expr) -> n.Expr:
        if isinstance(x, n.Var):
            if x.name in known:
                v = known[x.name]
                return literal(v, x.span) if not callable(v) else x
            return subst.get(x.name, x)
        if isinstance(x, n.Attr) and isinstance(x.value, n.TensorRef) and tensors is not None:
            replaced = tensors(x.value, x.name)
            return replaced if replaced is not None else x
        if isinstance(x, (n.Num, n.Str, n.Const, n.TensorRef)):
            return x
        if isinstance(x, n.ListExpr):
            return n.ListExpr([go(i) for i in x.items], x.span, x.tuple)
        if isinstance(x, n.UnaryOp):
            operand = go(x.operand)
            out = n.UnaryOp(x.op, operand, x.span)
            return literal(value(out), x.span) if is_lit(operand) else out
        if isinstance(x, n.BinOp):
            left, right = go(x.left), go(x.right)
            if x.op in ("and", "or") and is_lit(left):
                lv = value(left)
                if x.op == "and":
                    return right if lv else left
                return left if lv else right
            out = n.BinOp(x.op, left, right, x.span)
            return literal(value(out), x.span) if is_lit(left) and is_lit(right) else out
        if isinstance(x, n.IfExp):
            cond = go(x.cond)
            if is_lit(cond):
                return go(x.then) if value(cond) else go(x.orelse)
            return n.IfExp(cond, go(x.then), go(x.orelse), x.span)
        if isinstance(x, n.Index):
            base, index = go(x.value), go(x.index)
            out = n.Index(base, index, x.span)
            return literal(value(out), x.span) if is_lit(base) and is_lit(index) else out
        if isinstance(x, n.Call):
            args = [go(a) for a in x.args]
            out = n.Call(x.func, args, [(k, go(v)) for k, v in x.kwargs], x.span)
            foldable = isinstance(x.func, n.Var) and x.func.name in BUILTINS and x.func.name != "range"
            if foldable and all(is_lit(a) for a in args) and not x.kwargs:  # range(20) stays readable
                return literal(value(out), x.span)
            return out
        if isinstance(x, n.Attr):
            return n.Attr(go(x.value), x.name, x.span)
        raise TypeError(type(x))

    return go(e)


def free_names(e: n.Expr) -> set[str]:
    """Names an expression reads (builtins called as functions excluded)."""
    found: set[str] = set()

    def go(x) -> None:
        if isinstance(x, n.Var):
            found.add(x.name)
        elif isinstance(x, n.Call):
            if not isinstance(x.func, n.Var):
                go(x.func)
            for a in x.args:
                go(a)
            for _, v in x.kwargs:
                go(v)
        elif isinstance(x, n.ListExpr):
            for i in x.items:
                go(i)
        elif isinstance(x, n.BinOp):
            go(x.left)
            go(x.right)
        elif isinstance(x, n.UnaryOp):
            go(x.operand)
        elif isinstance(x, n.IfExp):
            go(x.cond)
            go(x.then)
            go(x.orelse)
        elif isinstance(x, n.Index):
            go(x.value)
            go(x.index)
        elif isinstance(x, n.Attr):
            go(x.value)

    go(e)
    return found
