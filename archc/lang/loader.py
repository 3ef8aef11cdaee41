"""Read a spec file and the files it ``use``s into one ``Program``."""

from __future__ import annotations

import builtins
import keyword
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from . import nodes as n
from .files import FileProblem, read_spec_bytes, shown
from .parsecache import parse_file_text


@dataclass
class Program:
    """Every definition visible from one spec file (its own and those it uses)."""

    path: Path
    main: n.Module
    modules: list[n.Module] = field(default_factory=list)  # dependencies first, main last
    blocks: dict[str, n.BlockDef] = field(default_factory=dict)
    networks: dict[str, n.NetworkDef] = field(default_factory=dict)
    variants: dict[str, n.VariantDef] = field(default_factory=dict)  # the main file's only
    lets: list[n.Let] = field(default_factory=list)
    funcs: dict[str, n.FuncDef] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.path.stem


class SpecFileError(SpecError):
    """A spec file that cannot be read: located at the ``use`` that names it, or unlocated (``span`` None)
    when it was named on the command line or to ``archc.load``."""


def read_spec(path: Path, span: n.Span | None = None) -> str:
    """The text of a spec file; ``span`` is the ``use`` that names it (None: named by the user)."""
    try:
        data = read_spec_bytes(path)
    except FileProblem as exc:
        raise SpecFileError(str(exc), span) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError("the file is not valid UTF-8 text", n.Span(str(path), line, col, line, col + 1),
                        notes=[("used here", span)] if span is not None else None) from None


def _real_path(path: Path, span: n.Span | None) -> Path:
    """Where ``path`` leads, to know a file used twice; a path that leads nowhere cannot be read either."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of symbolic links is a RuntimeError before Python 3.13
        read_spec(path, span)  # says why
        raise SpecFileError(f"cannot tell where '{shown(path)}' leads", span) from None


def load_program(path: str | Path, text: str | None = None, parser=None) -> Program:
    """The program of the spec at ``path``; ``text``, if given, is its source (an editor's unsaved buffer),
    read instead of the file; the files it ``use``s are read from disk, relative to ``path``. ``parser``: what
    parses the spec's own text (the language server's parses again only the items an edit changed); by default
    ``parser.parse``, whose trees of files read from disk are kept in the user's cache (``parsecache``)."""
    path = Path(path)
    if parser is None:
        parser = parse_file_text if text is None else _parse
    main = parser(read_spec(path) if text is None else text, str(path))
    program = Program(path, main)
    seen: dict[Path, n.Module] = {}
    _collect(main, path, program, seen, [_real_path(path, None)])
    for module in program.modules:
        program.lets.extend(module.lets)
        for func in module.funcs:
            _define(program.funcs, func, "function")
        for block in module.blocks:
            _define(program.blocks, block, "block")
        for net in module.networks:
            _define(program.networks, net, "network")
    for block in program.blocks.values():
        if block.name in program.networks:
            raise SpecError(f"'{block.name}' is defined both as a block and a network", block.span)
    for variant in main.variants:
        _define(program.variants, variant, "variant")
    _check_module_names(program)
    _check_local_names(program)
    _check_function_calls(program)
    _check_block_defaults(program)
    _check_taps(program)
    _check_names_once(program)
    _check_init_rules(program)
    return program


def _parse(text: str, file: str) -> n.Module:
    from .parser import parse  # (imports Lark, which a spec whose trees are cached never needs)

    return parse(text, file)


def _check_init_rules(program: Program) -> None:
    """What every init rule says whatever it reaches, in every body, under any condition (the elaborator
    meets only the rules of the variant it makes, and only where their conditions hold)."""
    from ..sema.initrules import PARAMETERS, check_static

    for definition in [*program.blocks.values(), *program.networks.values()]:
        if definition in _RULES_CHECKED:
            continue
        for node in definition.walk():
            if isinstance(node, n.Init):
                check_static(node)
                if node.made and isinstance(definition, n.NetworkDef) and len(node.path) == 2 and \
                        node.path[0] in PARAMETERS:
                    raise SpecError("a network's rules for a kind of layer are drawn when it is made already",
                                    node.span, hint="drop 'when made'")
        _RULES_CHECKED.add(definition)


