"""``forward`` and ``__init__`` of a dataflow block (``block B(...) (a, b) -> y``): its tensors are forward's
arguments and locals, one operation a line; its declared modules are made in ``__init__`` in the order the spec
declares them, each sized by the width of the tensor a let applies it to.

The widths are tracked as in ``emit_init``, per tensor: an input's is a constructor argument (``in_channels``
for a block of one input, ``<input>_channels`` for each of several), a module's output width follows from its
input's. A module declared before the module whose output sizes it would read that module's attribute before
it exists: that is an error that says to swap the two declarations.
"""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.exprfold import fold, free_names
from . import ir
from .context import ClassContext
from .emit import SPAN, plain, shape_comment, symbol
from .emit_forward import ForwardEmitter
from .emit_init import InitEmitter
from .emit_init_layer import _bind, _Seq
from .irbuild import prune_lets

SELF = ir.Name("self")


def input_widths(block: n.BlockDef) -> list[str]:
    """The constructor's width arguments of a dataflow block, one per input."""
    inputs = block.signature.inputs
    return ["in_channels"] if len(inputs) == 1 else [f"{name}_channels" for name in inputs]


class FlowEmitter:
    """Writes both halves of a dataflow block's class."""

    def __init__(self, ctx: ClassContext):
        self.ctx = ctx
        self.sig: n.Signature = ctx.d.signature
        self.fwd = ForwardEmitter(ctx)
        for name in self.sig.inputs:
            self.fwd.fwd_ns.reserve(name)
        self.local: dict[str, str] = {name: name for name in self.sig.inputs}  # tensor key -> forward's local

    # ---------------------------------------------------------------- forward

    def forward(self) -> list[ir.Node]:
        w: list[ir.Node] = []
        for stmt in self.ctx.d.body:
            if isinstance(stmt, n.Let) and stmt in self.sig.lets:
                for step in self.sig.lets[stmt]:
                    self.step(step, w)
            elif isinstance(stmt, n.Let):
                self.fwd.fwd_one(stmt, "x", False, w, None)
        w.append(ir.Return(ir.Name(self.local[self.sig.keys[self.sig.output]])))
        return self.fwd.hoist(prune_lets(w))

    def _dest(self, key: str) -> str:
        if key not in self.local:
            self.local[key] = key if "%" not in key else self.fwd.fwd_ns.create(key.split("%")[0])
        return self.local[key]

    def step(self, step: n.Flow, w: list) -> None:
        srcs = [self.local[s] if isinstance(s, str) else s for s in step.srcs]
        comment = shape_comment([out for _, out in self.ctx.info.get(step)])
        if step.kind in ("apply", "op") and len(srcs) == 1:
            dest = self._dest(step.dest)
            out, _ = self.fwd.fwd_stmt_into(step.layer, srcs[0], w, dest, None)
            self.local[step.dest] = out
            return
        dest = self._dest(step.dest)
        if step.kind == "apply":  # a block of several inputs
            module = ir.Attr(SELF, plain(step.layer.target))
            value: ir.Node = ir.Call(module, tuple(ir.Name(s) for s in srcs))
        elif step.kind == "neg":
            value = ir.Unary("-", ir.Name(srcs[0]))
        else:
            tensor = next(s for s in srcs if isinstance(s, str))
            left, right = (ir.Name(s) if isinstance(s, str) else self.fwd.fwd_expr(s, tensor) for s in srcs)
            value = ir.BinOp(step.op, left, right)
        w.append(ir.Assign(ir.Name(dest), value, comment))
        self.local[step.dest] = dest

    # ---------------------------------------------------------------- __init__

    def init(self) -> tuple[list[ir.Node], n.Expr]:
        """The statements that make the declared modules, in declaration order, and the output's width."""
        self.emitter = InitEmitter(self.ctx)
        for name in input_widths(self.ctx.d):
            self.emitter.init_ns.reserve(name)
        widths: dict[str, n.Expr] = {key: symbol(arg) for key, arg in zip(self.sig.inputs, input_widths(self.ctx.d))}
        chunks: dict[object, list] = {}  # statement -> its __init__ lines, placed where the statement stands
        order = {name: i for i, name in enumerate(self.sig.decls)}
        owner: dict[str, str] = {}  # a name a width may read -> the declared module whose lines define it
        for stmt in self.ctx.d.body:
            if isinstance(stmt, n.Let) and stmt in self.sig.lets:
                for step in self.sig.lets[stmt]:
                    widths[step.dest] = self.init_step(step, widths, chunks, order, owner)
            elif isinstance(stmt, (n.Let, n.Init)):
                chunks[stmt] = []
                self.emitter.init_stmt(stmt, symbol("in_channels"), chunks[stmt], _Seq(None))
        body = [line for stmt in self.ctx.d.body for line in chunks.get(stmt, [])]
        out = widths[self.sig.keys[self.sig.output]]
        return prune_lets(body, ir.reads(self.emitter.lower(out))), out

    def init_step(self, step: n.Flow, widths: dict, chunks: dict, order: dict, owner: dict) -> n.Expr:
        tensors = [s for s in step.srcs if isinstance(s, str)]
        if step.kind == "apply":
            decl = step.layer
            name = plain(decl.target)
            for key in tensors:
                for free in free_names(widths[key]):
                    if free in owner and order[owner[free]] > order[name]:
                        raise SpecError(f"'{name}' is sized by the output of '{owner[free]}', which is declared "
                                        "after it", decl.span, hint=f"declare '{owner[free]}' before '{name}'")
            before = set(self.emitter.symbols) | self.emitter.channel_vars
            chunks[decl] = []
            if len(tensors) == 1:
                out = self.emitter.init_stmt(decl, widths[tensors[0]], chunks[decl], _Seq(None))
            else:
                out = self.block_of_many(decl, [widths[k] for k in tensors], chunks[decl])
            for new in (set(self.emitter.symbols) | self.emitter.channel_vars) - before:
                owner[new] = name
            return out
        if step.kind == "op":
            scratch: list = []
            out = self.emitter.init_stmt(step.layer, widths[tensors[0]], scratch, _Seq(None))
            assert not scratch, "an op applied in a let has no module"
            return out
        if step.kind == "neg" or len(tensors) == 1:
            return widths[tensors[0]]
        # two tensors: the width of the one whose features the result has (the other may broadcast from 1)
        first, second = tensors
        seen = self.ctx.info.get(step)
        if seen and all(ins[0].features == 1 and out.features != 1 for ins, out in seen):
            return widths[second]
        return widths[first]

    def block_of_many(self, decl: n.Layer, widths: list[n.Expr], w: list) -> n.Expr:
        """``Fuse(fine_width, coarse_width, ...)``: a block with several inputs, and its output width."""
        emitter = self.emitter
        self.ctx.referenced.add(decl.func)
        args = [emitter.init_expr(a) for a in decl.arguments.args]
        kwargs = [(k, emitter.init_expr(v)) for k, v, _ in decl.arguments.kwargs]
        emitter.register(decl.target, ir.Call(ir.Name(decl.func), (*map(emitter.lower, widths), *args),
                                              tuple(kwargs)), w, _Seq(None))
        block = self.ctx.blocks.get(decl.func)
        formula = emitter.infos(decl.func).out_formula if block is not None else None
        if formula is None:
            key = f"<out_channels of {plain(decl.target)}>"
            emitter.symbols[key] = ir.Attr(ir.Attr(SELF, plain(decl.target)), "out_channels")
            return symbol(key)
        subst: dict[str, n.Expr] = dict(zip(input_widths(block), widths))
        bound = _bind(block, decl.arguments)
        for p in block.params:
            if p.name in bound:
                subst[p.name] = emitter.fold(bound[p.name])
            elif p.default is not None:
                subst[p.name] = fold(p.default, self.ctx.printing, self.ctx.named)
        return emitter.fold(fold(formula, {}, subst))


__all__ = ["FlowEmitter", "input_widths", "SPAN"]
