"""The validated graph: op records with names, shapes and costs."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, fields, replace
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from ..lang.nodes import Span

if TYPE_CHECKING:
    import networkx as nx

MAX_NODES = 200_000  # operations in one variant


def last_added(d: dict, count: int) -> list:
    """The last ``count`` values put in ``d``, in order."""
    return list(islice(reversed(d.values()), count))[::-1]


# Plain frozen records: elaboration creates one per operation (tens of thousands for the deepest
# networks) from values it has already validated, so they skip a validating model's cost.
@dataclass(frozen=True, slots=True)
class OpNode:
    """One operation of an elaborated network."""

    id: str  # unique in the graph
    name: str | None  # module path in the generated model (``layer1.0.conv1``), None for functional ops
    op: str  # a registry kind, or input / concat / add
    args: dict[str, Any]
    in_shapes: tuple[tuple[int, ...], ...]
    shape: tuple[int, ...]  # the output's sizes in its layout's order, batch excluded
    layout: str = "CHW"  # the output's layout (layout.py): CHW, HWC, F or LD
    params: int = 0
    macs: int = 0
    scope: tuple[str, ...] = ()  # module paths of the enclosing block instances and named seqs
    side: str | None = None  # the side output this op belongs to
    span: Span | None = None
    learned: bool = False  # ``name`` is a learned tensor (an nn.Parameter attribute), not a module
    # the input node ids in argument order; unlike the edges, it keeps an input used twice (concat of x with x)
    inputs: tuple[str, ...] = ()
    # the layouts it reads its inputs in, where they are not their producers' (a tensor of unnamed axes read as a
    # map); empty otherwise
    in_layouts: tuple[str, ...] = ()

    def moved(self, id: str, name: str | None, scope: tuple[str, ...], inputs: tuple[str, ...]) -> OpNode:
        """The same op in another instance of its block (a replayed call, memo.py), which the deepest networks
        make tens of thousands of times: its slots set directly, at half the cost of the frozen class's
        ``__init__`` (which sets each through ``object.__setattr__``) and a quarter of ``dataclasses.replace``'s."""
        node = _new(OpNode)
        _set_id(node, id)
        _set_name(node, name)
        _set_op(node, self.op)
        _set_args(node, self.args)
        _set_in_shapes(node, self.in_shapes)
        _set_shape(node, self.shape)
        _set_layout(node, self.layout)
        _set_params(node, self.params)
        _set_macs(node, self.macs)
        _set_scope(node, scope)
        _set_side(node, self.side)
        _set_span(node, self.span)
        _set_learned(node, self.learned)
        _set_inputs(node, inputs)
        _set_in_layouts(node, self.in_layouts)
        return node


_new = object.__new__
(_set_id, _set_name, _set_op, _set_args, _set_in_shapes, _set_shape, _set_layout, _set_params, _set_macs, _set_scope,
 _set_side, _set_span, _set_learned, _set_inputs, _set_in_layouts) = (getattr(OpNode, f).__set__ for f in (
    "id", "name", "op", "args", "in_shapes", "shape", "layout", "params", "macs", "scope", "side", "span", "learned",
    "inputs", "in_layouts"))
assert [f.name for f in fields(OpNode)] == ["id", "name", "op", "args", "in_shapes", "shape", "layout", "params", "macs",
                                            "scope", "side", "span", "learned", "inputs", "in_layouts"], \
    "OpNode.moved sets every field: add a new one there"


@dataclass(frozen=True, slots=True)
class ScopeInfo:
    """A block instance or named seq: one cluster of the graph."""

    path: str
    kind: str  # "block" or "seq"
    block: str | None
    call: str  # how it was called, e.g. ``Inception(64, 96, 128, 16, 32, 32)``
    span: Span | None = None
    # the call's arguments as values, each named by its parameter (None: a positional one past the parameters)
    args: tuple[tuple[str | None, object], ...] = ()

    def moved(self, path: str) -> ScopeInfo:
        """The same scope in another instance of its block (a replayed call): ``dataclasses.replace``'s result at a
        third of its cost."""
        return ScopeInfo(path, self.kind, self.block, self.call, self.span, self.args)


