"""Init rules drawn 'when made' (``init pos_embedding = normal(std = 0.02) when made``): in the class whose
body holds them, in construction order, as torchvision draws some tensors while it constructs.

A rule that names a layer or a learned tensor is drawn right after the statement of ``__init__`` that makes
it (``self.pos_embedding = nn.Parameter(...)``, then ``nn.init.normal_(self.pos_embedding, std=0.02)``; a
layer of a seq: after the seq is made). A block's rules for an op kind are drawn at the end of its
``__init__``, one pass over its own modules (ViT's MLPBlock: ``for m in self.modules(): ...``). The other
rules stay in the network's pass (``emit_weights``), which draws after every module is made.
"""

from __future__ import annotations

from ...errors import SpecError
from ...ops import REGISTRY
from ...sema.initrules import PARAMETERS, classify, entries
from . import ir
from .emit_weights import _access, _call, _inits, _network_cond, _Rule, rules_pass


def made_rules(ctx) -> list[_Rule]:
    """The body's rules drawn 'when made', as rules of its own class (their conditions over its parameters)."""
    out = []
    for order, (stmt, conds) in enumerate(_inits(ctx.d.body, [])):
        if not stmt.made:
            continue
        kind, block, path, param = classify(stmt, ctx.blocks, PARAMETERS)
        conds = conds + ([stmt.cond] if stmt.cond is not None else [])
        out.append(_Rule(stmt, kind, block, path, param, (0 if kind is not None else 1, -1, order), None, conds))
    return out


def with_made_rules(ctx, body: list[ir.Node]) -> list[ir.Node]:
    """``body`` (an ``__init__``'s statements that make modules) with the rules drawn 'when made' in it: each
    layer's and tensor's after the statement that makes it, the kinds' at the end."""
    rules = made_rules(ctx)
    if not rules:
        return body
    kinds = [r for r in rules if r.kind is not None]
    after: dict[int, list[ir.Node]] = {}  # statement index -> the draws that follow it, in the rules' order
    for rule in (r for r in rules if r.kind is None):
        path, param = _target(rule, body)
        at = _maker(body, path[0])
        if at is None:
            raise SpecError(f"'when made': no statement of {ctx.d.name}'s __init__ makes '{'.'.join(path)}'",
                            rule.stmt.span, hint="drop 'when made' to draw it in the network's pass")
        draws = tuple(ir.Expr(_call(rule, param, ctx, _access(ir.Name("self"), path), item))
                      for item in entries(rule.stmt.rule))
        cond = _network_cond(rule, ctx)
        after.setdefault(at, []).extend([ir.If(cond, draws)] if cond is not None else draws)
    body = [s for i, stmt in enumerate(body) for s in [stmt, *after.get(i, [])]]
    if kinds:
        if ctx.is_network:
            raise SpecError("a network's rules for a kind of layer are drawn when it is made already",
                            kinds[0].stmt.span, hint="drop 'when made'")
        classes = {kind: sorted({REGISTRY[kind].module, *REGISTRY[kind].modules.values()}) for kind in PARAMETERS}
        optional = {kind: set(params) - {"weight"} for kind, params in PARAMETERS.items()}
        body += rules_pass(ctx, kinds, classes, {}, optional)
    return body


def _target(rule: _Rule, body: list[ir.Node]) -> tuple[tuple[str, ...], str]:
    """The path of the module or tensor a rule names, and its parameter ('' for a learned tensor): LAYER.name
    names a tensor where ``self.LAYER`` is one, or where name is no parameter a layer has."""
    if not rule.param:
        return rule.path, ""
    at = _maker(body, rule.path[0])
    value = body[at].value if at is not None and len(rule.path) == 1 else None
    layer_params = {p for params in PARAMETERS.values() for p in params}
    if rule.param not in layer_params or (isinstance(value, ir.Call) and value.func == ir.attr("nn.Parameter")):
        return (*rule.path, rule.param), ""
    return rule.path, rule.param


def _maker(body: list, name: str) -> int | None:
    """The index of the last statement that assigns ``self.name``."""
    found = None
    for i, stmt in enumerate(body):
        if isinstance(stmt, ir.Assign) and stmt.target == ir.Attr(ir.Name("self"), name):
            found = i
    return found


__all__ = ["made_rules", "with_made_rules"]
