"""Instances of one class that differ only in children some of them lack: one block, with a flag per such child.

torchvision's ResNet blocks have a ``downsample`` projection only where the stride or the width changes; the
forward applies it if it is there (``identity = self.downsample(x)``) and passes the input through if not. The
traced forwards differ exactly by that call. A group of instances is the *reduced* form of another (the
*full* one) when the full one's forward, with those children's calls taken out (each call replaced by its
input), is the reduced one's. Merged, the block declares the child under a condition, ``downsample = seq { ... }
if with_downsample``: a switched-off module passes its input through, which is what the reduced forward does.
"""

from __future__ import annotations

from . import ir


def without(dag: ir.Dag, drop: set[str]) -> ir.Dag:
    """The forward with the calls of ``drop`` taken out, each replaced by its input, values renumbered."""
    n_in = len(dag.inputs)
    new_index: dict[int, int] = {i: i for i in range(n_in)}
    nodes: list[ir.Node] = []

    def remap(a):
        if isinstance(a, ir.Ref):
            return ir.Ref(new_index[a.index])
        if isinstance(a, list):
            return [remap(x) for x in a]
        if isinstance(a, tuple):
            return tuple(remap(x) for x in a)
        return a

    for k, nd in enumerate(dag.nodes, start=n_in):
        if nd.fn == "call" and nd.child in drop:
            new_index[k] = new_index[nd.args[0].index]
            continue
        nodes.append(ir.Node(nd.fn, remap(nd.args), nd.child, nd.shape, nd.name))
        new_index[k] = n_in + len(nodes) - 1
    children = [(n, c) for n, c in dag.children if n not in drop]
    return ir.Dag(dag.cls, dag.path, children, list(dag.inputs), list(dag.input_shapes), nodes,
                  ir.Ref(new_index[dag.output.index]))


def _optional(full: ir.Dag, reduced: ir.Dag) -> set[str] | None:
    """The children ``full`` has and ``reduced`` lacks, where each is applied once to one tensor; None otherwise."""
    if not isinstance(full, ir.Dag) or not isinstance(reduced, ir.Dag):
        return None
    names, fewer = [n for n, _ in full.children], [n for n, _ in reduced.children]
    drop = set(names) - set(fewer)
    if not drop or [n for n in names if n not in drop] != fewer:
        return None
    for c in drop:
        calls = [nd for nd in full.nodes if nd.fn == "call" and nd.child == c]
        if len(calls) != 1 or len(calls[0].args) != 1:
            return None
    return drop


def merge_groups(groups: list[list], new_walk) -> list[tuple[list, dict]]:
    """Groups of (instance, walk, template) with one skeleton each, merged where one is another's reduced form:
    [(members, {child: flag slot})], each merged group's members walked alike (the full form's template first)."""
    entries: list[dict] = []  # {"full": instance, "groups": [group, ...]}
    for group in groups:
        rep = group[0][0]
        for e in entries:
            if _fits(e["full"], group, new_walk):
                e["groups"].append(group)
                break
            if all(_fits(rep, g, new_walk) for g in e["groups"]):
                e["full"] = rep
                e["groups"].insert(0, group)
                break
        else:
            entries.append({"full": rep, "groups": [group]})
    out = []
    for e in entries:
        if len(e["groups"]) == 1:
            out.append((e["groups"][0], {}))
            continue
        full = e["full"]
        optional = [n for n, _ in full.children if any(n not in dict(g[0][0].children) for g in e["groups"])]
        members = []
        for group in e["groups"]:
            for member, walk, template in group:
                if [n for n, _ in member.children] != [n for n, _ in full.children]:
                    walk = new_walk()
                    _, template = walk.body(member, like=full)
                members.append((member, walk, template))
        conditions = {}
        for c in optional:
            for member, walk, _ in members:
                slot = walk.slot(c in dict(member.children), f"with_{c}")
            conditions[c] = slot
        first = next(i for i, m in enumerate(members) if m[0] is full)
        members.insert(0, members.pop(first))
        out.append((members, conditions))
    return out


def _fits(full: ir.Dag, group: list, new_walk) -> bool:
    """Whether ``group`` is ``full``'s reduced form (or has its very skeleton)."""
    reduced = group[0][0]
    drop = _optional(full, reduced)
    if drop is None:
        return False
    skeleton, _ = new_walk().body(without(full, drop))
    mine, _ = new_walk().body(reduced)
    return skeleton == mine
