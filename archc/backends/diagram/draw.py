"""Diagrams of a network, from the whole network down to one block: Graphviz DOT, SVG, PNG, PDF, HTML.

``draw(spec, ...)`` is the entry point (``archc draw``); the work is split by
job: ``labels`` (colours, label text), ``view`` (what is drawn: units,
boxes, folding, edges), ``dot`` (DOT text), ``render`` (running
Graphviz) and ``page`` (the interactive page). ``dot_source(graph)`` turns
a validated graph into Graphviz DOT text and ``render(source, fmt)`` lays it
out, top to bottom or (``--layout lr``, Graphviz's ``rankdir=LR``) left to
right. Every block instance and named ``seq`` is a cluster labelled with its
name and call (``inception3a: Inception(64, 96, ...)``); edges carry the tensor shape (C×H×W); a node shows its op, the op's
key arguments (``conv 7x7/2, 64``) and its parameter count, in one colour per
kind of op; a concatenation is a gold trapezium, a residual addition a red
circle; side outputs hang off the main path dashed, in magenta.

Depth. ``depth = N`` draws each block instance nested N blocks deep as one
node (GoogLeNet at depth 1: the stem layers, nine Inception boxes, the head).
Without one, a picture is drawn at the deepest level whose picture
``size.estimate`` puts at most ``size.MAX_PICTURE_PX`` on its long side: the
choice follows the graph's size, not the network's name.
Only block instances count as levels: a named ``seq`` is a grouping box, never
a level of its own, so ResNet's ``layer1`` at depth 1 is a box around its
Bottleneck nodes, and VGG's ``features`` at any depth a box around its layers.
(``archc stats --depth`` counts named seqs as levels too: it totals them.)

Labels. A block's call is written with its parameters' names, the arguments
equal to their defaults left out and floats rounded to three significant
digits (``calls``): ``MBConv(expand_ratio=6, kernel=5, stride=2,
out_channels=40, p=0.0375)``. An op's label says what it does on its input
(its kind's ``effective``): Swin V2's shift is off where one window covers the map.

Folding. Runs of three or more consecutive *alike* block instances fold into
one node (or, where the blocks are drawn open, one cluster: the run's first
instance) marked ×N; a pair stays two nodes (folding would save one and hide
it). Two instances are alike when they are instances of the same block with
the same call (the evaluated arguments, ``Bottleneck(256, 1)``) and the same
ops with the same arguments wired the same way, and the first feeds the second
and nothing else; but for scalars: numbers may differ where only floats do
(drop rates) or where every op comes out the same size (Swin's shift), and the
fold then says how they vary (``stochastic_depth_prob = 0.0727 … 0.164``,
``shift_size = 0 or 3``). Input channels may differ: DenseNet's ``DenseLayer(32)``s
each see 32 more channels, yet fold into one ``denselayer1 … denselayer6 ×6``;
ResNet's ``layer1.0`` is not alike ``layer1.1`` (same call, but its projection
shortcut is extra ops). A folded node shows the run's total parameters, its
edges the shapes going into the run's first instance and out of its last; a
folded cluster draws the first instance, with that instance's shapes inside.
An edge out of a folded run stands for every member that sends one: a dense's
members each send their new features to its last concatenation, so that edge
reads ``6 × 32×56×56 = 192×56×56`` and the concatenation's inputs add up to its
output (64 + 192 = 256). Where a network repeats groups of ops instead of blocks
(VGG's conv and ReLU, conv and ReLU ... in one seq), runs of three or more alike
groups fold into one node the same way (``opruns``): ``features.14 … features.25
×4``, ``conv 3x3, 256 → relu``, the max pools between the stages kept.

Size. A picture goes to the renderer only if Graphviz would lay it out as at
most ``MAX_LAYOUT_NODES`` nodes, counting the chains of virtual nodes dot puts
along edges that cross ranks (``dot.layout_size``): dense connectivity
unfolded (``--no-fold``) costs far more than its node count. Beyond that,
``DrawError`` says so and suggests ``--depth`` and ``--block``; DOT text is
written at any size, and the page has bounds of its own (``page``).

The page. ``-o net.html`` writes one self-contained HTML file: it opens where
the network's stages are, each block instance and named seq opening in place
on a click, runs folded as here with a count that unfolds them, tooltips with
every op's arguments, shapes and parameters, a search box for module paths,
blocks and ops, keyboard navigation and an SVG export of what is shown. See ``page``.

Renderer. A system Graphviz ``dot`` on PATH is used when there is one (the
reference implementation; PDF where it was built with cairo). Otherwise
``graphviz-pure``, a self-contained Rust port of dot 16.1 that pip installs
as a dependency of archc: one static binary, no C libraries, the same bytes on
every platform, SVG and PNG with bundled fonts (no PDF). So ``archc draw``
works wherever ``pip install archc`` did, on CI machines without Graphviz too,
and even with an empty PATH (the binary is found next to ``sys.executable`` or in the
environment's scripts directory). Rejected: the ``graphviz`` and ``pydot``
packages only run a ``dot`` program (here they would add nothing over the DOT
text ``dot`` writes by hand); pure-Python layouts (networkx with matplotlib)
have no clustered, ranked layout and would pull in matplotlib. ``ARCHC_DOT``
names another dot-compatible program. The DOT text is deterministic: ops in
the graph's order, ids from module paths, no timestamps.
"""

