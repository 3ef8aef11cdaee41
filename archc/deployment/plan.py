"""Where each tensor of a deployed model comes from: the trained model's graph and the deployed one's, matched node
by node.

The rewrite (``rewrite.py``) keeps every statement's span, so after leaving out the nodes of the layers it removed,
the two graphs list the same operations in the same order: a module's path may differ (a numbered seq renumbers
when a batch norm leaves it) but not its kind or its statement. A conv that absorbed a batch norm in the spec
absorbs, in each instance, the batch norm node that reads it (if that instance has one: a conditional norm may be
off). Torch-free: the plan is data, applied by ``convert.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sema.graph import Graph, OpNode
from .rewrite import Rewrites


class PlanError(RuntimeError):
    """The two graphs do not line up: a bug of the rewrite, not of the user's spec."""


@dataclass
class Plan:
    # (trained module path or tensor key, deployed one, whether it is a learned tensor rather than a module)
    copies: list[tuple[str, str, bool]] = field(default_factory=list)
    # (deployed module path, trained module path, trained norm path, the absorbing kind)
    folds: list[tuple[str, str, str, str]] = field(default_factory=list)


def plan(trained: Graph, deployed: Graph, rewrites: Rewrites) -> Plan:
    removed_spans = {span for span, _ in rewrites.removed}
    before = [op for op in trained.ops() if (op.span, op.op) not in rewrites.removed]
    after = [op for op in deployed.ops() if not (op.op == "identity" and op.span in removed_spans)]
    if len(before) != len(after):
        raise PlanError(f"the deployed graph has {len(after)} operations where the trained one keeps {len(before)}")
    result = Plan()
    for a, b in zip(before, after):
        if (a.op, a.span) != (b.op, b.span):
            raise PlanError(f"operation {a.id} ({a.op}) is matched with {b.id} ({b.op})")
        if a.name is None:
            continue
        norm = _folded_norm(trained, a, rewrites) if b.span in rewrites.folded else None
        if norm is not None:
            result.folds.append((b.name, a.name, norm.name, a.op))
        else:
            result.copies.append((a.name, b.name, a.learned))
    return result


def _folded_norm(graph: Graph, op: OpNode, rewrites: Rewrites) -> OpNode | None:
    """The norm this instance of a folding layer absorbs: the one node that reads it, if it is the folded one."""
    readers = [graph.node(s) for s in graph.g.successors(op.id)]
    span = rewrites.folded[op.span]
    norms = [r for r in readers if r.span == span and (span, r.op) in rewrites.removed]
    if not norms:
        return None  # this instance's norm is switched off
    if len(readers) != 1 or norms[0].name is None:
        raise PlanError(f"{op.id} is read by {', '.join(r.id for r in readers)}: it cannot absorb a norm")
    return norms[0]
