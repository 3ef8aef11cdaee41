"""Expressions for the generated code: values as literals, and partial evaluation (what the constants decide
folded in, the rest kept as a tree for the code generator to lower)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..lang import nodes as n
from .expr import BUILTINS, Evaluator
from .values import BlockRef, Function, OpRef

# Builtins that are not Python's: the generated module imports math for them (``backends.python.lower``).
PRINTED_BUILTINS = {"ceil": "math.ceil", "floor": "math.floor", "log": "math.log", "sqrt": "math.sqrt"}

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
    if isinstance(value, OpRef):
        from ..ops import REGISTRY

        module = n.Var(REGISTRY[value.name].module, span)  # its module class: nn.ReLU6
        if not value.args:
            return module
        # built with arguments, as torchvision writes it: partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        return n.Call(n.Var("partial", span), [module], [(k, literal(v, span)) for k, v in value.args], span)
    if isinstance(value, Function):
        return n.Var(value.definition.name, span)
    raise TypeError(f"no literal for {value!r}")


def is_literal(x: n.Expr) -> bool:
    if isinstance(x, (n.Num, n.Str, n.Const)):
        return True
    if isinstance(x, n.ListExpr):
        return all(is_literal(i) for i in x.items)
    return False


def fold(e: n.Expr, known: Mapping[str, object], subst: Mapping[str, n.Expr] | None = None,
         tensors: Callable[[n.TensorRef, str], n.Expr | None] | None = None) -> n.Expr:
    """Substitute what is known and fold constant parts.

    ``known`` maps names to values, ``subst`` maps names to expressions (the
    symbols of the generated code); names in neither stay as they are.
    """
    subst = subst or {}

    def value(x: n.Expr):
        return Evaluator(known)(x)

    def go(x: n.Expr, known=known, subst=subst) -> n.Expr:
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
            return literal(value(out), x.span) if is_literal(operand) else out
        if isinstance(x, n.BinOp):
            left = go(x.left)
            if x.op in ("and", "or") and is_literal(left):  # the right side only where it is reached
                return go(x.right) if (x.op == "and") == bool(value(left)) else left
            right = go(x.right)
            out = n.BinOp(x.op, left, right, x.span)
            return literal(value(out), x.span) if is_literal(left) and is_literal(right) else out
        if isinstance(x, n.Compare):
            return fold_chain(x, go)
        if isinstance(x, n.IfExp):
            cond = go(x.cond)
            if is_literal(cond):
                return go(x.then) if value(cond) else go(x.orelse)
            return n.IfExp(cond, go(x.then), go(x.orelse), x.span)
        if isinstance(x, n.Index):
            base, index = go(x.value), go(x.index)
            out = n.Index(base, index, x.span)
            return literal(value(out), x.span) if is_literal(base) and is_literal(index) else out
        if isinstance(x, n.Slice):
            base = go(x.value)
            lower = None if x.lower is None else go(x.lower)
            upper = None if x.upper is None else go(x.upper)
            out = n.Slice(base, lower, upper, x.span)
            bounds_known = all(b is None or is_literal(b) for b in (lower, upper))
            return literal(value(out), x.span) if is_literal(base) and bounds_known else out
        if isinstance(x, n.ListComp):
            bound = set(n.pattern_names(x.pattern))
            inner_known = {k: v for k, v in known.items() if k not in bound}
            inner_subst = {k: v for k, v in subst.items() if k not in bound}
            out = n.ListComp(go(x.element, inner_known, inner_subst), x.pattern, go(x.iterable),
                             None if x.cond is None else go(x.cond, inner_known, inner_subst), x.span)
            if is_literal(out.iterable) and free_names(out) <= {k for k in known if callable(known[k])}:
                return literal(value(out), x.span)
            return out
        if isinstance(x, n.Call):
            args = [go(a) for a in x.args]
            kwargs = [(k, go(v)) for k, v in x.kwargs]
            out = n.Call(x.func, args, kwargs, x.span)
            func = known.get(x.func.name) if isinstance(x.func, n.Var) else None
            builtin = isinstance(x.func, n.Var) and x.func.name in BUILTINS and x.func.name not in known
            foldable = (builtin and x.func.name not in ("range", "enumerate", "zip")) or isinstance(func, (Function, OpRef))
            if foldable and all(is_literal(a) for a in args) and all(is_literal(v) for _, v in kwargs):
                return literal(value(out), x.span)  # range(20) stays readable
            return out
        if isinstance(x, n.Attr):
            return n.Attr(go(x.value), x.name, x.span)
        raise TypeError(type(x))

    return go(e)


def fold_chain(x: n.Compare, go: Callable[[n.Expr], n.Expr]) -> n.Expr:
    """``a < b < c``: a known first link that is false is the value (``c`` never reached); one that is true
    drops out (``b < c`` remains)."""
    ops, operands = [], [go(x.operands[0])]
    for op, operand in zip(x.ops, x.operands[1:]):
        right = go(operand)
        if not ops and is_literal(operands[0]) and is_literal(right):
            if not Evaluator({})(n.BinOp(op, operands[0], right, x.span)):
                return n.Const(False, x.span)
            operands = [right]
            continue
        ops.append(op)
        operands.append(right)
    if not ops:
        return n.Const(True, x.span)
    return n.BinOp(ops[0], *operands, x.span) if len(ops) == 1 else n.Compare(ops, operands, x.span)


def free_names(e: n.Expr) -> set[str]:
    """Names an expression reads (builtins called as functions excluded)."""
    found: set[str] = set()

    def go(x) -> None:
        if isinstance(x, n.Var):
            found.add(x.name)
        elif isinstance(x, n.Call):
            if not isinstance(x.func, n.Var) or x.func.name not in BUILTINS:
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
        elif isinstance(x, n.Compare):
            for o in x.operands:
                go(o)
        elif isinstance(x, n.UnaryOp):
            go(x.operand)
        elif isinstance(x, n.IfExp):
            go(x.cond)
            go(x.then)
            go(x.orelse)
        elif isinstance(x, n.Index):
            go(x.value)
            go(x.index)
        elif isinstance(x, n.Slice):
            go(x.value)
            for b in (x.lower, x.upper):
                if b is not None:
                    go(b)
        elif isinstance(x, n.ListComp):
            go(x.iterable)
            inner = free_names(x.element) | (free_names(x.cond) if x.cond is not None else set())
            found.update(inner - set(n.pattern_names(x.pattern)))
        elif isinstance(x, n.Attr):
            go(x.value)

    go(e)
    return found