from __future__ import annotations

from ...errors import SpecError, did_you_mean
from ...sema.graph import Graph
from .calls import Signatures, masked
from .dot import SUMMARY_OPS, dot_source, legend_source
from .labels import BLOCK_COLOUR, COLOURS, EDGE_COLOUR, SIDE_COLOUR, colour, op_summary, shape_text
from .render import FORMATS, PNG_DPI, DrawError, find_renderer, format_of, render
from .size import MAX_PICTURE_PX, estimate
from .view import MIN_FOLD

LAYOUTS = ("tb", "lr")  # top to bottom, left to right (Graphviz rankdir TB, LR)
# The most nodes archc hands the renderer, counting the virtual nodes dot adds along edges that cross ranks
# (``dot.layout_size``): graphviz-pure lays out a 2,000-layer chain in 2 s, but takes 19 s for
# densenet40_k12 at --depth 2 with --no-fold (89 nodes, 321 edges, 2,237 with virtual ones) and minutes for
# densenet121 there (7,753); a system dot is faster, but past a few thousand it is slow too.
MAX_LAYOUT_NODES = 2500

__all__ = [
    "BLOCK_COLOUR",
    "COLOURS",
    "EDGE_COLOUR",
    "FORMATS",
    "LAYOUTS",
    "MAX_LAYOUT_NODES",
    "MIN_FOLD",
    "PNG_DPI",
    "SIDE_COLOUR",
    "SUMMARY_OPS",
    "DrawError",
    "block_instance",
    "colour",
    "dot_source",
    "draw",
    "find_renderer",
    "format_of",
    "legend_source",
    "op_summary",
    "render",
    "shape_text",
]


def _require_variants(spec, block: str | None = None) -> None:
    if not spec.variants:  # a library such as common.arch: blocks without an input to infer shapes from
        raise SpecError(f"{spec.path} has no network to draw, only blocks", None,
                        hint=f"draw a spec that uses them: archc draw SPEC --block {block or 'NAME'}")


def block_instance(spec, name: str, variant: str | None = None) -> tuple[Graph, str]:
    """The graph and scope path of the most common configuration of block ``name`` (in ``variant``, else in the
    first variant that uses it): its first instance of the call and ops most of its instances share, drop rates
    and other floats aside (``common_instance``). ``name`` may also be a block instance's or named seq's module
    path (``layer2.0``) in ``variant`` (else the first variant)."""
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
        path = common_instance(graph, name)
        if path is not None:
            return graph, path
    if variant is None:
        raise SpecError(f"block '{name}' is not used by any variant of {spec.path}", blocks[name].span)
    users = [v for v in spec.variants if v != variant and any(
        s.kind == "block" and s.block == name for s in spec.graph(v).scopes.values())]
    raise SpecError(f"block '{name}' is not used in variant '{variant}' of {spec.path}", blocks[name].span,
                    hint=f"variants that use it: {', '.join(users)}" if users else None)