assert [f.name for f in fields(ScopeInfo)] == ["path", "kind", "block", "call", "span", "args"], \
    "ScopeInfo.moved passes every field: add a new one there"


@dataclass(frozen=True, slots=True)
class Tap:
    """A feature map of the network (``tap``): its name, the node whose output it is, and its reduction (the
    product of the main path's strides up to it, timm's ``reduction``)."""

    name: str
    node: str
    reduction: int
    span: Span | None = None


class Graph:
    # Jupyter's view of a graph, the diagram backend's page: ``archc.spec`` installs it, since this layer imports
    # no backend (the backends import it)
    html_view: ClassVar[Callable[[Graph], str] | None] = None
    """``OpNode``s by id, in the order added, plus the network's inputs and outputs; ``g``, their networkx DiGraph,
    is made when first asked for (compiling never asks, and so never imports networkx)."""

    def __init__(self, network: str, variant: str | None):
        self.network = network
        self.variant = variant
        self._ops: dict[str, OpNode] = {}
        self._g: nx.DiGraph | None = None
        self.scopes: dict[str, ScopeInfo] = {}
        self.input: str | None = None
        self.output: str | None = None
        self.sides: dict[str, str] = {}  # side output name -> node id
        self.taps: dict[str, Tap] = {}  # feature maps, in the order forward computes them
        self.inits: dict[str, dict] = {}  # module path -> parameter -> initrules.Resolved (where a rule reaches)
        # the statements whose op the generated code runs in place (the code generator's record), asked of it when
        # first needed (``archc stats``); ``Spec.graph`` sets it. None: no code is generated from this graph, and
        # each op makes its tensor
        self.generated_in_place: Callable[[], Collection[Span]] | None = None

    def add(self, node: OpNode, inputs: list[str]) -> OpNode:
        """Add ``node`` fed by the existing nodes ``inputs`` (so insertion order is a topological order)."""
        if tuple(inputs) != node.inputs:
            node = replace(node, inputs=tuple(inputs))
        self._ops[node.id] = node
        if self._g is not None:
            self._link(self._g, node)
        return node

    @property
    def g(self) -> nx.DiGraph:
        """The networkx DiGraph of the ops (the node attribute ``op``; each edge's ``shape``, its source's)."""
        if self._g is None:
            import networkx as nx

            self._g = nx.DiGraph()
            for node in self._ops.values():
                self._link(self._g, node)
        return self._g

    def _link(self, g: nx.DiGraph, node: OpNode) -> None:
        g.add_node(node.id, op=node)
        for src in node.inputs:
            g.add_edge(src, node.id, shape=self._ops[src].shape)

    def last(self, count: int) -> list[OpNode]:
        """The last ``count`` nodes added, in order."""
        return last_added(self._ops, count)

    def node(self, node_id: str) -> OpNode:
        return self._ops[node_id]

    def ops(self) -> list[OpNode]:
        """Every node in the spec's order, which is topological: a node is only ever added after its inputs."""
        return list(self._ops.values())

    def modules(self) -> dict[str, OpNode]:
        """The ops that are modules of the generated model, by module path."""
        return {op.name: op for op in self.ops() if op.name is not None and not op.learned}

    def learned(self) -> dict[str, OpNode]:
        """The ops that own a learned tensor (an nn.Parameter, not a module), by its state_dict key."""
        return {op.name: op for op in self.ops() if op.name is not None and op.learned}

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops())

    def params_without_sides(self) -> int:
        return sum(op.params for op in self.ops() if op.side is None)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops())

    def __len__(self) -> int:
        return len(self._ops)

    def _repr_html_(self) -> str | None:
        """The interactive diagram, inline in Jupyter (``archc draw -o net.html``'s page, in an iframe)."""
        return None if Graph.html_view is None else Graph.html_view(self)