# the definitions whose init rules passed ``_check_init_rules``, which reads nothing but the definition: an editor's
# definition that an edit did not change is the same object (``incremental``), and is not walked again
_RULES_CHECKED: weakref.WeakSet = weakref.WeakSet()


def _check_names_once(program: Program) -> None:
    """A plain name names one layer of its body: two statements naming it (each under its own condition, say)
    would be two modules given one attribute, the second replacing the first in the generated class. The two
    branches of an if/else may each hold it (only one of them is made); a named seq is a namespace of its own.
    Two unconditional statements are left to the elaborator, which reports them where it meets the second."""
    def walk(stmts, seen: dict, conditional: bool) -> None:
        for s in stmts:
            if isinstance(s, n.If):
                merged = dict(seen)
                for branch in (s.body, s.orelse):
                    inner = dict(seen)
                    walk(branch, inner, True)
                    merged.update(inner)
                seen.update(merged)
                continue
            here = conditional or getattr(s, "cond", None) is not None
            target = getattr(s, "target", None) if isinstance(s, (n.Layer, n.Seq, n.Side)) else None
            if target is not None and target.is_plain:
                name = "".join(target.parts)
                if name in seen and (here or seen[name][1]):
                    raise SpecError(f"'{name}' already names a layer of this body (line {seen[name][0].line})",
                                    target.span, hint="give each layer its own name, or write the two in the "
                                                      "branches of one if/else")
                seen[name] = (target.span, here)
            if isinstance(s, n.Seq) and s.target is not None:
                walk(s.body, {}, False)
                continue
            for attr in ("body", "branches"):
                walk(getattr(s, attr, None) or [], seen, here)
            if isinstance(s, n.Residual) and s.shortcut is not None:
                walk(s.shortcut.body, seen, here)

    for body in [b.body for b in program.blocks.values()] + [net.body for net in program.networks.values()]:
        walk(body, {}, False)


_OFF_THE_MAIN_PATH = {n.Concat: "a concat", n.Residual: "a residual", n.Dense: "a dense block", n.Gate: "a gate",
                      n.Ensemble: "an ensemble"}


def _check_taps(program: Program) -> None:
    """A tap marks a feature map of the network itself: in its body, or in the seqs, loops and conditionals
    there, where the tensor is the network's own; not inside a branch, residual or gate. A block's taps stand
    on its own main path alike and become its caller's, so the block is called where a tap may stand."""
    from ..sema.taps import has_taps_of, tapped_blocks

    tapped = tapped_blocks(program.blocks)

    def walk(stmts, inside: str | None) -> None:
        for s in stmts:
            if isinstance(s, n.Tap) and inside is not None:
                raise SpecError(f"a tap cannot stand in {inside}", s.span,
                                hint="tap the network's own tensor: in the network's body or a seq of it, "
                                     "before or after the block or branch")
            call = s.layer if isinstance(s, n.Side) else s
            if isinstance(call, n.Layer) and call.func in tapped and (inside or isinstance(s, n.Side)):
                where = inside or "a side output"
                raise SpecError(f"{call.func} {has_taps_of(program.blocks[call.func], tapped)}, so it is called "
                                f"as a step of the main path, not in {where}", call.func_span, hint=f"call {call.func} where a tap could stand, or move its taps "
                                                     "out of it")
            here = inside or _OFF_THE_MAIN_PATH.get(type(s))
            for attr in ("body", "branches", "orelse"):
                walk(getattr(s, attr, None) or [], here)
            if isinstance(s, n.Residual) and s.shortcut is not None:
                walk(s.shortcut.body, here)

    for block in program.blocks.values():
        if block.sequential or block.signature is not None:
            kind = "an nn.Sequential" if block.sequential else "named tensors"
            walk(block.body, f"a block with {kind} ({block.name})")
        else:
            walk(block.body, None)
    for net in program.networks.values():
        walk(net.body, None)


# Names the generated code itself uses in every class and factory.
GENERATED_LOCALS = frozenset({"self", "x", "super", "in_channels", "out_channels"})
# Every factory's own arguments (a network with taps has the last two).
FACTORY_ARGUMENTS = frozenset({"channels_last", "features_only", "out_indices"})


