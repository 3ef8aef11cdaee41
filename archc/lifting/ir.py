"""What capture finds: a tree of parts, each a layer the language knows, a sequence, or a module's forward
as a dataflow graph over its children (``Dag``). Values are numbered: a ``Dag``'s inputs first, then its
nodes, one value each."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Leaf:
    """A layer of the registry (``conv``, ``batchnorm``, ...), with every argument's value."""

    op: str
    args: dict[str, object]
    stateful: bool  # it holds parameters or buffers (so it is declared, and applied once)
    path: str
    then: list[Leaf] = field(default_factory=list)  # parameter-free layers the module applies after it (timm's
    # BatchNormAct2d: a batch norm, then its activation), written unnamed after it
    before: list[Leaf] = field(default_factory=list)  # and before it (timm's Conv2dSame: its padding), unnamed


@dataclass
class Seq:
    """An ``nn.Sequential`` (``cls`` None) or a subclass of it that keeps its forward (a block ``= seq``)."""

    cls: str | None
    path: str
    children: list[tuple[str, Part]]


@dataclass(frozen=True)
class Ref:
    """A value of the enclosing ``Dag``: its inputs first, then its nodes."""

    index: int


class _Batch:
    """The batch size, read from a tensor's shape: it may only be passed on as a reshape's first size."""

    def __repr__(self) -> str:
        return "BATCH"


BATCH = _Batch()


@dataclass
class Node:
    """One computed value: a child applied (``fn`` "call"), a registry op applied to tensors, or an operator
    (``+ - * / **``, ``neg``) between values and constants. ``args`` holds ``Ref``s, constants, and lists of
    ``Ref``s (``cat``); an op's arguments follow its tensors, every one of its fields in order."""

    fn: str
    args: tuple
    child: str | None = None
    shape: tuple[int, ...] = ()  # without the batch
    name: str = ""  # the traced graph's name for it (a hint for the spec's)
    in_order: bool = False  # an operator whose tensors' order sets its result's memory layout (their strides
    # differ): written with them in that order, not as a residual or gate that puts the branch first


@dataclass
class Dag:
    cls: str
    path: str
    children: list[tuple[str, Part]]
    inputs: list[str]
    input_shapes: list[tuple[int, ...]]
    nodes: list[Node] = field(default_factory=list)
    output: Ref = Ref(0)
    sizes: list = field(default_factory=list)  # per input, its sizes where the spec must say them (a template's)
    dense: bool = False  # its children applied densely (each to the concatenation of the input and those before)
    sides: list = field(default_factory=list)  # (child, the child whose output it reads): training-only heads

    def uses(self) -> dict[int, int]:
        """How often each value is read (the output counts once)."""
        count: dict[int, int] = {}
        for nd in self.nodes:
            for r in refs_in(nd.args):
                count[r.index] = count.get(r.index, 0) + 1
        count[self.output.index] = count.get(self.output.index, 0) + 1
        return count


Part = Leaf | Seq | Dag


def refs_in(args) -> list[Ref]:
    out = []
    for a in args:
        if isinstance(a, Ref):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out += refs_in(a)
    return out


def normalise(v):
    """A value as the language writes it: an equal pair as one int, lists as tuples, whole floats kept."""
    if isinstance(v, list):
        v = tuple(v)
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and isinstance(v[0], int):
        return v[0]
    if isinstance(v, tuple):
        return tuple(normalise(x) for x in v)
    return v


def flat(args):
    """The items of nested lists and tuples, one by one."""
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from flat(a)
        else:
            yield a
