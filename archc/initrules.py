"""Initialisation rules: ``init TARGET.param = RULE [if cond]`` statements, checked while elaborating and
resolved to one rule per parameter of every layer.

A rule is a number (a constant) or a call of an initialiser, one registry entry each (torch's
``nn.init`` function and its arguments). Its arguments may read the layer's own sizes (``fan_in``,
``fan_out``, ``out_features``, ...), as torchvision's RegNet and EfficientNet do. Targets, from the most
specific: a layer by its path (in a block: that layer of every instance; in a network: a layer of the
network, or ``Block.layer``), then an op kind within a block (its layers of that kind, at any depth),
then an op kind in the network. A parameter no rule reaches keeps PyTorch's default initialisation.

The generated network applies them as torchvision does: one pass over ``self.modules()`` at the end
of ``__init__``, so the same tensors are drawn in the same order (``pyweights``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import nodes as n
from .errors import SpecError, did_you_mean
from .expr import Evaluator
from .graph import OpNode
from .ops import pair
from .values import type_name


@dataclass(frozen=True)
class Initialiser:
    name: str
    function: str  # torch's, as the generated code calls it
    params: tuple[tuple[str, object], ...]  # (name, default) in torch's order
    doc: str = ""


INITIALISERS: dict[str, Initialiser] = {}


def _initialiser(name: str, function: str, params: tuple, doc: str) -> None:
    INITIALISERS[name] = Initialiser(name, function, params, doc)


_initialiser("normal", "nn.init.normal_", (("mean", 0.0), ("std", 1.0)), "N(mean, std^2)")
_initialiser("uniform", "nn.init.uniform_", (("a", 0.0), ("b", 1.0)), "U(a, b)")
_initialiser("trunc_normal", "nn.init.trunc_normal_", (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
             "N(mean, std^2) redrawn outside [a, b]")
_initialiser("kaiming_normal", "nn.init.kaiming_normal_", (("a", 0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")),
             "He et al.: N(0, gain^2 / fan)")
_initialiser("kaiming_uniform", "nn.init.kaiming_uniform_",
             (("a", 0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")), "He et al.: U(-b, b), b = gain sqrt(3 / fan)")
_initialiser("xavier_normal", "nn.init.xavier_normal_", (("gain", 1.0),), "Glorot and Bengio: N(0, 2 gain^2 / (fan_in + fan_out))")
_initialiser("xavier_uniform", "nn.init.xavier_uniform_", (("gain", 1.0),), "Glorot and Bengio, uniform")

# The parameters each op kind's module has, and the layer sizes a rule's arguments may read.
PARAMETERS = {"conv": ("weight", "bias"), "linear": ("weight", "bias"), "batchnorm": ("weight", "bias"),
              "layernorm": ("weight", "bias")}
LAYER_NAMES = ("fan_in", "fan_out", "in_channels", "out_channels", "kernel_size", "groups", "in_features",
               "out_features", "num_features", "normalized_shape")


@dataclass
class Rule:
    """One ``init`` statement met while elaborating (once per block instance it stands in)."""

    kind: str | None  # an op kind, or None for a layer rule
    block: str | None  # ``Block.layer`` in a network: every instance of that block
    path: tuple[str, ...]  # a layer's path (relative to ``scope``, or to the block's instances)
    param: str
    rule: n.Expr
    env: dict  # what the rule's arguments see: the parameters of the block it stands in
    scope: str  # the module path of the block instance (or "" for the network)
    depth: int  # how deep that block is: inner rules win
    order: int  # the statement order: among equals, the later wins
    stmt: n.Init
    used: bool = False


@dataclass
class Resolved:
    """A parameter's initialisation: the initialiser (None for a constant) and its argument values."""

    initialiser: str | None
    args: dict = field(default_factory=dict)
    stmt: n.Init | None = None


def classify(stmt: n.Init, program_blocks: dict, kinds) -> tuple[str | None, str | None, tuple[str, ...], str]:
    """(kind, block, layer path, parameter) of a rule's target."""
    *target, param = stmt.path
    if not target:
        raise SpecError("an init rule names what it initialises: KIND.param, LAYER.param or Block.layer.param",
                        stmt.span)
    if len(target) == 1 and target[0] in kinds:
        kind = target[0]
        if param not in PARAMETERS[kind]:
            raise SpecError(f"{kind} has no parameter '{param}'", stmt.span,
                            hint=f"its parameters: {', '.join(PARAMETERS[kind])}")
        return kind, None, (), param
    if target[0] in program_blocks:
        if len(target) == 1:
            raise SpecError(f"'{target[0]}' is a block: name one of its layers, as {target[0]}.layer.{param}",
                            stmt.span)
        return None, target[0], tuple(target[1:]), param
    return None, None, tuple(target), param


def check_rule(stmt: n.Init) -> None:
    """The right-hand side is a number or a call of an initialiser with arguments it takes."""
    rule = stmt.rule
    if isinstance(rule, (n.Num, n.UnaryOp)) or (isinstance(rule, n.Var) and rule.name not in INITIALISERS):
        return  # a constant (checked when evaluated)
    name = rule.func.name if isinstance(rule, n.Call) and isinstance(rule.func, n.Var) else \
        rule.name if isinstance(rule, n.Var) else None
    if name not in INITIALISERS:
        raise SpecError("an init rule is a number or an initialiser: " + ", ".join(INITIALISERS), rule.span,
                        hint=did_you_mean(name or "", INITIALISERS))
    if isinstance(rule, n.Call):
        params = [p for p, _ in INITIALISERS[name].params]
        if len(rule.args) > len(params):
            raise SpecError(f"{name} takes at most {len(params)} arguments ({', '.join(params)})", rule.span)
        for key, value in rule.kwargs:
            if key not in params:
                raise SpecError(f"{name} has no argument '{key}'", value.span, hint=did_you_mean(key, params))


