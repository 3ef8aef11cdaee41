"""The interactive diagram: one self-contained HTML page (``archc draw SPEC -o net.html``, and Jupyter).

Python builds the page's data from the validated graph, every op with its
label, arguments, shapes and costs, and every block instance and named seq as
a box of its children; the templates ``codegen_templates/diagram.html.jinja``
(the page), ``diagram.css.jinja`` (its styles) and ``diagram.js.jinja`` (its
script: it lays out what is open, top to bottom, and draws it as SVG) hold
the rest. Nothing is fetched: no script, style or font comes from
elsewhere, so the file works offline and from ``file://``.

The data is JSON inside ``<script type="application/json">``, with ``<``, ``>``
and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026``: no text from a spec (a
call, a comment, a string argument) can end that element or become markup, and
the script only ever puts it into the page as text. The page opens where the
network's stages are, and folds runs of alike blocks as the pictures do, each
fold openable (``pagefold``); unfolded, a DenseNet block shows every dense
layer and every concatenation, each reading the block's input and all earlier
layers. ``depth`` makes the blocks that deep leaves of the page (they do not
open), which bounds its data, and opens every box above them; so do
``MAX_ITEMS`` and ``MAX_EDGES``.
"""

from __future__ import annotations

import html
import json

from markupsafe import Markup

from ...sema.graph import Graph, OpNode
from ..templates import environment
from .calls import Signatures, rounded
from .dot import diagram_title
from .labels import BLOCK_COLOUR, SIDE_COLOUR, colour, display, op_summary
from .pagefold import add_runs, first_screen
from .render import DrawError
from .view import Cluster, View, terminals

MAX_ITEMS = 25_000  # ops, boxes and ends in a page's data (resnet1202 has 4,211 ops and 603 boxes)
MAX_EDGES = 100_000  # densenet264 has 4,286
SEQ_COLOUR = "#dde8f0"  # a named seq drawn closed
TEMPLATE = "diagram.html.jinja"
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}



