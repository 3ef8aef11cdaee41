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
    pending: dict[str, list[ir.Node]] = {}  # self.NAME -> the draws that follow its making, in the rules' order
    for rule in (r for r in rules if r.kind is None):
        path, param = _target(rule, body)
        if not _makers(body, path[0]):
            raise SpecError(f"'when made': no statement of {ctx.d.name}'s __init__ makes '{'.'.join(path)}'",
                            rule.stmt.span, hint="drop 'when made' to draw it in the network's pass")
        draws = tuple(ir.Expr(_call(rule, param, ctx, _access(ir.Name("self"), path), item))
                      for item in entries(rule.stmt.rule))
        cond = _network_cond(rule, ctx)
        pending.setdefault(path[0], []).extend([ir.If(cond, draws)] if cond is not None else draws)
    for name, draws in pending.items():
        body = _after_maker(body, name, draws)
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
    makers = [s.value for s in _makers(body, rule.path[0])] if len(rule.path) == 1 else []
    layer_params = {p for params in PARAMETERS.values() for p in params}
    if rule.param not in layer_params or any(isinstance(v, ir.Call) and v.func == ir.attr("nn.Parameter")
                                             for v in makers):
        return (*rule.path, rule.param), ""
    return rule.path, rule.param


def _makes(stmt: ir.Node, name: str) -> bool:
    """Whether ``stmt`` makes ``self.name`` (``self.proj = None``, for a layer made only under a condition,
    makes nothing)."""
    return isinstance(stmt, ir.Assign) and stmt.target == ir.Attr(ir.Name("self"), name) and \
        stmt.value != ir.Const(None)


def _makers(body, name: str) -> list[ir.Assign]:
    found = []
    for stmt in body:
        if _makes(stmt, name):
            found.append(stmt)
        elif isinstance(stmt, ir.If):
            found += _makers(stmt.body, name) + _makers(stmt.orelse, name)
    return found


def _after_maker(body, name: str, draws: list[ir.Node]) -> list[ir.Node]:
    """``body`` with ``draws`` after each statement that makes ``self.name``, in an ``if``'s branches too (the
    branch that makes it draws)."""
    out: list[ir.Node] = []
    for stmt in body:
        if isinstance(stmt, ir.If):
            stmt = ir.If(stmt.test, tuple(_after_maker(stmt.body, name, draws)),
                         tuple(_after_maker(stmt.orelse, name, draws)))
        out.append(stmt)
        if _makes(stmt, name):
            out += draws
    return out


__all__ = ["made_rules", "with_made_rules"]
