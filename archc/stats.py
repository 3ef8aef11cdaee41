"""Static statistics of an elaborated graph: parameters and MACs per layer or per block.

Conventions (printed with every table): parameters are trainable parameters
(batch-norm running statistics are buffers, not counted); MACs are the
multiply-accumulates of convolutions and linear layers for one input (the
ResNet paper's "FLOPs", torchvision's "GFLOPS"). Side outputs, which run in
training only, are totalled separately.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import zip_longest

from .graph import Graph

CONVENTION = ("params = trainable parameters; MACs = multiply-accumulates of convolutions and linear layers "
              "for one input (the ResNet paper's FLOPs); side outputs (training only) are totalled apart")


@dataclass
class Row:
    name: str
    op: str
    shape: tuple[int, ...]
    params: int
    macs: int
    side: bool = False


def rows(graph: Graph, depth: int | None = None) -> list[Row]:
    """One row per op, or per block instance / named seq at ``depth`` (1 = the network's own children)."""
    result: list[Row] = []
    groups: dict[str, Row] = {}
    for op in graph.ops():
        if op.op == "input":
            continue
        name = op.name or op.id
        if depth is not None and len(op.scope) >= depth:
            key = op.scope[depth - 1]
            row = groups.get(key)
            if row is None:
                scope = graph.scopes[key]
                row = Row(key, scope.call if scope.kind == "block" else "seq", op.shape, 0, 0, op.side is not None)
                groups[key] = row
                result.append(row)
            row.params += op.params
            row.macs += op.macs
            row.shape = op.shape  # the group's last op gives its output
            continue
        if depth is not None and op.op in ("concat", "add") and op.scope:
            continue
        result.append(Row(name, op.op, op.shape, op.params, op.macs, op.side is not None))
    return result


def totals(graph: Graph) -> dict[str, int]:
    main = [op for op in graph.ops() if op.side is None]
    side = [op for op in graph.ops() if op.side is not None]
    return {
        "params": sum(op.params for op in main),
        "macs": sum(op.macs for op in main),
        "side_params": sum(op.params for op in side),
        "side_macs": sum(op.macs for op in side),
    }


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def _num(n: int) -> str:
    return f"{n:,}"


def human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3f} {unit}"
    return str(n)


def table(graph: Graph, depth: int | None = None) -> str:
    data = rows(graph, depth)
    header = ("name", "op", "output", "params", "MACs")
    body = [(r.name + (" (side)" if r.side else ""), r.op, _shape(r.shape), _num(r.params), _num(r.macs))
            for r in data]
    t = totals(graph)
    foot = [("total", "", "", _num(t["params"]), _num(t["macs"]))]
    if t["side_params"] or t["side_macs"]:
        foot.append(("side outputs", "", "", _num(t["side_params"]), _num(t["side_macs"])))
        foot.append(("total with side outputs", "", "", _num(t["params"] + t["side_params"]),
                     _num(t["macs"] + t["side_macs"])))
    lines = _grid(header, body, foot, right=(3, 4))
    title = f"{graph.variant or graph.network}: {human(t['params'])} params, {human(t['macs'])} MACs"
    return "\n".join([title, *lines, f"({CONVENTION})"])


def _grid(header, body, foot, right=()) -> list[str]:
    width = [max(len(str(row[i])) for row in [header, *body, *foot]) for i in range(len(header))]

    def fmt(row):
        cells = [str(c).rjust(width[i]) if i in right else str(c).ljust(width[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in width)
    return [fmt(header), rule, *map(fmt, body), rule, *map(fmt, foot)]


def as_json(graph: Graph, depth: int | None = None) -> str:
    return json.dumps({
        "network": graph.network,
        "variant": graph.variant,
        "convention": CONVENTION,
        "rows": [{**asdict(r), "shape": list(r.shape)} for r in rows(graph, depth)],
        "totals": totals(graph),
    }, indent=2)


def compare(graphs: list[tuple[str, Graph]], depth: int = 1) -> str:
    """Several networks side by side, one row per stage (their depth-``depth`` children)."""
    columns = [(label, rows(g, depth)) for label, g in graphs]
    header = ["#"]
    for label, _ in columns:
        header += [label, "output", "params", "MACs"]
    body = []
    for i, stage in enumerate(zip_longest(*(r for _, r in columns))):
        row = [str(i + 1)]
        for r in stage:
            row += ["", "", "", ""] if r is None else [r.name, _shape(r.shape), human(r.params), human(r.macs)]
        body.append(tuple(row))
    foot = ["total"]
    for _, g in graphs:
        t = totals(g)
        foot += ["", "", human(t["params"]), human(t["macs"])]
    right = {j for j in range(len(header)) if j % 4 in (3, 0) and j > 0}
    return "\n".join([*_grid(tuple(header), body, [tuple(foot)], right=right), f"({CONVENTION})"])
