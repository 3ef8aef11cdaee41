"""Conditions a generated class already knows where they stand, decided on its IR before it is printed.

Each ``if`` and ``else`` (and each branch of ``a if c else b``) establishes facts: its condition holds in its
body, its negation in its else (``version != 1`` in the else of ``version == 1``; neither ``a`` nor ``b`` in the
else of ``a or b``). A test the facts decide is replaced by its branch, an ``if`` by the statements of the branch
it takes. Nothing is assumed of a parameter's values: only what follows from the conditions themselves.

Across methods (what ``__init__`` shows: ``irattrs``): ``self.p`` stands for the constructor's ``p``, and a guard
``self.X is not None`` is the condition under which ``__init__`` makes X. An assignment a decided guard left dead
(``t = x`` just before ``t = f(t)``) goes, its value carried into the next where that one reads it.
"""

from __future__ import annotations

import dataclasses
import operator
from functools import cache

from . import ir
from .irattrs import SELF, aliases_of, canon, guards_of, names_set, pure, setters
from .irbuild import statements

_FLIP = {"==": "!=", "!=": "==", "is": "is not", "is not": "is"}
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}
_UNKNOWN = object()


def simplify_class(init: list, forward: list, taps: list | None = None, methods: list = ()) -> tuple:
    """``(init, forward, taps, methods)`` with the conditions each already knows decided (``methods``: the class's
    other ``def``s)."""
    others = [forward, taps or [], *(m.body for m in methods if isinstance(m, ir.FunctionDef))]
    assigned_later = {a for body in others for s in statements(body) for a, _ in setters(s)}
    if None in assigned_later:  # a method sets an attribute by a name it computes: any might change
        aliases, guards, stable = {}, {}, frozenset()
    else:
        aliases = aliases_of(init, assigned_later)
        guards = {a: c for a, c in guards_of(init, aliases).items() if a not in assigned_later}
        stable = _Stable(assigned_later)
    in_init = _Facts(frozenset(), aliases, frozenset(aliases), {})
    method = _Facts(frozenset(), {}, stable, guards)
    init = _body(init, in_init)
    forward = _body(forward, method)
    taps = None if taps is None else _body(taps, method)
    methods = [dataclasses.replace(m, body=tuple(_body(m.body, method))) if isinstance(m, ir.FunctionDef) else m
               for m in methods]
    return init, forward, taps, methods


# ------------------------------------------------------------- facts


class _Stable:
    """In a method other than ``__init__``: the attributes of self no method assigns (fixed while it runs)."""

    def __init__(self, assigned: set) -> None:
        self.assigned = assigned

    def __contains__(self, attr: str) -> bool:
        return attr not in self.assigned


@dataclasses.dataclass(frozen=True)
class _Facts:
    known: frozenset  # conditions that hold, each canonical (``self.p`` for a parameter ``p`` of ``__init__``)
    aliases: dict  # in __init__: parameter -> self.p
    stable: object  # the attributes of self that a fact may read (``in``)
    guards: dict  # attribute -> the condition under which it is not None

    def assume(self, test: ir.Node, holds: bool = True) -> _Facts:
        """These facts and those ``test`` (or, ``holds`` false, its negation) gives."""
        test = canon(test, self.aliases)
        found: set = set()

        def add(c: ir.Node, positive: bool) -> None:
            if isinstance(c, ir.Unary) and c.op == "not":
                return add(c.operand, not positive)
            if isinstance(c, ir.BinOp) and c.op == ("and" if positive else "or"):
                add(c.left, positive)
                return add(c.right, positive)
            guarded = self._guard(c)
            if guarded is not None:
                add(guarded[0], positive == guarded[1])
            c = c if positive else _negated(c)
            if pure(c, self.stable):
                found.add(c)

        add(test, holds)
        return dataclasses.replace(self, known=self.known | found)

    def without(self, names: set[str]) -> _Facts:
        """These facts less those that read a name just assigned."""
        if not names or not self.known:
            return self
        return dataclasses.replace(self, known=frozenset(c for c in self.known if not _reads(c) & names))

    def decide(self, test: ir.Node) -> bool | None:
        """Whether ``test`` holds where these facts do: True, False, or None where they do not say."""
        return self._decide(canon(test, self.aliases))

    def _decide(self, c: ir.Node) -> bool | None:
        if isinstance(c, ir.Const) and isinstance(c.value, bool):
            return c.value
        if c in self.known:
            return True
        if _negated(c) in self.known:
            return False
        if isinstance(c, ir.Unary) and c.op == "not":
            inner = self._decide(c.operand)
            return None if inner is None else not inner
        if isinstance(c, ir.BinOp) and c.op in ("and", "or"):
            left, right = self._decide(c.left), self._decide(c.right)
            stop = c.op == "or"  # the value that settles it alone
            if stop in (left, right):
                return stop
            return None if left is None or right is None else not stop
        if isinstance(c, ir.Compare) and len(c.ops) == 1:
            guarded = self._guard(c)
            if guarded is not None:
                inner = self._decide(guarded[0])
                return None if inner is None else inner == guarded[1]
            return _evaluate(c.ops[0], self._value(c.operands[0]), self._value(c.operands[1]))
        return None

    def _guard(self, c: ir.Node) -> tuple | None:
        """``self.X is not None`` where X has a guard C: (C, True); ``self.X is None``: (C, False)."""
        if isinstance(c, ir.Compare) and c.ops in (("is",), ("is not",)) and c.operands[1] == ir.Const(None):
            x = c.operands[0]
            if isinstance(x, ir.Attr) and x.value == SELF and x.attr in self.guards:
                return self.guards[x.attr], c.ops == ("is not",)
        return None

    def _value(self, e: ir.Node):
        """The constant ``e`` is, written or known by a fact ``e == k``."""
        if isinstance(e, ir.Const):
            return e.value
        for c in self.known:
            if isinstance(c, ir.Compare) and c.ops == ("==",) and c.operands[0] == e and \
                    isinstance(c.operands[1], ir.Const):
                return c.operands[1].value
        return _UNKNOWN


