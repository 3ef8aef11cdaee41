"""Read a spec file and the files it ``use``s into one ``Program``."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path

from . import nodes as n
from .errors import SpecError
from .parser import parse


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

    @property
    def stem(self) -> str:
        return self.path.stem


def read_spec(path: Path, span: n.Span | None = None) -> str:
    if path.is_dir():
        raise SpecError(f"'{path}' is a directory, not a spec file", span)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"no such file: '{path}'", span) from None
    except OSError as exc:
        raise SpecError(f"cannot read '{path}': {exc.strerror}", span) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError("the file is not valid UTF-8 text", n.Span(str(path), line, col, line, col + 1)) from None


def load_program(path: str | Path) -> Program:
    path = Path(path)
    main = parse(read_spec(path), str(path))
    program = Program(path, main)
    seen: dict[Path, n.Module] = {}
    _collect(main, path, program, seen, [path.resolve()])
    for module in program.modules:
        program.lets.extend(module.lets)
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
    return program


# What a generated module imports; with Python's builtins, its own names must not shadow these.
GENERATED_IMPORTS = ("torch", "nn", "F", "Tensor")


def _check_module_names(program: Program) -> None:
    """Blocks and networks become classes, variants functions, lets constants of one generated module."""
    owners: dict[str, tuple[str, n.Span]] = {}
    items = [("block", b) for b in program.blocks.values()] + [("network", x) for x in program.networks.values()]
    items += [("variant", v) for v in program.main.variants] + [("let", let) for let in program.lets]
    for kind, item in items:
        name, span = item.name, item.span
        if name in GENERATED_IMPORTS or name in _BUILTINS or name.startswith("__"):
            if name in _BUILTINS:
                message = f"{kind} name '{name}' would shadow Python's builtin '{name}' in the generated module"
            else:
                message = f"{kind} name '{name}' clashes with '{name}', which the generated module imports"
            raise SpecError(message, span, hint="choose another name")
        if name in owners and owners[name][0] != kind and {kind, owners[name][0]} & {"variant", "let"}:
            raise SpecError(f"{kind} '{name}' has the name of a {owners[name][0]}: both would be '{name}' in the "
                            "generated module", span, notes=[("the other is defined here", owners[name][1])])
        owners.setdefault(name, (kind, span))


_BUILTINS = frozenset(dir(builtins))


def _define(table: dict, item, kind: str) -> None:
    if item.name in table:
        first = table[item.name].span
        raise SpecError(f"{kind} '{item.name}' is defined twice", item.span,
                        notes=[("first defined here", first)])
    table[item.name] = item


def _collect(module: n.Module, path: Path, program: Program, seen: dict[Path, n.Module], stack: list[Path]) -> None:
    for use in module.uses:
        dep_path = (path.parent / use.path)
        key = dep_path.resolve()
        if key in stack:
            chain = " -> ".join(p.name for p in stack[stack.index(key):] + [key])
            raise SpecError(f"'use' cycle: {chain}", use.span)
        if key in seen:
            continue
        dep = parse(read_spec(dep_path, use.span), str(dep_path))
        seen[key] = dep  # its blocks, networks and lets; its variants stay its own
        _collect(dep, dep_path, program, seen, stack + [key])
    program.modules.append(module)
