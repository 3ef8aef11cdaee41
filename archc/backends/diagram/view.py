"""What a diagram shows of a graph: units inside nested boxes, runs of alike blocks folded, edges between units.

A unit is an op, or a block instance drawn as one node (``depth``). Every block
instance and named ``seq`` that holds a drawn unit is a box (a ``Cluster``).
Folding finds runs of consecutive alike block instances (see ``archc.draw``)
and draws each run as its first instance, and (``fold_ops``, the pictures) runs of
alike groups of ops as one unit (``opruns``); ``edges`` maps the graph's edges onto
the drawn units, dropping those hidden inside a run.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from ...sema.graph import Graph, OpNode
from .calls import Signatures, masked, numbers
from .opruns import OpRun, fold_op_runs

MIN_FOLD = 3  # two alike instances stay two nodes: folding would save one and hide the pair
# each graph's instance signatures and masked op arguments, shared by its views (``draw`` tries several depths)
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Cluster:
    path: str | None  # None: the top level
    children: list = field(default_factory=list)  # Cluster | unit id, in order of first appearance


@dataclass
class Run:
    """Consecutive alike block instances, drawn as the first one; ``varying``: the call's arguments that differ
    between them, each with its value in every member (``calls.Signatures.varying``)."""

    paths: list[str]
    varying: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Signature:
    """What makes block instances alike: ``masked``, the block, its call and its ops and their wiring with every
    number written ``#``; ``numbers``, those numbers; ``sizes``, each op's output shape and parameters."""

    masked: tuple
    numbers: tuple
    sizes: tuple

    def alike(self, other: Signature) -> bool:
        """The same but for scalars: numbers may differ where only floats do (drop rates, scales), or where the
        ops come out the same sizes (Swin's shift); equal numbers allow other input channels (DenseNet)."""
        if self.masked != other.masked:
            return False
        if self.numbers == other.numbers:
            return True
        floats = all(a == b or isinstance(a, float) or isinstance(b, float) for a, b in zip(self.numbers, other.numbers))
        return floats or self.sizes == other.sizes


