"""A spec file's variants: each a network with some of its parameters fixed, a factory of the
generated module. Comments right above a definition are its documentation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from ..lang.loader import Program
from .expr import evaluate
from .scope import signature_bind


@dataclass
class Variant:
    """A factory of the generated module: a network with some parameters fixed."""

    name: str
    network: n.NetworkDef
    fixed: dict[str, object]  # parameters the variant sets
    span: n.Span
    doc: str = ""


def owned(v: Variant, variants: dict[str, Variant]) -> set[str]:
    """The network parameters that a variant's factory does not take: those the variants of its network tell
    apart (every one any of them writes; one that does not write it has the network's default), except those the
    network marks ``option``, which every factory takes with the variant's value as its default."""
    written = set(v.fixed).union(*(w.fixed for w in variants.values() if w.network is v.network))
    return written - {p.name for p in v.network.params if p.option}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def resolve_variants(program: Program, env: dict[str, object]) -> dict[str, Variant]:
    """The main file's variants, their arguments evaluated in ``env`` (the file's constants); a file with
    networks but no variants gets one per network, named in snake case."""
    result: dict[str, Variant] = {}
    for v in program.main.variants:
        net = program.networks.get(v.network)
        if net is None:
            raise SpecError(f"unknown network '{v.network}'", v.network_span,
                            hint=did_you_mean(v.network, program.networks))
        pos = [evaluate(a, env) for a in v.arguments.args]
        kw = [(k, evaluate(e, env), s) for k, e, s in v.arguments.kwargs]
        names = [p.name for p in net.params]
        signature_bind(net.params, pos, kw, f"network {net.name}", v.span,
                       lambda p, bound: evaluate(p.default, env))
        fixed = dict(zip(names, pos))
        fixed.update({k: val for k, val, _ in kw})
        result[v.name] = Variant(v.name, net, fixed, v.span, leading_comment(program.main.source, v.span.line))
    if not program.main.variants:
        for net in program.main.networks:
            name = snake(net.name)
            result[name] = Variant(name, net, {}, net.span)
    return result


def leading_comment(source: str, line: int) -> str:
    """The ``#`` comment lines right above line ``line`` (1-based)."""
    lines = source.splitlines()
    out: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.append(lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(reversed(out)).strip()
