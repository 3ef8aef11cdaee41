"""Static statistics of an elaborated graph: parameters, MACs and memory per layer or per block.

Conventions (printed with every table): parameters are trainable parameters (the language has no frozen ones;
batch-norm running statistics are buffers, not counted); MACs are the multiply-accumulates of convolutions and
linear layers for the input (the network's, or ``--input-size``) and the batch (one input by default: the ResNet
paper's "FLOPs", torchvision's "GFLOPS"). Side outputs, which run in training only, are totalled separately.
Memory (``stats_memory``) is in MB of 10^6 bytes, for the batch and a dtype (float32 by default).

``as_json``'s keys: ``network``, ``variant``, ``convention`` and ``memory`` (the two notes), ``input`` (sizes, batch excluded), ``batch``,
``dtype``, ``rows`` (each: ``name`` (the module path, or the op's id), ``op``, ``shape`` (batch first where
``batch`` > 1), ``params``, ``macs``, ``side``, ``buffers`` (elements), ``param_bytes``, ``buffer_bytes``,
``activations`` and ``saved`` (bytes), ``level`` (its depth in the tree), ``group`` (a block or seq whose numbers
are those of the rows under it, in a tree)), ``totals`` (``params``, ``macs``, ``side_params``, ``side_macs``,
``trainable``, ``frozen``, ``buffers``, ``param_bytes``, ``buffer_bytes``, ``input_bytes``, ``activations``,
``saved``, ``side_saved``; memory in bytes) and ``taps``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from ..sema.graph import Graph
from .stats_memory import DTYPES, memory

CONVENTION = ("params = trainable parameters; MACs = multiply-accumulates of convolutions and linear layers "
              "for the input and batch shown (for one input: the ResNet paper's FLOPs); side outputs (training "
              "only) are totalled apart")
MEMORY = ("MB = 10^6 bytes; act = the tensors an eval forward pass makes (views and in-place ops make none); "
          "saved = what autograd keeps for backward after a training forward pass, each tensor once")


@dataclass
class Row:
    name: str
    op: str
    shape: tuple[int, ...]
    params: int
    macs: int
    side: bool = False
    buffers: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    activations: int = 0
    saved: int = 0
    level: int = 0
    group: bool = False

    def add(self, other: Row) -> None:
        for f in ("params", "macs", "buffers", "param_bytes", "buffer_bytes", "activations", "saved"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


def _op_rows(graph: Graph, batch: int, dtype: str) -> list[tuple[object, Row]]:
    mem = memory(graph, batch, DTYPES[dtype])
    result = []
    for op in graph.ops():
        if op.op == "input":
            continue
        m = mem[op.id]
        result.append((op, Row(op.name or op.id, op.op, op.shape, op.params, op.macs, op.side is not None,
                               m.buffers, m.param_bytes, m.buffer_bytes, m.activations, m.saved, len(op.scope))))
    return result


def _scope_row(graph: Graph, key: str, op, level: int) -> Row:
    scope = graph.scopes[key]
    return Row(key, scope.call if scope.kind == "block" else "seq", op.shape, 0, 0, op.side is not None, level=level,
               group=True)


def rows(graph: Graph, depth: int | None = None, batch: int = 1, dtype: str = "float32") -> list[Row]:
    """One row per op, or per block instance / named seq at ``depth`` (1 = the network's own children); for a
    ``batch`` of more than one input, shapes lead with it and MACs count every input."""
    result: list[Row] = []
    groups: dict[str, Row] = {}
    for op, row in _op_rows(graph, batch, dtype):
        if depth is not None and len(op.scope) >= depth:
            key = op.scope[depth - 1]
            group = groups.get(key)
            if group is None:
                group = groups[key] = _scope_row(graph, key, op, depth - 1)
                result.append(group)
            group.add(row)
            group.shape = op.shape  # the group's last op gives its output
            continue
        if depth is not None and op.op in ("concat", "add") and op.scope:
            continue
        result.append(row)
    return _batched(result, batch)


def tree(graph: Graph, depth: int | None = None, batch: int = 1, dtype: str = "float32") -> list[Row]:
    """torchinfo's view: every block instance and named seq down to ``depth`` as a row of its totals, followed by
    the rows inside it one level deeper; ops (and blocks) deeper than ``depth`` are in their block's row only."""
    result: list[Row] = []
    open_rows: dict[str, Row] = {}
    for op, row in _op_rows(graph, batch, dtype):
        shown = op.scope if depth is None else op.scope[:depth]
        for level, key in enumerate(shown):
            group = open_rows.get(key)
            if group is None:
                group = open_rows[key] = _scope_row(graph, key, op, level)
                result.append(group)
            group.add(row)
            group.shape = op.shape
        if depth is None or len(op.scope) < depth:
            result.append(row)
    return _batched(result, batch)


def _batched(result: list[Row], batch: int) -> list[Row]:
    if batch != 1:
        for row in result:
            row.shape = (batch, *row.shape)
            row.macs *= batch
    return result


def totals(graph: Graph, batch: int = 1, dtype: str = "float32") -> dict[str, int]:
    main = [op for op in graph.ops() if op.side is None]
    side = [op for op in graph.ops() if op.side is not None]
    mem = memory(graph, batch, DTYPES[dtype])
    return {
        "params": sum(op.params for op in main),
        "macs": sum(op.macs for op in main) * batch,
        "side_params": sum(op.params for op in side),
        "side_macs": sum(op.macs for op in side) * batch,
        "trainable": graph.params,
        "frozen": 0,  # the language has no frozen parameters
        "buffers": sum(m.buffers for m in mem.values()),
        "param_bytes": sum(m.param_bytes for m in mem.values()),
        "buffer_bytes": sum(m.buffer_bytes for m in mem.values()),
        "input_bytes": math.prod(_input(graph)) * batch * DTYPES[dtype],
        "activations": sum(mem[op.id].activations for op in main),
        "saved": sum(mem[op.id].saved for op in main),
        "side_saved": sum(mem[op.id].saved for op in side),
    }


def _input(graph: Graph) -> tuple[int, ...]:
    return graph.node(graph.input).shape


def _for(graph: Graph, batch: int, dtype: str = "float32") -> str:
    """``(input 3 x 32 x 32, batch 8)``: what the counts are for."""
    return (f"(input {_shape(_input(graph))}" + (f", batch {batch}" if batch != 1 else "")
            + (f", {dtype}" if dtype != "float32" else "") + ")")


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def _num(n: int) -> str:
    return f"{n:,}"


def mb(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3f} {unit}"
    return str(n)


HEADER = ("name", "op", "output", "params", "%", "MACs", "%", "params MB", "buffers MB", "act MB", "saved MB")


def table(graph: Graph, depth: int | None = None, batch: int = 1, dtype: str = "float32", as_tree: bool = False) -> str:
    data = tree(graph, depth, batch, dtype) if as_tree else rows(graph, depth, batch, dtype)
    t = totals(graph, batch, dtype)
    all_params, all_macs = t["params"] + t["side_params"], t["macs"] + t["side_macs"]

    def cells(r: Row):
        name = "  " * r.level + r.name.rsplit(".", 1)[-1] if as_tree else r.name
        return (name + (" (side)" if r.side else ""), r.op, _shape(r.shape), _num(r.params),
                _percent(r.params, all_params), _num(r.macs), _percent(r.macs, all_macs), mb(r.param_bytes),
                mb(r.buffer_bytes), mb(r.activations), mb(r.saved))

    side_mem = ("", "", "", mb(t["side_saved"]))
    foot = [("total", "", "", _num(t["params"]), _percent(t["params"], all_params), _num(t["macs"]),
             _percent(t["macs"], all_macs), "", "", mb(t["activations"]), mb(t["saved"]))]
    if t["side_params"] or t["side_macs"]:
        foot.append(("side outputs", "", "", _num(t["side_params"]), _percent(t["side_params"], all_params),
                     _num(t["side_macs"]), _percent(t["side_macs"], all_macs), *side_mem))
        foot.append(("total with side outputs", "", "", _num(all_params), "", _num(all_macs), "", "", "", "",
                     mb(t["saved"] + t["side_saved"])))
    lines = _grid(HEADER, [cells(r) for r in data], foot, right=range(3, len(HEADER)))
    title = (f"{graph.variant or graph.network}: {human(t['params'])} params, {human(t['macs'])} MACs "
             f"{_for(graph, batch, dtype)}")
    if graph.taps:
        lines.append("taps: " + ", ".join(f"{tap['name']} {_shape(tuple(tap['shape']))} /{tap['reduction']}"
                                          for tap in taps(graph)))
    return "\n".join([title, *lines, *summary(t, batch, dtype), f"({CONVENTION})", f"({MEMORY})"])


def summary(t: dict[str, int], batch: int, dtype: str) -> list[str]:
    """torchinfo's footer: the parameters by kind, and the memory they and a batch take."""
    return [
        f"trainable params: {_num(t['trainable'])}, frozen params: {_num(t['frozen'])}, "
        f"buffers: {_num(t['buffers'])}",
        f"memory ({dtype}, batch {batch}): params {mb(t['param_bytes'])} MB, buffers {mb(t['buffer_bytes'])} MB, "
        f"input {mb(t['input_bytes'])} MB, forward activations {mb(t['activations'])} MB, saved for backward "
        f"{mb(t['saved'] + t['side_saved'])} MB",
    ]


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


def as_json(graph: Graph, depth: int | None = None, batch: int = 1, dtype: str = "float32",
            as_tree: bool = False) -> str:
    data = tree(graph, depth, batch, dtype) if as_tree else rows(graph, depth, batch, dtype)
    return json.dumps({
        "network": graph.network,
        "variant": graph.variant,
        "convention": CONVENTION,
        "memory": MEMORY,
        "input": list(_input(graph)),
        "batch": batch,
        "dtype": dtype,
        "rows": [row_json(r) for r in data],
        "totals": totals(graph, batch, dtype),
        "taps": taps(graph),
    }, indent=2)


def row_json(row: Row) -> dict:
    return {**asdict(row), "shape": list(row.shape)}
