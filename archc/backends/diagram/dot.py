"""Graphviz DOT text of a graph's view: boxes for blocks and seqs, one node per unit, shapes on the edges."""

from __future__ import annotations

from ...sema.graph import Graph
from .calls import Signatures, range_text
from .labels import (
    BLOCK_COLOUR,
    COLOURS,
    EDGE_COLOUR,
    SIDE_COLOUR,
    carried_text,
    colour,
    display,
    effective,
    esc,
    op_summary,
    quote,
    small,
)
from .render import DrawError
from .view import Cluster, View, terminals

SUMMARY_OPS = 4  # a block of at most this many ops in a chain lists them on its node
WRAP = 48  # a longer call on a node breaks after a comma
RANKDIRS = ("TB", "LR")


def dot_source(graph: Graph, depth: int | None = None, fold: bool = True, block: str | None = None,
               title: str | None = None, rankdir: str = "TB", max_layout: int | None = None,
               signatures: Signatures | None = None) -> str:
    """The Graphviz DOT text of ``graph``, or of its block instance at path ``block``; ``rankdir`` LR lays it out
    left to right. With ``max_layout``, a diagram that Graphviz would lay out as more nodes than that (see
    ``layout_size``) raises ``DrawError`` instead. ``signatures`` (the spec's) name the blocks' arguments."""
    if depth is not None and depth < 1:
        raise ValueError("depth must be at least 1")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}")
    view = View(graph, depth, fold, block, signatures, fold_ops=fold)
    ends = terminals(view)
    edges = ends["in_edges"] + view.edges() + ends["out_edges"]
    if max_layout is not None:
        _check_size(view, ends["nodes"], edges, max_layout, block)
    out = [
        "digraph archc {",
        # newrank: one ranking across clusters, so that parallel branches stay in the spec's order
        f'  graph [rankdir={rankdir}, newrank=true, fontname="Helvetica", fontsize=16, labelloc=t, nodesep=0.3, '
        f"ranksep=0.3, margin=0.2, label={quote(title or diagram_title(graph, block, view.signatures))}];",
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", color="#666666", '
        'margin="0.12,0.04", height=0.3];',
        f'  edge [fontname="Helvetica", fontsize=9, fontcolor="{EDGE_COLOUR}", color="{EDGE_COLOUR}", arrowsize=0.6];',
    ]
    _emit_cluster(view, view.top, out, "  ", 0)
    for node_id, label, side in ends["nodes"]:
        line = SIDE_COLOUR if side else "#666666"
        style = "dashed" if side else "solid"
        out.append(f"  {quote(node_id)} [label={quote(label)}, shape=oval, style={style}, color=\"{line}\", "
                   f"fontcolor=\"{line if side else '#000000'}\"];")
    for u, v, shapes, side in edges:
        concat = v in view.unit_ops and view.into_concat(v)
        attrs = [f"label={quote('  ' + ', '.join(carried_text(s, n, concat) for s, n in shapes))}"]
        if side:
            attrs += ["style=dashed", f'color="{SIDE_COLOUR}"', f'fontcolor="{SIDE_COLOUR}"', "weight=1"]
        else:
            attrs.append("weight=4")  # keeps the main path straight, side branches beside it
        out.append(f"  {quote(u)} -> {quote(v)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def layout_size(view: View, end_nodes: list, edges: list) -> tuple[int, int]:
    """(drawn nodes, nodes Graphviz lays out). dot ranks the nodes and replaces an edge that crosses k ranks by
    a chain of k - 1 virtual nodes, so dense connectivity (every layer into every later concatenation) costs
    far more than its node count says; ranks are estimated by longest path, in the graph's order."""
    order = [n for n, _, _ in end_nodes if n.startswith("in:")]
    order += list(dict.fromkeys(view.unit(op.id) for op in view.ops))
    order += [n for n, _, _ in end_nodes if not n.startswith("in:")]
    position = {n: i for i, n in enumerate(order)}
    preds: dict[str, list[str]] = {}
    for u, v, _, _ in edges:
        preds.setdefault(v, []).append(u)
    rank: dict[str, int] = {}
    for n in order:
        rank[n] = max((rank[u] + 1 for u in preds.get(n, ()) if position[u] < position[n]), default=0)
    drawn = sum(1 for _ in view.drawn_units()) + len(end_nodes)
    return drawn, drawn + sum(max(rank[v] - rank[u] - 1, 0) for u, v, _, _ in edges)


def _check_size(view: View, end_nodes: list, edges: list, limit: int, block: str | None) -> None:
    drawn, size = layout_size(view, end_nodes, edges)
    if size > limit:
        what = f"{block} in {view.graph.variant}" if block else view.graph.variant or view.graph.network
        raise DrawError(
            f"the diagram of {what} is too big to render: {drawn:,} nodes and {len(edges):,} edges, which Graphviz "
            f"would lay out as {size:,} nodes (an edge across k ranks becomes k - 1 more); archc renders at most "
            f"{limit:,} (draw.MAX_LAYOUT_NODES)\nhint: draw less of it: --depth N (1: only the network's own "
            "blocks), --block NAME, or keep runs folded (no --no-fold); or write an interactive .html page or "
            "the .dot text, which have no such limit")


def diagram_title(graph: Graph, block: str | None, signatures: Signatures | None = None) -> str:
    from ..stats import human

    name = graph.variant or graph.network
    if block is not None:
        scope = graph.scopes[block]
        params = sum(graph.node(i).params for i in graph.g.nodes if block in graph.node(i).scope)
        return f"{scope.block}: {block} = {(signatures or Signatures()).label(scope)} in {name}, {params:,} params"
    main = [op for op in graph.ops() if op.side is None]  # stats.totals' figures, without its memory walk
    params, macs = sum(op.params for op in main), sum(op.macs for op in main)
    side_params = graph.params - params
    text = f"{name} ({graph.network}): {human(params)} params, {human(macs)} MACs"
    if side_params:
        text += f"; side outputs {human(side_params)} params"
    return text


def _emit_cluster(view: View, cluster: Cluster, out: list[str], pad: str, level: int,
                  parent: str | None = None) -> None:
    inner = pad
    if cluster.path is not None:
        scope = view.graph.scopes[cluster.path]
        name = display(cluster.path, parent)
        run = view.runs.get(cluster.path)
        varying = run.varying if run is not None else {}
        if run is not None:
            name = f"{name} … {display(run.paths[-1], parent)} ×{len(run.paths)}"
        label = f"{name}: {view.signatures.label(scope, varying)}"
        if varying:
            label += ", " + ", ".join(range_text(k, v) for k, v in varying.items())
        style = '"rounded,dashed"' if scope.kind == "seq" else '"rounded,filled"'
        fill = "#eef3f8" if level % 2 == 1 else "#ffffff"
        side = any(view.graph.node(i).side for i in view.scope_ops[cluster.path][:1])
        line = SIDE_COLOUR if side else ("#888888" if scope.kind == "seq" else "#5b7083")
        out.append(f"{pad}subgraph {quote('cluster_' + cluster.path)} {{")
        inner = pad + "  "
        attrs = [f"label={quote(label)}", f"style={style}", f'color="{line}"', f'fillcolor="{fill}"',
                 "fontsize=12", "labeljust=l", "margin=10"]
        if run is not None:
            attrs.append("penwidth=2.5")
        if side:
            attrs.append(f'fontcolor="{SIDE_COLOUR}"')
        out.append(f"{inner}graph [{', '.join(attrs)}];")
    for child in cluster.children:
        if isinstance(child, Cluster):
            if child.path not in view.hidden:
                block_level = level + (view.graph.scopes[child.path].kind == "block")
                _emit_cluster(view, child, out, inner, block_level, cluster.path)
        elif view.unit_block.get(child) not in view.hidden and child not in view.hidden_units:
            out.append(inner + _node(view, child, cluster.path))
    if cluster.path is not None:
        out.append(f"{pad}}}")


def _node(view: View, unit: str, parent: str | None) -> str:
    ops = view.unit_ops[unit]
    side = ops[0].side is not None
    attrs = []
    path = view.unit_block.get(unit)
    run_of_ops = view.op_runs.get(unit)
    if run_of_ops is not None:  # alike groups of ops in a row: VGG's conv, relu, conv, relu
        first, last = run_of_ops.ops[0], run_of_ops.ops[-1]
        name = f"{display(first.name or first.id, parent)} … {display(last.name or last.id, parent)}"
        lines = [f"<b>{esc(name)}</b>  " + f'<font color="#b00000"><b>×{run_of_ops.count}</b></font>',
                 esc(" → ".join(op_summary(op) for op in run_of_ops.ops[:run_of_ops.period])),
                 small(f"{sum(op.params for op in run_of_ops.ops):,} params")]
        attrs += [f'fillcolor="{colour(first.op)}"', "peripheries=2"]
    elif path is not None:  # a block instance drawn as one node
        scope = view.graph.scopes[path]
        run = view.runs.get(path)
        paths = run.paths if run else [path]
        params = sum(view.graph.node(i).params for p in paths for i in view.scope_ops[p])
        name = display(path, parent)
        if run:
            name += f" … {display(paths[-1], parent)}"
        head = f"<b>{esc(name)}</b>" + (f'  <font color="#b00000"><b>×{len(paths)}</b></font>' if run else "")
        varying = run.varying if run else {}
        lines = [head, *map(esc, wrapped(view.signatures.label(scope, varying)))]
        lines += [f'<font color="#b00000">{esc(range_text(k, v))}</font>' for k, v in varying.items()]
        inner = view.scope_ops[path]
        if len(inner) <= SUMMARY_OPS and all(len(list(view.g.predecessors(i))) <= 1 for i in inner):
            lines.append(esc(" → ".join(op_summary(view.graph.node(i)) for i in inner)))  # a short chain: its ops
        notes = dict.fromkeys(n for i in inner if (n := effective(view.graph.node(i))[1]))
        lines += [f'<font point-size="9" color="#b00000">{esc(n)}</font>' for n in notes]
        lines.append(small(f"{params:,} params"))
        attrs += [f'fillcolor="{BLOCK_COLOUR}"']
        if run:
            attrs.append("peripheries=2")
    else:
        op = ops[0]
        lines = [f"<b>{esc(op_summary(op))}</b>"]
        if op.op == "add":  # a big plus, the residual scale under it
            lines = ['<font point-size="16"><b>+</b></font>']
            if op.args.get("scale") not in (None, 1, 1.0):
                lines.append(f'<font point-size="9">×{op.args["scale"]}</font>')
        detail = [display(op.name, parent)] if op.name else []
        if op.params:
            detail.append(f"{op.params:,} params")
        if detail:
            lines.append(small(" · ".join(detail)))
        attrs.append(f'fillcolor="{colour(op.op)}"')
        if op.op == "concat":
            attrs += ["shape=invtrapezium", 'style="filled"']
        elif op.op == "add":
            attrs += ["shape=circle", 'style="filled"', "margin=0.02", 'fontcolor="#ffffff"']
        elif op.op == "input":
            attrs += ["shape=oval", 'style="solid"']
    if side:
        attrs += [f'color="{SIDE_COLOUR}"', 'style="rounded,filled,dashed"']
    wide = path is not None or run_of_ops is not None or ops[0].op in ("concat", "add") or side
    attrs.append("penwidth=1.5" if wide else "penwidth=1")
    label = "<" + "<br/>".join(lines) + ">"
    return f"{quote(unit)} [label={label}, {', '.join(attrs)}];"


def wrapped(text: str, width: int = WRAP) -> list[str]:
    """A call ``Name(a, b, ...)`` in lines of about ``width`` characters, broken after its own commas."""
    lines, depth, start, cut = [], 0, 0, -1
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 1:
            cut = i + 1
        if i - start >= width and cut > start and len(text) - start > width + 12:  # no short last line
            lines.append(text[start:cut].strip())
            start = cut
    lines.append(text[start:].strip())
    return lines


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
        out.append(f'  {quote(kind)} [label={quote(text)}, fillcolor="{COLOURS[kind]}"];')
    out.append(f'  "concat" [label=<<b>concat</b>>, shape=invtrapezium, style=filled, fillcolor="{COLOURS["concat"]}", '
               "penwidth=1.5];")
    out.append(f'  "add" [label=<<font point-size="16"><b>+</b></font>>, shape=circle, style=filled, '
               f'fillcolor="{COLOURS["add"]}", fontcolor="#ffffff", margin=0.02, penwidth=1.5];')
    out.append(f'  "block" [label=<<b>name</b><br/>Block(args)<br/>{small("params")}>, fillcolor="{BLOCK_COLOUR}", '
               "penwidth=1.5];")
    out.append(f'  "fold" [label=<<b>name1 … nameN</b>  <font color="#b00000"><b>×N</b></font><br/>Block(args)>, '
               f'fillcolor="{BLOCK_COLOUR}", penwidth=1.5, peripheries=2];')
    out.append(f'  "side" [label="side output", style="rounded,filled,dashed", color="{SIDE_COLOUR}", '
               'fillcolor="#ffffff", fontcolor="#c2185b", penwidth=1.5];')
    names = [k for k, _ in items] + ["concat", "add", "block", "fold", "side"]
    rows = (names[:7], names[7:])
    for row in rows:
        out.append("  { rank=same; " + " -> ".join(quote(n) for n in row) + " [style=invis]; }")
    out.append(f"  {quote(rows[0][0])} -> {quote(rows[1][0])} [style=invis];")
    out.append("}")
    return "\n".join(out) + "\n"
