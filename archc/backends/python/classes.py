"""One block or network -> the statement lines of one ``nn.Module`` class.

The class mirrors the spec: the block's parameters (and its inferred input channels) are
constructor arguments, repeats stay loops, conditionals stay ``if``s. ``emit_forward`` writes
``forward`` first (it finds which parameters forward reads, and where a ReLU may work in
place), then ``emit_init`` writes ``__init__``; what they share is in ``context``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.exprfold import free_names
from . import emit_head as head
from . import ir, irfacts
from .context import ClassContext, ClassInfo, StmtInfo
from .emit import input_features, symbol
from .emit_features import TapsEmitter
from .emit_flow import FlowEmitter, input_widths
from .emit_forward import ForwardEmitter
from .emit_init import InitEmitter
from .emit_init_made import with_made_rules


@dataclass
class ClassCode:
    """One generated class: its ``__init__`` and ``forward`` lines and what callers need of it."""

    init: list  # IR statements
    forward: list
    info: ClassInfo
    has_sides: bool
    referenced: set[str]  # names the generated code reads
    taps: list | None = None  # a network or block with taps: the body of its forward_taps
    head: list = ()  # a network with a classifier: timm's methods (forward_features, forward_head, ...)


def generate_class(definition: n.BlockDef | n.NetworkDef, blocks: dict[str, n.BlockDef], constants: dict[str, object],
                   stmt_info: StmtInfo, infos, block_params: set[str], op_params: dict[str, str] | None = None,
                   named: set[str] = frozenset(), weights=None, networks: dict | None = None,
                   network_unused=None) -> ClassCode:
    """``weights(ctx)``, for a network, gives the statements that end its __init__: its initialisation rules."""
    ctx = ClassContext(definition, blocks, constants, stmt_info, infos, block_params, op_params, named, networks,
                       network_unused)
    flow = FlowEmitter(ctx) if getattr(definition, "signature", None) is not None else None
    forward = ForwardEmitter(ctx) if flow is None else flow.fwd
    fwd_body = [] if ctx.sequential else forward.emit() if flow is None else flow.forward()
    taps_body = TapsEmitter(ctx).emit() if ctx.has_taps else None
    plan = head.plan_head(ctx) if ctx.is_network and flow is None and not ctx.sequential else None
    head_methods = []
    if plan is not None:
        head_methods = [head.features_method(ctx, plan), head.head_method(ctx, plan)]
        if not forward.sides:  # (with side outputs, forward stays whole)
            fwd_body = head.forward_body(ctx, plan)
    if ctx.is_network:
        cur: n.Expr = ctx.fold(input_features(definition))  # only the channels: sizes are checked, not constructed
    else:
        cur = symbol("in_channels")
    if flow is None:
        init_emitter = InitEmitter(ctx)
        if plan is not None:
            init_emitter.features_end = head.features_end(definition.body, plan)
        body, cur = init_emitter.emit(cur, into="self" if ctx.sequential else None)
    else:
        body, cur = flow.init()
        init_emitter = flow.emitter
    body = with_made_rules(ctx, body)  # the rules drawn 'when made': in construction order
    # forward expressions asked for these; a pruned let may have been the only reader
    method_bodies = [s for m in head_methods for s in m.body]
    stored = ctx.stored & _self_attributes(fwd_body + (taps_body or []) + method_bodies)
    self_ = ir.Name("self")
    init: list[ir.Node] = [ir.Expr(ir.call(ir.Attr(ir.call("super"), "__init__")))]
    for name in sorted(ctx.kept_for_init - stored, reverse=True):  # read by the network's init rules, not forward
        init.append(ir.Assign(ir.Attr(self_, name), ir.Name(name)))
    for name in sorted(stored):
        if name == "out_channels":
            raise SpecError("the parameter 'out_channels' is read in forward, but every generated block class sets "
                            "self.out_channels to its output width", definition.span,
                            hint="rename the parameter, or use it only to size layers")
        if name in ctx.modules_named:
            raise SpecError(f"'{name}' names both a parameter read in forward and a layer", definition.span,
                            hint="rename one of them")
        init.append(ir.Assign(ir.Attr(self_, name), ir.Name(name)))
    init += body
    if plan is not None:
        init += head.init_statements(plan)
        head_methods += head.methods(plan)
    if weights is not None:
        init += weights(ctx)
    outs = cur if isinstance(cur, list) else [cur]  # a block with several outputs: a width each
    lowered = [init_emitter.lower(w) for w in outs]
    if not ctx.is_network:
        init.append(ir.Assign(ir.Attr(self_, "out_channels"), lowered[0] if len(outs) == 1 else ir.Tuple(tuple(lowered))))
    # the widths over the parameters alone, with no module's attribute nor math's functions in them
    widths = set(input_widths(definition)) if flow is not None else {"in_channels"}
    formulas = None
    if not ctx.is_network and all(free_names(w) <= set(ctx.params) | widths and
                                  not any(isinstance(x, ir.Attr) for x in low.walk()) for w, low in zip(outs, lowered)):
        formulas = outs
    info = ClassInfo(definition.name, formulas[0] if formulas and len(outs) == 1 else None,
                     formulas if len(outs) > 1 else None)
    init, fwd_body, taps_body, head_methods = irfacts.simplify_class(init, fwd_body, taps_body, head_methods)
    return ClassCode(init, fwd_body, info, bool(forward.sides), ctx.referenced, taps_body, head_methods)


def _self_attributes(body: list[ir.Node]) -> set[str]:
    """The attributes of ``self`` that statements read: ``self.width``, ``getattr(self, "width")``."""
    found = set()
    for stmt in body:
        for node in stmt.walk():
            if isinstance(node, ir.Attr) and node.value == ir.Name("self"):
                found.add(node.attr)
            elif isinstance(node, ir.Call) and node.func == ir.Name("getattr") and len(node.args) == 2 and \
                    node.args[0] == ir.Name("self") and isinstance(node.args[1], ir.Const) and \
                    isinstance(node.args[1].value, str):
                found.add(node.args[1].value)
    return found


__all__ = ["ClassCode", "generate_class"]
