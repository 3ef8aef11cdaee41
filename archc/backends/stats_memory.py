"""Memory of an elaborated graph, counted statically: parameters, buffers, forward activations and the activations
autograd keeps for backward, per op, for a batch and a dtype.

A tensor here is a storage: an op that returns a view of its input (``flatten``, ``transpose``) or works on it in
place (a ReLU after a batch norm, ``out += identity`` after a conv) makes none; which ops work in place is the
code generator's choice, read from its record of it (``Graph.generated_in_place``), not guessed again here.
*Activations* are the bytes of the storages a forward pass in eval mode makes (side outputs do not run): each op's
output, and what its kind's registry entry says it makes on the way (``makes``: a helper's attention scores, a
standardised weight);
*saved* are the bytes of the storages autograd keeps after a forward pass in training mode, each counted once
however many ops keep it (a ReLU keeps its output, which the next conv keeps as its input), and given to the first
op that keeps it; what each kind keeps is its registry entry's ``saves`` (torch's derivatives.yaml). Parameters
are not counted there (they are the parameters' bytes), and the network's input is, where an op keeps it. How
each view lies in its storage is followed too, since torch copies a tensor out of order before a reshape or a
matrix product, and the product keeps the copy.

tests/test_stats_memory.py holds the totals to what torch measures. What is estimated: the copies torch makes
inside helper modules (window attention) are in ``saves`` by formula; the tensors torch's own functions make
inside them (a layer norm's means, an einsum's operands laid out for a matrix product) are not counted, as the
measure does not see them either.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from ..lang.nodes import Span
from ..ops import REGISTRY
from ..ops.base import BOTH, INPUTS, NOTHING, OUTPUT, Makes, Saves
from ..sema.graph import Graph, OpNode

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass
class OpMemory:
    param_bytes: int = 0
    buffers: int = 0  # elements
    buffer_bytes: int = 0
    activations: int = 0  # bytes of the storages it makes in an eval forward pass
    saved: int = 0  # bytes of the storages autograd keeps for its backward that no earlier op keeps


def _structural(op: OpNode) -> Saves:
    """What backward keeps of the ops that no registry entry holds: a residual's sum, a concat and an ensemble's
    mean keep nothing; a gate's product keeps both factors; arithmetic of a tensor with a number keeps nothing
    but a division of a number by it (its result) or a power (both), and of two tensors, both for * and /."""
    if op.op == "mul":
        return INPUTS
    if op.op != "arith":
        return NOTHING
    sign = op.args.get("op")
    if sign in ("**", "^"):
        return BOTH
    if len(op.inputs) == 2 and sign in ("*", "/"):
        return INPUTS
    if len(op.inputs) == 1 and sign == "/" and "left" in op.args:
        return OUTPUT
    return NOTHING


def saves(op: OpNode) -> Saves:
    kind = REGISTRY.get(op.op)
    if kind is None:
        return _structural(op)
    rule = kind.saves
    assert rule is not None, f"the registry does not say what {op.op} keeps for backward"
    return rule if isinstance(rule, Saves) else rule(op.args, op.in_shapes, op.shape)


def makes(op: OpNode) -> Makes | None:
    """What an op makes besides its output: its kind's ``makes``; of the ops no registry entry holds, a residual's
    scaled sum makes the scaled body first (``out * scale + identity``)."""
    kind = REGISTRY.get(op.op)
    if kind is None:
        return Makes(extra=((math.prod(op.shape), 0),)) if op.op == "add" and "scale" in op.args else None
    return None if kind.makes is None else kind.makes(op.args, op.in_shapes, op.shape)


def _in_place(op: OpNode, written: Collection[Span]) -> bool:
    """Whether the generated code computes ``op`` in place on its first input: as the code generator wrote its
    statement (``written``, its record: an activation with inplace=True, a residual's ``out += identity``)."""
    kind = REGISTRY.get(op.op)
    return op.span in written and (op.op == "add" or (kind is not None and kind.inplace))


def _aliases(op: OpNode, source: OpNode, contiguous: bool, training: bool) -> bool:
    """Whether ``op``'s output is its input's storage (a view), in a pass in training mode or not."""
    kind = REGISTRY.get(op.op)
    if kind is None or not kind.views_in_torch:
        return False
    if kind.torch_view:
        return True
    if op.op == "dropout":
        return not training or op.args["p"] == 0
    return contiguous or not kind.reshapes


def _walk(graph: Graph, batch: int, itemsize: int, training: bool):
    """Each op's storage (an op id: the op that made it), the bytes of each storage made, the ops computed in
    place, and how each op's output lies in its storage (``_order``), in one pass."""
    written = graph.generated_in_place() if graph.generated_in_place is not None else ()
    storage: dict[str, str] = {}
    made: dict[str, int] = {}
    contiguous: dict[str, bool | str] = {}
    in_place: set[str] = set()
    for op in graph.ops():
        if op.side is not None and not training:
            continue
        src = graph.node(op.inputs[0]) if op.inputs else None
        if src is not None and _in_place(op, written):
            in_place.add(op.id)
        if src is not None and (op.id in in_place or _aliases(op, src, contiguous[src.id] is True, training)):
            storage[op.id] = storage[src.id]
            contiguous[op.id] = _order(op, contiguous[src.id])
            continue
        storage[op.id] = op.id
        made[op.id] = math.prod(op.shape) * batch * itemsize
        # torch's attention writes its output as N x L x heads x D, and returns it transposed to N x heads x L x D
        contiguous[op.id] = "heads" if op.op == "scaled_dot_product_attention" and len(op.shape) == 3 else True
    return storage, made, in_place, contiguous


def _order(op: OpNode, before: bool | str) -> bool | str:
    """Whether a view's elements lie in order (True), or not (False), or would after the transpose that swaps
    heads and tokens ("heads"), or are a batch of transposed matrices ("mT": a matmul reads them as they are)."""
    kind = REGISTRY.get(op.op)
    if kind is None or not kind.views_in_torch:
        return before  # computed in place: as its input was
    if op.op == "transpose":
        rank = len(op.in_shapes[0]) + 1
        dims = {op.args["dim0"] % rank, op.args["dim1"] % rank}
        if before == "heads" and dims == {1, 2}:
            return True
        if dims == {rank - 2, rank - 1} and before in (True, "mT"):
            return "mT" if before is True else True
        return before is True and _moves_only_ones(op.in_shapes[0], *sorted(d - 1 for d in dims))
    return before is True and not kind.scatters


def _moves_only_ones(shape: tuple, i: int, j: int) -> bool:
    """Whether swapping axes i and j (the batch's not counted) keeps the elements in order: the axes of more than one
    element keep theirs (Swin's one window: 1 x 7 x 1 x 7 x C to 1 x 1 x 7 x 7 x C)."""
    return (shape[i] == 1 and shape[j] == 1) or sum(shape[k] > 1 for k in range(i, j + 1)) <= 1


def _copied(op: OpNode, i: int, order: bool | str) -> bool:
    """Whether torch copies input ``i`` before a matrix product that keeps it (the copy is what it keeps): a linear
    layer's input of more than one dimension that does not lie in order, a matmul's that is neither in order nor
    a batch of transposed matrices."""
    if op.op in ("linear", "linear_act"):
        return order is not True and len(op.in_shapes[i]) > 1
    return op.op == "matmul" and order not in (True, "mT")


def memory(graph: Graph, batch: int = 1, itemsize: int = 4) -> dict[str, OpMemory]:
    """Each op's memory, by op id, for ``batch`` inputs whose activations and parameters take ``itemsize`` bytes
    an element."""
    result = {op.id: OpMemory() for op in graph.ops()}
    for op in graph.ops():
        kind = REGISTRY.get(op.op)
        mem = result[op.id]
        mem.param_bytes = op.params * itemsize
        if kind is not None and kind.buffers is not None:
            counts = kind.buffers(op.args, op.in_shapes, op.shape)
            mem.buffers += sum(count for count, _ in counts)
            mem.buffer_bytes += _bytes(counts, itemsize)
    _, made, _, _ = _walk(graph, batch, itemsize, training=False)
    for op_id, size in made.items():
        if graph.node(op_id).op != "input":
            result[op_id].activations = size
    for op in graph.ops():  # and the tensors made on the way
        extra = makes(op)
        if extra is not None and op.side is None:
            result[op.id].activations += _bytes(extra.extra, itemsize) * batch + _bytes(extra.fixed, itemsize)
    storage, made, in_place, order = _walk(graph, batch, itemsize, training=True)
    kept: set[str] = set()
    for op in graph.ops():
        rule = saves(op)
        keys = []
        for i in (i for i in rule.inputs if i < len(op.inputs)):
            if _copied(op, i, order[op.inputs[i]]):
                keys.append(f"{op.id}:{i}")
                made[keys[-1]] = math.prod(op.in_shapes[i]) * batch * itemsize
            else:
                keys.append(storage[op.inputs[i]])
        if rule.output:
            keys.append(storage[op.id])
        mem = result[op.id]
        if op.id in in_place and rule.inputs and not REGISTRY[op.op].keeps(op.args):  # (an add keeps nothing)
            # an op computed in place whose backward reads its input (relu6, silu) keeps a copy of the input;
            # one that reads its output there (relu, leaky_relu) keeps the one tensor
            keys.remove(storage[op.id])
            mem.saved += math.prod(op.shape) * batch * itemsize
        for key in keys:
            if key not in kept:
                kept.add(key)
                mem.saved += made[key]
        mem.saved += _bytes(rule.extra, itemsize) * batch + _bytes(rule.fixed, itemsize)
    return result


def _bytes(counts: tuple[tuple[int, int], ...], itemsize: int) -> int:
    """The bytes of tensors of these (elements, bytes each; 0: ``itemsize``)."""
    return sum(count * (size or itemsize) for count, size in counts)
