"""The values expressions compute besides numbers, strings, lists and tuples, and the limits on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

MAX_INT = 2**62
MAX_LIST = 100_000
MAX_STRING = 100_000


@dataclass(frozen=True)
class BlockRef:
    """A block used as a value (``ResNet(Bottleneck, ...)``)."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class OpRef:
    """An op used as a value (``activation = relu6``), called without arguments; ``args``: the keyword arguments
    the value fixes (``norm_layer = batchnorm(eps = 0.001)``, torchvision's ``partial(nn.BatchNorm2d, eps=0.001)``),
    in the order written."""

    name: str
    args: tuple[tuple[str, object], ...] = ()

    def __repr__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}({', '.join(f'{k} = {show(v)}' for k, v in self.args)})"


@dataclass(frozen=True, eq=False)
class Function:
    """A spec's ``def``, with the globals it sees."""

    definition: Any  # nodes.FuncDef
    globals: dict

    def __repr__(self) -> str:
        return f"{self.definition.name}()"


class Iteration:
    """What ``enumerate`` and ``zip`` give: something to loop over, not a list (as in Python)."""

    def __init__(self, items: list):
        self.items = items

    def __iter__(self):
        return iter(self.items)


@dataclass(frozen=True)
class TensorInfo:
    """What ``in`` / ``out`` expose to expressions."""

    channels: int | None
    height: int | None = None
    width: int | None = None
    features: int | None = None
    length: int | None = None
    kind: str = "this tensor"

    ATTRIBUTES: ClassVar[tuple[str, ...]] = ("channels", "height", "width", "features", "length")


def show(v) -> str:
    """A value as the spec would write it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        inner = ", ".join(show(i) for i in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    return repr(v)


def type_name(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, BlockRef):
        return "block"
    if isinstance(value, OpRef):
        return "op"
    if isinstance(value, Function):
        return "function"
    if isinstance(value, Iteration):
        return "iteration (loop over it)"
    if isinstance(value, TensorInfo):
        return "tensor"
    return {int: "int", float: "float", str: "string", list: "list", tuple: "tuple"}.get(type(value),
                                                                                         type(value).__name__)


def size(value, limit: int) -> int:
    """What holding (or printing, or comparing) ``value`` costs: one for each list, tuple and string, and for
    each item and character in them, counted as often as a shared part is reached. Stops counting soon after
    ``limit``, so a deep structure built by sharing (``[[0] * n] * n``) costs no more than the limit to measure."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, str):
            total += 1 + len(v)
        elif isinstance(v, (list, tuple, Iteration)):
            items = v.items if isinstance(v, Iteration) else v
            total += 1 + len(items)
            stack.extend(x for x in items if isinstance(x, (list, tuple, str)))
    return total
