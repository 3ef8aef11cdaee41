"""Shared pieces of Python emission: the namespace that hands out local names, the line writer,
``let`` pruning, shape comments and literals.

Both halves of a generated class (``pyinit`` for ``__init__``, ``pyforward`` for ``forward``) and
the module writer (``codegen``) print through these.
"""

from __future__ import annotations

import builtins
import keyword
import re

from . import nodes as n
from .expr import BlockRef, literal, to_python
from .loader import GENERATED_IMPORTS
from .ops import REGISTRY

FIXED_NAMES = {*GENERATED_IMPORTS, "self", "x", "super"}

SPAN = n.Span("<generated>", 1, 1, 1, 1)


def symbol(name: str) -> n.Var:
    """A name of the generated code as an expression node."""
    return n.Var(name, SPAN)


class Namespace:
    """Hands out legal, unique local names (clashes get _1, _2, ...)."""

    def __init__(self, taken: set[str] = frozenset()):
        self.taken = set(taken) | FIXED_NAMES | set(dir(builtins)) | set(keyword.kwlist)

    def reserve(self, name: str) -> None:
        self.taken.add(name)

    def create(self, base: str) -> str:
        base = re.sub(r"\W", "_", base) or "v"
        if base[0].isdigit():
            base = "_" + base
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


class LetLine(str):
    """A line that binds a ``let``: dropped when nothing after it reads the name."""

    name: str


def let_line(text: str, name: str) -> LetLine:
    line = LetLine(text)
    line.name = name
    return line


def prune_lets(lines: list[str]) -> list[str]:
    """Drop ``let`` bindings no other line reads (a let may serve __init__ only, or forward only)."""
    while True:
        text = "\n".join(lines)
        dead = [i for i, line in enumerate(lines) if isinstance(line, LetLine)
                and len(re.findall(rf"\b{re.escape(line.name)}\b", text)) <= len(re.findall(rf"\b{re.escape(line.name)}\b", line))]
        if not dead:
            return lines
        lines = [line for i, line in enumerate(lines) if i not in dead]


class Writer:
    """Indented statement lines."""

    def __init__(self, depth: int = 0) -> None:
        self.lines: list[str] = []
        self.depth = depth

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def indent(self) -> Writer:
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1

    def nested(self, extra: int = 1) -> Writer:
        """An empty writer one level (or ``extra`` levels) deeper, for a block's body."""
        return Writer(self.depth + extra)


def emit_if(w: Writer, test: str, then: Writer, orelse: Writer) -> None:
    """``if test:`` with both branches' lines, leaving out an empty one."""
    if then.lines:
        w.line(f"if {test}:")
        w.lines += then.lines
        if orelse.lines:
            w.line("else:")
            w.lines += orelse.lines
    elif orelse.lines:
        w.line(f"if not ({test}):")
        w.lines += orelse.lines


def shape_comment(shapes: list[tuple[int, ...]]) -> str:
    """``N x 64 x 56 x 56``; a dimension that differs between uses shows its values."""
    if not shapes:
        return ""
    dims = []
    for values in zip(*shapes):
        distinct = sorted(set(values))
        if len(distinct) == 1:
            dims.append(str(distinct[0]))
        elif len(distinct) <= 3:
            dims.append("|".join(map(str, distinct)))
        else:
            dims.append(f"{distinct[0]}..{distinct[-1]}")
    if len({len(s) for s in shapes}) != 1:
        return ""
    return "N x " + " x ".join(dims)


def plain(target: n.Target | None) -> str | None:
    """A target's name when it interpolates nothing."""
    if target is None or not target.is_plain:
        return None
    return "".join(target.parts)  # type: ignore[arg-type]


def loop_var(name: str, body: list[str]) -> str:
    """A loop variable the body never reads is written ``_``."""
    return name if any(re.search(rf"\b{re.escape(name)}\b", line) for line in body) else "_"


def value_literal(value) -> str:
    if isinstance(value, BlockRef):
        return value.name
    return to_python(literal(value, SPAN))


def fstring(target: n.Target, printer) -> str:
    """An interpolated name as an f-string; ``printer`` writes each interpolated expression."""
    parts = []
    for p in target.parts:
        if isinstance(p, str):
            parts.append(p.replace("{", "{{").replace("}", "}}"))
        else:
            parts.append("{" + printer(p) + "}")
    return 'f"' + "".join(parts) + '"'


# ------------------------------------------------------------- AST queries


def static_name(stmt) -> str | None:
    """The statement's own name when it interpolates nothing."""
    return plain(getattr(stmt, "target", None))


def creates_modules(stmt: n.Stmt, program_blocks: dict, env_blocks: set[str]) -> bool:
    """Whether the statement puts a module into its class (``env_blocks``: parameters holding a block)."""
    if isinstance(stmt, n.Layer):
        if stmt.func in program_blocks or stmt.func in env_blocks:
            return True
        kind = REGISTRY.get(stmt.func)
        return stmt.target is not None or (kind is not None and kind.has_params)
    if isinstance(stmt, n.Side):
        return True
    if isinstance(stmt, n.Seq):
        return stmt.target is not None or any(creates_modules(s, program_blocks, env_blocks) for s in stmt.body)
    if isinstance(stmt, n.Concat):
        return any(creates_modules(s, program_blocks, env_blocks) for s in stmt.branches)
    if isinstance(stmt, n.Dense):
        return any(creates_modules(s, program_blocks, env_blocks) for s in stmt.body)
    if isinstance(stmt, n.Residual):
        inner = list(stmt.body) + (list(stmt.shortcut.body) if stmt.shortcut else [])
        return any(creates_modules(s, program_blocks, env_blocks) for s in inner)
    if isinstance(stmt, (n.For, n.If)):
        inner = list(stmt.body) + list(getattr(stmt, "orelse", []))
        return any(creates_modules(s, program_blocks, env_blocks) for s in inner)
    return False


def conditional_names(stmt, blocks: dict, block_params: set[str]) -> list[str]:
    """Attributes a conditional statement creates under a fixed name: set to None when it is skipped."""
    if isinstance(stmt, (n.Layer, n.Side)):
        name = static_name(stmt)
        return [name] if name and creates_modules(stmt, blocks, block_params) else []
    if isinstance(stmt, n.Seq) and stmt.target is not None:
        return [plain(stmt.target)] if stmt.target.is_plain else []
    if isinstance(stmt, (n.Seq, n.Concat, n.Dense)):
        inner = stmt.branches if isinstance(stmt, n.Concat) else stmt.body
        return [name for s in inner for name in conditional_names(s, blocks, block_params)]
    if isinstance(stmt, n.Residual):
        inner = list(stmt.body) + (list(stmt.shortcut.body) if stmt.shortcut else [])
        return [name for s in inner for name in conditional_names(s, blocks, block_params)]
    return []
