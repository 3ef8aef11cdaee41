"""Diagrams of a network, from the whole network down to one block: Graphviz DOT, SVG, PNG, PDF.

``dot_source(graph)`` turns a validated graph into Graphviz DOT text and
``render(source, fmt)`` lays it out. Every block instance and named ``seq`` is
a cluster labelled with its name and call (``inception3a: Inception(64, 96,
...)``); edges carry the tensor shape (C×H×W); a node shows its op, the op's
key arguments (``conv 7x7/2, 64``) and its parameter count, in one colour per
kind of op; a concatenation is a gold trapezium, a residual addition a red
circle; side outputs hang off the main path dashed, in magenta.

Depth. ``depth = N`` draws each block instance nested N blocks deep as one
node (GoogLeNet at depth 1: the stem layers, nine Inception boxes, the head).
Only block instances count as levels: a named ``seq`` is a grouping box, never
a level of its own, so ResNet's ``layer1`` at depth 1 is a box around its
Bottleneck nodes, and VGG's ``features`` at any depth a box around its layers.
(``archc stats --depth`` counts named seqs as levels too: it totals them.)

Folding. Runs of three or more consecutive *alike* block instances fold into
one node (or, where the blocks are drawn open, one cluster: the run's first
instance) marked ×N; a pair stays two nodes (folding would save one and hide
it). Two instances are alike when they are instances of the same block with
the same call (the evaluated arguments, ``Bottleneck(256, 1)``) and the same
ops with the same arguments wired the same way, and the first feeds the second
and nothing else. Input channels may differ: DenseNet's ``DenseLayer(32)``s
each see 32 more channels, yet fold into one ``denselayer1 … denselayer6 ×6``;
ResNet's ``layer1.0`` is not alike ``layer1.1`` (same call, but its projection
shortcut is extra ops). A folded node shows the run's total parameters, its
edges the shapes going into the run's first instance and out of its last; a
folded cluster draws the first instance, with that instance's shapes inside.

Renderer. A system Graphviz ``dot`` on PATH is used when there is one (the
reference implementation; PDF where it was built with cairo). Otherwise
``graphviz-pure``, a self-contained Rust port of dot 16.1 that pip installs
as a dependency of archc: one static binary, no C libraries, the same bytes on
every platform, SVG and PNG with bundled fonts (no PDF). So ``archc draw``
works wherever ``pip install archc`` did, on CI machines without Graphviz too,
and even with an empty PATH (the binary is found next to ``sys.executable`` or in the
environment's scripts directory). Rejected: the ``graphviz`` and ``pydot``
packages only run a ``dot`` program (here they would add nothing over the DOT
text written by hand below); pure-Python layouts (networkx with matplotlib)
have no clustered, ranked layout and would pull in matplotlib. ``ARCHC_DOT``
names another dot-compatible program. The DOT text is deterministic: ops in
the graph's order, ids from module paths, no timestamps.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecError, did_you_mean
from .graph import Graph, OpNode

FORMATS = ("svg", "png", "dot", "pdf")
PNG_DPI = 96
SUMMARY_OPS = 4  # a block of at most this many ops in a chain lists them on its node
MIN_FOLD = 3  # two alike instances stay two nodes: folding would save one and hide the pair

# One fill per kind of op.
COLOURS = {
    "conv": "#cfe2f3",
    "batchnorm": "#fff2cc",
    "relu": "#d9ead3",
    "maxpool": "#fce5cd",
    "avgpool": "#fce5cd",
    "adaptive_avgpool": "#f9cb9c",
    "adaptive_maxpool": "#f9cb9c",
    "lrn": "#d0e0e3",
    "dropout": "#eeeeee",
    "flatten": "#ffffff",
    "linear": "#d9d2e9",
    "identity": "#ffffff",
    "subsample": "#ead1dc",
    "pad_channels": "#ead1dc",
    "concat": "#ffd966",
    "add": "#e06666",
    "input": "#ffffff",
}
BLOCK_COLOUR = "#b4d6d0"  # a block drawn as one node
SIDE_COLOUR = "#c2185b"  # side outputs: their edges and borders
EDGE_COLOUR = "#555555"


class DrawError(Exception):
    """A usage problem: a format archc cannot write, no renderer, a renderer that failed."""


# ------------------------------------------------------------------ labels


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _pair(v) -> str:
    if isinstance(v, (tuple, list)):
        return "x".join(map(str, v)) if len(set(v)) > 1 else f"{v[0]}x{v[0]}"
    return f"{v}x{v}"


def _single(v):
    if isinstance(v, (tuple, list)) and len(set(v)) == 1:
        return v[0]
    return v


def _stride(v) -> str:
    return _pair(v) if isinstance(v, (tuple, list)) else str(v)


def op_summary(op: OpNode) -> str:
    """The op and its key arguments: ``conv 7x7/2, 64``, ``maxpool 3x3/2``, ``linear 1000``."""
    a = op.args
    kind = op.op
    if kind == "conv":
        stride = _single(a.get("stride", 1))
        text = f"conv {_pair(a['kernel_size'])}"
        if stride != 1:
            text += f"/{_stride(stride)}"
        text += f", {a['out_channels']}"
        if _single(a.get("dilation", 1)) != 1:
            text += f", dilation {_single(a['dilation'])}"
        if a.get("groups", 1) != 1:
            text += f", groups {a['groups']}"
        return text
    if kind in ("maxpool", "avgpool"):
        stride = _single(a.get("stride") or a["kernel_size"])
        return f"{kind} {_pair(a['kernel_size'])}" + ("" if stride == 1 else f"/{_stride(stride)}")
    if kind in ("adaptive_avgpool", "adaptive_maxpool"):
        return f"{kind} {_pair(a['output_size'])}"
    if kind == "linear":
        return f"linear {a['out_features']}"
    if kind == "dropout":
        return f"dropout {a['p']}"
    if kind == "lrn":
        return f"lrn {a['size']}"
    if kind == "subsample":
        return f"subsample /{a['stride']}"
    if kind == "pad_channels":
        return f"pad_channels {a['before']}+{a['after']}"
    if kind == "add":
        scale = a.get("scale")
        return "+" if scale in (None, 1, 1.0) else f"×{scale} +"
    return kind


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _relative(path: str, parent: str | None) -> str:
    if parent and path.startswith(parent + "."):
        return path[len(parent) + 1:]
    return path


def _display(path: str, parent: str | None) -> str:
    """``path`` inside the drawn cluster ``parent``; a seq's numbered child keeps the seq's name (``layer1.0``)."""
    rel = _relative(path, parent)
    if parent and rel.split(".")[0].isdigit():
        rel = parent.rsplit(".", 1)[-1] + "." + rel
    return rel


def _small(text: str) -> str:
    return f'<font point-size="9" color="#444444">{_esc(text)}</font>'


# ------------------------------------------------------------------ the view


@dataclass
class _Cluster:
    path: str | None  # None: the top level
    children: list = field(default_factory=list)  # _Cluster | unit id, in order of first appearance


@dataclass
class _Run:
    """Consecutive alike block instances, drawn as the first one."""

    paths: list[str]


class _View:
    """What is drawn: units (an op, or a block instance collapsed to one node) inside nested clusters."""

    def __init__(self, graph: Graph, depth: int | None, fold: bool, root: str | None):
        self.graph = graph
        self.g = graph.g
        self.root = root
        self.ops = [op for op in graph.ops() if root is None or root in op.scope]
        self.in_view = {op.id for op in self.ops}
        self.unit_of: dict[str, str] = {}  # op id -> unit id
        self.unit_ops: dict[str, list[OpNode]] = {}
        self.unit_block: dict[str, str] = {}  # collapsed unit id -> its scope path
        self.scope_ops: dict[str, list[str]] = {}
        self.top = _Cluster(None)
        clusters: dict[str, _Cluster] = {}
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
                        clusters[s] = _Cluster(s)
                        parent.children.append(clusters[s])
                    parent = clusters[s]
                parent.children.append(unit)
            self.unit_ops[unit].append(op)
        self.runs: dict[str, _Run] = {}  # first instance path -> run
        self.hidden: set[str] = set()  # instance paths folded into a run's first
        self.remap: dict[str, str] = {}  # op id in a hidden instance -> the first instance's op
        self.run_member: dict[str, tuple[str, int]] = {}  # op id -> (run's first path, index in run)
        self.run_concat: dict[str, str] = {}  # a dense's concatenation between folded members -> the run
        self.hidden_units: set[str] = set()
        if fold:
            self._fold(self.top)

    # -- folding

    def _instance(self, child) -> str | None:
        path = child.path if isinstance(child, _Cluster) else self.unit_block.get(child)
        if path is None or path == self.root or self.graph.scopes[path].kind != "block":
            return None
        return path

    def _signature(self, path: str):
        scope = self.graph.scopes[path]
        inside = set(self.scope_ops[path])
        prefix = path + "."

        def rel(name: str) -> str:
            return name[len(prefix):] if name.startswith(prefix) else name

        items = []
        for oid in self.scope_ops[path]:
            op = self.graph.node(oid)
            preds = tuple(sorted(rel(p) if p in inside else "<in>" for p in self.g.predecessors(oid)))
            items.append((rel(oid), op.op, repr(sorted(op.args.items())), preds, op.side))
        inner = sorted({(rel(s), self.graph.scopes[s].kind, self.graph.scopes[s].call)
                        for oid in self.scope_ops[path] for s in self.graph.node(oid).scope if s.startswith(prefix)})
        return scope.block, scope.call, tuple(items), tuple(inner)

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

    def _fold(self, cluster: _Cluster) -> None:
        children = cluster.children
        i = 0
        while i < len(children):
            first = self._instance(children[i])
            j = i + 1
            concats: list[str] = []
            if first is not None:
                sig = self._signature(first)
                prev = first
                while j < len(children):
                    nxt = self._instance(children[j])
                    if nxt is not None and self._chained(prev, nxt) and self._signature(nxt) == sig:
                        prev = nxt
                        j += 1
                        continue
                    nxt = self._dense_step(children, j, prev, sig)
                    if nxt is None:
                        break
                    concats.append(children[j])
                    prev = nxt
                    j += 2
            paths = [p for p in (self._instance(c) for c in children[i:j]) if p is not None]
            if len(paths) >= MIN_FOLD:
                self.runs[first] = _Run(paths)
                for unit in concats:
                    self.hidden_units.add(unit)
                    for op in self.unit_ops[unit]:
                        self.run_concat[op.id] = first
                        self.remap[op.id] = self.scope_ops[first][0]
                for k, path in enumerate(paths):
                    for oid in self.scope_ops[path]:
                        self.run_member[oid] = (first, k)
                        if k:
                            self.remap[oid] = first + oid[len(path):]
                self.hidden.update(paths[1:])
            i = j
        for child in children:
            if isinstance(child, _Cluster) and child.path not in self.hidden:
                self._fold(child)

    def _dense_step(self, children: list, j: int, prev: str, sig) -> str | None:
        """In a dense, alike members alternate with the concatenation that feeds the next one:
        the next member's path if ``children[j]`` is that concatenation."""
        if j + 1 >= len(children) or isinstance(children[j], _Cluster) or children[j] in self.unit_block:
            return None
        ops = self.unit_ops[children[j]]
        nxt = self._instance(children[j + 1])
        if len(ops) != 1 or ops[0].op != "concat" or nxt is None or self._signature(nxt) != sig:
            return None
        cat, in_prev, in_next = ops[0].id, set(self.scope_ops[prev]), set(self.scope_ops[nxt])
        if not any(u in in_prev for u in self.g.predecessors(cat)):
            return None
        return nxt if all(u == cat for v in in_next for u in self.g.predecessors(v) if u not in in_next) else None

    # -- edges

    def unit(self, op_id: str) -> str:
        return self.unit_of[self.remap.get(op_id, op_id)]

    def edges(self) -> list[tuple[str, str, list[tuple[int, ...]], bool]]:
        found: dict[tuple[str, str], tuple[list, bool]] = {}
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
                shapes, _ = found.setdefault((ru, rv), ([], side))
                if op.shape not in shapes:
                    shapes.append(op.shape)
        return [(u, v, shapes, side) for (u, v), (shapes, side) in found.items()]


