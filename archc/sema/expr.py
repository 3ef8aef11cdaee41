"""Expressions: safe evaluation within a budget.

Nothing here calls ``eval``: the evaluator walks the AST and allows only the operators, the
builtins the language documents and the spec's own pure functions (``def``). It computes what
Python computes for the same text (the printer in ``exprfold`` writes it so). Every value is
checked as it is made: integers within ``MAX_INT``, floats finite, lists and strings within
their size limits; every step counts against a budget, as does every item of a list or character
of a string made and every item compared, so no expression can hang the compiler or hold more
memory than the budget allows. The builtins are in ``builtin_functions``; printing and partial evaluation in
``exprfold``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from .builtin_functions import BUILTINS, WORK, _ints
from .values import MAX_INT, MAX_LIST, MAX_STRING, BlockRef, Function, Iteration, OpRef, TensorInfo, size, type_name

MAX_STEPS = 2_000_000  # evaluation steps (expression nodes, loop iterations, items made or compared) for one graph
_CONTAINERS = (list, tuple, str, Iteration)
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class Budget:
    """Counts evaluation steps for one graph (a check: for all its variants); past the limit, a located error
    names it."""

    def __init__(self, limit: int | None = None):
        self.limit = MAX_STEPS if limit is None else limit
        self.steps = 0

    def spend(self, span: n.Span | None, steps: int = 1) -> None:
        self.steps += steps
        if self.steps > self.limit:
            raise BudgetExceeded(SpecError(
                f"evaluating the spec takes more than {self.limit:,} steps", span,
                hint="a loop or list is far larger than any network needs (each item of a list made or "
                     "compared is a step); check repeat counts and ranges"))

    def hold(self, value, span: n.Span | None):
        """Charge for a list, tuple or string just made: its size, nested items included."""
        if isinstance(value, _CONTAINERS):
            self.spend(span, size(value, self.limit - self.steps))
        return value

    def compare(self, left, right, span: n.Span | None) -> None:
        """Charge for comparing two values: at most the smaller one's size."""
        if isinstance(left, _CONTAINERS) and isinstance(right, _CONTAINERS):
            room = self.limit - self.steps
            self.spend(span, min(size(left, room), size(right, room)))


class BudgetExceeded(SpecError):
    """Raised once the budget is spent; elaboration stops at once."""

    def __init__(self, error: SpecError):
        super().__init__(error.message, error.span, error.hint)


