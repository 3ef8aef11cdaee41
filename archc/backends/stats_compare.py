"""Several networks side by side (``archc stats A B ...``): one column per network. Where their rows at the depth
asked for (their stages, at 1) have the same names in the same order, one line per stage, each cell the stage's
parameters and MACs, then the totals; where they differ, the totals only (the JSON pairs the rows by name, each
network's row or null)."""

from __future__ import annotations

import json

from ..sema.graph import Graph
from .stats import CONVENTION, MEMORY, Row, _grid, _input, human, mb, row_json, rows, totals


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


def _total_lines(graphs, batch: int, dtype: str) -> list[tuple[str, ...]]:
    ts = [totals(g, batch, dtype) for _, g in graphs]
    lines = [
        ("params", *(human(t["params"]) for t in ts)),
        ("MACs", *(human(t["macs"]) for t in ts)),
        ("param MB", *(mb(t["param_bytes"]) for t in ts)),
        ("buffer MB", *(mb(t["buffer_bytes"]) for t in ts)),
        ("activation MB", *(mb(t["activations"]) for t in ts)),
        ("saved MB", *(mb(t["saved"]) for t in ts)),
    ]
    if any(t["side_params"] for t in ts):
        lines.insert(2, ("side params", *(human(t["side_params"]) for t in ts)))
    return lines


def compare(graphs: list[tuple[str, Graph]], depth: int = 1, batch: int = 1, dtype: str = "float32") -> str:
    header = ("", *(label for label, _ in graphs))
    tables = [rows(g, depth, batch, dtype) for _, g in graphs]
    names = [[r.name for r in t] for t in tables]
    right = range(1, len(header))
    sizes = [" x ".join(map(str, _input(g))) for _, g in graphs]
    inputs = (f"input {sizes[0]}" if len(set(sizes)) == 1
              else "inputs: " + ", ".join(f"{label} {size}" for (label, _), size in zip(graphs, sizes)))
    if all(n == names[0] for n in names):
        body = [(f"{name}{' (side)' if table_rows[0].side else ''}",
                 *(f"{human(r.params)} / {human(r.macs)}" for r in table_rows))
                for name, *table_rows in zip(names[0], *tables)]
        lines = _grid(("params / MACs", *header[1:]), body, _total_lines(graphs, batch, dtype), right)
    else:
        lines = _grid(("totals", *header[1:]), _total_lines(graphs, batch, dtype), [], right)[:-1]
        lines.append(f"(their {'stages' if depth == 1 else f'rows at depth {depth}'} differ: totals only; --json "
                     "pairs the rows by name)")
    return "\n".join([*lines, inputs + (f"; batch {batch}" if batch != 1 else "") + f"; {dtype}", f"({CONVENTION})",
                      f"({MEMORY})"])


def compare_json(graphs: list[tuple[str, Graph]], depth: int = 1, batch: int = 1, dtype: str = "float32") -> str:
    """``compare`` as JSON: the networks (with ``as_json``'s totals), then one entry per name with each network's
    row or null."""
    return json.dumps({
        "convention": CONVENTION,
        "memory": MEMORY,
        "depth": depth,
        "batch": batch,
        "dtype": dtype,
        "networks": [{"label": label, "network": g.network, "variant": g.variant, "input": list(_input(g)),
                      "totals": totals(g, batch, dtype)} for label, g in graphs],
        "rows": [{"name": name, "values": [None if r is None else row_json(r) for r in cells]}
                 for name, cells in paired([rows(g, depth, batch, dtype) for _, g in graphs])],
    }, indent=2)