def common_instance(graph: Graph, name: str) -> str | None:
    """The first instance of block ``name`` in ``graph`` whose configuration most instances share: the same call
    and the same ops with the same arguments, wired the same way, floats (drop rates) aside; ties go to the
    earliest. None where ``graph`` has no instance."""
    members: dict[str, list] = {}
    for op in graph.ops():
        for s in op.scope:
            scope = graph.scopes[s]
            if scope.kind == "block" and scope.block == name:
                rel = len(s) + 1
                inputs = tuple(i[rel:] if i.startswith(s + ".") else "<in>" for i in op.inputs)
                members.setdefault(s, [(scope.block, masked(scope.args, only_floats=True))]).append(
                    (op.id[rel:], op.op, masked(op.args, only_floats=True), inputs))
    counts: dict[tuple, list[str]] = {}
    for path, config in members.items():
        counts.setdefault(tuple(config), []).append(path)
    return max(counts.values(), key=len)[0] if counts else None  # max keeps the first of equals


def draw(spec, variant: str | None = None, fmt: str = "svg", depth: int | None = None, fold: bool = True,
         block: str | None = None, layout: str = "tb") -> bytes:
    """A diagram of one variant of ``spec`` (or of block ``block``'s first instance) as ``fmt`` bytes: a picture
    laid out top to bottom (``layout`` "tb") or left to right ("lr"), its DOT text, or the interactive page
    (``html``, which ignores ``fold`` and ``layout``: it unfolds on click and lays itself out)."""
    if layout not in LAYOUTS:
        raise DrawError(f"unknown layout '{layout}': use {' or '.join(LAYOUTS)}")
    if block is not None:
        graph, path = block_instance(spec, block, variant)
    else:
        _require_variants(spec)
        graph, path = spec.graph(variant), None
    signatures = Signatures.of_spec(spec)
    if fmt == "html":
        from . import page

        return page.page(graph, depth, path, page.spec_docs(spec, graph.variant), signatures).encode("utf-8")
    if depth is None and max_depth(graph, path):  # without blocks, every depth is the same picture
        depth = default_depth(graph, fold, path, layout.upper(), signatures)
    limit = None if fmt == "dot" else MAX_LAYOUT_NODES
    source = dot_source(graph, depth, fold, block=path, rankdir=layout.upper(), max_layout=limit,
                        signatures=signatures)
    return render(source, fmt)


def default_depth(graph: Graph, fold: bool = True, block: str | None = None, rankdir: str = "TB",
                  signatures: Signatures | None = None) -> int | None:
    """The deepest level whose picture ``size.estimate`` puts at most ``MAX_PICTURE_PX`` on its long side (None:
    every block open fits; 1 where nothing fits)."""
    return fitting_depth(graph, fold, block, rankdir, signatures)[0]


def fitting_depth(graph: Graph, fold: bool = True, block: str | None = None, rankdir: str = "TB",
                  signatures: Signatures | None = None) -> tuple[int | None, tuple[float, float]]:
    """``default_depth`` and the estimated (width, height) of its picture, in pixels. A deeper level is never
    smaller, so the search goes down from depth 1 and stops at the first level that does not fit."""
    levels: list[int | None] = [*range(1, max_depth(graph, block) + 1), None]  # [None]: no blocks to close
    fits: tuple[int | None, tuple[float, float]] | None = None
    for depth in levels:
        size = estimate(dot_source(graph, depth, fold, block=block, rankdir=rankdir, signatures=signatures))
        if max(size) > MAX_PICTURE_PX:
            return fits or (depth, size)
        fits = (depth, size)
    return fits


def max_depth(graph: Graph, block: str | None = None) -> int:
    """How many block instances deep ``graph`` (or its instance ``block``) nests."""
    deepest = 0
    for op in graph.ops():
        if block is not None and block not in op.scope:
            continue
        chain = op.scope[op.scope.index(block) + 1:] if block is not None else op.scope
        deepest = max(deepest, sum(graph.scopes[s].kind == "block" for s in chain))
    return deepest
