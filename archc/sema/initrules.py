"""Initialisation rules: ``init TARGET.param = RULE [if cond]`` statements, checked while elaborating and
resolved to one rule per parameter of every layer.

A rule is a number (a constant) or a call of an initialiser, one registry entry each (torch's
``nn.init`` function and its arguments). Its arguments may read the layer's own sizes (``fan_in``,
``fan_out``, ``out_features``, ...), as torchvision's RegNet and EfficientNet do. Targets, from the most
specific: a layer by its path (in a block: that layer of every instance; in a network: a layer of the
network, or ``Block.layer``), then an op kind within a block (its layers of that kind, at any depth),
then an op kind in the network. A parameter no rule reaches keeps PyTorch's default initialisation.

The generated network applies them as torchvision does: one pass over ``self.modules()`` at the end
of ``__init__``, so the same tensors are drawn in the same order (``emit_weights``). A learned tensor is a
target by its path alone (``init pos_embedding = ...``). A rule that ends ``when made`` is drawn where its
target is made instead, in construction order (``emit_init_made``); where it and a pass rule reach one
parameter, the pass's values remain (``resolve``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from ..ops import REGISTRY
from .expr import Budget, Evaluator
from .exprfold import free_names
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
_initialiser("trunc_normal_tf", "_trunc_normal_tf_", (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
             "N(0, 1) truncated to [a, b], then times std plus mean (timm's and TensorFlow's)")
_initialiser("trunc_normal_timm", "_trunc_normal_timm_", (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
             "N(mean, std^2) truncated to [a, b] as timm's trunc_normal_ draws it")
_initialiser("kaiming_normal", "nn.init.kaiming_normal_", (("a", 0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")),
             "He et al.: N(0, gain^2 / fan)")
_initialiser("kaiming_uniform", "nn.init.kaiming_uniform_",
             (("a", 0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")), "He et al.: U(-b, b), b = gain sqrt(3 / fan)")
_initialiser("xavier_normal", "nn.init.xavier_normal_", (("gain", 1.0),), "Glorot and Bengio: N(0, 2 gain^2 / (fan_in + fan_out))")
_initialiser("xavier_uniform", "nn.init.xavier_uniform_", (("gain", 1.0),), "Glorot and Bengio, uniform")

# The parameters each op kind's module may have (``OpKind.init_params``), and the layer sizes a rule's arguments may
# read (each kind's ``init_sizes`` gives those it has).
PARAMETERS = {name: kind.init_params for name, kind in REGISTRY.items() if kind.init_params}
LAYER_NAMES = ("fan_in", "fan_out", "in_channels", "out_channels", "kernel_size", "groups", "in_features",
               "out_features", "num_features", "normalized_shape")
LAYER_NAME_SET = frozenset(LAYER_NAMES)


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
    before: list[Resolved] = field(default_factory=list)  # draws made first, their values overwritten


def classify(stmt: n.Init, program_blocks: dict, kinds) -> tuple[str | None, str | None, tuple[str, ...], str]:
    """(kind, block, layer path, parameter) of a rule's target."""
    *target, param = stmt.path
    if not target:  # a learned tensor of this body (its whole value: no parameter)
        if param in kinds or param in program_blocks:
            raise SpecError("an init rule names what it initialises: KIND.param, LAYER.param, Block.layer.param "
                            "or a learned tensor", stmt.span, hint=f"'{param}' is not a learned tensor")
        return None, None, (param,), ""
    if stmt.made and target[0] in program_blocks:
        raise SpecError("'when made' draws a rule in the class that makes its target, and Block.layer is drawn by "
                        "the network's pass", stmt.span,
                        hint=f"write the rule in block {target[0]} itself: 'init {'.'.join(stmt.path[1:])} = ... "
                             "when made'")
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


