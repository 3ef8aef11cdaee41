"""``__init__`` of a generated class, continued: a layer statement, the module of an op (its constructor
arguments and output channels) or an instance of a block class, and where each module is kept. A mixin of
``emit_init.InitEmitter``."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SpecError
from ...lang import nodes as n
from ...ops import REGISTRY, OpKind
from ...sema.exprfold import fold, literal
from ...sema.layout import feature_axis
from . import containers, ir, irparse
from .emit import SPAN, as_tuple, given_args, is_attribute, keeps_output, may_work_in_place, plain, symbol
from .irbuild import interpolated, read_attribute
from .lower import lower


@dataclass
class _Seq:
    """Where __init__ puts modules: ``self`` or a local nn.Sequential."""

    var: str | None  # None: attributes of self
    fresh: bool = False  # the last child made a new tensor (so an inplace ReLU may follow)


class LayerInit:
    """InitEmitter methods for the layer statement."""

    def init_layer(self, stmt: n.Layer, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        kind = REGISTRY.get(stmt.func)
        is_block = stmt.func in self.blocks or stmt.func in self.block_params or stmt.func in self.ctx.networks
        if stmt.func in self.block_params or (stmt.func in self.blocks and not (kind and stmt.func in self.params)):
            kind = None
        if is_block:
            seq.fresh = False
            return self.init_block_call(stmt, cur, w, seq)
        if stmt.func in self.ctx.op_params:  # a parameter holding an op class: an activation or a norm, say
            self.ctx.referenced.add(stmt.func)  # (a constructor argument, though nothing else reads it)
            held = self.ctx.op_params[stmt.func]
            # in place on a tensor the layer before it made, where every op it may hold can (torchvision's ReLU)
            in_place = seq.var is not None and seq.fresh and held == "in_place"
            self.info.in_place[stmt.span] = in_place
            width = (self.lower(cur),) if held == "width" else ()  # a norm: norm_layer(planes)
            self.register(stmt.target, ir.Call(ir.Name(stmt.func), width, (("inplace", ir.Const(True)),) if in_place
                                               else ()), w, seq)
            # whatever op it is, the next one does not work in place on its output; but a norm's output is new (or,
            # nn.Identity given for it, its input: as fresh as that was)
            seq.fresh = seq.fresh and held == "width"
            return cur
        assert kind is not None
        new = self.op_channels(kind, stmt, cur)
        if kind.learned is not None:
            given = given_args(kind, stmt)
            args = {f: self.lower(as_tuple(self.fold(given[f], cur))) if f in given else
                    lower(literal(kind.args.model_fields[f].default, SPAN)) for f in kind.positional}
            args["features"] = self.lower(cur)
            if "init" in args:  # a learned tensor is float whatever number starts it (init = 1; a parameter)
                args["init"] = _as_float(args["init"])
            form = irparse.expression(kind.learned_init, tuple(args))
            keep = args.get("persistent") if kind.buffer and "persistent" in given else None  # lookup's: timm's
            if isinstance(keep, ir.Const) and keep.value is True:
                keep = None  # (the default: a state_dict key)
            value = ir.substitute(form, args)
            if kind.buffer and "absolute" in given:  # lookup's absolute terms, where it has them
                value = ir.Call(value.func, value.args, (*value.kwargs, ("absolute", args["absolute"])))
            self.register(stmt.target, value, w, seq, parameter=not kind.buffer, buffer=kind.buffer, persistent=keep)
            return new
        needs_module = (stmt.target is not None or kind.has_params or seq.var is not None) and \
            (kind.template is None or kind.module is not None)
        if needs_module:
            if seq.var is not None and may_work_in_place(kind, stmt, lambda e: self.fold(e, cur)):
                self.inplace_ok[stmt] = seq.fresh and stmt.cond is None
            self.register(stmt.target, self.op_ctor(kind, stmt, cur), w, seq)
        if seq.var is not None:  # whether the next layer may work in place on this one's output
            made_new = seq.fresh if kind.view or kind.name == "identity" else \
                not keeps_output(kind, stmt, lambda e: self.fold(e, cur))
            seq.fresh = (seq.fresh and made_new) if stmt.cond is not None else made_new
        return new

    def op_channels(self, kind: OpKind, stmt: n.Layer, cur: n.Expr) -> n.Expr:
        if kind.channels_from is not None:
            fields = kind.positional
            idx = fields.index(kind.channels_from)
            for key, value, _ in stmt.arguments.kwargs:
                if key == kind.channels_from:
                    return self.fold(value, cur)
            return self.fold(stmt.arguments.args[idx], cur)
        if kind.channels_rule is not None:
            fields = kind.positional
            given = dict(zip(fields, stmt.arguments.args))
            given.update({k: v for k, v, _ in stmt.arguments.kwargs})
            return self.fold(kind.channels_rule(cur, {k: self.fold(v, cur) for k, v in given.items()}), cur)
        if kind.sym is not None:
            return self.sym_channels(kind, stmt, cur)
        if kind.flattens:
            spatial = {tuple(d for i, d in enumerate(t.shape) if i != t.feature_axis) for t, _ in self.info.get(stmt)}
            if len(spatial) != 1:
                raise SpecError(f"{kind.name} sees different input sizes in different uses; generated code needs one",
                                stmt.span, hint="pool to a fixed size first (adaptive_avgpool)")
            (hw,) = spatial
            out = cur
            for d in hw:
                if d != 1:
                    out = n.BinOp("*", out, n.Num(d, SPAN), SPAN)
            return out
        return cur

    def sym_channels(self, kind: OpKind, stmt: n.Layer, cur: n.Expr) -> n.Expr:
        """A tensor primitive on the implicit path: its symbolic shape rule, given the input's features alone."""
        layouts = {(t.layout, out.layout) for t, out in self.info.get(stmt)}
        unknown = SpecError(f"the width after this {kind.name} is not known from the parameters: it comes from an axis "
                            "whose size __init__ does not track", stmt.span,
                            hint="write it in a block with named tensors whose input gives its sizes, "
                                 "'(x: seq_len x dim)'")
        if len(layouts) != 1:
            raise unknown
        ((before, after),) = layouts
        axes = [None] * len(before)
        axes[feature_axis(before)] = cur
        args = {f: self.fold(e, cur) for f, e in given_args(kind, stmt).items()}
        out = kind.sym(args, tuple(axes))
        if out is None or len(out) != len(after) or out[feature_axis(after)] is None:
            raise unknown
        return self.fold(out[feature_axis(after)], cur)

    def op_args(self, kind: OpKind, stmt: n.Layer, cur: n.Expr, skip: str | None = None) -> tuple[list, list]:
        """The op's arguments as IR: (positional, keyword pairs)."""
        given = given_args(kind, stmt)
        pos, kw = [], []
        for fname in kind.positional:
            if fname not in given:
                continue
            value = self.lower(as_tuple(self.fold(given[fname], cur)))
            if fname == skip:
                pos.append(value)
            else:
                kw.append((fname, value))
        return pos, kw

    def op_ctor(self, kind: OpKind, stmt: n.Layer, cur: n.Expr) -> ir.Call:
        pos, kw = self.op_args(kind, stmt, cur, kind.channels_from)
        lead = [self.lower(cur)] if kind.in_arg is True else []
        if isinstance(kind.in_arg, str):  # nn.GroupNorm(num_groups=8, num_channels=64): not first in torch's order
            kw.append((kind.in_arg, self.lower(cur)))
        if stmt in self.inplace_ok:  # set only where may_work_in_place allowed it
            self.info.in_place[stmt.span] = self.inplace_ok[stmt]
        if self.inplace_ok.get(stmt):
            kw.append(("inplace", ir.Const(True)))
        modules = {kind.module_for(t.layout) for t, _ in self.info.get(stmt)} or {kind.module}
        if kind.same_module is not None and stmt.span in self.info.same_padded:
            modules = {kind.same_module}  # it also takes padding="same", which the generated class may pass
        given = given_args(kind, stmt)
        modules = next(({cls} for arg, cls in kind.arg_modules.items() if arg in given), modules)
        if len(modules) > 1:
            layouts = sorted({t.layout for t, _ in self.info.get(stmt)})
            raise SpecError(f"this {kind.name} sees inputs of different layouts ({', '.join(layouts)}) in different "
                            "uses, and each needs another module", stmt.span,
                            hint="the generated class has one module here: use two layers, or two blocks")
        extra_pos, extra_kw = irparse.arguments(kind.ctor_extra)
        return ir.Call(irparse.expression(modules.pop()), (*lead, *pos, *extra_pos), (*kw, *extra_kw))

    def init_block_call(self, stmt: n.Layer, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        self.ctx.referenced.add(stmt.func)
        args = [self.init_expr(a, cur) for a in stmt.arguments.args]
        kwargs = [(k, self.init_expr(v, cur)) for k, v, _ in stmt.arguments.kwargs]
        if stmt.func in self.ctx.networks:  # a whole network: it takes no input width, and gives class scores
            unused = self.ctx.network_unused(stmt.func)  # parameters its class does not take (its input size)
            net = self.ctx.networks[stmt.func]
            bound = _bind(net, stmt.arguments)
            kwargs = [(p.name, self.init_expr(bound[p.name], cur)) for p in net.params
                      if p.name in bound and p.name not in unused]
            self.register(stmt.target, ir.Call(ir.Name(stmt.func), (), tuple(kwargs)), w, seq)
            outs = {t.features for _, t in self.info.get(stmt)}
            if len(outs) != 1:
                raise SpecError(f"network {stmt.func} gives different widths in different uses", stmt.span)
            return n.Num(outs.pop(), SPAN)
        ctor = ir.Call(ir.Name(stmt.func), (self.lower(cur), *args), tuple(kwargs))
        formula = None
        if stmt.func in self.blocks and stmt.func not in self.block_params:
            info = self.infos(stmt.func)
            formula = info.out_formula
            block = self.blocks[stmt.func]
        if formula is not None:
            new = self.block_width(block, stmt.arguments, formula, {"in_channels": cur}, cur)
            self.register(stmt.target, ctor, w, seq)
            return self.fold(new)
        own = plain(stmt.target) if stmt.target is not None else None
        if own and seq.var is None:
            self.register(stmt.target, ctor, w, seq)
            key = f"<out_channels of {own}>"  # a name no spec can write, standing for the module's attribute
            self.symbols[key] = ir.Attr(read_attribute(ir.Name("self"), own), "out_channels")
            return symbol(key)
        if seq.var is not None:
            self.register(stmt.target, ctor, w, seq)
            source = ir.Attr(ir.Index(ir.Name(seq.var), ir.const(-1)), "out_channels")
        else:
            var = self.init_ns.create("block")
            w.append(ir.Assign(ir.Name(var), ctor))
            self.register(stmt.target, ir.Name(var), w, seq)
            source = ir.Attr(ir.Name(var), "out_channels")
        chan = self.channel_var(cur)
        w.append(ir.Assign(ir.Name(chan), source))
        return symbol(chan)

    def block_width(self, block: n.BlockDef, arguments: n.Arguments, formula: n.Expr, widths: dict[str, n.Expr],
                    cur: n.Expr | None = None) -> n.Expr:
        """A block's output width from its class's formula: its input widths (``widths``, by constructor
        argument) and its parameters as the call gives them (defaults where it does not)."""
        subst = dict(widths)
        bound = _bind(block, arguments)
        for p in block.params:
            if p.name in bound:
                subst[p.name] = self.fold(bound[p.name], cur)
            elif p.default is not None:
                subst[p.name] = fold(p.default, self.ctx.printing, self.ctx.named)
        return fold(formula, {}, subst)

    def channel_var(self, cur: n.Expr) -> str:
        """The mutable local that holds a channel count: ``cur`` itself if it is one."""
        if isinstance(cur, n.Var) and cur.name in self.channel_vars:
            self.reassigned[cur.name] += 1  # (the caller gives it a new width)
            return cur.name
        name = self.init_ns.create("channels")
        self.channel_vars.add(name)
        return name

    def register(self, target: n.Target | None, value: ir.Node, w: list, seq: _Seq, parameter: bool = False,
                 buffer: bool = False, persistent: ir.Node | None = None) -> None:
        """Make ``value`` (a module, or with ``parameter`` an nn.Parameter, with ``buffer`` a buffer, with
        ``persistent`` its ``register_buffer(..., persistent=...)``) the target's attribute."""
        adds = "register_buffer" if buffer else "register_parameter" if parameter else "add_module"
        extra = {"persistent": persistent} if persistent is not None else {}
        if target is not None and target.is_plain:
            name = plain(target)
            self.modules_named.add(name)
            if seq.var is None and is_attribute(name) and not buffer:
                w.append(ir.Assign(ir.Attr(ir.Name("self"), name), value))
            else:
                w.append(ir.Expr(ir.call(ir.Attr(ir.Name(seq.var or "self"), adds), ir.Const(name), value, **extra)))
            return
        if target is not None and target.dotted:
            w.append(containers.put(target, self.ctx.containers, value, self.init_expr))
            return
        if target is not None:
            name = interpolated(target, self.init_expr)
            if seq.var is None and not target.quoted and isinstance(name, ir.Const) and is_attribute(name.value) \
                    and not buffer:
                w.append(ir.Assign(ir.Attr(ir.Name("self"), name.value), value))  # a constant: ``x{1}`` is x1
            else:
                w.append(ir.Expr(ir.call(ir.Attr(ir.Name(seq.var or "self"), adds), name, value, **extra)))
            return
        assert seq.var is not None
        w.append(ir.Expr(ir.call(ir.Attr(ir.Name(seq.var), "append"), value)))



def _bind(block: n.BlockDef, arguments: n.Arguments) -> dict[str, n.Expr]:
    bound = {p.name: a for p, a in zip(block.params, arguments.args)}
    for key, value, _ in arguments.kwargs:
        bound[key] = value
    return bound


def _as_float(value: ir.Node) -> ir.Node:
    """``1`` as ``1.0``; an expression that may give an integer as ``float(...)``."""
    if isinstance(value, ir.Const) and isinstance(value.value, (int, float)) and not isinstance(value.value, bool):
        return ir.Const(float(value.value))
    if isinstance(value, ir.Unary) and isinstance(value.operand, ir.Const):
        return ir.Unary(value.op, _as_float(value.operand))
    return value if isinstance(value, ir.Const) else ir.call("float", value)
