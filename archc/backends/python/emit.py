"""Shared questions of Python emission, asked of the spec's tree: the namespace that hands out local names,
shape comments, which statements create modules or bind names, and which names are attributes.

Both halves of a generated class (``emit_init`` for ``__init__``, ``emit_forward`` for ``forward``) and
the module writer (``codegen``) use these; the IR they build is in ``ir`` and ``irbuild``.
"""

from __future__ import annotations

import builtins
import keyword

from ...lang import nodes as n
from ...lang.loader import GENERATED_IMPORTS
from ...ops import REGISTRY
from ...sema.elaborate import input_layout
from ...sema.expr import Evaluator
from ...sema.exprfold import fold, is_literal
from ...sema.layout import SUFFIX

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
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "v"
        if base[0].isdigit():
            base = "_" + base
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


def input_features(net: n.NetworkDef) -> n.Expr:
    """The size of the network input's feature dimension: a map's channels (C x H x W), flat features, or the D
    of L x D tokens (the C of a C x L signal)."""
    return net.input[1] if input_layout(net) == "LD" else net.input[0]


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


def plain(target: n.Target | None) -> str | None:
    """A target's name when it interpolates nothing."""
    if target is None or not target.is_plain:
        return None
    return "".join(target.parts)  # type: ignore[arg-type]


def given_args(kind, stmt: n.Layer) -> dict[str, n.Expr]:
    """The arguments a layer statement writes, by the op's field names."""
    given = dict(zip(kind.positional, stmt.arguments.args))
    given.update({k: v for k, v, _ in stmt.arguments.kwargs})
    return given


def may_work_in_place(kind, stmt: n.Layer, fold) -> bool:
    """Whether the op may be written ``inplace=True`` at all: its kind allows it, and where the kind allows it only
    for some argument values (``inplace_if``), the statement's arguments are constants (``fold`` folds them) that
    allow it."""
    if not kind.inplace:
        return False
    if kind.inplace_if is None:
        return True
    values = {f: field.default for f, field in kind.args.model_fields.items() if not field.is_required()}
    for field, e in given_args(kind, stmt).items():
        folded = fold(e)
        if not is_literal(folded):
            return False
        values[field] = Evaluator({})(folded)
    return kind.inplace_if(values)


def keeps_output(kind, stmt: n.Layer, fold) -> bool:
    """Whether the op's backward reads its output, so that the next layer may not change it in place: its kind
    says so, or says so for some argument values (``keeps_output_if``), which where not constants it is taken to."""
    if kind.keeps_output or kind.keeps_output_if is None:
        return kind.keeps_output
    values = {f: field.default for f, field in kind.args.model_fields.items() if not field.is_required()}
    for field, e in given_args(kind, stmt).items():
        folded = fold(e)
        if not is_literal(folded):
            return True
        values[field] = Evaluator({})(folded)
    return kind.keeps(values)


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
