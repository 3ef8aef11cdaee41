"""Block calls as the diagrams label them: ``MBConv(expand_ratio=6, kernel=5, stride=2, out_channels=40)``.

A scope's call is the text elaboration wrote, every argument as the spec
would write its value (``MBConv(6, 5, 2, 40, 0.037500000000000006, 1e-05,
0.1)``). Here it is split back into arguments (top-level commas; brackets and
strings kept whole), each positional one named after the block's parameter,
those equal to the parameter's default left out, and numbers rounded to
``SIGNIFICANT`` digits. Without the spec's signatures (a bare graph) the
arguments stay positional, rounded. A folded run's members differ only in
scalars (see ``view``); ``varying`` says which arguments, and how, for the
run's label: ``stochastic_depth_prob = 0.0545 … 0.127``, ``shift_size = 0 or 3``.
"""

from __future__ import annotations

import re

SIGNIFICANT = 3
LONG_LIST = 6  # a longer list is shortened: ``[0.0]×18``, ``[64, 128, 256, …, 1024] (8)``

# a number written as a literal, not part of a name (``conv1``) or of a dotted path
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])")
FLOAT = re.compile(r"(?<![\w.])-?(?:\d+\.\d+(?:e[+-]?\d+)?|\d+e[+-]?\d+)(?![\w.])")


def round_number(text: str) -> str:
    """A float literal to ``SIGNIFICANT`` digits, still a float: ``0.037500000000000006`` -> ``0.0375``,
    ``4.0`` -> ``4.0``, ``1e-05`` -> ``1e-5``."""
    value = float(text)
    short = f"{value:.{SIGNIFICANT}g}"
    if "e" in short:
        mantissa, exponent = short.split("e")
        short = f"{mantissa}e{int(exponent)}"
    elif "." not in short:
        short += ".0"
    return short


def rounded(text: str) -> str:
    """``text`` with every float literal outside a string rounded (``round_number``)."""
    parts = re.split(r'("[^"]*")', text)
    return "".join(p if p.startswith('"') else FLOAT.sub(lambda m: round_number(m.group()), p) for p in parts)


def split_args(inner: str) -> list[str]:
    """The top-level, comma-separated items of ``inner`` (brackets and double-quoted strings kept whole)."""
    items, depth, start, in_string = [], 0, 0, False
    for i, c in enumerate(inner):
        if in_string:
            in_string = c != '"'
        elif c == '"':
            in_string = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(inner[start:i].strip())
            start = i + 1
    tail = inner[start:].strip()
    if tail:
        items.append(tail)
    return items


def parse_call(call: str) -> tuple[str, list[tuple[str | None, str]]] | None:
    """(block, [(keyword or None, value text)]) of ``Name(args)``; None for anything else (a seq's ``seq``)."""
    m = re.fullmatch(r"([A-Za-z_]\w*)\((.*)\)", call, re.S)
    if m is None:
        return None
    args: list[tuple[str | None, str]] = []
    for item in split_args(m.group(2)):
        kw = re.match(r"([A-Za-z_]\w*)=(?!=)", item)
        args.append((kw.group(1), item[kw.end():]) if kw else (None, item))
    return m.group(1), args


def short_value(text: str) -> str:
    """A value for a label: rounded, a long list shortened."""
    text = rounded(text)
    if text.startswith("[") and text.endswith("]"):
        items = split_args(text[1:-1])
        if len(items) > LONG_LIST:
            if len(set(items)) == 1:
                return f"[{items[0]}]×{len(items)}"
            return f"[{', '.join(items[:3])}, …, {items[-1]}] ({len(items)})"
    return text


class Signatures:
    """Each block's (and network's) parameter names and defaults (as the spec would write the default's value;
    None where it cannot be known without a call: a default computed from another parameter)."""

    def __init__(self, params: dict[str, list[tuple[str, str | None]]] | None = None):
        self.params = params or {}

    @classmethod
    def of_spec(cls, spec) -> Signatures:
        from ...errors import SpecError
        from ...sema.expr import evaluate
        from ...sema.scope import show

        program = getattr(spec, "program", None)
        if program is None:  # a stand-in for a spec that only hands out graphs
            return cls()
        env = spec.elaborator.globals
        params: dict[str, list[tuple[str, str | None]]] = {}
        for name, definition in [*program.blocks.items(), *program.networks.items()]:
            entries = []
            for p in definition.params:
                default = None
                if p.default is not None:
                    try:
                        default = show(evaluate(p.default, env))
                    except SpecError:  # a default computed from the other arguments
                        default = None
                entries.append((p.name, default))
            params[name] = entries
        return cls(params)

    def bound(self, call: str) -> list[tuple[str | None, str]] | None:
        """Every argument of ``call`` with its parameter's name where known (defaults not filled in)."""
        parsed = parse_call(call)
        if parsed is None:
            return None
        block, args = parsed
        names = [name for name, _ in self.params.get(block, [])]
        out = []
        for i, (kw, value) in enumerate(args):
            out.append((kw if kw is not None else (names[i] if i < len(names) else None), value))
        return out

    def label(self, call: str, varying: dict[str, list[str]] | None = None) -> str:
        """``call`` with keyword arguments, defaults left out, numbers rounded; the arguments in ``varying``
        (a folded run's) are left out too: ``range_text`` shows them."""
        parsed = parse_call(call)
        if parsed is None:
            return rounded(call)
        block, _ = parsed
        defaults = dict(self.params.get(block, []))
        parts = []
        for name, value in self.bound(call) or []:
            if varying and name in varying:
                continue
            if name is not None and name in defaults and defaults[name] == value:
                continue
            parts.append(short_value(value) if name is None else f"{name}={short_value(value)}")
        return f"{block}({', '.join(parts)})"

    def varying(self, calls: list[str]) -> dict[str, list[str]]:
        """The arguments whose values differ between ``calls`` (a folded run's, alike but for scalars), each
        with its value in every call, by parameter name (``#k`` for the k-th, 1-based, where unnamed)."""
        bound = [self.bound(c) or [] for c in calls]
        if not bound or any(len(b) != len(bound[0]) for b in bound):
            return {}
        out: dict[str, list[str]] = {}
        for k, (name, _) in enumerate(bound[0]):
            values = [b[k][1] for b in bound]
            if len(set(values)) > 1:
                out[name or f"#{k + 1}"] = values
        return out


def range_text(name: str, values: list[str]) -> str:
    """A varying argument: ``p = 0.0 … 0.2`` where it grows or shrinks, ``shift_size = 0 or 3`` otherwise."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        numbers = None
    if numbers is not None:
        steps = [b - a for a, b in zip(numbers, numbers[1:])]
        if all(s >= 0 for s in steps) or all(s <= 0 for s in steps):
            return f"{name} = {short_value(values[0])} … {short_value(values[-1])}"
    distinct = list(dict.fromkeys(short_value(v) for v in values))
    return f"{name} = {' or '.join(distinct)}"
