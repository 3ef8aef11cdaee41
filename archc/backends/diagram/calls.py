"""Block calls as the diagrams label them: ``MBConv(expand_ratio=6, kernel=5, stride=2, out_channels=40)``.

Elaboration keeps each block call's arguments as values, named by the block's parameters
(``ScopeInfo.args``). Here those equal to the parameter's default are left out and the rest written
as the spec would write them, floats rounded to ``SIGNIFICANT`` digits and long lists shortened. A
folded run's members differ only in scalars (see ``view``); ``varying`` says which arguments, and
how, for the run's label: ``stochastic_depth_prob = 0.0545 … 0.127``, ``shift_size = 0 or 3``.
Comparing instances works on the values too: ``masked`` writes their numbers ``#``.
"""

from __future__ import annotations

import math

from ...sema.graph import ScopeInfo
from ...sema.scope import show

SIGNIFICANT = 3
LONG_LIST = 6  # a longer list is shortened: ``[0.0]×18``, ``[64, 128, 256, …, 1024] (8)``
MASK = "#"


def round_number(value: float) -> str:
    """A float to ``SIGNIFICANT`` digits, still written as a float: ``0.037500000000000006`` -> ``0.0375``,
    ``4.0`` -> ``4.0``, ``1e-05`` -> ``1e-5``."""
    if not math.isfinite(value):
        return show(value)
    short = f"{value:.{SIGNIFICANT}g}"
    if "e" in short:
        mantissa, exponent = short.split("e")
        short = f"{mantissa}e{int(exponent)}"
    elif "." not in short:
        short += ".0"
    return short


def rounded(value) -> object:
    """``value`` with every float in it rounded to ``SIGNIFICANT`` digits (in lists, tuples and dicts too), for a
    label that prints it."""
    if isinstance(value, float) and math.isfinite(value):
        return float(round_number(value))
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v) for v in value)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def masked(value, only_floats: bool = False):
    """``value`` with each number (or each float) written ``MASK``, hashable: what instances alike but for scalars
    share."""
    if is_number(value) and (isinstance(value, float) or not only_floats):
        return MASK
    if isinstance(value, (list, tuple)):  # hashable: a list as a tuple, marked as one
        return (type(value).__name__, *(masked(v, only_floats) for v in value))
    if isinstance(value, dict):
        return tuple((k, masked(v, only_floats)) for k, v in sorted(value.items()))
    return value


def numbers(value) -> list:
    """The numbers in ``value``, in order (those ``masked`` writes ``MASK``)."""
    if is_number(value):
        return [value]
    if isinstance(value, dict):
        value = [v for _, v in sorted(value.items())]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in numbers(v)]
    return []


def value_text(value) -> str:
    """A value for a label, as the spec writes it: floats rounded, a long list shortened."""
    if isinstance(value, float):
        return round_number(value)
    if isinstance(value, (list, tuple)):
        items = [value_text(v) for v in value]
        if isinstance(value, list) and len(items) > LONG_LIST:
            if len(set(items)) == 1:
                return f"[{items[0]}]×{len(items)}"
            return f"[{', '.join(items[:3])}, …, {items[-1]}] ({len(items)})"
        inner = ", ".join(items)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return show(value)


def _same(a, b) -> bool:
    """Equal values of the same types (``1`` is not ``1.0`` or ``true`` here)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class Signatures:
    """Each block's (and network's) parameter defaults, as values (a default computed from another parameter is
    not known without a call, and is never left out)."""

    def __init__(self, defaults: dict[str, dict[str, object]] | None = None):
        self.defaults = defaults or {}

    @classmethod
    def of_spec(cls, spec) -> Signatures:
        from ...errors import SpecError
        from ...sema.expr import evaluate

        program = getattr(spec, "program", None)
        if program is None:  # a stand-in for a spec that only hands out graphs
            return cls()
        env = spec.elaborator.globals
        defaults: dict[str, dict[str, object]] = {}
        for name, definition in [*program.blocks.items(), *program.networks.items()]:
            known = defaults[name] = {}
            for p in definition.params:
                if p.default is not None:
                    try:
                        known[p.name] = evaluate(p.default, env)
                    except SpecError:  # a default computed from the other arguments
                        pass
        return cls(defaults)

    def label(self, scope: ScopeInfo, varying: dict[str, list] | None = None) -> str:
        """``scope``'s call with keyword arguments, defaults left out, numbers rounded; the arguments in ``varying``
        (a folded run's) are left out too: ``range_text`` shows them. A seq is its call (``seq``)."""
        if scope.kind != "block":
            return scope.call
        defaults = self.defaults.get(scope.block, {})
        parts = []
        for k, (name, value) in enumerate(scope.args):
            if varying and (name or f"#{k + 1}") in varying:
                continue
            if name is not None and name in defaults and _same(defaults[name], value):
                continue
            parts.append(value_text(value) if name is None else f"{name}={value_text(value)}")
        return f"{scope.block}({', '.join(parts)})"

    @staticmethod
    def varying(scopes: list[ScopeInfo]) -> dict[str, list]:
        """The arguments whose values differ between ``scopes`` (a folded run's, alike but for scalars), each
        with its value in every call, by parameter name (``#k`` for the k-th, 1-based, where unnamed)."""
        if not scopes or any(len(s.args) != len(scopes[0].args) for s in scopes):
            return {}
        out: dict[str, list] = {}
        for k, (name, _) in enumerate(scopes[0].args):
            values = [s.args[k][1] for s in scopes]
            if any(not _same(v, values[0]) for v in values):
                out[name or f"#{k + 1}"] = values
        return out


def range_text(name: str, values: list) -> str:
    """A varying argument: ``p = 0.0 … 0.2`` where it grows or shrinks, ``shift_size = 0 or 3`` otherwise."""
    if all(is_number(v) for v in values):
        steps = [b - a for a, b in zip(values, values[1:])]
        if all(s >= 0 for s in steps) or all(s <= 0 for s in steps):
            return f"{name} = {value_text(values[0])} … {value_text(values[-1])}"
    distinct = list(dict.fromkeys(value_text(v) for v in values))
    return f"{name} = {' or '.join(distinct)}"