def check_value(value, span: n.Span | None):
    """Every value an expression makes: finite, within the size limits, of a type the language has."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise SpecError("number too large", span, hint=f"values are limited to {MAX_INT}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError("number too large (not finite)", span, hint="floats must be finite")
        return value
    if isinstance(value, complex):
        raise SpecError("the result is a complex number", span, hint="a negative number to a fractional power")
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST:
            raise SpecError(f"list of {len(value)} items is too long (limit {MAX_LIST})", span)
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise SpecError(f"string of {len(value)} characters is too long (limit {MAX_STRING})", span)
        return value
    return value


_BINARY: dict[str, Callable] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Evaluator:
    """Evaluates expressions in ``env``; ``tensors`` answers ``in`` and ``out``."""

    def __init__(self, env: Mapping[str, object], tensors: Callable[[str, n.Span], TensorInfo] | None = None,
                 budget: Budget | None = None):
        self.env = env
        self.tensors = tensors
        self.budget = Budget() if budget is None else budget  # bounded even where the caller gives none

    def __call__(self, e: n.Expr):
        self.budget.spend(e.span)
        method = getattr(self, "_" + type(e).__name__)
        return method(e)

    def _Num(self, e: n.Num):
        return check_value(e.value, e.span)

    def _Str(self, e: n.Str):
        return e.value

    def _Const(self, e: n.Const):
        return e.value

    def _Var(self, e: n.Var):
        if e.name in self.env:
            return self.env[e.name]
        if e.name in BUILTINS:
            return BUILTINS[e.name]
        from ..ops import REGISTRY

        if e.name in REGISTRY and REGISTRY[e.name].value:
            return OpRef(e.name)
        raise SpecError(f"undefined name '{e.name}'", e.span, hint=did_you_mean(e.name, list(self.env)))

    def _TensorRef(self, e: n.TensorRef):
        if self.tensors is None:
            raise SpecError(f"'{e.which}' refers to a tensor and can only be used inside a block body", e.span)
        return self.tensors(e.which, e.span)

    def _Attr(self, e: n.Attr):
        value = self(e.value)
        if isinstance(value, TensorInfo) and e.name in TensorInfo.ATTRIBUTES:
            result = getattr(value, e.name)
            if result is None:
                raise SpecError(f"'{e.name}' is not defined for {value.kind}", e.span)
            return result
        raise SpecError(f"no attribute '{e.name}' on a {type_name(value)}", e.span,
                        hint="tensors have .channels, .height, .width (.features once flattened, "
                             ".length as tokens)")

    def _ListExpr(self, e: n.ListExpr):
        items = [self(i) for i in e.items]
        return self.budget.hold(tuple(items) if e.tuple else items, e.span)

    def _UnaryOp(self, e: n.UnaryOp):
        value = self(e.operand)
        if e.op == "not":
            return not value
        if not _is_number(value):
            raise SpecError(f"bad operand type for unary {e.op}: {type_name(value)}", e.span)
        return check_value(-value if e.op == "-" else +value, e.span)  # +true is 1, as in Python

    def _Compare(self, e: n.Compare):
        """``a < b < c``: ``a < b and b < c``, each operand evaluated once, the first false comparison ends it."""
        left = self(e.operands[0])
        result = True
        for op, operand in zip(e.ops, e.operands[1:]):
            right = self(operand)
            result = self._binary(op, left, right, e.span)
            if not result:
                return result
            left = right
        return result

    def _BinOp(self, e: n.BinOp):
        if e.op == "and":
            left = self(e.left)
            return self(e.right) if left else left
        if e.op == "or":
            left = self(e.left)
            return left if left else self(e.right)
        return self._binary(e.op, self(e.left), self(e.right), e.span)

    def _binary(self, op: str, left, right, span: n.Span):
        if op == "**":
            return _power(left, right, span)
        if op in ("/", "//", "%") and _is_number(right) and right == 0:
            raise SpecError("division by zero", span)
        if op in ("+", "*") and (isinstance(left, (list, tuple, str)) or isinstance(right, (list, tuple, str))):
            self._check_size(op, left, right, span)
        unsupported = op == "%" and isinstance(left, str)  # Python's string formatting: not in the language
        if isinstance(left, (Iteration, TensorInfo, Function, BlockRef, OpRef)) or \
                isinstance(right, (Iteration, TensorInfo, Function, BlockRef, OpRef)):
            unsupported = unsupported or op not in ("==", "!=")
        if unsupported:
            raise SpecError(f"unsupported operand types for {op}: {type_name(left)} and {type_name(right)}", span)
        if op in _COMPARISONS:
            self.budget.compare(left, right, span)
        try:
            return self.budget.hold(check_value(_BINARY[op](left, right), span), span)
        except TypeError:
            raise SpecError(f"unsupported operand types for {op}: {type_name(left)} and {type_name(right)}",
                            span) from None
        except (OverflowError, ValueError, ZeroDivisionError) as exc:
            raise SpecError(str(exc) or "arithmetic error", span) from None

    @staticmethod
    def _check_size(op: str, left, right, span) -> None:
        """Lists and strings grow by ``+`` and ``*``: check the size before making them."""
        if op == "+":
            if isinstance(left, (list, tuple, str)) and isinstance(right, (list, tuple, str)):
                size = len(left) + len(right)
            else:
                return
        else:
            seq, count = (left, right) if isinstance(left, (list, tuple, str)) else (right, left)
            if not isinstance(count, int) or isinstance(count, bool):
                return
            size = len(seq) * max(count, 0)
        limit = MAX_STRING if isinstance(left, str) or isinstance(right, str) else MAX_LIST
        if size > limit:
            raise SpecError(f"{'string' if limit == MAX_STRING else 'list'} of {size} items is too long "
                            f"(limit {limit})", span)

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

    def _Slice(self, e: n.Slice):
        value = self(e.value)
        if not isinstance(value, (list, tuple, str)):
            raise SpecError(f"a {type_name(value)} cannot be sliced", e.span)
        bounds = []
        for b in (e.lower, e.upper):
            v = None if b is None else self(b)
            if v is not None and not _ints(v):
                raise SpecError(f"slice bounds must be integers, not {type_name(v)}", b.span)
            bounds.append(v)
        return self.budget.hold(value[bounds[0]:bounds[1]], e.span)

    def _ListComp(self, e: n.ListComp):
        items = self(e.iterable)
        if not isinstance(items, (list, tuple, Iteration)):
            raise SpecError(f"a comprehension needs a list or range(...), got {type_name(items)}", e.iterable.span)
        env = dict(self.env)
        inner = Evaluator(env, self.tensors, self.budget)
        out = []
        for item in items:
            bind(e.pattern, item, env, e.span)
            if e.cond is None or inner(e.cond):
                out.append(inner(e.element))
                if len(out) > MAX_LIST:
                    raise SpecError(f"list of more than {MAX_LIST} items is too long", e.span)
        return self.budget.hold(out, e.span)

    def _Call(self, e: n.Call):
        name = e.func.name if isinstance(e.func, n.Var) else "this"
        func = self.env.get(name) if name in self.env else BUILTINS.get(name)
        if isinstance(func, Function):
            return self._call_function(func, e)
        if name not in self.env and func is None and isinstance(e.func, n.Var):
            func = self._Var(e.func) if _is_value_op(name) else None
        if isinstance(func, OpRef) and (name != func.name or func.args):  # generated, it would build the class
            raise SpecError(f"'{name}' holds an op: its arguments are given where the op is written", e.span,
                            hint=f"write {func.name}(...) with every argument where '{name}' gets its value")
        if isinstance(func, OpRef):
            return self._op_with(func, e)
        if not callable(func) or func not in BUILTINS.values():
            raise SpecError(f"'{name}' cannot be called in an expression", e.span,
                            hint="expressions may call " + ", ".join(sorted(BUILTINS)) + " and the spec's own def's")
        if e.kwargs:
            raise SpecError(f"{name}() takes no keyword arguments", e.span)
        args = [self(a) for a in e.args]
        try:
            if name in WORK:  # before the work is done
                self.budget.spend(e.span, WORK[name](self.budget.limit - self.budget.steps, *args))
            return self.budget.hold(check_value(func(*args), e.span), e.span)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SpecError(f"{name}(): {exc}", e.span) from None

    def _op_with(self, op: OpRef, e: n.Call) -> OpRef:
        """``batchnorm(eps = 0.001)``: the op as a value with arguments it is built with (a parameter that holds
        it builds ``partial(nn.BatchNorm2d, eps=0.001)``), given by name, as the class's first argument is the
        layer's input width."""
        from ..ops import REGISTRY

        fields = REGISTRY[op.name].positional
        if e.args:
            raise SpecError(f"{op.name} as a value takes its arguments by name", e.args[0].span,
                            hint=f"write {op.name}({fields[0] if fields else 'eps'} = ...)")
        args = {}
        seen = set()
        for key, value in e.kwargs:
            if key not in fields:
                raise SpecError(f"{op.name} has no argument '{key}'", value.span,
                                hint=did_you_mean(key, fields, otherwise=f"its arguments: {', '.join(fields) or 'none'}"))
            if key in seen:
                raise SpecError(f"{op.name}() got '{key}' twice", value.span)
            seen.add(key)
            v = self(value)
            args[key] = tuple(v) if isinstance(v, list) else v
        return OpRef(op.name, tuple(args.items()))

    def _call_function(self, func: Function, e: n.Call):
        d = func.definition
        names = [p.name for p in d.params]
        args = [self(a) for a in e.args]
        if len(args) > len(names):
            raise SpecError(f"{d.name}() takes {len(names)} arguments but {len(args)} were given", e.span)
        bound = dict(zip(names, args))
        for key, value in e.kwargs:
            if key not in names:
                raise SpecError(f"{d.name}() has no parameter '{key}'", value.span, hint=did_you_mean(key, names))
            if key in bound:
                raise SpecError(f"{d.name}() got '{key}' twice", value.span)
            bound[key] = self(value)
        for p in d.params:
            if p.name not in bound:
                if p.default is None:
                    raise SpecError(f"{d.name}() is missing its argument '{p.name}'", e.span)
                bound[p.name] = Evaluator(func.globals, None, self.budget)(p.default)
        env = dict(func.globals)
        env.update(bound)
        inner = Evaluator(env, None, self.budget)
        try:
            for let in d.lets:
                env[let.name] = inner(let.value)
            return inner(d.result)
        except BudgetExceeded:
            raise
        except SpecError as exc:
            raise exc.add_note(f"in {d.name}(), called here", e.span) from None


