"""Runs of alike groups of ops in a row, folded into one node of a picture: VGG's conv, relu, conv, relu ...

A block's instances fold by the block (``view``); a network written without blocks (VGG's ``features``, one
named seq of 3x3 convs and ReLUs between max pools) repeats groups of ops instead. A group is a chain of one to
``MAX_GROUP`` ops, one feeding the next and nothing else, that holds a layer with weights (a run of ReLUs alone
says nothing more when folded); a run is a row of such groups whose ops are alike: the same kinds with the same
arguments, so that only what the first one reads may differ (VGG's first conv of a stage sees the stage before's
channels). A run folds from ``view.MIN_FOLD`` groups on, as blocks do: a pair stays (AlexNet's last two convs,
VGG's two fully connected layers, each with its ReLU and dropout). The run is drawn as one node, ``features.19 … features.28 ×4`` with the
group's ops (``conv 3x3, 256 → relu``) and the run's parameters, and the edges into and out of it carry the
shapes going into its first op and out of its last. The max pools between VGG's stages stay, so the stages do.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...sema.graph import OpNode

MAX_GROUP = 4  # the most ops a repeated group holds (a conv, its norm, its activation: three)


@dataclass
class OpRun:
    """Groups of alike ops in a row, drawn as one node: ``ops`` every op of the run, in order; ``period`` the ops of
    a group; ``count`` the groups."""

    ops: list[OpNode]
    period: int
    count: int


def fold_op_runs(view, cluster, least: int) -> None:
    """Replace each run of ``least`` or more alike op groups among ``cluster``'s children (and its boxes', folded
    runs of blocks aside) by one unit, ``ops:`` and its first op's id, recorded in ``view.op_runs``."""
    children, kept, i = cluster.children, [], 0
    while i < len(children):
        chain = _chain(view, children, i)  # the longest, once: each unit is in one chain (linear time)
        if not any(op.params for op in chain):
            kept += children[i:i + max(len(chain), 1)]
            i += max(len(chain), 1)
            continue
        at = 0
        while at < len(chain):
            period, count = _best_run(view, chain, at, least)
            if not count:
                kept.append(children[i + at])
                at += 1
                continue
            ops = chain[at:at + period * count]
            unit = "ops:" + ops[0].id
            view.op_runs[unit] = OpRun(ops, period, count)
            view.unit_ops[unit] = ops
            for op in ops:
                view.unit_of[op.id] = unit
            kept.append(unit)
            at += len(ops)
        i += len(chain)
    cluster.children[:] = kept
    for child in kept:
        if not isinstance(child, str) and child.path not in view.hidden:  # a box (a unit is its id)
            fold_op_runs(view, child, least)


def _chain(view, children: list, i: int) -> list[OpNode]:
    """The ops of the units from ``children[i]`` on that are single ops on the main path, each the only reader of
    the one before and reading nothing else."""
    ops: list[OpNode] = []
    for child in children[i:]:
        if not isinstance(child, str) or child in view.unit_block or child in view.hidden_units:
            break
        unit_ops = view.unit_ops[child]
        op = unit_ops[0]
        if len(unit_ops) != 1 or op.side is not None or op.op == "input" or op.id == view.graph.output:
            break
        if ops and (list(op.inputs) != [ops[-1].id] or list(view.g.successors(ops[-1].id)) != [op.id]):
            break
        ops.append(op)
    return ops


def _best_run(view, chain: list[OpNode], at: int, least: int) -> tuple[int, int]:
    """(ops a group, groups) of the run at ``chain[at]`` that covers the most ops (the shorter group of equals);
    (0, 0) where there is none: ``least`` groups, each with a layer with weights."""
    best = (0, 0)
    for period in range(1, min(MAX_GROUP, (len(chain) - at) // least) + 1):
        if not any(op.params for op in chain[at:at + period]):
            continue
        count = 1
        while at + (count + 1) * period <= len(chain) and all(
                _alike(view, chain[at + t], chain[at + count * period + t]) for t in range(period)):
            count += 1
        if count >= least and count * period > best[0] * best[1]:
            best = (period, count)
    return best


def _alike(view, a: OpNode, b: OpNode) -> bool:
    """The same kind with the same arguments (what they read may differ: their parameters with it)."""
    return a.op == b.op and view._masked(a) == view._masked(b)
