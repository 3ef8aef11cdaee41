"""Where each tensor of a deployed model comes from: the trained model's graph and the deployed one's, matched node
by node.

The rewrite (``rewrite.py``) keeps every statement's span, so after leaving out the nodes of the layers it removed,
the two graphs list the same operations in the same order: a module's path may differ (a numbered seq renumbers
when a batch norm leaves it) but not its kind or its statement. A deployed conv whose weights the rewrite builds is
the sum of terms (``terms.Term``) read off the trained graph at its instance: the conv itself, the batch norm that
reads it (if that instance has one: a conditional norm may be off), and the other branches of each merged residual
it sits in. Torch-free: the plan is data, applied by ``convert.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ops import REGISTRY
from ..sema.graph import Graph, OpNode
from .rewrite import Rewrites
from .terms import Term, fits, readers, residual_terms


class PlanError(RuntimeError):
    """The two graphs do not line up, or an instance cannot merge as the statement does."""


@dataclass
class Plan:
    # (trained module path or tensor key, deployed one, whether it is a learned tensor rather than a module)
    copies: list[tuple[str, str, bool]] = field(default_factory=list)
    # (deployed module path, its terms as trained module paths: (conv or None for the input, norm or None))
    sums: list[tuple[str, list[tuple[str | None, str | None]]]] = field(default_factory=list)


def plan(trained: Graph, deployed: Graph, rewrites: Rewrites) -> Plan:
    removed_spans = {span for span, _ in rewrites.removed}
    before = [op for op in trained.ops() if (op.span, op.op) not in rewrites.removed]
    after = [op for op in deployed.ops() if not (op.op == "identity" and op.span in removed_spans)]
    if len(before) != len(after):
        raise PlanError(f"the deployed graph has {len(after)} operations where the trained one keeps {len(before)}")
    result = Plan()
    for a, b in zip(before, after):
        if (_kind_after(a, rewrites), a.span) != (b.op, b.span):
            raise PlanError(f"operation {a.id} ({a.op}) is matched with {b.id} ({b.op})")
        if a.name is None:
            continue
        if b.span in rewrites.sums:
            terms = _terms(trained, a, rewrites)
            result.sums.append((b.name, [(_name(trained, t.conv), _name(trained, t.norm)) for t in terms]))
        else:
            result.copies.append((a.name, b.name, a.learned))
    return result


def _kind_after(op: OpNode, rewrites: Rewrites) -> str:
    """The kind ``op`` has in the deployed graph: its fused kind where its statement became one (not the other ops
    a statement makes: a dense member's concatenation has the member's span)."""
    fused = rewrites.fused.get(op.span)
    kind = REGISTRY.get(op.op)
    return fused if fused is not None and kind is not None and kind.fuses_into == fused else op.op


def _name(graph: Graph, node: str | None) -> str | None:
    return None if node is None else graph.node(node).name


def _terms(graph: Graph, op: OpNode, rewrites: Rewrites) -> list[Term]:
    """The summands of a deployed conv at this instance: itself (with its folded norm), then each merged
    residual's other branches."""
    out, terms = op, [Term(op.id, None)]
    after = readers(graph, op)
    if len(after) == 1 and (after[0].span, after[0].op) in rewrites.removed and after[0].op == "batchnorm" \
            and rewrites.folded.get(op.span) == after[0].span:
        out, terms = after[0], [Term(op.id, after[0].id)]
    while True:
        after = readers(graph, out)
        if len(after) != 1 or after[0].op != "add" or after[0].span not in rewrites.merged:
            break
        found = residual_terms(graph, after[0], rewrites.merged)
        if found is None or found[1] != op.id or not fits(graph, op.id, found[2]):
            raise PlanError(f"{after[0].id}: this instance's branches do not sum into {op.name}")
        out, terms = after[0], found[2]
    return terms
