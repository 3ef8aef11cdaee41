"""Block calls elaborated once: a call of a block with the same arguments on inputs of the same types gives the
same operations under another module path, so the second and later such calls copy the first's records, renamed.

A block's body sees only the globals and its own parameters (scoping is lexical), so what it makes follows from
the key: the block, its argument values (their types included: ``1`` and ``true`` differ), its inputs' types, the
side output it belongs to, how deep the call is nested (the depth limit, the init rules' precedence) and whether
the code generator's shapes are being recorded. A call that recorded an error or read a tensor from outside its
inputs is not kept; a copy that would cross the operation or step limits is elaborated instead, so that the error
is the one the spec would get. What a call leaves behind is copied in full: its operations and scopes (paths
renamed), the evaluation steps it took (spent again), the shapes recorded for the code generator and the init
rules it met (for its own instance). Blocks with named tensors are copied as the others are, with their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .graph import MAX_NODES, OpNode, ScopeInfo, last_added
from .initrules import Rule
from .recursion import MAX_DEPTH
from .scope import Tensor
from .values import BlockRef, OpRef


class _Unkeyable(Exception):
    pass


def _value_key(v):
    if v is None or isinstance(v, (bool, int, str)):
        return (type(v), v)
    if isinstance(v, float):
        return (float, repr(v))  # -0.0 and 0.0 are equal, but print differently
    if isinstance(v, (list, tuple)):
        return (type(v), tuple(_value_key(i) for i in v))
    if isinstance(v, (BlockRef, OpRef)):
        return (type(v), v)
    raise _Unkeyable


def call_key(block_name: str, values: dict, xs: list[Tensor], side: str | None, recording: bool):
    """What a block call's elaboration depends on, or None where a value cannot be compared safely;
    ``recording``: whether the code generator's shapes are being recorded (a copy gives what was recorded)."""
    try:
        args = tuple((k, _value_key(v)) for k, v in values.items())
    except _Unkeyable:
        return None
    return (block_name, args, tuple(x.type for x in xs), side, recording)


@dataclass
class Recording:
    path: str  # the instance's module path
    outer: int  # how many scope paths enclose the instance (its caller's)
    inputs: tuple[str, ...]  # the node ids it read
    output: Tensor | tuple[Tensor, ...]  # several where a block with named tensors gives several
    nodes: list[OpNode]
    scopes: list[ScopeInfo]
    steps: int
    shapes: list[tuple]  # (statement, shapes), appended to the elaborator's record in order
    rules: list[Rule]
    first_rule: int  # the order of the first rule it met, when it was met
    depth: int  # the open block calls around it (its own included)
    reach: int  # how many deeper the deepest call inside it went
    plan: list[tuple] | None = None  # its nodes as a copy reads them (``_plan``), worked out at the first copy
    by_statement: list[tuple] | None = None  # its shapes, each statement's together in order (at the first copy)


@dataclass
class Mark:
    """Where the elaborator's records stood when a call began."""

    nodes: int
    scopes: int
    steps: int
    failures: int
    shapes: int
    rules: int
    deepest: int  # the elaborator's deepest nesting so far


def mark(el) -> Mark:
    return Mark(len(el.graph), len(el.graph.scopes), el.budget.steps, el.failures, len(el.shape_log), len(el.rules),
                el.deepest)


def entered(el) -> None:
    """A call has just opened (its entry is on the elaborator's stack): its nesting is measured from here."""
    el.deepest = len(el.block_stack)


def left(el, start: Mark, depth: int) -> int:
    """The call that opened at ``depth`` has closed: how much deeper than itself it nested."""
    reach = el.deepest - depth
    el.deepest = max(start.deepest, el.deepest)
    return reach


def record(el, start: Mark, path: str, outer: int, xs: list[Tensor], out, depth: int,
           reach: int) -> Recording | None:
    """The call's records since ``start``, if it may be copied."""
    outs = out if isinstance(out, tuple) else (out,)
    if not all(isinstance(o, Tensor) for o in outs) or el.failures != start.failures:
        return None
    nodes = el.graph.last(len(el.graph) - start.nodes)
    inside = path + "."
    inputs = tuple(x.node for x in xs)
    for node in nodes:
        if not node.id.startswith(inside) or any(not i.startswith(inside) and i not in inputs for i in node.inputs):
            return None
    if any(not o.node.startswith(inside) and o.node not in inputs for o in outs):
        return None
    scopes = last_added(el.graph.scopes, len(el.graph.scopes) - start.scopes)
    if any(not info.path.startswith(inside) for info in scopes):
        return None
    rules = el.rules[start.rules:]
    return Recording(path, outer, inputs, out, nodes, scopes, el.budget.steps - start.steps,
                     el.shape_log[start.shapes:], rules, rules[0].order if rules else 0, depth, reach)


