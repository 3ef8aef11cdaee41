"""Maps cut into groups of tokens and put back (MaxViT's partitions): a module that holds nothing and whose forward
moves a map's values into groups exactly as the language's ``partition`` does (or back, as ``departition``) is that
op, found by running it on distinct values; a window partition followed by a swap of the groups and the tokens is
the language's grid partition (torchvision's ``WindowPartition`` then ``SwapAxes(-2, -3)``), and a swap followed by
a window departition its inverse."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.partition import _departition_run, _partition_run
from . import ir
from .passes import drop_nodes


def partition_leaf(m: nn.Module, path: str, recorded) -> ir.Leaf | None:
    """The module as ``partition`` or ``departition`` where it computes one on its recorded call, else None."""
    if any(True for _ in m.children()) or any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
        return None
    args, kwargs = recorded
    if not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 4 or args[0].is_meta or \
            any(isinstance(a, torch.Tensor) for a in (*args[1:], *kwargs.values())):
        return None
    x = args[0]
    probe = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(x.dtype)  # distinct values
    try:
        with torch.no_grad():
            out = m(probe, *args[1:], **kwargs)
    except Exception:  # noqa: BLE001  (a forward that needs its own input's values is no partition)
        return None
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        return None
    for op, size, kind in _candidates(tuple(x.shape[1:]), tuple(out.shape[1:])):
        run = _partition_run if op == "partition" else _departition_run
        if torch.equal(run(None, {"size": size, "kind": kind}, None, [probe], False), out):
            return ir.Leaf(op=op, args={"size": size, "kind": kind}, stateful=False, path=path)
    return None


def _candidates(shape: tuple, out: tuple):
    """(op, size, kind) whose result has the shape ``out``, from a tensor of ``shape`` (without the batch)."""
    c, h, w = shape
    sizes = [size for size in range(1, h + 1) if h % size == 0] if h == w and out[2] == c else []  # C x H x W
    for size in sizes:  # to G x L x C: windows first (one window of the whole map is a grid partition too)
        if out == ((h // size) ** 2, size * size, c):
            yield "partition", size, "window"
    for size in sizes:
        if out == ((h // size) ** 2, size * size, c):
            yield "partition", size, "grid"
    groups, tokens, c = shape
    if math.isqrt(tokens) ** 2 == tokens and math.isqrt(groups) ** 2 == groups and out[0] == c:
        yield "departition", math.isqrt(tokens), "window"
        yield "departition", math.isqrt(tokens), "grid"


def fold_grids(dag: ir.Dag, children: dict) -> None:
    """A window partition whose only reader swaps the groups and the tokens is a grid partition (of the side over
    the window's size), and a window departition of such a swap a grid departition: the swap's call goes (its
    module, which holds nothing, is then never called, and ``passes.unused`` leaves it out)."""
    n_in = len(dag.inputs)
    uses = dag.uses()
    gone, replace = set(), {}
    for k, nd in enumerate(dag.nodes, start=n_in):
        leaf = children.get(nd.child) if nd.fn == "call" else None
        if not isinstance(leaf, ir.Leaf) or leaf.op not in ("partition", "departition") or \
                leaf.args["kind"] != "window":
            continue
        if leaf.op == "partition":
            readers = [j for j, other in enumerate(dag.nodes, start=n_in) if ir.Ref(k) in ir.refs_in(other.args)]
            if uses.get(k) != 1 or len(readers) != 1 or not _swaps(dag.nodes[readers[0] - n_in], children):
                continue
            side = _input_shape(dag, nd.args[0])[1]
            leaf.args = {"size": side // leaf.args["size"], "kind": "grid"}
            nd.shape = dag.nodes[readers[0] - n_in].shape
            gone.add(readers[0])
            replace[readers[0]] = k
        else:
            src = nd.args[0]
            if src.index < n_in or uses.get(src.index) != 1 or not _swaps(dag.nodes[src.index - n_in], children):
                continue
            swap = dag.nodes[src.index - n_in]
            leaf.args = {"size": math.isqrt(_input_shape(dag, swap.args[0])[1]), "kind": "grid"}
            nd.args = (swap.args[0],)
            gone.add(src.index)
    if gone:
        drop_nodes(dag, gone, replace)


def _input_shape(dag: ir.Dag, ref: ir.Ref) -> tuple:
    n_in = len(dag.inputs)
    return dag.input_shapes[ref.index] if ref.index < n_in else dag.nodes[ref.index - n_in].shape


def _swaps(nd: ir.Node, children: dict) -> bool:
    """A call of a child whose forward is one transpose of the groups and the tokens of N x G x L x C."""
    part = children.get(nd.child) if nd.fn == "call" else None
    if not isinstance(part, ir.Dag) or len(part.inputs) != 1 or len(part.nodes) != 1 or part.output != ir.Ref(1):
        return False
    t = part.nodes[0]
    return t.fn == "transpose" and t.args[0] == ir.Ref(0) and len(part.input_shapes[0]) == 3 and \
        {d % 4 for d in t.args[1:]} == {1, 2}
