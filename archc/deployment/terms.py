"""Linear branches that sum into one conv: which residuals of a spec can merge, read off its validated graphs.

A residual whose body and shortcut are each linear in the same input (a conv, a conv then a batch norm, a batch
norm of the input itself, or the input itself), summed, is one conv at inference: RepVGG's 3x3 + 1x1 + identity
(Ding et al., 2021, Section 3.3), ACNet's 1x3 + 3x1 + 3x3. Each term's kernel is zero-padded to the body's conv's
kernel, centred, which computes the same sums only where the smaller kernel's padding keeps its centre on the same
input pixel: the same stride, groups and dilation 1, and padding smaller by half the kernel's difference. The
input term is an identity kernel, which needs stride 1 and a centred odd kernel. A residual merges only if every
instance in every variant's graph can (the rewrite changes its statement, which all instances share).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops.base import REGISTRY, pair
from ..sema.graph import Graph, OpNode

MERGES_INTO = ("conv", "linear")  # the kinds a sum of branches becomes


@dataclass(frozen=True)
class Term:
    """One summand, as the trained graph computes it from the shared input: ``conv`` (a node id, or None for the
    input itself), then ``norm`` (a batch norm node id, or None)."""

    conv: str | None
    norm: str | None


def residual_terms(graph: Graph, add: OpNode, merged: set) -> tuple[str, str, list[Term]] | None:
    """The shared input, the main conv (the body's, whose statement the merged conv keeps) and the terms of a
    residual's ``add`` node; None if it is not a sum of linear terms. ``merged``: the residual spans already found
    mergeable (an inner residual in the body counts as its main conv with its terms)."""
    if add.op != "add" or set(add.args) - {"stochastic_depth", "mode"} or len(add.inputs) != 2:  # (eval: a sum)
        return None
    body, short = (through(graph, graph.node(i)) for i in add.inputs)
    if body.op == "add" and body.span in merged:
        inner = residual_terms(graph, body, merged)
        if inner is None or not _read_once(graph, body):
            return None
        x, main, terms = inner
    else:
        first = _chain(graph, body)
        if first is None or first[1].conv is None:
            return None
        x, term = first
        main, terms = term.conv, [term]
    if short.id == x:
        return x, main, [*terms, Term(None, None)]
    other = _chain(graph, short)
    if other is None or other[0] != x:
        return None
    return x, main, [*terms, other[1]]


def _chain(graph: Graph, node: OpNode) -> tuple[str | None, Term] | None:
    """``node`` as (its input, the term): a conv, a conv then a batch norm, or a batch norm."""
    if node.op == "batchnorm" and node.name is not None:
        src = through(graph, graph.node(node.inputs[0]))
        if src.op in MERGES_INTO and src.name is not None and _read_once(graph, src):
            return _input(graph, src), Term(src.id, node.id)
        return src.id, Term(None, node.id)
    if node.op in MERGES_INTO and node.name is not None:
        return _input(graph, node), Term(node.id, None)
    return None


def _input(graph: Graph, node: OpNode) -> str:
    return through(graph, graph.node(node.inputs[0])).id


def _read_once(graph: Graph, node: OpNode) -> bool:
    return len(readers(graph, node)) == 1


def _transparent(node: OpNode) -> bool:
    """An op that is the identity in eval (dropout): the deployed model leaves it out, so the analysis sees past it."""
    kind = REGISTRY.get(node.op)
    return kind is not None and kind.eval_identity


def through(graph: Graph, node: OpNode) -> OpNode:
    """The op whose output ``node``'s is, in eval."""
    while _transparent(node):
        node = graph.node(node.inputs[0])
    return node


def readers(graph: Graph, node: OpNode) -> list[OpNode]:
    """The ops that read ``node``'s output, in eval."""
    found = []
    for s in graph.g.successors(node.id):
        r = graph.node(s)
        found += readers(graph, r) if _transparent(r) else [r]
    return found


def fits(graph: Graph, main: str, terms: list[Term]) -> bool:
    """Whether every term's kernel, padded and centred, computes its output inside the main conv's kernel."""
    m = graph.node(main)
    if m.op == "linear":
        return all(t.conv is None or graph.node(t.conv).op == "linear" for t in terms)
    k, p, s = pair(m.args["kernel_size"]), pair(m.args["padding"]), pair(m.args["stride"])
    if pair(m.args["dilation"]) != (1, 1):
        return False
    for t in terms:
        if t.conv is None:  # the input itself: an identity kernel at the centre
            if s != (1, 1) or any(kd % 2 == 0 or pd != kd // 2 for kd, pd in zip(k, p)):
                return False
            continue
        c = graph.node(t.conv)
        if c.op != "conv" or pair(c.args["stride"]) != s or c.args["groups"] != m.args["groups"] or \
                pair(c.args["dilation"]) != (1, 1):
            return False
        for kd, pd, cd, qd in zip(k, p, pair(c.args["kernel_size"]), pair(c.args["padding"])):
            if cd > kd or (kd - cd) % 2 or pd - qd != (kd - cd) // 2:
                return False
    return True


def mergeable(graphs: list[Graph]) -> set:
    """The spans of the residuals every instance of which is a sum of linear terms that fit one conv."""
    candidates: dict = {}
    merged: set = set()
    for graph in graphs:  # inner residuals come first in a graph's order: an outer one sees its inner one decided
        for op in graph.ops():
            if op.op != "add" or candidates.get(op.span) is False:
                continue
            found = residual_terms(graph, op, merged)
            ok = found is not None and fits(graph, found[1], found[2])
            candidates[op.span] = ok
            if ok:
                merged.add(op.span)
            else:
                merged.discard(op.span)
    return {span for span, ok in candidates.items() if ok}