def _check_local_names(program: Program) -> None:
    """A body's lets and loop variables, and a function's parameters and lets, are local variables of the
    generated code. Python makes a name local to its whole function, whereas a spec's let binds from
    where it stands: so a local may not reuse a name of the file (a block, network, function or let), an
    op, a builtin or a name the generated code uses, or the two would disagree."""
    from ..ops import REGISTRY
    from ..sema.expr import BUILTINS

    globals_ = set(program.blocks) | set(program.networks) | set(program.funcs) | {let.name for let in program.lets}
    taken = globals_ | set(REGISTRY) | set(BUILTINS) | _BUILTINS | set(GENERATED_IMPORTS) | GENERATED_LOCALS

    def check(name: str, span: n.Span, what: str) -> None:
        if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name.startswith("_") or name in taken:
            if name in globals_:
                reason = "a name this file defines"
            elif name in REGISTRY:
                reason = "an op's name"
            elif keyword.iskeyword(name) or keyword.issoftkeyword(name):
                reason = "a Python keyword"
            elif name.startswith("_"):
                reason = "marked with '_' as the generated code's own"
            else:
                reason = "a name the generated code needs (a builtin or its own)"
            raise SpecError(f"{what} '{name}' is {reason}", span, hint="give the local value a name of its own")

    def walk(stmts) -> None:
        for s in stmts:
            if isinstance(s, n.Let):
                check(s.name, s.span, "the let")
            elif isinstance(s, n.For):
                for name in n.pattern_names(s.var):
                    check(name, s.span, "the loop variable")
            for attr in ("body", "branches", "orelse"):
                walk(getattr(s, attr, None) or [])
            if isinstance(s, n.Residual) and s.shortcut is not None:
                walk(s.shortcut.body)

    for definition in [*program.blocks.values(), *program.networks.values()]:
        walk(definition.body)
    for func in program.funcs.values():
        for p in func.params:
            check(p.name, p.span, "the parameter")
        for let in func.lets:
            check(let.name, let.span, "the let")


def _check_function_calls(program: Program) -> None:
    """Functions may call each other but never, through any chain, themselves: every call ends."""
    from ..sema.exprfold import free_names

    calls = {}
    for name, func in program.funcs.items():
        names = set(free_names(func.result))
        for let in func.lets:
            names |= free_names(let.value)
        for p in func.params:
            if p.default is not None:
                names |= free_names(p.default)
        calls[name] = sorted(names & set(program.funcs))
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> None:
        if name in chain:
            cycle = chain[chain.index(name):] + [name]
            raise SpecError(f"function '{name}' calls itself ({' -> '.join(cycle)})", program.funcs[name].span,
                            hint="functions cannot recurse: write the computation with a list comprehension")
        if name in done:
            return
        for callee in calls[name]:
            visit(callee, chain + [name])
        done.add(name)

    for name in calls:
        visit(name, [])