def entries(rule: n.Expr) -> list[n.Expr]:
    """A rule's draws in turn: ``[xavier_uniform(), normal(0, 1e-6)]`` draws twice (a reference that initialises
    a layer in two passes), and only the last draw's values remain; any other rule is one entry."""
    return list(rule.items) if isinstance(rule, n.ListExpr) and not rule.tuple else [rule]


def check_rule(stmt: n.Init) -> None:
    """The right-hand side is a number or a call of an initialiser with arguments it takes, or a list of them
    (draws in turn) in which only the last may be a number."""
    items = entries(stmt.rule)
    if isinstance(stmt.rule, n.ListExpr) and not stmt.rule.tuple:
        if len(items) < 2:
            raise SpecError("a list of initialisers draws each in turn: it needs two or more", stmt.rule.span,
                            hint="write a single initialiser without brackets")
        for item in items[:-1]:
            if as_call(item) is None:
                raise SpecError("only the last initialiser of a list may be a constant: the ones before it draw "
                                "random numbers that the next overwrites", item.span,
                                hint="an earlier entry stands for a reference's draw that a later pass replaces")
    for item in items:
        _check_one(item)


def _check_one(rule: n.Expr) -> None:
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


# ------------------------------------------------------------------ what an initialiser's arguments may be

MODES = ("fan_in", "fan_out")
NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")  # torch's calculate_gain
CHOICES = {"mode": MODES, "nonlinearity": NONLINEARITIES}
FAN_BASED = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")
FLOAT32_MAX = 3.4028234663852886e38  # parameters are float32 tensors: a larger number becomes inf there
# The dimensions of each parameter with more than one (a conv's weight: out, in / groups, kh, kw).
DIMENSIONS = {("conv", "weight"): 4, ("linear", "weight"): 2, ("ws_conv", "weight"): 4, ("ws_conv", "gain"): 4,
              ("conv1d", "weight"): 3, ("conv3d", "weight"): 5, ("conv_transpose1d", "weight"): 3,
              ("conv_transpose", "weight"): 4, ("conv_transpose3d", "weight"): 5}


def as_call(rule: n.Expr) -> n.Call | None:
    """A rule's initialiser as a call (``kaiming_normal`` alone is ``kaiming_normal()``), None for a constant."""
    if isinstance(rule, n.Var) and rule.name in INITIALISERS:
        return n.Call(rule, [], [], rule.span)
    if isinstance(rule, n.Call) and isinstance(rule.func, n.Var) and rule.func.name in INITIALISERS:
        return rule
    return None


def _argument_exprs(call: n.Call) -> dict[str, n.Expr]:
    names = [p for p, _ in INITIALISERS[call.func.name].params]
    exprs = dict(zip(names, call.args))
    exprs.update((key, value) for key, value in call.kwargs if key in names)
    return exprs


def argument_spans(call: n.Call) -> dict[str, n.Span]:
    return {key: expr.span for key, expr in _argument_exprs(call).items()}


def check_constant(value, span: n.Span) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"an init rule's constant must be a number, got {type_name(value)}", span)
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise SpecError(f"an init rule's constant {_show(value)} is not finite in float32", span,
                        hint=_FLOAT32_HINT)


_FLOAT32_HINT = "parameters are float32 tensors: a number beyond about 3.4e38 becomes inf"


def check_dimensions(name: str, op: str, param: str, span: n.Span, dims: int | None = None) -> None:
    """Fans exist only for a tensor of 2 or more dimensions (torch refuses fewer); ``dims``: a learned tensor's."""
    if name in FAN_BASED and (dims or DIMENSIONS.get((op, param), 1)) < 2:
        what = f"the {op}'s learned tensor" if dims else f"a {op}'s {param}"
        raise SpecError(f"{name} needs a tensor of 2 or more dimensions, and {what} is 1-D", span,
                        hint="fans count a weight's input and output connections, which a bias or a norm's weight "
                             "does not have: use a constant, normal, uniform or trunc_normal")


