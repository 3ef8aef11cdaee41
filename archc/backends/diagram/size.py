"""How big a picture comes out, estimated without laying it out, and the default depth that keeps it readable.

``archc draw`` without ``--depth`` draws the deepest level whose picture is
at most ``MAX_PICTURE_PX`` pixels on its long side (at ``render.PNG_DPI``;
SVG's points are the same pixels at 96 dpi), judged from the graph, not from
a table of networks: GoogLeNet opens to its Inceptions' branches, ResNet-50 to
its Bottlenecks' layers, EfficientNet-B0 stays at its MBConv blocks. Where
even depth 1 is larger, depth 1 it is (the network's own blocks, folded).

The estimate follows how dot lays out top to bottom: nodes on ranks, each edge
label a node of its own on a rank between its ends, ``ranksep`` between ranks,
every box a margin and its title around what it holds. Along the ranks it is
the longest path, weighted by node heights and by the boxes the path enters
and leaves; across, the widest rank. It is calibrated on the shipped specs
against graphviz-pure (``tests/test_draw_size.py`` holds it to the real layout
on a sample): within a third either way, which is what choosing a depth needs.
"""

from __future__ import annotations

import re
from collections import deque

MAX_PICTURE_PX = 4000
PT_PX = 96 / 72  # an SVG point at PNG_DPI
LINE = 12.0  # a label line at 11 points, in points
CHAR = 8.0  # a character at 11 points, with the node's margins
NODE_PAD = 8.0  # the node's margin above and below its label
MIN_NODE = 21.6  # height=0.3 (inches)
RANK_GAP = 35.0  # ranksep above and below an edge label's rank, and the label
BOX = 18.0  # a box's title or margin, above or below what it holds
NODE_SEP = 40.0  # nodesep, and the room an edge takes beside a node
EDGE_CHAR = 4.0  # a character of an edge label, at 9 points
TITLE_CHAR = 7.0  # at 12 points
_TAG = re.compile(r"<[^>]+>")


def label_lines(dot_line: str) -> list[str]:
    """The text lines of a node's DOT statement (an HTML-like label ``<...>`` or a quoted one)."""
    m = re.search(r"label=<(.*)>, ", dot_line) or re.search(r'label="((?:[^"\\]|\\.)*)"', dot_line)
    if m is None:
        return [""]
    return [_TAG.sub("", part) for part in m.group(1).split("<br/>")]


def estimate(source: str) -> tuple[float, float]:
    """(width, height) in pixels of the picture of the DOT text ``source`` (as ``dot.dot_source`` writes it)."""
    rankdir = "LR" if "rankdir=LR" in source else "TB"
    stack: list[str] = []
    boxes: dict[str, frozenset] = {}
    lines: dict[str, list[str]] = {}
    edges: list[tuple[str, str, str]] = []
    titles: list[float] = []
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("subgraph "):
            stack.append(text)
        elif text.startswith("graph [label=") and stack:  # a box's title, as wide as it is
            title = re.match(r'graph \[label="((?:[^"\\]|\\.)*)"', text)
            titles.append(len(title.group(1)) * TITLE_CHAR + BOX * len(stack) if title else 0.0)
        elif text == "}" and stack:
            stack.pop()
        elif (m := _EDGE.match(text)) is not None:
            label = re.search(r'label="((?:[^"\\]|\\.)*)"', text)
            edges.append((m.group(1), m.group(2), label.group(1).strip() if label else ""))
        elif (m := _NODE.match(text)) is not None:
            boxes[m.group(1)] = frozenset(stack)
            lines[m.group(1)] = label_lines(text)
    tall = {n: max(MIN_NODE, len(ls) * LINE + NODE_PAD) for n, ls in lines.items()}
    wide = {n: max(len(x) for x in ls) * CHAR + 18 for n, ls in lines.items()}
    if rankdir == "LR":
        tall, wide = wide, tall
    along: dict[str, float] = {}
    rank: dict[str, int] = {}
    preds: dict[str, list[str]] = {}
    for u, v, _ in edges:
        preds.setdefault(v, []).append(u)
    for n in _topological(list(lines), edges):
        best, best_rank = BOX * len(boxes[n]), 0
        for u in preds.get(n, ()):
            best = max(best, along[u] + RANK_GAP + BOX * len(boxes[u] ^ boxes[n]))
            best_rank = max(best_rank, rank[u] + 1)
        along[n], rank[n] = best + tall[n], best_rank
    length = max((along[n] + BOX * len(boxes[n]) for n in along), default=0.0)
    widths: dict[int, float] = {}  # by level: a node's rank twice, an edge label's between
    for n in along:
        widths[2 * rank[n]] = widths.get(2 * rank[n], 0.0) + wide[n] + NODE_SEP + BOX * len(boxes[n]) / 2
    for u, v, label in edges:
        if u in rank and v in rank:
            first = 2 * rank[u] + 1
            widths[first] = widths.get(first, 0.0) + len(label) * EDGE_CHAR + NODE_SEP
            for level in range(first + 1, 2 * rank[v]):  # a long edge: a virtual node on every level it crosses
                widths[level] = widths.get(level, 0.0) + NODE_SEP
    across = max([*widths.values(), *titles], default=0.0)
    width, height = (across, length) if rankdir == "TB" else (length, across)
    return width * PT_PX, height * PT_PX


_ID = r'"((?:[^"\\]|\\.)*)"'
_NODE = re.compile(_ID + r" \[")
_EDGE = re.compile(_ID + " -> " + _ID + r" \[")


def _topological(nodes: list[str], edges: list[tuple[str, str, str]]) -> list[str]:
    """``nodes`` ordered so that every edge goes forward, otherwise in their given order."""
    indegree = dict.fromkeys(nodes, 0)
    succs: dict[str, list[str]] = {}
    for u, v, _ in edges:
        if u in indegree and v in indegree:
            indegree[v] += 1
            succs.setdefault(u, []).append(v)
    ready = deque(n for n in nodes if indegree[n] == 0)
    out = []
    while ready:
        n = ready.popleft()
        out.append(n)
        for v in succs.get(n, ()):
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    return out
