"""Spec expressions lowered to the code generator's IR (``ir``): the same tree, in Python's terms.

A name becomes what ``names`` says it is in the generated code (a parameter of the class may be
``self.width``); ``ceil``, ``floor``, ``log`` and ``sqrt`` are math's; ``== none`` is ``is None``. The
meaning is archc's: comparison chains stay chains, everything else maps one to one.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.exprfold import PRINTED_BUILTINS
from . import ir

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


def lower(e: n.Expr, names: Callable[[str], ir.Node] = ir.attr) -> ir.Node:
    """``e`` as an IR expression; ``names`` maps each free name to its IR form."""
    def go(x: n.Expr) -> ir.Node:
        if isinstance(x, (n.Num, n.Str, n.Const)):
            return ir.const(x.value)
        if isinstance(x, n.Var):
            return names(x.name)
        if isinstance(x, n.TensorRef):
            raise SpecError(f"'{x.which}' must be followed by .channels here", x.span)
        if isinstance(x, n.Attr):
            return ir.Attr(go(x.value), x.name)
        if isinstance(x, n.ListExpr):
            items = tuple(go(i) for i in x.items)
            return ir.Tuple(items) if x.tuple else ir.List(items)
        if isinstance(x, n.UnaryOp):
            return ir.Unary(x.op, go(x.operand))
        if isinstance(x, n.BinOp) and x.op in _COMPARISONS:
            return compare([x.op], [x.left, x.right])
        if isinstance(x, n.BinOp):
            return ir.BinOp(x.op, go(x.left), go(x.right))
        if isinstance(x, n.Compare):
            return compare(x.ops, x.operands)
        if isinstance(x, n.IfExp):
            return ir.IfExp(go(x.cond), go(x.then), go(x.orelse))
        if isinstance(x, n.Index):
            return ir.Index(go(x.value), go(x.index))
        if isinstance(x, n.Slice):
            lower_, upper = (None if b is None else go(b) for b in (x.lower, x.upper))
            return ir.Index(go(x.value), ir.Slice(lower_, upper))
        if isinstance(x, n.ListComp):
            target = _pattern(x.pattern)
            conds = () if x.cond is None else (go(x.cond),)
            return ir.Comp("list", go(x.element), ((target, go(x.iterable), conds),))
        if isinstance(x, n.Call):
            if isinstance(x.func, n.Var) and x.func.name in PRINTED_BUILTINS:
                func = ir.attr(PRINTED_BUILTINS[x.func.name])
            else:
                func = go(x.func)
            return ir.Call(func, tuple(go(a) for a in x.args), tuple((k, go(v)) for k, v in x.kwargs))
        raise TypeError(type(x))

    def compare(ops, operands) -> ir.Node:
        # none compares by identity, as Python wants
        fixed = tuple(("is" if op == "==" else "is not") if op in ("==", "!=") and
                      any(isinstance(s, n.Const) and s.value is None for s in (a, b)) else op
                      for op, a, b in zip(ops, operands, operands[1:]))
        return ir.Compare(fixed, tuple(go(o) for o in operands))

    return go(e)


def _pattern(p: n.Pattern) -> ir.Node:
    return ir.Name(p) if isinstance(p, str) else ir.Tuple(tuple(_pattern(q) for q in p))