# ------------------------------------------------------------------ DOT text


def dot_source(graph: Graph, depth: int | None = None, fold: bool = True, block: str | None = None,
               title: str | None = None) -> str:
    """The Graphviz DOT text of ``graph``, or of its block instance at path ``block``."""
    if depth is not None and depth < 1:
        raise ValueError("depth must be at least 1")
    view = _View(graph, depth, fold, block)
    out = [
        "digraph archc {",
        # newrank: one ranking across clusters, so that parallel branches stay in the spec's order
        '  graph [rankdir=TB, newrank=true, fontname="Helvetica", fontsize=16, labelloc=t, nodesep=0.3, '
        f"ranksep=0.3, margin=0.2, label={_q(title or _title(graph, block))}];",
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", color="#666666", '
        'margin="0.12,0.04", height=0.3];',
        f'  edge [fontname="Helvetica", fontsize=9, fontcolor="{EDGE_COLOUR}", color="{EDGE_COLOUR}", arrowsize=0.6];',
    ]
    _emit_cluster(view, view.top, out, "  ", 0)
    terminals = _terminals(view)
    for node_id, label, side in terminals["nodes"]:
        colour = SIDE_COLOUR if side else "#666666"
        style = "dashed" if side else "solid"
        out.append(f"  {_q(node_id)} [label={_q(label)}, shape=oval, style={style}, color=\"{colour}\", "
                   f"fontcolor=\"{colour if side else '#000000'}\"];")
    edges = terminals["in_edges"] + view.edges() + terminals["out_edges"]
    for u, v, shapes, side in edges:
        attrs = [f"label={_q('  ' + ', '.join(shape_text(s) for s in shapes))}"]
        if side:
            attrs += ["style=dashed", f'color="{SIDE_COLOUR}"', f'fontcolor="{SIDE_COLOUR}"', "weight=1"]
        else:
            attrs.append("weight=4")  # keeps the main path straight, side branches beside it
        out.append(f"  {_q(u)} -> {_q(v)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _title(graph: Graph, block: str | None) -> str:
    from .stats import human, totals

    name = graph.variant or graph.network
    if block is not None:
        scope = graph.scopes[block]
        params = sum(graph.node(i).params for i in graph.g.nodes if block in graph.node(i).scope)
        return f"{scope.block}: {block} = {scope.call} in {name}, {params:,} params"
    t = totals(graph)
    text = f"{name} ({graph.network}): {human(t['params'])} params, {human(t['macs'])} MACs"
    if t["side_params"]:
        text += f"; side outputs {human(t['side_params'])} params"
    return text


def _emit_cluster(view: _View, cluster: _Cluster, out: list[str], pad: str, level: int,
                  parent: str | None = None) -> None:
    inner = pad
    if cluster.path is not None:
        scope = view.graph.scopes[cluster.path]
        name = _display(cluster.path, parent)
        run = view.runs.get(cluster.path)
        if run is not None:
            name = f"{name} … {_display(run.paths[-1], parent)} ×{len(run.paths)}"
        label = f"{name}: {scope.call}"
        style = '"rounded,dashed"' if scope.kind == "seq" else '"rounded,filled"'
        fill = "#eef3f8" if level % 2 == 1 else "#ffffff"
        side = any(view.graph.node(i).side for i in view.scope_ops[cluster.path][:1])
        colour = SIDE_COLOUR if side else ("#888888" if scope.kind == "seq" else "#5b7083")
        out.append(f"{pad}subgraph {_q('cluster_' + cluster.path)} {{")
        inner = pad + "  "
        attrs = [f"label={_q(label)}", f"style={style}", f'color="{colour}"', f'fillcolor="{fill}"',
                 "fontsize=12", "labeljust=l", "margin=10"]
        if run is not None:
            attrs.append("penwidth=2.5")
        if side:
            attrs.append(f'fontcolor="{SIDE_COLOUR}"')
        out.append(f"{inner}graph [{', '.join(attrs)}];")
    for child in cluster.children:
        if isinstance(child, _Cluster):
            if child.path not in view.hidden:
                block_level = level + (view.graph.scopes[child.path].kind == "block")
                _emit_cluster(view, child, out, inner, block_level, cluster.path)
        elif view.unit_block.get(child) not in view.hidden and child not in view.hidden_units:
            out.append(inner + _node(view, child, cluster.path))
    if cluster.path is not None:
        out.append(f"{pad}}}")


def _node(view: _View, unit: str, parent: str | None) -> str:
    ops = view.unit_ops[unit]
    side = ops[0].side is not None
    attrs = []
    path = view.unit_block.get(unit)
    if path is not None:  # a block instance drawn as one node
        scope = view.graph.scopes[path]
        run = view.runs.get(path)
        paths = run.paths if run else [path]
        params = sum(view.graph.node(i).params for p in paths for i in view.scope_ops[p])
        name = _display(path, parent)
        if run:
            name += f" … {_display(paths[-1], parent)}"
        head = f"<b>{_esc(name)}</b>" + (f'  <font color="#b00000"><b>×{len(paths)}</b></font>' if run else "")
        lines = [head, _esc(scope.call)]
        inner = view.scope_ops[path]
        if len(inner) <= SUMMARY_OPS and all(len(list(view.g.predecessors(i))) <= 1 for i in inner):
            lines.append(_esc(" → ".join(op_summary(view.graph.node(i)) for i in inner)))  # a short chain: its ops
        lines.append(_small(f"{params:,} params"))
        attrs += [f'fillcolor="{BLOCK_COLOUR}"']
        if run:
            attrs.append("peripheries=2")
    else:
        op = ops[0]
        lines = [f"<b>{_esc(op_summary(op))}</b>"]
        if op.op == "add":  # a big plus, the residual scale under it
            lines = ['<font point-size="16"><b>+</b></font>']
            if op.args.get("scale") not in (None, 1, 1.0):
                lines.append(f'<font point-size="9">×{op.args["scale"]}</font>')
        detail = [_display(op.name, parent)] if op.name else []
        if op.params:
            detail.append(f"{op.params:,} params")
        if detail:
            lines.append(_small(" · ".join(detail)))
        attrs.append(f'fillcolor="{COLOURS.get(op.op, "#ffffff")}"')
        if op.op == "concat":
            attrs += ["shape=invtrapezium", 'style="filled"']
        elif op.op == "add":
            attrs += ["shape=circle", 'style="filled"', "margin=0.02", 'fontcolor="#ffffff"']
        elif op.op == "input":
            attrs += ["shape=oval", 'style="solid"']
    if side:
        attrs += [f'color="{SIDE_COLOUR}"', 'style="rounded,filled,dashed"']
    attrs.append("penwidth=1.5" if path is not None or ops[0].op in ("concat", "add") or side else "penwidth=1")
    label = "<" + "<br/>".join(lines) + ">"
    return f"{_q(unit)} [label={label}, {', '.join(attrs)}];"


def _terminals(view: _View) -> dict:
    """Input nodes (block drawings) and output nodes, with their edges."""
    graph = view.graph
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
                if u in graph.g.predecessors(op.id) and view.unit(op.id) not in targets:
                    targets.append(view.unit(op.id))
            in_edges += [(node_id, t, [graph.node(u).shape], False) for t in targets]
        outputs = [op for op in view.ops
                   if op.id == graph.output or any(v not in view.in_view for v in graph.g.successors(op.id))]
        for op in outputs:
            node_id = f"out:{op.id}"
            nodes.append((node_id, "output", False))
            out_edges.append((view.unit(op.id), node_id, [op.shape], False))
        return {"nodes": nodes, "in_edges": in_edges, "out_edges": out_edges}
    if graph.output is not None:
        nodes.append(("out:output", "output", False))
        out_edges.append((view.unit(graph.output), "out:output", [graph.node(graph.output).shape], False))
    for name, node_id in graph.sides.items():
        nodes.append((f"out:{name}", f"{name} (side output)", True))
        out_edges.append((view.unit(node_id), f"out:{name}", [graph.node(node_id).shape], True))
    return {"nodes": nodes, "in_edges": in_edges, "out_edges": out_edges}


# ------------------------------------------------------------------ blocks


def _require_variants(spec, block: str | None = None) -> None:
    if not spec.variants:  # a library such as common.arch: blocks without an input to infer shapes from
        raise SpecError(f"{spec.path} has no network to draw, only blocks", None,
                        hint=f"draw a spec that uses them: archc draw SPEC --block {block or 'NAME'}")


def block_instance(spec, name: str, variant: str | None = None) -> tuple[Graph, str]:
    """The graph and scope path of the first instance of block ``name`` (in ``variant``, else in the
    first variant that uses it); ``name`` may also be a block instance's or named seq's module path
    (``layer2.0``) in ``variant`` (else the first variant)."""
    _require_variants(spec, name)
    blocks = spec.program.blocks
    if name not in blocks:
        graph = spec.graph(variant)
        if name in graph.scopes:
            return graph, name
        raise SpecError(f"no block '{name}' in {spec.path}, and no module '{name}' in {graph.variant}", None,
                        hint=did_you_mean(name, [*blocks, *graph.scopes])
                        or f"blocks: {', '.join(sorted(blocks)) or 'none'}")
    for v in [variant] if variant else list(spec.variants):
        graph = spec.graph(v)
        for op in graph.ops():
            for s in op.scope:
                scope = graph.scopes[s]
                if scope.kind == "block" and scope.block == name:
                    return graph, s
    if variant is None:
        raise SpecError(f"block '{name}' is not used by any variant of {spec.path}", blocks[name].span)
    users = [v for v in spec.variants if v != variant and any(
        s.kind == "block" and s.block == name for s in spec.graph(v).scopes.values())]
    raise SpecError(f"block '{name}' is not used in variant '{variant}' of {spec.path}", blocks[name].span,
                    hint=f"variants that use it: {', '.join(users)}" if users else None)


# ------------------------------------------------------------------ rendering


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "gv":
        suffix = "dot"
    if suffix not in FORMATS:
        raise DrawError(f"cannot tell the format of '{path}': use a .svg, .png, .pdf or .dot file name")
    return suffix


def find_renderer() -> tuple[str, str] | None:
    """(name, path) of the layout program: $ARCHC_DOT, a system ``dot``, else ``graphviz-pure``."""
    override = os.environ.get("ARCHC_DOT")
    if override:
        found = shutil.which(override)
        if found is None:
            raise DrawError(f"ARCHC_DOT names '{override}', which is not a program")
        return Path(found).stem, found
    found = shutil.which("dot")
    if found:
        return "dot", found
    exe = "graphviz-pure.exe" if os.name == "nt" else "graphviz-pure"
    candidates = [shutil.which("graphviz-pure"), str(Path(sys.executable).parent / exe),
                  str(Path(sysconfig.get_path("scripts")) / exe)]
    try:
        candidates.append(str(Path(sysconfig.get_path("scripts", f"{os.name}_user")) / exe))
    except KeyError:
        pass
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return "graphviz-pure", candidate
    return None


def render(source: str, fmt: str) -> bytes:
    """Lay out DOT text with Graphviz and return the ``fmt`` file's bytes (``dot``: the text itself)."""
    if fmt == "dot":
        return source.encode("utf-8")
    renderer = find_renderer()
    if renderer is None:
        raise DrawError("no Graphviz renderer found: install Graphviz ('dot') or the graphviz-pure package "
                        "(pip install graphviz-pure), or write a .dot file")
    name, path = renderer
    if fmt == "pdf" and name == "graphviz-pure":
        raise DrawError("graphviz-pure (the renderer in use: no Graphviz 'dot' on PATH) cannot write PDF; "
                        "write .svg or .png, or install Graphviz for PDF")
    cmd = [path, "-q", f"-T{fmt}"]
    if fmt == "png":
        cmd.append(f"-Gdpi={PNG_DPI}")
    result = subprocess.run(cmd, input=source.encode("utf-8"), capture_output=True)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise DrawError(f"{name} ({path}) could not write {fmt.upper()}: {message}")
    return result.stdout


def draw(spec, variant: str | None = None, fmt: str = "svg", depth: int | None = None, fold: bool = True,
         block: str | None = None) -> bytes:
    """A diagram of one variant of ``spec`` (or of block ``block``'s first instance) as ``fmt`` bytes."""
    if block is not None:
        graph, path = block_instance(spec, block, variant)
        source = dot_source(graph, depth, fold, block=path)
    else:
        _require_variants(spec)
        source = dot_source(spec.graph(variant), depth, fold)
    return render(source, fmt)


def legend_source() -> str:
    """A key to the colours and shapes, as DOT text."""
    items = [("conv", "conv 3x3/2, 64"), ("batchnorm", "batchnorm"), ("relu", "relu"), ("maxpool", "maxpool / avgpool"),
             ("adaptive_avgpool", "adaptive pool"), ("linear", "linear"), ("dropout", "dropout"),
             ("lrn", "lrn"), ("subsample", "subsample / pad_channels"), ("flatten", "flatten / identity")]
    out = ["digraph legend {",
           '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.15, ranksep=0.2, margin=0.1];',
           '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", color="#666666", '
           'margin="0.12,0.04", height=0.3];']
    for kind, text in items:
        out.append(f'  {_q(kind)} [label={_q(text)}, fillcolor="{COLOURS[kind]}"];')
    out.append(f'  "concat" [label=<<b>concat</b>>, shape=invtrapezium, style=filled, fillcolor="{COLOURS["concat"]}", '
               "penwidth=1.5];")
    out.append(f'  "add" [label=<<font point-size="16"><b>+</b></font>>, shape=circle, style=filled, '
               f'fillcolor="{COLOURS["add"]}", fontcolor="#ffffff", margin=0.02, penwidth=1.5];')
    out.append(f'  "block" [label=<<b>name</b><br/>Block(args)<br/>{_small("params")}>, fillcolor="{BLOCK_COLOUR}", '
               "penwidth=1.5];")
    out.append(f'  "fold" [label=<<b>name1 … nameN</b>  <font color="#b00000"><b>×N</b></font><br/>Block(args)>, '
               f'fillcolor="{BLOCK_COLOUR}", penwidth=1.5, peripheries=2];')
    out.append(f'  "side" [label="side output", style="rounded,filled,dashed", color="{SIDE_COLOUR}", '
               'fillcolor="#ffffff", fontcolor="#c2185b", penwidth=1.5];')
    names = [k for k, _ in items] + ["concat", "add", "block", "fold", "side"]
    rows = (names[:7], names[7:])
    for row in rows:
        out.append("  { rank=same; " + " -> ".join(_q(n) for n in row) + " [style=invis]; }")
    out.append(f"  {_q(rows[0][0])} -> {_q(rows[1][0])} [style=invis];")
    out.append("}")
    return "\n".join(out) + "\n"
