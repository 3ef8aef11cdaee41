"""Static statistics of an elaborated graph: parameters and MACs per layer or per block.

Conventions (printed with every table): parameters are trainable parameters
(batch-norm running statistics are buffers, not counted); MACs are the
multiply-accumulates of convolutions and linear layers for the input (the
network's, or ``--input-size``) and the batch (one input by default: the ResNet
paper's "FLOPs", torchvision's "GFLOPS"). Side outputs, which run in training
only, are totalled separately.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..sema.graph import Graph

CONVENTION = ("params = trainable parameters; MACs = multiply-accumulates of convolutions and linear layers "
              "for the input and batch shown (for one input: the ResNet paper's FLOPs); side outputs (training "
              "only) are totalled apart")


@dataclass
class Row:
    name: str
    op: str
    shape: tuple[int, ...]
    params: int
    macs: int
    side: bool = False


def rows(graph: Graph, depth: int | None = None, batch: int = 1) -> list[Row]:
    """One row per op, or per block instance / named seq at ``depth`` (1 = the network's own children); for a
    ``batch`` of more than one input, shapes lead with it and MACs count every input."""
    if batch != 1:
        return [Row(r.name, r.op, (batch, *r.shape), r.params, r.macs * batch, r.side) for r in rows(graph, depth)]
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


def totals(graph: Graph, batch: int = 1) -> dict[str, int]:
    main = [op for op in graph.ops() if op.side is None]
    side = [op for op in graph.ops() if op.side is not None]
    return {
        "params": sum(op.params for op in main),
        "macs": sum(op.macs for op in main) * batch,
        "side_params": sum(op.params for op in side),
        "side_macs": sum(op.macs for op in side) * batch,
    }


def _input(graph: Graph) -> tuple[int, ...]:
    return graph.node(graph.input).shape


def _for(graph: Graph, batch: int) -> str:
    """``(input 3 x 32 x 32, batch 8)``: what the counts are for."""
    return f"(input {_shape(_input(graph))}" + (f", batch {batch})" if batch != 1 else ")")


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def _num(n: int) -> str:
    return f"{n:,}"


def human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3f} {unit}"
    return str(n)


def table(graph: Graph, depth: int | None = None, batch: int = 1) -> str:
    data = rows(graph, depth, batch)
    header = ("name", "op", "output", "params", "MACs")
    body = [(r.name + (" (side)" if r.side else ""), r.op, _shape(r.shape), _num(r.params), _num(r.macs))
            for r in data]
    t = totals(graph, batch)
    foot = [("total", "", "", _num(t["params"]), _num(t["macs"]))]
    if t["side_params"] or t["side_macs"]:
        foot.append(("side outputs", "", "", _num(t["side_params"]), _num(t["side_macs"])))
        foot.append(("total with side outputs", "", "", _num(t["params"] + t["side_params"]),
                     _num(t["macs"] + t["side_macs"])))
    lines = _grid(header, body, foot, right=(3, 4))
    title = f"{graph.variant or graph.network}: {human(t['params'])} params, {human(t['macs'])} MACs {_for(graph, batch)}"
    if graph.taps:
        lines.append("taps: " + ", ".join(f"{tap['name']} {_shape(tuple(tap['shape']))} /{tap['reduction']}"
                                          for tap in taps(graph)))
    return "\n".join([title, *lines, f"({CONVENTION})"])


def taps(graph: Graph) -> list[dict]:
    """The feature maps (``tap``): name, shape and reduction, in order."""
    return [{"name": t.name, "shape": list(graph.node(t.node).shape), "reduction": t.reduction}
            for t in graph.taps.values()]


def _grid(header, body, foot, right=()) -> list[str]:
    width = [max(len(str(row[i])) for row in [header, *body, *foot]) for i in range(len(header))]

    def fmt(row):
        cells = [str(c).rjust(width[i]) if i in right else str(c).ljust(width[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in width)
    return [fmt(header), rule, *map(fmt, body), rule, *map(fmt, foot)]


def as_json(graph: Graph, depth: int | None = None, batch: int = 1) -> str:
    return json.dumps({
        "network": graph.network,
        "variant": graph.variant,
        "convention": CONVENTION,
        "input": list(_input(graph)),
        "batch": batch,
        "rows": [_row_json(r) for r in rows(graph, depth, batch)],
        "totals": totals(graph, batch),
        "taps": taps(graph),
    }, indent=2)


def paired(tables: list[list[Row]]) -> list[tuple[str, list[Row | None]]]:
    """The rows of several tables paired by name (the module path: ``layer2.0``), in an order that keeps
    each table's own; where a name is in some tables only, the others have a gap (None)."""
    keyed: list[dict[tuple[str, int], Row]] = []
    order: list[tuple[str, int]] = []
    for table in tables:
        seen: dict[str, int] = {}
        keys = {}
        for row in table:  # a name met twice in one table pairs with the other tables' second one
            keys[(row.name, seen.get(row.name, 0))] = row
            seen[row.name] = seen.get(row.name, 0) + 1
        placed, at = set(order), 0
        for key in keys:  # a new name goes after the table's previous one, and after the names it lacks there
            if key in placed:
                at = max(at, order.index(key) + 1)
            else:
                while at < len(order) and order[at] not in keys:
                    at += 1
                order.insert(at, key)
                at += 1
        keyed.append(keys)
    return [(key[0], [keys.get(key) for keys in keyed]) for key in order]


def compare(graphs: list[tuple[str, Graph]], depth: int = 1, batch: int = 1) -> str:
    """Several networks side by side, one line per module path at depth ``depth`` (their stages at 1)."""
    header = ["name"]
    for label, _ in graphs:
        header += [label, "output", "params", "MACs"]
    body = []
    for name, cells in paired([rows(g, depth, batch) for _, g in graphs]):
        row = [name + (" (side)" if any(r is not None and r.side for r in cells) else "")]
        for r in cells:
            row += ["", "", "", ""] if r is None else [r.op, _shape(r.shape), human(r.params), human(r.macs)]
        body.append(tuple(row))
    foot = ["total"]
    for _, g in graphs:
        t = totals(g, batch)
        foot += ["", "", human(t["params"]), human(t["macs"])]
    right = {j for j in range(len(header)) if j % 4 in (3, 0) and j > 0}
    return "\n".join([*_grid(tuple(header), body, [tuple(foot)], right=right), f"({CONVENTION})"])


def compare_json(graphs: list[tuple[str, Graph]], depth: int = 1, batch: int = 1) -> str:
    """``compare`` as JSON: the networks, then one entry per name with each network's row or null."""
    return json.dumps({
        "convention": CONVENTION,
        "depth": depth,
        "batch": batch,
        "networks": [{"label": label, "network": g.network, "variant": g.variant, "input": list(_input(g)),
                      "totals": totals(g, batch)} for label, g in graphs],
        "rows": [{"name": name, "values": [None if r is None else _row_json(r) for r in cells]}
                 for name, cells in paired([rows(g, depth, batch) for _, g in graphs])],
    }, indent=2)


def _row_json(row: Row) -> dict:
    return {**asdict(row), "shape": list(row.shape)}