def _check_block_defaults(program: Program) -> None:
    """A block may call itself, but a parameter's default may not name its own block, nor blocks whose defaults
    name it back: the generated class's default is its class, which does not exist while its ``def`` runs."""
    from ..sema.exprfold import free_names

    defs = {**program.blocks, **program.networks}
    named = {name: [(p, x) for p in d.params if p.default is not None for x in sorted(free_names(p.default))
                    if x in program.blocks] for name, d in defs.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        path = [*path, name]
        for p, other in named[name]:
            if other in path:
                cycle = " -> ".join(path[path.index(other):] + [other])
                what = f"its own block {name}" if other == name else \
                    f"block {other}, whose class needs this one's first (the defaults name {cycle})"
                raise SpecError(f"the default of parameter '{p.name}' names {what}: a class cannot default to a "
                                "class not yet defined", p.default.span,
                                hint=f"give '{p.name}' no default, or call {other} by name where it recurses "
                                     f"('inner = {other}(...) if levels > 1')")
            if other not in done:
                visit(other, path)
        done.add(name)

    for name in named:
        if name not in done:
            visit(name, [])


# What a generated module imports; with Python's builtins, its own names must not shadow these.
GENERATED_IMPORTS = ("math", "torch", "nn", "F", "Tensor")


def _check_module_names(program: Program) -> None:
    """Blocks and networks become classes, variants functions, lets constants of one generated module."""
    owners: dict[str, tuple[str, n.Span]] = {}
    items = [("block", b) for b in program.blocks.values()] + [("network", x) for x in program.networks.values()]
    items += [("function", f) for f in program.funcs.values()]
    items += [("variant", v) for v in program.main.variants] + [("let", let) for let in program.lets]
    for kind, item in items:
        name, span = item.name, item.span
        if keyword.iskeyword(name) or keyword.issoftkeyword(name):
            raise SpecError(f"{kind} name '{name}' is a Python keyword", span, hint="choose another name")
        if name.startswith("_") and not name.startswith("__"):
            raise SpecError(f"{kind} name '{name}' starts with '_', which marks the generated module's own helpers",
                            span, hint="choose another name")
        if name in GENERATED_IMPORTS or name in _BUILTINS or name.startswith("__"):
            if name in _BUILTINS:
                message = f"{kind} name '{name}' would shadow Python's builtin '{name}' in the generated module"
            else:
                message = f"{kind} name '{name}' clashes with '{name}', which the generated module imports"
            raise SpecError(message, span, hint="choose another name")
        if kind in ("block", "network", "function") and name in _op_names():
            raise SpecError(f"{kind} name '{name}' is the name of an op: calls of '{name}' would be ambiguous", span,
                            hint="choose another name (blocks are usually capitalised: Identity)")
        if kind in ("block", "network", "function") and (name in GENERATED_LOCALS or name in FACTORY_ARGUMENTS):
            use = "a factory argument" if name in FACTORY_ARGUMENTS else "a name in every class"
            raise SpecError(f"{kind} name '{name}' is reserved: the generated module uses it as {use}", span,
                            hint="choose another name")
        if name in owners and owners[name][0] != kind and {kind, owners[name][0]} & {"variant", "let", "function"}:
            raise SpecError(f"{kind} '{name}' has the name of a {owners[name][0]}: both would be '{name}' in the "
                            "generated module", span, notes=[("the other is defined here", owners[name][1])])
        owners.setdefault(name, (kind, span))
    callables = {**{b: "block" for b in program.blocks}, **{x: "network" for x in program.networks},
                 **{f: "function" for f in program.funcs}}
    for definition in [*program.blocks.values(), *program.networks.values()]:
        for p in definition.params:  # a constructor argument: inside the class it would hide the callable
            if p.name in callables:
                raise SpecError(f"parameter '{p.name}' has the name of a {callables[p.name]}: in the generated class "
                                f"it would hide the {callables[p.name]}", p.span, hint="rename the parameter")


_BUILTINS = frozenset(dir(builtins))


def _op_names() -> frozenset[str]:
    from ..ops import REGISTRY  # (the registry imports nothing of the front end)

    return frozenset(REGISTRY)


def _define(table: dict, item, kind: str) -> None:
    if item.name in table:
        first = table[item.name].span
        raise SpecError(f"{kind} '{item.name}' is defined twice", item.span,
                        notes=[("first defined here", first)])
    table[item.name] = item


_USED: dict[tuple[str, str], n.Module] = {}  # (file, text) -> its syntax tree, the latest few


def _parse_used(text: str, file: str) -> n.Module:
    """A used file's syntax tree, parsed once for each text it has: an editor re-checks a spec on every keystroke,
    and the files it uses rarely change meanwhile (nothing after parsing changes a tree)."""
    key = (file, text)
    module = _USED.pop(key, None) or parse_file_text(text, file)
    _USED[key] = module  # the most recently used last
    while len(_USED) > 32:
        del _USED[next(iter(_USED))]
    return module


def _collect(module: n.Module, path: Path, program: Program, seen: dict[Path, n.Module], stack: list[Path]) -> None:
    for use in module.uses:
        dep_path = (path.parent / use.path)
        key = _real_path(dep_path, use.span)
        if key in stack:
            chain = " -> ".join(p.name for p in stack[stack.index(key):] + [key])
            raise SpecError(f"'use' cycle: {chain}", use.span)
        if key in seen:
            continue
        dep = _parse_used(read_spec(dep_path, use.span), str(dep_path))
        seen[key] = dep  # its blocks, networks and lets; its variants stay its own
        _collect(dep, dep_path, program, seen, stack + [key])
    program.modules.append(module)
