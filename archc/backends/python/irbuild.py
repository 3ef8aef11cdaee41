"""Pieces of IR the emitters of ``__init__`` and ``forward`` share: a module's attribute read or set (a name
that is no identifier goes through ``getattr``/``add_module``), an interpolated name, a loop's target, an
``if`` with either branch possibly empty, and the pass that drops the ``let`` bindings nothing reads.

Every decision here is made on trees (``ir.reads`` says which names a statement reads), never on printed text.
"""

from __future__ import annotations

from collections import Counter

from ...lang import nodes as n
from . import ir
from .emit import is_attribute


def read_attribute(owner: ir.Node, name: str) -> ir.Node:
    """``self.conv1``, or ``getattr(self, "proj-1")``."""
    return ir.Attr(owner, name) if is_attribute(name) else ir.call("getattr", owner, ir.Const(name))


def set_attribute(owner: ir.Node, name: str, value: ir.Node, comment: str = "") -> ir.Node:
    """``self.conv1 = value``, or ``self.add_module("proj-1", value)`` (which also registers a None)."""
    if is_attribute(name):
        return ir.Assign(ir.Attr(owner, name), value, comment)
    return ir.Expr(ir.call(ir.Attr(owner, "add_module"), ir.Const(name), value), comment)


def let(name: str, value: ir.Node, comment: str = "") -> ir.Assign:
    """A spec ``let`` as an assignment ``prune_lets`` may drop."""
    return ir.Assign(ir.Name(name), value, comment, let=True)


def if_(test: ir.Node, then: list, orelse: list = ()) -> list:
    """``if test:`` with both branches, leaving out an empty one (``if not (test):`` for an else alone)."""
    if then:
        return [ir.If(test, tuple(then), tuple(orelse))]
    if orelse:
        return [ir.If(ir.Unary("not", test), tuple(orelse))]
    return []


def loop_target(pattern: n.Pattern, body) -> ir.Node:
    """A for loop's target: a name or a tuple pattern, each name the body never reads written ``_``."""

    def go(p: n.Pattern) -> ir.Node:
        return ir.Name(p) if isinstance(p, str) else ir.Tuple(tuple(go(q) for q in p))

    return _unread(go(pattern), body)


def interpolated(target: n.Target, lower_part) -> ir.Node:
    """An interpolated name as a Python string: a literal when every part is known, else an f-string, or a
    concatenation where a part holds a quote or a backslash (an f-string cannot hold its own quotes before
    Python 3.12). ``lower_part`` gives each interpolated expression's IR; a literal number or string is written
    into the name's text."""
    parts: list = []  # str: text; ir.Node: a value
    for p in target.parts:
        value = p if isinstance(p, str) else lower_part(p)
        text = _literal_text(value) if isinstance(value, ir.Node) else value
        if text is not None:
            if parts and isinstance(parts[-1], str):
                parts[-1] += text
            else:
                parts.append(text)
        else:
            parts.append(value)
    if all(isinstance(p, str) for p in parts):
        return ir.Const("".join(parts))
    quoted = any(c in p for p in parts if isinstance(p, str) for c in "\"\\") or \
        any(isinstance(x, ir.Const) and isinstance(x.value, str) for p in parts if not isinstance(p, str)
            for x in p.walk())
    if not quoted:
        return ir.FString(tuple(parts))
    pieces = [ir.Const(p) if isinstance(p, str) else ir.call("str", p) for p in parts]
    out = pieces[0]
    for piece in pieces[1:]:
        out = ir.BinOp("+", out, piece)
    return out


def _literal_text(value: ir.Node) -> str | None:
    """The text a literal interpolated into a name reads as: ``3``, ``-1``, ``a`` (of "a")."""
    if isinstance(value, ir.Unary) and value.op == "-" and isinstance(value.operand, ir.Const):
        inner = _literal_text(value.operand)
        return None if inner is None or not inner.isdigit() else "-" + inner
    if isinstance(value, ir.Const) and type(value.value) is int:
        return str(value.value)
    if isinstance(value, ir.Const) and isinstance(value.value, str) and not any(c in value.value for c in "\"\\{}"):
        return value.value
    return None


# ------------------------------------------------------------- dropping unread lets


