"""The graph interpreter: a validated graph run op by op from each kind's meaning in the registry.

It is the code generator's independent oracle. ``Interpreter(graph)`` is an ``nn.Module`` whose modules and
learned tensors sit at the graph's module paths, so the generated model's state_dict loads into it strictly;
its ``forward`` runs the graph's nodes in order (a topological order) and returns what the generated model
returns: the output, and in training mode the side outputs after it. Nothing here reads generated code.
Imports torch: it runs models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..ops import REGISTRY
from ..sema.graph import Graph, OpNode
from ..sema.layout import TensorType


def _input(m, a: dict, t, xs: list[Tensor], training: bool) -> Tensor:
    return xs[0]


def _concat(m, a: dict, t, xs: list[Tensor], training: bool) -> Tensor:
    return torch.cat(xs, 1)  # concat joins C x H x W maps on their channels


def _gate(m, a: dict, t, xs: list[Tensor], training: bool) -> Tensor:
    gate, x = xs
    return gate * x


def _residual(m, a: dict, t, xs: list[Tensor], training: bool) -> Tensor:
    """The body's output, through stochastic depth and times ``scale``, plus the shortcut's."""
    body, shortcut = xs
    body = REGISTRY["stochastic_depth"].run(None, {"p": a.get("stochastic_depth", 0.0), "mode": a.get("mode", "row")},
                                            t, [body], training)
    if "scale" in a:
        body = body * a["scale"]
    return body + shortcut


def _ensemble(m, a: dict, t, xs: list[Tensor], training: bool) -> Tensor:
    return torch.stack([x.softmax(1) for x in xs]).mean(0)  # the members' class probabilities, averaged


_ARITH = {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "**": torch.pow,
          "==": torch.eq, "!=": torch.ne, "<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge}


def _arith(m, a: dict, t, xs: list[Tensor], training: bool) -> Tensor:
    """``+ - * / **`` and the comparisons of a dataflow block: two tensors, or a tensor and a number on the side ``a`` names."""
    left = a["left"] if "left" in a else xs[0]
    right = a["right"] if "right" in a else xs[-1]
    return _ARITH[a["op"]](left, right)


# The nodes elaboration adds for statements rather than layers (elaborate.py, elabstruct.py).
STRUCTURE = {"input": _input, "concat": _concat, "mul": _gate, "add": _residual, "ensemble": _ensemble,
             "arith": _arith}


@dataclass(frozen=True)
class _Step:
    node: OpNode
    run: object
    in_type: TensorType | None
    free: tuple[str, ...]  # values no later step reads
    state: str | None = None  # "module" or "parameter": what the interpreter holds at the node's name


class Interpreter(nn.Module):
    """Runs ``graph`` node by node; its state_dict keys are the generated model's."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph_network, self.graph_variant = graph.network, graph.variant
        ops = graph.ops()
        last_use: dict[str, int] = {}
        for i, op in enumerate(ops):
            for src in op.inputs:
                last_use[src] = i
        keep = {graph.output, *graph.sides.values()}
        steps = []
        for i, op in enumerate(ops):
            layout = op.in_layouts[0] if op.in_layouts else graph.node(op.inputs[0]).layout if op.inputs else None
            in_type = TensorType(op.in_shapes[0], layout) if op.inputs else None
            state = None
            if op.op in STRUCTURE:
                run = STRUCTURE[op.op]
            else:
                kind = REGISTRY[op.op]
                run = kind.run
                if op.name is not None and kind.make is not None:
                    made = kind.make(op.args, in_type)
                    self._place(op.name, made, persistent=op.args.get("persistent", True))
                    state = "parameter" if isinstance(made, nn.Parameter) else "module" if isinstance(made, nn.Module) \
                        else "buffer"
            free = tuple(sorted({s for s in op.inputs if last_use[s] == i and s not in keep}))
            steps.append(_Step(op, run, in_type, free, state))
        self._steps = steps
        self._output = graph.output
        self._sides = list(graph.sides.values())

    def _place(self, path: str, thing: nn.Module | nn.Parameter, persistent: bool = True) -> None:
        """Register a module or learned tensor at a dotted path, creating the containers above it (a buffer in the
        state_dict or, ``persistent`` false, not)."""
        *parents, leaf = path.split(".")
        holder: nn.Module = self
        for part in parents:
            if part not in holder._modules:
                holder.add_module(part, nn.Module())
            holder = holder._modules[part]
        if isinstance(thing, nn.Parameter):
            holder.register_parameter(leaf, thing)
        elif isinstance(thing, Tensor):  # a buffer (lookup's table)
            holder.register_buffer(leaf, thing, persistent=bool(persistent))
        else:
            holder.add_module(leaf, thing)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        values: dict[str, Tensor] = {}
        for step in self._steps:
            op = step.node
            if op.side is not None and not self.training:
                continue  # a side output is computed in training only
            if op.op == "input":
                values[op.id] = x
                continue
            held = None
            if step.state == "module":
                held = self.get_submodule(op.name)
            elif step.state == "parameter":
                held = self.get_parameter(op.name)
            elif step.state == "buffer":
                held = self.get_buffer(op.name)
            values[op.id] = step.run(held, op.args, step.in_type, [values[s] for s in op.inputs], self.training)
            for src in step.free:
                values.pop(src, None)
        out = values[self._output]
        if self.training and self._sides:
            return (out, *(values[s] for s in self._sides))
        return out

    def extra_repr(self) -> str:
        return f"network={self.graph_network}, variant={self.graph_variant}, ops={len(self._steps)}"

