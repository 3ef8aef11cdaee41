"""Shared pieces of Python emission: the namespace that hands out local names, the line writer,
``let`` pruning, shape comments and literals.

Both halves of a generated class (``emit_init`` for ``__init__``, ``emit_forward`` for ``forward``) and
the module writer (``codegen``) print through these.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections import Counter

from ...lang import nodes as n
from ...lang.loader import GENERATED_IMPORTS
from ...ops import REGISTRY
from ...sema.exprfold import fold, literal, pattern_text, to_python
from ...sema.layout import SUFFIX
from ...sema.values import BlockRef

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


def prune_lets(lines: list[str], read_after: set[str] = frozenset()) -> list[str]:
    """Drop ``let`` bindings no other line reads (a let may serve __init__ only, or forward only), then
    the loops and branches that are left empty; ``read_after``: names that code after these lines reads (a
    block's output width). Names are counted once and a dropped let gives back its own reads, so a long
    chain of lets costs time in proportion to its length."""
    words = [Counter(_WORD.findall(line)) for line in lines]
    counts: Counter = Counter(read_after)
    for w in words:
        counts.update(w)
    lets_of: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        if isinstance(line, LetLine):
            lets_of.setdefault(line.name, []).append(i)
    alive = [True] * len(lines)
    pending = [i for indexes in lets_of.values() for i in indexes]
    while pending:
        i = pending.pop()
        name = lines[i].name
        if not alive[i] or counts[name] > words[i][name]:
            continue  # another line reads the name
        alive[i] = False
        counts.subtract(words[i])
        for word in words[i]:
            pending += [j for j in lets_of.get(word, ()) if alive[j]]
    return drop_empty_blocks([line for i, line in enumerate(lines) if alive[i]])


_WORD = re.compile(r"\w+")
_HEADER = re.compile(r"(if|elif|else|for)\b.*:$")


def drop_empty_blocks(lines: list[str]) -> list[str]:
    """Remove a ``for``, ``if``, ``elif`` or ``else`` whose body is empty (its lets were pruned); an empty
    ``if`` with an ``else`` becomes ``if not``, and one that an ``elif`` follows keeps a ``pass``."""
    out = list(lines)
    i = len(out) - 1
    while i >= 0:
        line = out[i]
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if _HEADER.match(stripped):
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt is None or len(nxt) - len(nxt.lstrip()) <= indent:
                follows = nxt is not None and len(nxt) - len(nxt.lstrip()) == indent and \
                    nxt.lstrip().startswith(("elif ", "else:"))
                if stripped.startswith("if ") and follows and nxt.lstrip() == "else:":
                    out[i] = " " * indent + f"if not ({stripped[3:-1]}):"  # the else's body is the if's now
                    del out[i + 1]
                elif follows:
                    out.insert(i + 1, " " * (indent + 4) + "pass")
                else:
                    del out[i]
        i -= 1
    return out


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


def shape_comment(types: list) -> str:
    """``N x 64 x 56 x 56``; a dimension that differs between uses shows its values; a layout other than
    C x H x W and flat features is named (``N x 56 x 56 x 96 (channels last)``)."""
    if not types or len({t.layout for t in types}) != 1:
        return ""
    dims = []
    for values in zip(*(t.shape for t in types)):
        distinct = sorted(set(values))
        if len(distinct) == 1:
            dims.append(str(distinct[0]))
        elif len(distinct) <= 3:
            dims.append("|".join(map(str, distinct)))
        else:
            dims.append(f"{distinct[0]}..{distinct[-1]}")
    return "N x " + " x ".join(dims) + SUFFIX[types[0].layout]


def is_attribute(name: str) -> bool:
    """Whether a module name is written ``self.name``; any other name (``"proj-1"``, ``"if"``) goes through
    ``add_module`` and ``getattr``, both for the module and for the None that stands in when it is skipped."""
    return name.isidentifier() and not keyword.iskeyword(name)


def read_attribute(owner: str, name: str) -> str:
    """``self.conv1``, or ``getattr(self, "proj-1")``."""
    return f"{owner}.{name}" if is_attribute(name) else f"getattr({owner}, {to_python(n.Str(name, SPAN))})"


def set_attribute(owner: str, name: str, value: str) -> str:
    """``self.conv1 = value``, or ``self.add_module("proj-1", value)`` (which also registers a None)."""
    return f"{owner}.{name} = {value}" if is_attribute(name) else \
        f"{owner}.add_module({to_python(n.Str(name, SPAN))}, {value})"


def plain(target: n.Target | None) -> str | None:
    """A target's name when it interpolates nothing."""
    if target is None or not target.is_plain:
        return None
    return "".join(target.parts)  # type: ignore[arg-type]


def loop_var(name: str, body: list[str]) -> str:
    """A loop variable the body never reads is written ``_``."""
    return name if any(re.search(rf"\b{re.escape(name)}\b", line) for line in body) else "_"


def given_args(kind, stmt: n.Layer) -> dict[str, n.Expr]:
    """The arguments a layer statement writes, by the op's field names."""
    given = dict(zip(kind.positional, stmt.arguments.args))
    given.update({k: v for k, v, _ in stmt.arguments.kwargs})
    return given


def default_text(kind, field: str) -> str:
    """An op argument's default, printed."""
    return to_python(literal(kind.args.model_fields[field].default, SPAN))


def loop_target(pattern: n.Pattern, body: list[str]) -> str:
    """A for loop's target: a name or a tuple pattern, each name the body never reads written ``_``."""
    def unused(p: n.Pattern) -> n.Pattern:
        return loop_var(p, body) if isinstance(p, str) else tuple(unused(q) for q in p)

    return pattern_text(unused(pattern))


def value_literal(value) -> str:
    if isinstance(value, BlockRef):
        return value.name
    return to_python(literal(value, SPAN))


def fstring(target: n.Target, printer) -> str:
    """An interpolated name as Python: an f-string, or a concatenation where an interpolated expression holds
    a string literal (an f-string cannot hold its own quotes before Python 3.12). ``printer`` writes each
    interpolated expression; one that is a literal is written into the name's text."""
    parts: list[tuple[bool, str]] = []  # (is text, value)
    for p in target.parts:
        if isinstance(p, str):
            parts.append((True, p))
            continue
        printed = printer(p)
        if re.fullmatch(r"-?\d+", printed):
            parts.append((True, printed))
        elif re.fullmatch(r'"[^"\\{}]*"', printed):
            parts.append((True, printed[1:-1]))
        else:
            parts.append((False, printed))
    if not any(quote in value for is_text, value in parts if not is_text for quote in "\"'\\"):
        inner = "".join(value.replace("{", "{{").replace("}", "}}") if is_text else "{" + value + "}"
                        for is_text, value in parts)
        return to_python(n.Str(inner, SPAN)) if all(is_text for is_text, _ in parts) else 'f"' + inner + '"'
    return " + ".join(to_python(n.Str(value, SPAN)) if is_text else f"str({value})" for is_text, value in parts)


# ------------------------------------------------------------- AST queries


def nested_bodies(stmt) -> list[list]:
    """The statement lists a statement holds: a body, concat branches, an else, a residual's shortcut. Every
    pass over nested statements goes through this, so none forgets a kind of child."""
    bodies = [getattr(stmt, attr, None) or [] for attr in ("body", "branches", "orelse")]
    if isinstance(stmt, n.Residual) and stmt.shortcut is not None:
        bodies.append(stmt.shortcut.body)
    return [b for b in bodies if b]


def as_tuple(e: n.Expr) -> n.Expr:
    """A list written as an op argument becomes a tuple, as torch's modules and functions take sizes and dims
    (decided on the tree: a list indexed or added to is no list argument)."""
    return n.ListExpr(e.items, e.span, tuple=True) if isinstance(e, n.ListExpr) else e


def through_lets(e: n.Expr, body: list, subst: dict[str, n.Expr] | None = None) -> n.Expr:
    """``e`` with the lets of ``body`` (its top level, in order) replaced by their definitions: for code that
    reads a block's condition outside the block (its instances' init rules), where its lets do not exist."""
    subst = dict(subst or {})
    for s in body:
        if isinstance(s, n.Let):
            subst[s.name] = fold(s.value, {}, subst)
    return fold(e, {}, subst)


def bound_names(stmts) -> set[str]:
    """Every name a body binds with ``let`` or a ``for``, at any depth."""
    names: set[str] = set()
    for s in stmts:
        if isinstance(s, n.Let):
            names.add(s.name)
        elif isinstance(s, n.For):
            names.update(n.pattern_names(s.var))
        for body in nested_bodies(s):
            names |= bound_names(body)
    return names


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