def layer_sizes(node: OpNode) -> dict[str, object]:
    """The sizes of a layer that a rule's arguments may read, as torch counts them."""
    a, shape = node.args, node.in_shapes[0]
    if node.op == "conv":
        kh, kw = pair(a["kernel_size"])
        c_in = shape[0]
        return {"in_channels": c_in, "out_channels": a["out_channels"], "kernel_size": (kh, kw),
                "groups": a["groups"], "fan_in": c_in // a["groups"] * kh * kw, "fan_out": a["out_channels"] * kh * kw}
    if node.op == "linear":
        return {"in_features": shape[-1], "out_features": a["out_features"], "fan_in": shape[-1],
                "fan_out": a["out_features"]}
    features = node.shape[0] if node.layout in ("CHW", "F") else node.shape[-1]
    return {"num_features": features, "normalized_shape": (features,)}


def node_parameters(node: OpNode) -> tuple[str, ...]:
    """The parameters a layer's module has (a conv without bias has no bias)."""
    a = node.args
    if node.op == "conv" or node.op == "linear":
        return ("weight", "bias") if a.get("bias", True) else ("weight",)
    if node.op == "batchnorm":
        return ("weight", "bias") if a.get("affine", True) else ()
    if node.op == "layernorm":
        if not a.get("elementwise_affine", True):
            return ()
        return ("weight", "bias") if a.get("bias", True) else ("weight",)
    return ()


def evaluate_rule(rule: Rule, node: OpNode, budget) -> Resolved:
    sizes = layer_sizes(node)
    env = {**rule.env, **sizes}
    ev = Evaluator(env, budget=budget)
    expr = rule.rule
    if isinstance(expr, n.Var) and expr.name in INITIALISERS:
        expr = n.Call(expr, [], [], expr.span)
    if isinstance(expr, n.Call) and isinstance(expr.func, n.Var) and expr.func.name in INITIALISERS:
        init = INITIALISERS[expr.func.name]
        names = [p for p, _ in init.params]
        args = dict(zip(names, (ev(a) for a in expr.args)))
        args.update({k: ev(v) for k, v in expr.kwargs})
        for key, value in args.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise SpecError(f"{init.name}'s '{key}' must be a number or a string, got {type_name(value)}",
                                expr.span)
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"{init.name}'s '{key}' is not finite", expr.span)
        if init.name in ("normal", "trunc_normal") and args.get("std", 1.0) < 0:
            raise SpecError(f"{init.name}'s std must not be negative, got {args['std']}", expr.span)
        return Resolved(init.name, args, rule.stmt)
    value = ev(expr)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"an init rule's constant must be a number, got {type_name(value)}", expr.span)
    return Resolved(None, {"val": value}, rule.stmt)


def resolve(rules: list[Rule], nodes: list[OpNode], scopes: dict, budget) -> dict[str, dict[str, Resolved]]:
    """The rule of every parameter of every layer that one reaches: by module path, then parameter."""
    out: dict[str, dict[str, Resolved]] = {}
    by_path = {node.name: node for node in nodes if node.name is not None}
    for node in nodes:
        params = node_parameters(node) if node.name is not None else ()
        for param in params:
            best: tuple | None = None
            for rule in rules:
                if rule.param != param:
                    continue
                rank = _match(rule, node, scopes)
                if rank is not None and (best is None or rank > best[0]):
                    best = (rank, rule)
            if best is not None:
                best[1].used = True
                out.setdefault(node.name, {})[param] = evaluate_rule(best[1], node, budget)
    for rule in rules:  # a layer rule must name a layer that is there
        if rule.kind is None and rule.block is None:
            path = ".".join(filter(None, [rule.scope, *rule.path]))
            if path not in by_path:
                raise SpecError(f"there is no layer '{'.'.join(rule.path)}' here to initialise", rule.stmt.span,
                                hint=did_you_mean(path, by_path))
            if rule.param not in node_parameters(by_path[path]):
                raise SpecError(f"'{'.'.join(rule.path)}' ({by_path[path].op}) has no parameter '{rule.param}'",
                                rule.stmt.span)
    return out


def _match(rule: Rule, node: OpNode, scopes: dict) -> tuple | None:
    """How specifically ``rule`` reaches ``node`` (higher wins), or None if it does not."""
    name = node.name
    if rule.kind is not None:
        if node.op != rule.kind or not (rule.scope == "" or name.startswith(rule.scope + ".")):
            return None
        return (0, rule.depth, rule.order)
    if rule.block is not None:
        suffix = "." + ".".join(rule.path)
        if not name.endswith(suffix):
            return None
        owner = name[: -len(suffix)]
        info = scopes.get(owner)
        if info is None or info.block != rule.block or not (rule.scope == "" or owner.startswith(rule.scope + ".")):
            return None
        return (1, rule.depth, rule.order)
    if name != ".".join(filter(None, [rule.scope, *rule.path])):
        return None
    return (1, rule.depth, rule.order)