class View:
    """What is drawn: units (an op, or a block instance collapsed to one node) inside nested clusters."""

    def __init__(self, graph: Graph, depth: int | None, fold: bool, root: str | None,
                 signatures: Signatures | None = None, fold_ops: bool = False):
        self.graph = graph
        self.g = graph.g
        self.root = root
        self.signatures = signatures or Signatures()
        cache = _CACHE.setdefault(graph, ({}, {}, {}))
        self._signatures: dict[str, Signature] = cache[0]
        self._masked_args: dict[str, tuple[tuple, list]] = cache[1]
        self._closed_signatures: dict[str, Signature] = cache[2]  # an instance drawn as one box (``_closed``)
        self.ops = [op for op in graph.ops() if root is None or root in op.scope]
        self.in_view = {op.id for op in self.ops}
        self.unit_of: dict[str, str] = {}  # op id -> unit id
        self.unit_ops: dict[str, list[OpNode]] = {}
        self.unit_block: dict[str, str] = {}  # collapsed unit id -> its scope path
        self.scope_ops: dict[str, list[str]] = {}
        self.top = Cluster(None)
        clusters: dict[str, Cluster] = {}
        for op in self.ops:
            chain = op.scope[op.scope.index(root):] if root else op.scope
            for s in chain:
                self.scope_ops.setdefault(s, []).append(op.id)
            unit, enclosing = op.id, chain
            level = 0
            for i, s in enumerate(chain):
                if s == root or graph.scopes[s].kind != "block":
                    continue
                level += 1
                if depth is not None and level == depth:
                    unit, enclosing = "block:" + s, chain[:i]
                    self.unit_block[unit] = s
                    break
            self.unit_of[op.id] = unit
            if unit not in self.unit_ops:
                self.unit_ops[unit] = []
                parent = self.top
                for s in enclosing:
                    if s not in clusters:
                        clusters[s] = Cluster(s)
                        parent.children.append(clusters[s])
                    parent = clusters[s]
                parent.children.append(unit)
            self.unit_ops[unit].append(op)
        self.runs: dict[str, Run] = {}  # first instance path -> run
        self.hidden: set[str] = set()  # instance paths folded into a run's first
        self.remap: dict[str, str] = {}  # op id in a hidden instance -> the first instance's op
        self.run_member: dict[str, tuple[str, int]] = {}  # op id -> (run's first path, index in run)
        self.run_concat: dict[str, str] = {}  # a dense's concatenation between folded members -> the run
        self.hidden_units: set[str] = set()
        self.op_runs: dict[str, OpRun] = {}  # a unit standing for a run of alike op groups -> the run
        if fold:
            self._fold(self.top)
        if fold_ops:
            fold_op_runs(self, self.top, MIN_FOLD)

    # -- folding

    def _instance(self, child) -> str | None:
        path = child.path if isinstance(child, Cluster) else self.unit_block.get(child)
        if path is None or path == self.root or self.graph.scopes[path].kind != "block":
            return None
        return path

    def _signature(self, path: str) -> Signature:
        found = self._signatures.get(path)  # the graph's: the same in every view of it
        if found is not None:
            return found
        scope = self.graph.scopes[path]
        inside = set(self.scope_ops[path])
        prefix = path + "."

        def rel(name: str) -> str:
            return name[len(prefix):] if name.startswith(prefix) else name

        found_numbers: list = []
        items, sizes, inner = [], [], set()
        for oid in self.scope_ops[path]:
            op = self.graph.node(oid)
            preds = tuple(sorted(rel(p) if p in inside else "<in>" for p in op.inputs))
            args, op_numbers = self._masked(op)
            found_numbers += op_numbers
            items.append((rel(oid), op.op, args, preds, op.side))
            sizes.append((op.shape, op.params))
            inner.update(op.scope[op.scope.index(path) + 1:])  # the boxes inside ``path`` around the op
        calls = [(rel(s), self.graph.scopes[s].kind, self.graph.scopes[s].args) for s in sorted(inner)]
        for _, _, args in [(None, None, scope.args), *calls]:
            found_numbers += numbers(args)
        alike = (scope.block, masked(scope.args), tuple(items), tuple((r, k, masked(a)) for r, k, a in calls))
        found = Signature(alike, tuple(found_numbers), tuple(sizes))
        self._signatures[path] = found
        return found

    def _alike(self, a: str, b: str, closed: bool) -> bool:
        """Whether instance ``b`` folds into a run of ``a``'s: alike ops (``Signature.alike``), or, drawn closed,
        alike boxes (``_closed``)."""
        if self._signature(a).alike(self._signature(b)):
            return True
        if not closed:
            return False
        x, y = self._closed(a), self._closed(b)
        return x.masked == y.masked and x.numbers != y.numbers and x.sizes == y.sizes

    def _closed(self, path: str) -> Signature:
        """A block instance drawn as one box: its call (the block, its arguments with every number ``#``), its
        parameters and the shapes that leave it. Two boxes of calls that differ in numbers and alike in those fold,
        though their ops may differ where they are not drawn (Swin V1's shifted block holds a mask that the
        unshifted one lacks: closed, each is the same call with another shift_size)."""
        found = self._closed_signatures.get(path)
        if found is None:
            scope, inside = self.graph.scopes[path], set(self.scope_ops[path])
            ops = [self.graph.node(oid) for oid in self.scope_ops[path]]
            leaving = tuple(sorted(op.shape for op in ops if any(v not in inside for v in self.g.successors(op.id))))
            found = self._closed_signatures[path] = Signature(
                (scope.block, masked(scope.args)), tuple(numbers(scope.args)), (sum(op.params for op in ops), leaving))
        return found

    def _masked(self, op: OpNode) -> tuple[tuple, list]:
        """``op``'s arguments with every number written ``#``, and the numbers."""
        found = self._masked_args.get(op.id)
        if found is None:
            found = self._masked_args[op.id] = (masked(op.args), numbers(op.args))
        return found

    def _chained(self, a: str, b: str) -> bool:
        """``a``'s output feeds ``b`` and nothing else, and ``b`` reads nothing else."""
        in_a, in_b = set(self.scope_ops[a]), set(self.scope_ops[b])
        outs = {u for u in in_a for v in self.g.successors(u) if v not in in_a}
        if len(outs) != 1:
            return False
        (out,) = outs
        if out == self.graph.output or out in self.graph.sides.values():
            return False
        if any(v not in in_b for v in self.g.successors(out) if v not in in_a):
            return False
        return all(u == out for v in in_b for u in self.g.predecessors(v) if u not in in_b)

    def _fold(self, cluster: Cluster) -> None:
        children = cluster.children
        i = 0
        while i < len(children):
            first = self._instance(children[i])
            j = i + 1
            concats: list[str] = []
            if first is not None:
                closed = not isinstance(children[i], Cluster)
                prev = first
                while j < len(children):
                    nxt = self._instance(children[j])
                    if nxt is not None and closed == (not isinstance(children[j], Cluster)) and \
                            self._chained(prev, nxt) and self._alike(first, nxt, closed):
                        prev = nxt
                        j += 1
                        continue
                    nxt = self._dense_step(children, j, prev, first, closed)
                    if nxt is None:
                        break
                    concats.append(children[j])
                    prev = nxt
                    j += 2
            paths = [p for p in (self._instance(c) for c in children[i:j]) if p is not None]
            if len(paths) >= MIN_FOLD:
                self.runs[first] = Run(paths, self.signatures.varying([self.graph.scopes[p] for p in paths]))
                for unit in concats:
                    self.hidden_units.add(unit)
                    for op in self.unit_ops[unit]:
                        self.run_concat[op.id] = first
                        self.remap[op.id] = self.scope_ops[first][0]
                for k, path in enumerate(paths):
                    for oid in self.scope_ops[path]:
                        self.run_member[oid] = (first, k)
                        if k:  # its counterpart in the first (a closed box's op the first lacks: the box)
                            twin = first + oid[len(path):]
                            self.remap[oid] = twin if twin in self.unit_of else self.scope_ops[first][0]
                self.hidden.update(paths[1:])
            i = j
        for child in children:
            if isinstance(child, Cluster) and child.path not in self.hidden:
                self._fold(child)

    def _dense_step(self, children: list, j: int, prev: str, first: str, closed: bool) -> str | None:
        """In a dense, alike members alternate with the concatenation that feeds the next one:
        the next member's path if ``children[j]`` is that concatenation."""
        if j + 1 >= len(children) or isinstance(children[j], Cluster) or children[j] in self.unit_block:
            return None
        ops = self.unit_ops[children[j]]
        nxt = self._instance(children[j + 1])
        if len(ops) != 1 or ops[0].op != "concat" or nxt is None or not self._alike(first, nxt, closed):
            return None
        cat, in_prev, in_next = ops[0].id, set(self.scope_ops[prev]), set(self.scope_ops[nxt])
        if not any(u in in_prev for u in self.g.predecessors(cat)):
            return None
        return nxt if all(u == cat for v in in_next for u in self.g.predecessors(v) if u not in in_next) else None

    # -- edges

    def unit(self, op_id: str) -> str:
        return self.unit_of[self.remap.get(op_id, op_id)]

    def edges(self) -> list[tuple[str, str, list[tuple[tuple[int, ...], int]], bool]]:
        """(unit, unit, [(shape, count)], side) per pair of drawn units an edge joins. ``count`` is how many
        tensors of ``shape`` the edge stands for: 1, or, from a folded run, one per member that sends one
        (a dense's members each send their new features to its last concatenation)."""
        found: dict[tuple[str, str], tuple[dict, bool]] = {}
        for op in self.ops:
            for v in self.g.successors(op.id):
                if v not in self.in_view:
                    continue
                a, b = self.run_member.get(op.id), self.run_member.get(v)
                if a and b and a[0] == b[0] and a[1] != b[1]:
                    continue  # from one folded instance into the next
                run = self.run_concat.get(op.id) or self.run_concat.get(v)
                if run is not None and run == (a or b or (None,))[0]:
                    continue  # between a folded dense's members and its own concatenations
                ru, rv = self.unit(op.id), self.unit(v)
                if ru == rv:
                    continue
                side = op.side is not None or self.graph.node(v).side is not None
                shapes, _ = found.setdefault((ru, rv), ({}, side))
                leaves = a is not None and (b is None or b[0] != a[0])  # out of the run, not inside its first
                shapes.setdefault(op.shape, set()).add(a[1] if leaves else None)
        return [(u, v, [(shape, len(senders)) for shape, senders in shapes.items()], side)
                for (u, v), (shapes, side) in found.items()]

    def drawn_units(self, cluster: Cluster | None = None):
        """The units drawn as nodes, box by box (a folded run's hidden members and concatenations left out)."""
        for child in (cluster or self.top).children:
            if isinstance(child, Cluster):
                if child.path not in self.hidden:
                    yield from self.drawn_units(child)
            elif self.unit_block.get(child) not in self.hidden and child not in self.hidden_units:
                yield child

    def into_concat(self, unit: str) -> bool:
        return unit not in self.unit_block and self.unit_ops[unit][0].op == "concat"