def prune_lets(body: list, read_after: set[str] = frozenset()) -> list:
    """Drop the ``let`` bindings (``ir.Assign`` with ``let``) that nothing reads (a let may serve ``__init__``
    only, or ``forward`` only), then the loops and branches left empty. ``read_after``: names that code after
    ``body`` reads (a block's output width). A dropped let gives back its own reads, so a long chain of lets
    costs time in proportion to its length."""
    units: list[ir.Node] = []  # every simple statement and every loop or branch header, in order

    def collect(stmts) -> None:
        for s in stmts:
            units.append(s)
            for inner in _bodies(s):
                collect(inner)

    collect(body)
    reads = [own_reads(u) for u in units]
    counts: Counter = Counter(read_after)
    for r in reads:
        counts.update(r)
    lets_of: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        if isinstance(u, ir.Assign) and u.let:
            lets_of.setdefault(u.target.id, []).append(i)
    alive = [True] * len(units)
    pending = [i for indexes in lets_of.values() for i in indexes]
    while pending:
        i = pending.pop()
        name = units[i].target.id
        if not alive[i] or counts[name] > (name in reads[i]):
            continue  # something else reads the name
        alive[i] = False
        counts.subtract(reads[i])
        for read in reads[i]:
            pending += [j for j in lets_of.get(read, ()) if alive[j]]
    position = iter(range(len(units)))

    def rebuild(stmts) -> list:
        out = []
        for s in stmts:
            keep = alive[next(position)]
            if isinstance(s, ir.If):
                body_, orelse = rebuild(s.body), rebuild(s.orelse)
                out += _kept_if(s, body_, orelse)
            elif isinstance(s, ir.For):
                inner = rebuild(s.body)
                if inner:
                    out.append(ir.For(_unread(s.target, inner), s.iterable, tuple(inner)))
            elif keep:
                out.append(s)
        return out

    return rebuild(body)


def _unread(target: ir.Node, body) -> ir.Node:
    """A loop's target with ``_`` for each name its body does not read (a tuple of nothing read: one ``_``)."""
    read: set[str] = set()
    for s in body:
        read |= ir.reads(s)

    def go(t: ir.Node) -> ir.Node:
        if isinstance(t, ir.Name):
            return t if t.id in read else ir.Name("_")
        if isinstance(t, ir.Tuple):
            items = tuple(go(u) for u in t.items)
            return ir.Name("_") if all(isinstance(u, ir.Name) and u.id == "_" for u in items) else ir.Tuple(items)
        return t

    return go(target)


def drop_empty(body: list) -> list:
    """``body`` without the loops and branches that hold nothing."""
    out = []
    for s in body:
        if isinstance(s, ir.If):
            out += _kept_if(s, drop_empty(s.body), drop_empty(s.orelse))
        elif isinstance(s, ir.For):
            inner = drop_empty(s.body)
            if inner:
                out.append(ir.For(_unread(s.target, inner), s.iterable, tuple(inner)))
        else:
            out.append(s)
    return out


def _kept_if(s: ir.If, body: list, orelse: list) -> list:
    if not body and len(orelse) == 1 and isinstance(orelse[0], ir.If):
        return [ir.If(s.test, (), tuple(orelse))]  # an elif follows: the if keeps a pass
    return if_(s.test, body, orelse)


def _bodies(s: ir.Node) -> list:
    if isinstance(s, ir.If):
        return [s.body, s.orelse]
    if isinstance(s, ir.For):
        return [s.body]
    return []


def own_reads(s: ir.Node) -> set[str]:
    """The names a statement reads itself: of a loop or branch, its header's."""
    if isinstance(s, ir.If):
        return ir.reads(s.test)
    if isinstance(s, ir.For):
        return ir.reads(s.iterable)
    return ir.reads(s)


# ------------------------------------------------------------- questions about a body


def statements(body):
    """Every statement of ``body``, those inside loops and branches too, in order."""
    for s in body:
        yield s
        for inner in _bodies(s):
            yield from statements(inner)


def assigns(body, name: str) -> bool:
    """Whether a statement of ``body``, at any depth, gives the local ``name`` a value."""
    target = ir.Name(name)
    return any(isinstance(s, ir.Assign) and s.target == target for s in statements(body))


def reads_name(body, name: str) -> bool:
    """Whether a statement of ``body`` reads ``name``; an assignment to the name counts only where its value
    reads it (``channels = channels + 32``)."""
    target = ir.Name(name)
    return any(name in (ir.reads(s.value) if isinstance(s, ir.Assign) and s.target == target else own_reads(s))
               for s in statements(body))


def without_assignments(body, names: set[str]) -> list:
    """``body`` without the assignments to the locals ``names``, at any depth (empty loops and branches stay:
    ``drop_empty`` removes them)."""
    out = []
    for s in body:
        if isinstance(s, ir.If):
            out.append(ir.If(s.test, tuple(without_assignments(s.body, names)),
                             tuple(without_assignments(s.orelse, names))))
        elif isinstance(s, ir.For):
            out.append(ir.For(s.target, s.iterable, tuple(without_assignments(s.body, names))))
        elif not (isinstance(s, ir.Assign) and isinstance(s.target, ir.Name) and s.target.id in names):
            out.append(s)
    return out


__all__ = ["assigns", "drop_empty", "if_", "interpolated", "let", "loop_target", "prune_lets", "read_attribute",
           "reads_name", "set_attribute", "statements", "without_assignments"]
