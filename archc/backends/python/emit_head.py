"""timm's model API on a generated network: ``forward_features`` and ``forward_head(x, pre_logits)``, its
classifier (``get_classifier``, ``reset_classifier``), ``num_features``, ``head_hidden_size`` and
``num_classes``, and gradient checkpointing of the feature stages (``set_grad_checkpointing``).

Where the features end is worked out from the shapes: the head is the run of the network's own statements
at its end whose every output is reduced (flat features, or a map of 1 x 1), and it holds the classifier,
the last layer with weights (a linear or a conv, on its own or the last weighted child of a seq). The
pre-logits are the tensor that goes into the classifier. A network whose end is not of that form (a block
there, a loop, a classifier under a condition, an output other than the classifier's classes, a forward that
reads ``num_classes``) gets none of these methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...lang import nodes as n
from ...ops import REGISTRY
from . import ir, irparse
from .context import ClassContext
from .emit import shape_comment, static_name
from .emit_features import PartEmitter
from .irbuild import prune_lets, read_attribute, set_attribute

SELF = ir.Name("self")
AT_START = object()  # InitEmitter.features_end when no statement comes before the head
CLASSIFIERS = {"linear": ("nn.Linear", "in_features", "out_features"), "conv": ("nn.Conv2d", "in_channels",
                                                                               "out_channels")}
# the attributes and methods the API adds: a spec that names one of them gets no API
NAMES = {"forward_features", "forward_head", "get_classifier", "reset_classifier", "set_grad_checkpointing",
         "num_features", "head_hidden_size", "num_classes", "grad_checkpointing"}


@dataclass
class HeadPlan:
    split: int  # body[:split] is forward_features, body[split:] forward_head
    at: int  # the statement of body that is or holds the classifier
    holder: str | None  # the seq holding it (its name), or None: body[at] is the classifier itself
    index: int  # its position among the holder's children
    name: str  # the classifier's name in its owner
    kind: str  # its op: linear or conv
    # whether the two halves run each call in place, by statement: forward's choices, where forward calls them
    written: dict = field(default_factory=dict)


def plan_head(ctx: ClassContext) -> HeadPlan | None:
    body = ctx.d.body
    if NAMES & set(ctx.modules_named) or (NAMES - {"num_classes"}) & set(ctx.params):
        return None
    if "num_classes" in ctx.stored:  # forward reads the parameter from self: reset_classifier would change it
        return None
    found = _classifier(body, set(ctx.op_params))
    if found is None:
        return None
    at, holder, index, name, kind, layer = found
    last = [s for s in body if tensor_statement(s)][-1]
    if not _reduced(ctx, last):  # the output is not the classes
        return None
    classes = {out.features for _, out in ctx.info.get(layer)}
    if not classes or classes != {out.features for _, out in ctx.info.get(last)}:  # (a conv on a map, flattened)
        return None
    split = at
    while split > 0 and _reduced(ctx, body[split - 1]):
        split -= 1
    while split < at and not tensor_statement(body[split]):  # lets and taps stay with the features
        split += 1
    while split < at and _ends_in_groups(ctx, body[:split]):  # the features are the map the groups go back to
        split += 1
    return HeadPlan(split, at, holder, index, name, kind)


def features_end(body: list[n.Stmt], plan: HeadPlan):
    """The statement whose output ``forward_features`` returns (``num_features`` is its width), or AT_START."""
    before = [s for s in body[:plan.split] if tensor_statement(s)]
    return before[-1] if before else AT_START


def tensor_statement(stmt: n.Stmt) -> bool:
    """Whether a statement of the body runs on the tensor (not a let, tap, side output or init rule, nor a
    conditional or loop of only those)."""
    if isinstance(stmt, (n.If, n.For)):
        return any(tensor_statement(s) for s in [*stmt.body, *(getattr(stmt, "orelse", None) or [])])
    return not isinstance(stmt, (n.Let, n.Tap, n.Side, n.Init))


def _ends_in_groups(ctx: ClassContext, stmts: list[n.Stmt]) -> bool:
    """Whether the last statement that runs on the tensor leaves it in groups of tokens (a partition's windows),
    which are no feature map: forward_features would give G x L x D."""
    last = [s for s in stmts if tensor_statement(s)]
    return bool(last) and any(out.layout == "GLD" for _, out in ctx.info.get(last[-1]))


def _reduced(ctx: ClassContext, stmt: n.Stmt) -> bool:
    """Whether every output of a statement is reduced (flat features, or a 1 x 1 map); lets and taps are."""
    if not tensor_statement(stmt):
        return not isinstance(stmt, n.Tap)  # the features end at a tap at the latest
    outs = [out for _, out in ctx.info.get(stmt)]
    return bool(outs) and all(t.layout == "F" or (t.layout in ("CHW", "HWC") and t.size("H") == t.size("W") == 1)
                              for t in outs)


def _weighted(stmt: n.Stmt, held: set[str]) -> bool | None:
    """True for a layer with weights, False for one without, None for anything else (a block, a structure). A
    layer of an op that a parameter holds (``norm_layer``) counts as one with weights: it may have them, and it is
    no classifier."""
    if not isinstance(stmt, n.Layer):
        return None
    if stmt.func in held:
        return True
    kind = REGISTRY.get(stmt.func)
    return None if kind is None else kind.has_params


def _classifier(body: list[n.Stmt], held: set[str]):
    """(statement index, holder name, child index, name, kind, statement) of the last weighted layer, if the
    statements after it have no weights and it is a linear or conv that runs unconditionally; else None."""
    for at in range(len(body) - 1, -1, -1):
        stmt = body[at]
        if not tensor_statement(stmt):
            continue
        if isinstance(stmt, n.Seq):
            return _in_seq(stmt, at, held)
        weighted = _weighted(stmt, held)
        if weighted is False:
            continue
        if weighted and stmt.cond is None and stmt.func in CLASSIFIERS and static_name(stmt):
            return at, None, 0, static_name(stmt), stmt.func, stmt
        return None
    return None


def _in_seq(seq: n.Seq, at: int, held: set[str]):
    holder = static_name(seq)
    if holder is None or seq.cond is not None:
        return None
    children = seq.body
    if not all(isinstance(s, n.Layer) and s.cond is None and _weighted(s, held) is not None for s in children):
        return None
    for index in range(len(children) - 1, -1, -1):
        child = children[index]
        if _weighted(child, held):
            if child.func not in CLASSIFIERS:
                return None
            return at, holder, index, static_name(child) or "", child.func, child
    return None


def features_method(ctx: ClassContext, plan: HeadPlan) -> ir.FunctionDef:
    emitter = PartEmitter(ctx)
    body: list[ir.Node] = []
    var, _ = emitter.fwd_body(ctx.d.body[:plan.split], "x", False, body, None)
    plan.written.update(emitter.written)
    stages = _stages(ctx)
    body = [_checkpointable(s, stages) for s in body]
    body.append(ir.Return(ir.Name(var)))
    return ir.FunctionDef("forward_features", (ir.Arg("self"), ir.Arg("x", ir.Name("Tensor"))),
                          tuple(emitter.hoist(prune_lets(body))), ir.Name("Tensor"),
                          "Everything before the head: the last feature map (timm's ``forward_features``).")


def head_method(ctx: ClassContext, plan: HeadPlan) -> ir.FunctionDef:
    emitter = PartEmitter(ctx)
    stmts = ctx.d.body
    lets = [s for s in stmts[:plan.split] if isinstance(s, n.Let)]  # values the head may read
    body: list[ir.Node] = []
    var, fresh = emitter.fwd_body(lets + stmts[plan.split:plan.at], "x", False, body, None)
    pre: ir.Node = ir.Name(var)
    if plan.holder is not None and plan.index > 0:  # the holder's children before the classifier
        pre = ir.Call(ir.Index(read_attribute(SELF, plan.holder), ir.Slice(None, ir.const(plan.index))), (pre,))
    body.append(ir.If(ir.Name("pre_logits"), (ir.Return(pre),)))
    var, _ = emitter.fwd_body(stmts[plan.at:], var, fresh, body, None)
    plan.written.update(emitter.written)
    body.append(ir.Return(ir.Name(var)))
    params = (ir.Arg("self"), ir.Arg("x", ir.Name("Tensor")), ir.Arg("pre_logits", ir.Name("bool"), ir.Const(False)))
    return ir.FunctionDef("forward_head", params, tuple(emitter.hoist(prune_lets(body))), ir.Name("Tensor"),
                          "The head on ``forward_features``' output; with ``pre_logits``, what goes into the "
                          "classifier.")


def forward_body(ctx: ClassContext, plan: HeadPlan) -> list[ir.Node]:
    """``forward`` as the two halves (what they write in place is what forward does)."""
    ctx.info.in_place.update(plan.written)
    x = ir.Name("x")
    comment = _comment(ctx, ctx.d.body[:plan.split])
    return [ir.Assign(x, ir.call("self.forward_features", x), comment),
            ir.Assign(x, ir.call("self.forward_head", x), _comment(ctx, ctx.d.body)),
            ir.Return(x)]


def _comment(ctx: ClassContext, stmts: list[n.Stmt]) -> str:
    last = [s for s in stmts if tensor_statement(s)]
    return shape_comment([out for _, out in ctx.info.get(last[-1])]) if last else ""


def classifier_ref(plan: HeadPlan) -> ir.Node:
    if plan.holder is None:
        return read_attribute(SELF, plan.name)
    holder = read_attribute(SELF, plan.holder)
    return read_attribute(holder, plan.name) if plan.name.isidentifier() else ir.Index(holder, ir.const(plan.index))


def _set_classifier(plan: HeadPlan, value: ir.Node) -> ir.Node:
    """``self.fc = value``; ``self.add_module("2", value)`` for a name that is no identifier, which Python cannot
    assign to as ``getattr(self, "2")``."""
    if plan.holder is None:
        return set_attribute(SELF, plan.name, value)
    return ir.Assign(classifier_ref(plan), value)


def init_statements(plan: HeadPlan) -> list[ir.Node]:
    """What ``__init__`` records once the classifier exists."""
    _, width, classes = CLASSIFIERS[plan.kind]
    classifier = classifier_ref(plan)
    return [ir.Assign(ir.attr("self.num_classes"), ir.Attr(classifier, classes)),
            ir.Assign(ir.attr("self.head_hidden_size"), ir.Attr(classifier, width)),
            ir.Assign(ir.attr("self.grad_checkpointing"), ir.Const(False))]


def methods(plan: HeadPlan) -> list[ir.FunctionDef]:
    module, width, _ = CLASSIFIERS[plan.kind]
    classifier = classifier_ref(plan)
    num_classes = ir.Name("num_classes")
    args = (ir.attr("self.head_hidden_size"), num_classes)
    new = ir.Call(ir.attr(module), args, (("kernel_size", ir.const(1)),) if plan.kind == "conv" else ())
    pool = ir.Name("global_pool")
    refuse = ir.Raise(ir.call("ValueError", ir.FString(("the spec fixes the pooling: global_pool=", pool,
                                                        " cannot change it"))))
    reset = (ir.If(ir.is_not_none(pool), (refuse,)),
             ir.Assign(ir.attr("self.num_classes"), num_classes),
             _set_classifier(plan, ir.IfExp(ir.Compare((">",), (num_classes, ir.const(0))), new, ir.call("nn.Identity"))))
    enable = ir.Name("enable")
    return [
        ir.FunctionDef("get_classifier", (ir.Arg("self"),), (ir.Return(classifier),), ir.attr("nn.Module"),
                       "The last layer, which maps the pre-logits to the classes."),
        ir.FunctionDef("reset_classifier", (ir.Arg("self"), ir.Arg("num_classes", ir.Name("int")),
                                            ir.Arg("global_pool", irparse.expression("str | None"), ir.Const(None))), reset,
                       ir.Const(None), "A new classifier for ``num_classes`` classes (none for 0: ``forward`` then "
                       "gives the pre-logits)."),
        ir.FunctionDef("set_grad_checkpointing", (ir.Arg("self"), ir.Arg("enable", ir.Name("bool"), ir.Const(True))),
                       (ir.Assign(ir.attr("self.grad_checkpointing"), enable),), ir.Const(None),
                       "Recompute the stages' activations in backward instead of keeping them (less memory)."),
    ]


def _checkpointable(stmt: ir.Node, stages: set[str]) -> ir.Node:
    """``x = self.layer1(x)`` for a stage (a module of modules) becomes a call that checkpoints it when
    ``self.grad_checkpointing`` is on."""
    call = stmt.value if isinstance(stmt, ir.Assign) else None
    if not (isinstance(call, ir.Call) and len(call.args) == 1 and not call.kwargs and isinstance(call.func, ir.Attr)
            and call.func.value == SELF and call.func.attr in stages):
        return stmt
    checkpointed = ir.Call(ir.Name("_checkpoint_stage"), (call.func, *call.args))
    return ir.Assign(stmt.target, ir.IfExp(ir.attr("self.grad_checkpointing"), checkpointed, call), stmt.comment,
                     stmt.annotation, stmt.let)


def _stages(ctx: ClassContext) -> set[str]:
    """The network's own modules that hold modules: its named seqs and its calls of blocks and networks."""
    return {static_name(s) for s in ctx.d.body if static_name(s) is not None and (
        isinstance(s, n.Seq) or isinstance(s, n.Layer) and (s.func in ctx.blocks or s.func in ctx.block_params
                                                             or s.func in ctx.networks))}