def terminals(view: View, remapped: bool = True) -> dict:
    """Input nodes (block drawings) and output nodes, with their edges; to the units that stand for the ops (a
    folded run's first instance for any member's: ``remapped``), or to the ops' own (the page, which unfolds)."""
    graph = view.graph
    unit = view.unit if remapped else view.unit_of.__getitem__
    nodes, in_edges, out_edges = [], [], []
    if view.root is not None:
        inputs: list[str] = []
        for op in view.ops:
            for u in graph.g.predecessors(op.id):
                if u not in view.in_view and u not in inputs:
                    inputs.append(u)
        for k, u in enumerate(inputs):
            node_id = f"in:{u}"
            nodes.append((node_id, "input" if len(inputs) == 1 else f"input {k + 1}", False))
            targets = []
            for op in view.ops:
                if u in graph.g.predecessors(op.id) and unit(op.id) not in targets:
                    targets.append(unit(op.id))
            in_edges += [(node_id, t, [(graph.node(u).shape, 1)], False) for t in targets]
        outputs = [op for op in view.ops
                   if op.id == graph.output or any(v not in view.in_view for v in graph.g.successors(op.id))]
        for op in outputs:
            node_id = f"out:{op.id}"
            nodes.append((node_id, "output", False))
            out_edges.append((unit(op.id), node_id, [(op.shape, 1)], False))
        return {"nodes": nodes, "in_edges": in_edges, "out_edges": out_edges}
    if graph.output is not None:
        nodes.append(("out:output", "output", False))
        out_edges.append((unit(graph.output), "out:output", [(graph.node(graph.output).shape, 1)], False))
    for name, node_id in graph.sides.items():
        nodes.append((f"out:{name}", f"{name} (side output)", True))
        out_edges.append((unit(node_id), f"out:{name}", [(graph.node(node_id).shape, 1)], True))
    return {"nodes": nodes, "in_edges": in_edges, "out_edges": out_edges}
