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
from functools import lru_cache

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from .expr import Budget, Evaluator
from .exprfold import free_names
from .graph import OpNode
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

# The parameters each op kind's module has, and the layer sizes a rule's arguments may read.
PARAMETERS = {"conv": ("weight", "bias"), "linear": ("weight", "bias"), "batchnorm": ("weight", "bias"),
              "layernorm": ("weight", "bias"), "ws_conv": ("weight", "bias", "gain"), "conv1d": ("weight", "bias"),
              "conv3d": ("weight", "bias"), "rmsnorm": ("weight",), "rmsnorm2d": ("weight",)}
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
              ("conv1d", "weight"): 3, ("conv3d", "weight"): 5}


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


def layer_sizes(node: OpNode) -> dict[str, object]:
    """The sizes of a layer that a rule's arguments may read, as torch counts them (a learned tensor has none)."""
    if node.learned:
        return {}
    a, shape = node.args, node.in_shapes[0]
    if node.op in ("conv", "ws_conv", "conv1d", "conv3d"):
        k = a["kernel_size"]  # one size for every spatial axis, or one each
        kernel = (k,) * (len(shape) - 1) if isinstance(k, int) else tuple(k)
        c_in, area = shape[0], math.prod(kernel)
        return {"in_channels": c_in, "out_channels": a["out_channels"], "kernel_size": tuple(kernel),
                "groups": a["groups"], "fan_in": c_in // a["groups"] * area, "fan_out": a["out_channels"] * area}
    if node.op == "linear":
        return {"in_features": shape[-1], "out_features": a["out_features"], "fan_in": shape[-1],
                "fan_out": a["out_features"]}
    features = node.shape[0] if node.layout in ("CHW", "F", "CL", "CDHW") else node.shape[-1]
    return {"num_features": features, "normalized_shape": (features,)}


def node_parameters(node: OpNode) -> tuple[str, ...]:
    """The parameters a layer's module has (a conv without bias has no bias)."""
    a = node.args
    if node.learned:  # a learned tensor: the rule sets the tensor itself
        return ("",)
    if node.op in ("conv", "linear", "conv1d", "conv3d"):
        return ("weight", "bias") if a.get("bias", True) else ("weight",)
    if node.op == "ws_conv":
        return ("weight", "bias", "gain") if a.get("bias", True) else ("weight", "gain")
    if node.op == "batchnorm":
        return ("weight", "bias") if a.get("affine", True) else ()
    if node.op == "layernorm":
        if not a.get("elementwise_affine", True):
            return ()
        return ("weight", "bias") if a.get("bias", True) else ("weight",)
    if node.op in ("rmsnorm", "rmsnorm2d"):
        return ("weight",) if a.get("elementwise_affine", True) else ()
    return ()


def evaluate_rule(rule: Rule, node: OpNode, budget) -> Resolved:
    """What initialises the parameter: the last entry, each one before it checked (``before``, its draws)."""
    sizes = layer_sizes(node)
    _check_sizes_read(rule, node.op, sizes)
    ev = Evaluator({**rule.env, **sizes}, budget=budget)
    *before, last = [_evaluate(rule, item, node, ev) for item in entries(rule.rule)]
    last.before = before
    return last


def _evaluated(rule: Rule, node: OpNode, budget, done: dict) -> Resolved:
    """``evaluate_rule``, once for each rule and the values of the names it reads (what its checks depend on
    included: the layer's kind, which names it has)."""
    sizes = layer_sizes(node)
    key = (id(rule.rule), node.op, tuple((k, k in rule.env, rule.env.get(k), k in sizes, sizes.get(k))
                                          for k in sorted(_names_of(rule.rule))))
    try:
        found = done.get(key)
    except TypeError:  # a value that does not hash (a list): evaluated each time
        return evaluate_rule(rule, node, budget)
    if found is None:
        found = done[key] = evaluate_rule(rule, node, budget)
    return found


def _evaluate(rule: Rule, item: n.Expr, node: OpNode, ev: Evaluator) -> Resolved:
    call = _call_of(item)
    if call is None:
        value = ev(item)
        check_constant(value, item.span)
        return Resolved(None, {"val": value}, rule.stmt)
    init = INITIALISERS[call.func.name]
    check_dimensions(init.name, node.op, rule.param, call.span, _tensor_dims(node) if node.learned else None)
    args = {key: ev(expr) for key, expr in _exprs_of(call).items()}
    try:  # a rule reaches many layers with the same values: each set is checked once
        _check_once(init.name, call, tuple(args.items()))
    except TypeError:  # a value that does not hash (a list): checked here
        check_arguments(init.name, args, argument_spans(call), call.span)
    return Resolved(init.name, args, rule.stmt)


def _tensor_dims(node: OpNode) -> int:
    """How many dimensions a learned tensor has (a token's: 1 x count x D)."""
    shape = node.args.get("shape")
    return 3 if shape is None else len(shape) if isinstance(shape, (tuple, list)) else 1


# A rule is resolved for every layer it reaches (tens of thousands in the deepest networks): what depends on
# its AST alone is worked out once per node.
@lru_cache(maxsize=4096)
def _call_of(rule: n.Expr) -> n.Call | None:
    return as_call(rule)


@lru_cache(maxsize=4096)
def _exprs_of(call: n.Call) -> dict[str, n.Expr]:
    return _argument_exprs(call)


@lru_cache(maxsize=4096)
def _names_of(rule: n.Expr) -> frozenset[str]:
    return frozenset(free_names(rule))


@lru_cache(maxsize=16384)
def _check_once(name: str, call: n.Call, args: tuple) -> None:
    check_arguments(name, dict(args), argument_spans(call), call.span)


def _check_sizes_read(rule: Rule, op: str, sizes: dict) -> None:
    """A rule's arguments read a layer size only where the layer has it (no ``fan_in`` of a batchnorm)."""
    read = _names_of(rule.rule)
    if not read & LAYER_NAME_SET:
        return
    both = sorted(read & LAYER_NAME_SET & set(rule.env))
    if both:  # the generated pass would read the layer's, the checker the parameter's: neither guess is safe
        raise SpecError(f"'{both[0]}' is both a name defined here and a layer size that a rule may read",
                        _name_span(rule.rule, both[0]), hint=f"rename the parameter or let '{both[0]}'")
    missing = sorted(read & LAYER_NAME_SET - set(sizes) - set(rule.env))
    if missing:
        raise SpecError(f"'{missing[0]}' is not a size of a {op} layer", _name_span(rule.rule, missing[0]),
                        hint=f"a {op} rule may read: {', '.join(sizes)}")


def _name_span(e: n.Expr, name: str) -> n.Span:
    for node in e.walk():
        if isinstance(node, n.Var) and node.name == name:
            return node.span
    return e.span


def resolve(rules: list[Rule], nodes: list[OpNode], scopes: dict, budget) -> dict[str, dict[str, Resolved]]:
    """The rule of every parameter of every layer that one reaches: by module path, then parameter."""
    out: dict[str, dict[str, Resolved]] = {}
    by_path = {node.name: node for node in nodes if node.name is not None}
    for rule in rules:  # LAYER.name where that is a learned tensor's path: the tensor
        full = ".".join(filter(None, [rule.scope, *rule.path, rule.param]))
        if rule.kind is None and rule.block is None and rule.param and full in by_path and by_path[full].learned:
            rule.path, rule.param = (*rule.path, rule.param), ""
    done: dict[tuple, Resolved] = {}  # a rule's values for the names it reads: most layers it reaches share them
    candidates: dict[tuple, list[Rule]] = {}  # (parameter, layer kind) -> the rules that may reach it
    for rule in rules:
        candidates.setdefault((rule.param, rule.kind), []).append(rule)
    for node in nodes:
        params = node_parameters(node) if node.name is not None else ()
        for param in params:
            best: tuple | None = None
            for rule in [*candidates.get((param, node.op), ()), *candidates.get((param, None), ())]:
                rank = _match(rule, node, scopes)
                if rank is not None and (best is None or (not rule.stmt.made, rank) > best[0]):
                    best = ((not rule.stmt.made, rank), rule)
            if best is not None:
                best[1].used = True
                try:
                    out.setdefault(node.name, {})[param] = _evaluated(best[1], node, budget, done)
                except SpecError as exc:
                    raise _located(exc, best[1], node, param, scopes) from None
    for rule in rules:  # a layer rule must name a layer that is there
        if rule.kind is None and rule.block is None:
            path = ".".join(filter(None, [rule.scope, *rule.path]))
            if path not in by_path:
                what = "learned tensor" if not rule.param else "layer"
                raise SpecError(f"there is no {what} '{'.'.join(rule.path)}' here to initialise", rule.stmt.span,
                                hint=did_you_mean(path, by_path))
            if not rule.param and not by_path[path].learned:
                raise SpecError(f"'{'.'.join(rule.path)}' is a {by_path[path].op} layer: name its parameter",
                                rule.stmt.span, hint=f"its parameters: {', '.join(node_parameters(by_path[path]))}")
            if rule.param not in node_parameters(by_path[path]):
                raise SpecError(f"'{'.'.join(rule.path)}' ({by_path[path].op}) has no parameter '{rule.param}'",
                                rule.stmt.span)
    return out


def _located(exc: SpecError, rule: Rule, node: OpNode, param: str, scopes: dict) -> SpecError:
    """Say which layer the failing rule was initialising, and through which block calls (its values may come
    from their arguments)."""
    exc.add_note(f"initialising '{'.'.join(filter(None, [node.name, param]))}', made here", node.span)
    parts = rule.scope.split(".") if rule.scope else []
    for i in range(len(parts), 0, -1):
        info = scopes.get(".".join(parts[:i]))
        if info is not None and info.kind == "block":
            exc.add_note(f"in block {info.block}, called here", info.span)
    return exc


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
