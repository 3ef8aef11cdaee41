"""What a generated class's ``__init__`` shows of the attributes of self, for ``irfacts``: which stand for a
constructor parameter (``self.p = p``, neither given a value again), and under which condition on them an attribute
is not None (set to None, then under ``if C:`` to a value that cannot be None: a module, a parameter, a helper's
tensor). Every question is asked of the IR's trees.
"""

from __future__ import annotations

import ast
from functools import cache

from . import ir
from .helpers import HELPERS
from .irbuild import statements

SELF = ir.Name("self")
_SETTERS = ("register_buffer", "register_parameter", "add_module")


def canon(node: ir.Node, aliases: dict) -> ir.Node:
    """``node`` with each parameter written as the attribute that stands for it (in ``__init__``)."""
    if not aliases:
        return node
    return ir.transform(node, lambda x: aliases.get(x.id) if isinstance(x, ir.Name) else None)


def pure(c: ir.Node, stable, names: bool = True) -> bool:
    """Whether ``c`` reads only constants, attributes of self in ``stable`` and (``names``) plain names: nothing
    a call could change."""
    if isinstance(c, ir.Attr):
        return c.value == SELF and c.attr in stable
    if isinstance(c, ir.Name):
        return names
    if isinstance(c, ir.Const):
        return True
    return isinstance(c, (ir.Compare, ir.BinOp, ir.Unary)) and all(pure(x, stable, names) for x in c.children())


def names_set(s: ir.Node) -> set[str]:
    """The local names a statement (at any depth) gives a value or deletes."""
    found: set[str] = set()
    for x in statements([s]):
        targets = (x.target,) if isinstance(x, (ir.Assign, ir.AugAssign, ir.For)) else \
            x.targets if isinstance(x, ir.Delete) else ()
        found |= {t.id for target in targets for t in _target_names(target)}
        if isinstance(x, ir.FunctionDef):
            found.add(x.name)
    return found


def _target_names(target: ir.Node):
    if isinstance(target, ir.Name):
        yield target
    elif isinstance(target, (ir.Tuple, ir.List)):
        for item in target.items:
            yield from _target_names(item)


def setters(s: ir.Node) -> list:
    """(attribute, value) for each attribute of self a statement itself sets, deletes or registers: the value None
    where not known, the attribute None where the statement computes its name."""
    if isinstance(s, (ir.Assign, ir.AugAssign, ir.Delete)):
        targets = s.targets if isinstance(s, ir.Delete) else (s.target,)
        return [(t.attr, s.value if isinstance(s, ir.Assign) and t is s.target else None)
                for target in targets for t in target.walk() if isinstance(t, ir.Attr) and t.value == SELF]
    found = []
    for call in s.walk() if isinstance(s, ir.Expr) else ():
        if not isinstance(call, ir.Call):
            continue
        method = isinstance(call.func, ir.Attr) and call.func.value == SELF and call.func.attr in _SETTERS
        if method or (call.func == ir.Name("setattr") and call.args[:1] == (SELF,)):
            args = call.args if method else call.args[1:]
            key = args[0] if args else None
            named = isinstance(key, ir.Const) and isinstance(key.value, str)
            found.append((key.value if named else None, args[1] if named and len(args) > 1 and not call.kwargs
                          else None))
    return found


def aliases_of(init: list, assigned_later: set) -> dict:
    """parameter -> ``self.p``: where ``__init__`` sets ``self.p = p`` and neither is given a value again."""
    sets = [(a, v) for s in statements(init) for a, v in setters(s)]
    locals_set = set().union(*(names_set(s) for s in init)) if init else set()
    return {a: ir.Attr(SELF, a) for a, v in sets if v == ir.Name(a) and a not in locals_set and
            a not in assigned_later and sum(b == a for b, _ in sets) == 1 and None not in (b for b, _ in sets)}


def guards_of(init: list, aliases: dict) -> dict:
    """attribute -> the condition (on parameters) under which ``__init__`` leaves it not None: set to None, then
    under ``if C:`` (or its else) to a value that cannot be None, and nowhere else; or set once to such a value."""
    where: dict = {}  # attribute -> [(condition, value)]
    for s in init:
        if isinstance(s, ir.If):
            for branch, holds in ((s.body, s.test), (s.orelse, ir.Unary("not", s.test))):
                for inner in statements(branch):
                    for a, v in setters(inner):
                        where.setdefault(a, []).append((holds if any(inner is b for b in branch) else None, v))
        else:
            for inner in statements([s]):
                for a, v in setters(inner):
                    where.setdefault(a, []).append((ir.Const(True) if inner is s else None, v))
    if None in where:  # an attribute set by a name __init__ computes: any may be
        return {}
    guards = {}
    for a, sets in where.items():
        (cond, value), first = sets[-1], sets[0]
        if len(sets) == 1 and cond == ir.Const(True) or len(sets) == 2 and first == (ir.Const(True), ir.Const(None)):
            if cond is not None and pure(canon(cond, aliases), aliases, names=False) and _not_none(value):
                guards[a] = canon(cond, aliases)
    return guards


def _not_none(value) -> bool:
    """Whether a value cannot be None: a literal, an object a class makes, a helper's value typed without None."""
    if isinstance(value, ir.Const):
        return value.value is not None
    if isinstance(value, (ir.Tuple, ir.List)):
        return True
    if not isinstance(value, ir.Call):
        return False
    func = value.func.attr if isinstance(value.func, ir.Attr) else getattr(value.func, "id", "")
    if func.lstrip("_")[:1].isupper():
        return True
    return isinstance(value.func, ir.Name) and func in HELPERS and _typed_not_none(func)


@cache
def _typed_not_none(helper: str) -> bool:
    tree = ast.parse(HELPERS[helper]).body[0]
    returns = "None" if not isinstance(tree, ast.FunctionDef) or tree.returns is None else ast.unparse(tree.returns)
    return "None" not in returns and "Any" not in returns and "object" not in returns


__all__ = ["SELF", "aliases_of", "canon", "guards_of", "names_set", "pure", "setters"]
