"""The structured statements as dataflow: ``residual``, ``gate``, ``concat`` and ``dense`` lowered to the steps
(``nodes.Flow``) that a block with named tensors is made of, so that the steps carry what they mean.

A statement's steps read its input under the key ``IN`` and leave its result under the key ``Sugar.output``.
Two kinds of step serve them alone: "run" applies statements to one tensor as a seq body does (each to the
output of the one before: a body, a shortcut, a branch, a member), and "join" makes the statement's own node
of the graph (the residual's sum, with its scale and stochastic depth; the gate's product; the concatenation
along the channels), with the checks and messages that belong to the form. Written as a block with named
tensors, with ``x`` the statement's input (docs/language.md, "What the structured statements lower to")::

    residual(scale = s, when = w) { body } shortcut from a if c { sc }
        let a = body up to a (x);  let out = the rest of body (a)
        let identity = sc(a) if c else x;  let y = (out * s + identity) if w else out
    gate { body }                       let scale = body(x);  let y = scale * x
    concat { b1; b2 }                   let y = cat([b1(x), b2(x)], 1)
    concat { for i in r { b{i} } }      let branches = [b0(x), b1(x), ...];  let y = cat(branches, 1)
    dense { m1; m2 }                    let f1 = m1(x);  let f2 = m2(cat([x, f1], 1));  let y = cat([x, f1, f2], 1)

A concat whose branches are arranged by ``for``, ``if`` or ``let``, or switched by their own conditions, is a
list of tensors made by a third kind of step, "each": the branches its arrangement gives where the concat is made,
each applied to srcs[0] (one a statement an iteration; a branch switched off leaves the list), as a block with
named tensors builds a list with ``let outs = []`` and a loop. A dense whose members are so arranged (or have
conditions, or are side outputs) is a list too, grown by a fourth kind, "grow": the list starts as ``[x]``, and
each member its arrangement gives reads the concatenation of the list so far and appends its output, as a block
with named tensors grows ``let feats = [x]`` in a loop::

    dense { for i in r { m{i} } }       let feats = [x];  for each member: feats + [m{i}(cat(feats, 1))];
                                        let y = cat(feats, 1)

Ensembles are not lowered: ``lowered`` gives None and elaboration walks their arrangement (``sema.elabstruct``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from . import nodes as n

IN = "in%"  # the statement's input (no spec name holds '%', so no key here is a name of the spec's)


@dataclass(frozen=True)
class Sugar:
    steps: tuple[n.Flow, ...]
    output: str  # the key of the statement's result


_LOWERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lowered(stmt: n.Stmt) -> Sugar | None:
    """The steps of a residual, gate, concat or dense (made once a statement); None where it is not lowered."""
    if stmt not in _LOWERED:
        lower = _LOWERINGS.get(type(stmt))
        _LOWERED[stmt] = lower(stmt) if lower is not None else None
    return _LOWERED[stmt]


def run(dest: str, src: str, body: list, span: n.Span) -> n.Flow:
    return n.Flow(dest, "run", (src,), None, span, body=body)


def join(dest: str, srcs: tuple[str, ...], stmt: n.Stmt, op: str) -> n.Flow:
    return n.Flow(dest, "join", srcs, stmt, stmt.span, op=op)


def _residual(stmt: n.Residual) -> Sugar:
    """The body's output plus the shortcut's (the input, or the shortcut's statements on the input or on the
    body's layer it names), under ``when``."""
    steps: list[n.Flow] = []
    body, start, sc = stmt.body, IN, stmt.shortcut
    if sc is not None and sc.source is not None:
        at = next((i for i, s in enumerate(body) if _plain_name(s) == sc.source), None)
        if at is not None:  # the body in two runs, the named layer's output between them
            steps.append(run(sc.source, IN, body[:at + 1], stmt.span))
            start, body = sc.source, body[at + 1:]
    steps.append(run("out%", start, body, stmt.span))
    adding: list[n.Flow] = []
    short = IN
    if sc is not None:
        short = "identity%"
        if sc.source is not None and start == IN:  # a source the body does not name plainly: said as it runs
            made = n.Flow("identity%", "run", (), stmt, sc.source_span, op=sc.source, body=sc.body)
        else:
            made = run("identity%", start, sc.body, sc.span)
        if sc.cond is None:
            adding.append(made)
        else:
            made = n.Flow("identity%1", made.kind, made.srcs, made.layer, made.span, op=made.op, body=made.body)
            adding.append(n.Flow("identity%", "if", ("identity%1", IN), None, sc.span, cond=sc.cond,
                                 branches=((made,), ())))
    adding.append(join("sum%", ("out%", short), stmt, "add"))
    when = next((value for key, value, _ in stmt.arguments.kwargs if key == "when"), None)
    if when is None:
        return Sugar((*steps, *adding), "sum%")
    steps.append(n.Flow("y%", "if", ("sum%", "out%"), None, stmt.span, cond=when, branches=(tuple(adding), ())))
    return Sugar(tuple(steps), "y%")


def _gate(stmt: n.Gate) -> Sugar:
    """The input times what the body computes from it."""
    scale = n.Flow("scale%", "run", (IN,), None, stmt.span, op="gate", body=stmt.body)
    return Sugar((scale, join("y%", ("scale%", IN), stmt, "mul")), "y%")


def _concat(stmt: n.Concat) -> Sugar:
    """Each branch on the input, their outputs concatenated along the channels."""
    if arranged(stmt.branches):  # a list, which the arrangement fills as it runs where the concat is made
        each = n.Flow("branches%", "each", (IN,), None, stmt.span, body=stmt.branches)
        return Sugar((each, join("y%", ("branches%",), stmt, "concat")), "y%")
    steps = [run(f"branch%{i}", IN, [b], b.span) for i, b in enumerate(stmt.branches)]
    return Sugar((*steps, join("y%", tuple(s.dest for s in steps), stmt, "concat")), "y%")


def _dense(stmt: n.Dense) -> Sugar:
    """Each member on the concatenation of the input and the members before it; the result all of them
    concatenated: named tensors where nothing arranges the members, else a list the arrangement grows."""
    members = stmt.body
    if not members or not all(isinstance(s, (n.Layer, n.Seq, n.Concat, n.Gate, n.Residual, n.Dense)) and
                              s.cond is None for s in members):
        return grown(stmt)
    steps: list[n.Flow] = []
    features = [IN]
    for i, member in enumerate(members):
        source = IN
        if i:  # (a join of its own: each checks the member just before it)
            source = f"inputs%{i}"
            steps.append(join(source, tuple(features), stmt, "dense"))
        steps.append(run(f"features%{i + 1}", source, [member], member.span))
        features.append(f"features%{i + 1}")
    return Sugar((*steps, join("y%", tuple(features), stmt, "dense")), "y%")


def grown(stmt: n.Dense) -> Sugar:
    """A dense as a list of feature maps, the input first, that its members' arrangement grows where the dense is
    made: each member reads the concatenation of the list so far and appends its output (a "grow" step); the
    result the list concatenated. An arranged dense lowers to it, and forward writes a checkpointed one from it
    (``_checkpointed`` takes the list)."""
    grow = n.Flow("features%", "grow", (IN,), stmt, stmt.span, body=stmt.body)
    return Sugar((grow, join("y%", ("features%",), stmt, "dense")), "y%")


_LOWERINGS = {n.Residual: _residual, n.Gate: _gate, n.Concat: _concat, n.Dense: _dense}


def _plain_name(stmt: n.Stmt) -> str | None:
    target = getattr(stmt, "target", None) if isinstance(stmt, (n.Layer, n.Seq)) else None
    if target is None or not target.is_plain or target.quoted:
        return None
    return "".join(target.parts)


def arranged(branches: list[n.Stmt]) -> bool:
    """Whether a concat's branches are arranged by loops, conditionals or lets (or switched by conditions), so
    their number is known only where the concat is made. An ``if`` that picks one branch of two is not: it is
    one branch."""
    def plain_branch(b: n.Stmt) -> bool:
        return not isinstance(b, (n.For, n.If, n.Let, n.Init)) and (getattr(b, "cond", None) is None or
                                                                     isinstance(b, n.Side))

    return not all(plain_branch(b) or (isinstance(b, n.If) and len(b.body) == len(b.orelse) == 1 and
                                       plain_branch(b.body[0]) and plain_branch(b.orelse[0])) for b in branches)