def fits(el, rec: Recording) -> bool:
    """Whether copying stays within the limits (otherwise elaborating says where they are crossed): a call opened
    here has ``len(el.block_stack) + 1`` open calls, and the deepest inside it must still open under ``MAX_DEPTH``."""
    return (el.budget.steps + rec.steps <= el.budget.limit and len(el.graph) + len(rec.nodes) < MAX_NODES
            and len(el.block_stack) + rec.reach < MAX_DEPTH)


def _plan(rec: Recording) -> list[tuple]:
    """Each recorded node with what a copy renames cut to the part after the recorded instance's path: its id,
    its name, the scopes inside the instance and its inputs (an int: the call's input of that position). A
    copy then only prefixes its own path, which the deepest networks do tens of thousands of times."""
    cut = len(rec.path)
    given = {node_id: i for i, node_id in enumerate(rec.inputs)}
    plan = []
    for node in rec.nodes:
        inputs = tuple(given.get(i, i[cut:]) for i in node.inputs)
        plan.append((node, node.id[cut:], None if node.name is None else node.name[cut:],
                     tuple(s[cut:] for s in node.scope[rec.outer + 1:]), inputs,
                     not any(isinstance(i, int) for i in inputs)))
    return plan


def replay(el, rec: Recording, path: str, outer_scopes: tuple[str, ...], xs: list[Tensor]):
    """The recorded call again, as the instance at ``path`` reading ``xs``."""
    old = rec.path
    cut = len(old)
    prefix = path.__add__
    given = [x.node for x in xs]

    def source(i: int | str) -> str:
        return given[i] if isinstance(i, int) else path + i

    if rec.plan is None:
        rec.plan = _plan(rec)
    head = (*outer_scopes, path)
    add = el.graph.add
    for node, ident, name, inner, inputs, internal in rec.plan:
        inputs = tuple(map(prefix, inputs)) if internal else tuple(map(source, inputs))
        add(node.moved(path + ident, None if name is None else path + name, head + tuple(map(prefix, inner)),
                       inputs), inputs)
    for info in rec.scopes:
        el.graph.scopes[path + info.path[cut:]] = info.moved(path + info.path[cut:])
    el.budget.steps += rec.steps
    if rec.shapes:  # ``note_shapes`` for each, in order: appended to the log, and to each statement's own
        if rec.by_statement is None:
            grouped: dict = {}
            for stmt, shapes in rec.shapes:
                grouped.setdefault(stmt, []).append(shapes)
            rec.by_statement = list(grouped.items())
        el.shape_log.extend(rec.shapes)
        records = el.stmt_shapes
        for stmt, shapes in rec.by_statement:
            records.setdefault(stmt, []).extend(shapes)
    first, depth = len(el.rules), len(el.block_stack) + 1
    el.deepest = max(el.deepest, depth + rec.reach)
    for rule in rec.rules:
        scope = path + rule.scope[cut:] if rule.scope == old or rule.scope.startswith(old + ".") else rule.scope
        el.rules.append(replace(rule, env=dict(rule.env), scope=scope, order=first + rule.order - rec.first_rule,
                                depth=rule.depth + depth - rec.depth, used=False))
    given_ids = dict(zip(rec.inputs, given))
    if isinstance(rec.output, tuple):
        return tuple(Tensor(given_ids.get(o.node) or path + o.node[cut:], o.type) for o in rec.output)
    return Tensor(given_ids.get(rec.output.node) or path + rec.output.node[cut:], rec.output.type)


def carried(old, records: dict, new) -> dict:
    """The records of ``old``'s block calls that hold for ``new`` too (programs: an editor's text before and after
    an edit, parsed so that an unchanged definition is the same object). A call's records follow from its key and
    the globals (see above), so they hold where the file's lets, functions and names are the same and neither the
    block nor any block it reached was edited; everything is dropped otherwise."""
    if (old.blocks.keys() != new.blocks.keys() or old.networks.keys() != new.networks.keys()
            or old.funcs.keys() != new.funcs.keys() or len(old.lets) != len(new.lets)
            or any(a is not b for a, b in zip(old.lets, new.lets))
            or any(old.funcs[k] is not f for k, f in new.funcs.items())):
        return {}
    edited = {k for k, d in [*new.blocks.items(), *new.networks.items()]
              if (old.blocks.get(k) or old.networks.get(k)) is not d}
    return {key: rec for key, rec in records.items()
            if key[0] not in edited and not any(info.block in edited for info in rec.scopes)}