def script_json(data) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` is left in it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return "".join(_JSON_ESCAPES.get(c, c) for c in text) if any(c in text for c in _JSON_ESCAPES) else text


def page(graph: Graph, depth: int | None = None, block: str | None = None, docs: dict | None = None,
         signatures: Signatures | None = None) -> str:
    """The interactive diagram of ``graph`` (or of its block instance at path ``block``) as an HTML page.
    ``docs``: {"network": the network's comment, "blocks": {block name: its comment}} from the spec;
    ``signatures``: the spec's, which name the blocks' arguments."""
    data = page_data(graph, depth, block, docs or {}, signatures)
    return environment(autoescape=True).get_template(TEMPLATE).render(
        title=data["title"], data=Markup(script_json(data)))


def notebook_html(graph: Graph, docs: dict | None = None) -> str:
    """The page inline in Jupyter: an iframe holding it (``srcdoc``), its scripts sandboxed from the notebook."""
    try:
        text = page(graph, docs=docs)
    except DrawError as exc:
        return f"<pre>{html.escape(str(exc))}</pre>"
    return (f'<iframe srcdoc="{html.escape(text, quote=True)}" sandbox="allow-scripts" '
            'style="width: 100%; height: 640px; border: 1px solid #ccc"></iframe>')


def spec_docs(spec, variant: str | None) -> dict:
    """The comments above the variant's network and above each block, for the page."""
    from ...sema.variants import leading_comment

    where = {}
    for module in spec.program.modules:
        for item in [*module.blocks, *module.networks]:
            where[item] = module.source
    blocks = {name: leading_comment(where[b], b.span.line) for name, b in spec.program.blocks.items()
              if b in where and b.span is not None}
    network = ""
    if variant in spec.variants:
        net = spec.variants[variant].network
        if net in where and net.span is not None:
            network = leading_comment(where[net], net.span.line)
    return {"network": network, "blocks": {k: v for k, v in blocks.items() if v}}


# ------------------------------------------------------------------ the data


def _arg(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(map(_arg, value)) + ")"
    return str(value)


def channel_sum(shapes) -> str:
    """What a concatenation adds up: ``64 + 3×32 = 160``, runs of equal inputs counted."""
    runs: list[list[int]] = []
    for shape in shapes:
        if runs and runs[-1][0] == shape[0]:
            runs[-1][1] += 1
        else:
            runs.append([shape[0], 1])
    parts = [f"{c}" if n == 1 else f"{n}×{c}" for c, n in runs]
    return " + ".join(parts) + f" = {sum(s[0] for s in shapes)}"


class _Builder:
    def __init__(self, graph: Graph, depth: int | None, block: str | None, docs: dict,
                 signatures: Signatures | None = None):
        self.graph = graph
        self.view = View(graph, depth, True, block, signatures)  # its runs for pagefold; the units unfolded
        self.docs = docs.get("blocks", {})
        self.items: list[dict] = []
        self.index: dict[str, int] = {}  # unit id, box path or end id -> item

    def build(self) -> tuple[list[dict], list[list]]:
        view = self.view
        ends = terminals(view, remapped=False)
        for node_id, label, side in ends["nodes"]:
            if node_id.startswith("in:"):
                self._end(node_id, label, side, view.graph.node(node_id[3:]).shape)
        stack = [(view.top, -1, list(view.top.children))]
        while stack:  # the boxes depth first, children in order (no recursion: nesting may be deep)
            cluster, parent, todo = stack[-1]
            if not todo:
                stack.pop()
                continue
            child = todo.pop(0)
            if isinstance(child, Cluster):
                box = self._box(child.path, parent, cluster.path)
                stack.append((child, box, list(child.children)))
            else:
                self._unit(child, parent, cluster.path)
        for node_id, label, side in ends["nodes"]:
            if not node_id.startswith("in:"):
                source = next(e for e in ends["out_edges"] if e[1] == node_id)
                self._end(node_id, label, side, source[2][0][0])
        return self.items, self._edges(ends)

    def _add(self, key: str, item: dict, parent: int) -> int:
        if len(self.items) >= MAX_ITEMS:
            raise _TooBig(f"more than {MAX_ITEMS:,} ops and boxes (page.MAX_ITEMS)")
        item["p"] = parent
        self.index[key] = len(self.items)
        self.items.append(item)
        if parent >= 0:
            self.items[parent]["ch"].append(self.index[key])
        return self.index[key]

    def _end(self, node_id: str, label: str, side: bool, shape) -> None:
        self._add(node_id, {"k": "end", "id": node_id, "label": label, "shape": list(shape), "side": side}, -1)

    def _scope_item(self, path: str, parent_path: str | None) -> dict:
        graph, scope = self.graph, self.graph.scopes[path]
        ops = [graph.node(i) for i in self.view.scope_ops[path]]
        item = {"id": path, "name": display(path, parent_path), "kind": scope.kind,
                "call": self.view.signatures.label(scope),
                "block": scope.block, "shape": list(ops[-1].shape), "ops": len(ops),
                "params": sum(o.params for o in ops), "macs": sum(o.macs for o in ops),
                "side": ops[0].side is not None,
                "colour": BLOCK_COLOUR if scope.kind == "block" else SEQ_COLOUR}
        if scope.block in self.docs:
            item["doc"] = self.docs[scope.block]
        return item

    def _box(self, path: str, parent: int, parent_path: str | None) -> int:
        item = self._scope_item(path, parent_path)
        item.update(k="box", ch=[])
        return self._add(path, item, parent)

    def _unit(self, unit: str, parent: int, parent_path: str | None) -> None:
        path = self.view.unit_block.get(unit)
        if path is not None:  # deeper than --depth: a leaf of the page
            item = self._scope_item(path, parent_path)
            item["k"] = "leaf"
            self._add(unit, item, parent)
            return
        op: OpNode = self.view.unit_ops[unit][0]
        item = {"k": "op", "id": op.id, "name": op.name, "label": op_summary(op), "op": op.op,
                "sub": display(op.name, parent_path) if op.name else "",
                "args": ", ".join(f"{k}={_arg(v)}" for k, v in rounded(op.args).items()),
                "ins": [list(s) for s in op.in_shapes], "shape": list(op.shape), "params": op.params,
                "macs": op.macs, "side": op.side is not None, "colour": colour(op.op)}
        layout = getattr(op, "layout", "CHW")
        if layout != "CHW":
            item["layout"] = layout
        if op.op == "concat" and layout == "CHW" and op.in_shapes and all(len(s) == 3 for s in op.in_shapes):
            item["sum"] = channel_sum(op.in_shapes)
        self._add(unit, item, parent)

    def _edges(self, ends: dict) -> list[list]:
        """[from item, to item, shape, side, sending op]: one per op whose output reaches a unit (a block deeper
        than --depth receives each tensor once however many of its ops read it)."""
        view, index = self.view, self.index
        edges: list[list] = []
        for u, v, shapes, side in ends["in_edges"]:
            edges.append([index[u], index[v], list(shapes[0][0]), int(side), -1])
        seen: set[tuple[str, str]] = set()
        for serial, op in enumerate(view.ops):
            ru = view.unit_of[op.id]
            for v in view.g.successors(op.id):
                if v not in view.in_view:
                    continue
                rv = view.unit_of[v]
                if ru == rv or (op.id, rv) in seen:
                    continue
                seen.add((op.id, rv))
                side = op.side is not None or view.graph.node(v).side is not None
                edges.append([index[ru], index[rv], list(op.shape), int(side), serial])
                if len(edges) > MAX_EDGES:
                    raise _TooBig(f"more than {MAX_EDGES:,} edges (page.MAX_EDGES)")
        for u, v, shapes, side in ends["out_edges"]:
            edges.append([index[u], index[v], list(shapes[0][0]), int(side), -1])
        return edges


class _TooBig(Exception):
    pass


def page_data(graph: Graph, depth: int | None = None, block: str | None = None, docs: dict | None = None,
              signatures: Signatures | None = None) -> dict:
    """What the page's script draws: ``items`` (ops, boxes, ends; each box lists its children), ``edges``."""
    if depth is not None and depth < 1:
        raise ValueError("depth must be at least 1")
    builder = _Builder(graph, depth, block, docs or {}, signatures)
    try:
        items, edges = builder.build()
        add_runs(items, builder.index, builder.view, builder.view)
    except _TooBig as exc:
        what = f"{block} in {graph.variant}" if block else graph.variant or graph.network
        raise DrawError(f"the page of {what} would hold {exc}\nhint: draw less of it: --depth N (blocks N deep "
                        "become leaves of the page; 1: only the network's own blocks) or --block NAME") from None
    return {
        "title": diagram_title(graph, block, signatures),
        "doc": (docs or {}).get("network", "") if block is None else "",
        "depth": depth,
        "colours": {"side": SIDE_COLOUR},
        "open": list(dict.fromkeys(([builder.index[block]] if block is not None else []) + first_screen(items, depth))),
        "items": items,
        "edges": edges,
    }