_CHOICE_HINTS = {"mode": "'fan_in' keeps the variance of the forward pass, 'fan_out' that of the backward pass",
                 "nonlinearity": "one of: " + ", ".join(NONLINEARITIES)}


def check_arguments(name: str, args: dict, spans: dict, span: n.Span, unknown=frozenset()) -> None:
    """An initialiser's argument values (``args``; those in ``unknown`` are not known yet and are not checked,
    the others not given take their defaults), each located at its own ``spans`` entry or at ``span``."""
    values = {p: default for p, default in INITIALISERS[name].params if p not in unknown}
    values.update(args)
    for key, value in args.items():
        at = spans.get(key, span)
        if key in CHOICES:
            if not isinstance(value, str):
                raise SpecError(f"{name}'s {key} must be a string, got {type_name(value)}", at,
                                hint=f"one of: {', '.join(repr(c) for c in CHOICES[key])}")
            if value not in CHOICES[key]:
                message = f"{name}'s mode must be 'fan_in' or 'fan_out', got {value!r}" if key == "mode" else \
                    f"{name}'s nonlinearity {value!r} is not one torch.nn.init.calculate_gain knows"
                raise SpecError(message, at, hint=did_you_mean(value.lower(), CHOICES[key], _CHOICE_HINTS[key]))
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{name}'s {key} must be a number, got {type_name(value)}", at)
        elif not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            raise SpecError(f"{name}'s {key} = {_show(value)} is not finite in float32", at, hint=_FLOAT32_HINT)
    a, b, std = values.get("a"), values.get("b"), values.get("std")
    bounds_at = spans.get("b", spans.get("a", span))
    if name == "uniform" and a is not None and b is not None and a > b:
        raise SpecError(f"uniform's bounds are out of order: a = {_show(a)} > b = {_show(b)}", bounds_at,
                        hint="uniform(a, b) draws from [a, b]: the lower bound comes first")
    if name == "trunc_normal" and a is not None and b is not None and a >= b:
        raise SpecError(f"trunc_normal's bounds must satisfy a < b, got a = {_show(a)}, b = {_show(b)}", bounds_at,
                        hint="trunc_normal(mean, std, a, b) redraws every value outside [a, b]")
    if name == "trunc_normal" and std is not None and std <= 0:
        raise SpecError(f"trunc_normal's std must be positive, got {_show(std)}", spans.get("std", span),
                        hint="torch's trunc_normal_ divides by std; for all zeros, initialise with the constant 0")
    if name == "normal" and std is not None and std < 0:
        raise SpecError(f"normal's std must not be negative, got {_show(std)}", spans.get("std", span),
                        hint="std is a standard deviation, the spread of the values around mean")


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def check_static(stmt: n.Init) -> None:
    """What a rule says whatever layer it reaches and whatever the parameters it reads: its constant or
    constant arguments, and a fan-based initialiser on an op kind's 1-D parameter. (A rule that is not well
    formed is left to the elaborator, which says why.)"""
    for item in entries(stmt.rule):
        _check_static_one(stmt, item)


def _check_static_one(stmt: n.Init, rule: n.Expr) -> None:
    call = as_call(rule)
    ev = Evaluator({}, budget=Budget())
    if call is None:
        if isinstance(rule, (n.Num, n.UnaryOp)) and _is_constant(rule):
            check_constant(ev(rule), rule.span)
        return
    *target, param = stmt.path
    if len(target) == 1 and target[0] in PARAMETERS:
        check_dimensions(call.func.name, target[0], param, call.span)
    exprs = _argument_exprs(call)
    known = {key: ev(expr) for key, expr in exprs.items() if _is_constant(expr)}
    check_arguments(call.func.name, known, argument_spans(call), call.span, unknown=set(exprs) - set(known))


def _is_constant(e: n.Expr) -> bool:
    """Whether ``e`` reads nothing: no name (but builtins called), no tensor."""
    return not free_names(e) and not any(isinstance(x, n.TensorRef) for x in e.walk())