def bind(pattern: n.Pattern, value, env: dict, span: n.Span) -> None:
    """Assign ``value`` to the names of ``pattern``, unpacking tuples and lists."""
    if isinstance(pattern, str):
        env[pattern] = value
        return
    if not isinstance(value, (list, tuple)) or len(value) != len(pattern):
        got = f"{len(value)} values" if isinstance(value, (list, tuple)) else f"a {type_name(value)}"
        raise SpecError(f"cannot unpack {got} into {len(pattern)} names", span)
    for p, v in zip(pattern, value):
        bind(p, v, env, span)


def _is_value_op(name: str) -> bool:
    from ..ops import REGISTRY

    return name in REGISTRY and REGISTRY[name].value


def _is_number(v) -> bool:
    return isinstance(v, (int, float))  # bools too: arithmetic takes them as 0 and 1, as Python does


def _power(left, right, span: n.Span):
    if not (_is_number(left) and _is_number(right)):
        raise SpecError(f"unsupported operand types for **: {type_name(left)} and {type_name(right)}", span)
    if _ints(left, right) and right > 64 and abs(left) > 1:  # past MAX_INT: refused before it is computed
        raise SpecError("exponent too large", span, hint=f"values are limited to {MAX_INT}")
    if left == 0 and right < 0:
        raise SpecError("zero to a negative power", span)
    try:
        return check_value(left**right, span)
    except OverflowError:
        raise SpecError("number too large", span) from None


def evaluate(e: n.Expr, env: Mapping[str, object], tensors=None, budget: Budget | None = None):
    return Evaluator(env, tensors, budget)(e)


__all__ = ["BUILTINS", "MAX_INT", "MAX_LIST", "MAX_STEPS", "BlockRef", "Budget", "BudgetExceeded", "Evaluator",
           "Function", "Iteration", "OpRef", "TensorInfo", "bind", "check_value", "evaluate", "type_name"]