@cache
def _reads(fact: ir.Node) -> frozenset:
    return frozenset(ir.reads(fact))


def _negated(c: ir.Node) -> ir.Node:
    if isinstance(c, ir.Compare) and len(c.ops) == 1 and c.ops[0] in _FLIP:
        return ir.Compare((_FLIP[c.ops[0]],), c.operands)
    if isinstance(c, ir.Unary) and c.op == "not":
        return c.operand
    return ir.Unary("not", c)


def _evaluate(op: str, left, right) -> bool | None:
    if left is _UNKNOWN or right is _UNKNOWN:
        return None
    if op in ("is", "is not"):  # only None's identity is certain
        return None if left is not None and right is not None else (left is right) == (op == "is")
    try:
        return bool(_COMPARE[op](left, right)) if op in _COMPARE else None
    except TypeError:
        return None


# ------------------------------------------------------------- rewriting


def _body(stmts, facts: _Facts) -> list:
    out: list = []
    for s in stmts:
        if isinstance(s, ir.If):
            verdict = facts.decide(s.test)
            if verdict is not None:
                out += _body(s.body if verdict else s.orelse, facts)
            else:
                test = _expr(s.test, facts)
                body, orelse = _body(s.body, facts.assume(test)), _body(s.orelse, facts.assume(test, False))
                if body or orelse:
                    out.append(ir.If(test, tuple(body), tuple(orelse)) if body or not s.body else
                               ir.If(_negated(test), tuple(orelse)))
        elif isinstance(s, ir.For):
            inside = facts.without(names_set(s))
            out.append(ir.For(s.target, _expr(s.iterable, facts), tuple(_body(s.body, inside))))
        elif isinstance(s, ir.FunctionDef):
            out.append(s)
        else:
            out.append(_expr(s, facts) if any(_decidable(x) for x in s.walk()) else s)
        facts = facts.without(names_set(s))
    return _without_dead_stores(out)


def _expr(node, facts: _Facts):
    """``node`` with each ``a if c else b`` whose ``c`` the facts decide replaced by its branch."""
    if isinstance(node, ir.IfExp):
        verdict = facts.decide(node.test)
        if verdict is not None:
            return _expr(node.body if verdict else node.orelse, facts)
        test = _expr(node.test, facts)
        return ir.IfExp(test, _expr(node.body, facts.assume(test)), _expr(node.orelse, facts.assume(test, False)))
    if isinstance(node, ir.BinOp) and node.op in ("and", "or") and facts.decide(node.left) == (node.op == "and"):
        return _expr(node.right, facts)  # True and b, False or b: b
    if isinstance(node, ir.Comp):  # its own names are not those the facts speak of
        facts = facts.without({t.id for c in node.clauses for t in c[0].walk() if isinstance(t, ir.Name)})
    if isinstance(node, ir.Node):
        changes = {f.name: _expr(getattr(node, f.name), facts) for f in dataclasses.fields(node)}
        return node if all(changes[k] is getattr(node, k) for k in changes) else dataclasses.replace(node, **changes)
    if isinstance(node, tuple):
        items = tuple(_expr(v, facts) for v in node)
        return node if all(a is b for a, b in zip(items, node)) else items
    return node


def _decidable(node: ir.Node) -> bool:
    return isinstance(node, ir.IfExp) or isinstance(node, ir.BinOp) and node.op in ("and", "or")


def _without_dead_stores(stmts: list) -> list:
    """``t = x`` right before ``t = f(t)`` (or before ``t = g()``, which does not read it): the first dropped,
    ``x`` carried into the second. Only a name or a constant goes so, nothing with a call's effects."""
    out: list = []
    for s in stmts:
        last = out[-1] if out else None
        if _plain_store(s) and _plain_store(last) and s.target == last.target and \
                isinstance(last.value, (ir.Name, ir.Const)) and not any(isinstance(x, ir.Comp) for x in s.walk()):
            out[-1] = dataclasses.replace(s, value=ir.substitute(s.value, {s.target.id: last.value}))
        else:
            out.append(s)
    return out


def _plain_store(s) -> bool:
    return isinstance(s, ir.Assign) and isinstance(s.target, ir.Name) and not s.annotation


__all__ = ["simplify_class"]
