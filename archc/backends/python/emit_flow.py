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
from ...lang.dataflow import COMPARE
from ...ops import REGISTRY
from ...sema.exprfold import free_names, literal
from ...sema.layout import TensorType, given_back
from . import ir, irparse
from .context import ClassContext
from .emit import SPAN, as_tuple, given_args, plain, shape_comment, symbol
from .emit_flow_loops import FlowLoops
from .emit_flow_shape import _Shape
from .emit_forward import ForwardEmitter
from .emit_init import InitEmitter
from .emit_init_layer import _Seq
from .irbuild import prune_lets
from .lower import lower

SELF = ir.Name("self")


def _one(values: set, what: str, span: n.Span):
    """The layout every use saw (None where nothing was elaborated: a library of blocks)."""
    if len(values) > 1:
        raise SpecError(f"{what} has different layouts in different uses ({', '.join(sorted(values))})", span,
                        hint="the generated class has one forward: use two blocks")
    return values.pop() if values else None


def input_widths(block: n.BlockDef) -> list[str]:
    """The constructor's width arguments of a dataflow block, one per input."""
    inputs = block.signature.inputs
    return ["in_channels"] if len(inputs) == 1 else [f"{name}_channels" for name in inputs]


class FlowEmitter(FlowLoops):
    """Writes both halves of a dataflow block's class."""

    def __init__(self, ctx: ClassContext):
        self.ctx = ctx
        self.sig: n.Signature = ctx.d.signature
        self.fwd = ForwardEmitter(ctx)
        for name in self.sig.inputs:
            self.fwd.fwd_ns.reserve(name)
        self.local: dict[str, str] = {name: name for name in self.sig.inputs}  # tensor key -> forward's local
        # the step whose recorded types hold each value (an input has none)
        self.producers = {step.dest: step for steps in self.sig.lets.values() for step in _flat(steps)}
        self.made_for: dict[n.Stmt, list] = {}  # a declared module -> the widths __init__ makes it for
        self.inline: dict[str, ir.Node] = {}  # a list an op takes whole -> its expression

    # ---------------------------------------------------------------- forward

    def forward(self) -> list[ir.Node]:
        w: list[ir.Node] = []
        self.body(self.ctx.d.body, w)
        outs = [ir.Name(self.local[self.sig.keys[o]]) for o in self.sig.outputs]
        w.append(ir.Return(outs[0] if len(outs) == 1 else ir.Tuple(tuple(outs))))
        return self.fwd.hoist(prune_lets(w))

    def _dest(self, key: str) -> str:
        if key not in self.local:
            self.local[key] = key if "%" not in key else self.fwd.fwd_ns.create(key.split("%")[0])
        return self.local[key]

    def step(self, step: n.Flow, w: list) -> None:
        if step.kind == "if":
            self.choice(step, w)
            return
        srcs = [self.local[s] if isinstance(s, str) else s for s in step.srcs]
        if step.kind in ("copy", "list", "item"):
            self.list_step(step, srcs, w)
            return
        comment = shape_comment([out for _, out in self.ctx.info.get(step)])
        kind = REGISTRY[step.layer.func] if step.kind == "op" else None
        if step.dests:  # a block of several outputs, u, v = self.split(x), or an op's, a, b = x.split([3, 5], 1)
            for d in step.dests:
                self._dest(d)
            comment = " | ".join(shape_comment([out for _, out in self.ctx.info.get((step, i))])
                                 for i in range(len(step.dests)))
            value = self.op_of_many(kind, step.layer, srcs) if kind is not None else \
                ir.Call(ir.Attr(SELF, plain(step.layer.target)), tuple(ir.Name(s) for s in srcs))
            w.append(ir.Assign(ir.Tuple(tuple(ir.Name(self.local[d]) for d in step.dests)), value, comment))
            return
        if (step.kind == "apply" and len(srcs) == 1) or (kind is not None and kind.inputs == 1):
            dest = self._dest(step.dest)
            out, _ = self.fwd.fwd_stmt_into(step.layer, srcs[0], w, dest, None)
            self.local[step.dest] = out
            return
        dest = self._dest(step.dest)
        if step.kind == "apply":  # a block of several inputs
            module = ir.Attr(SELF, plain(step.layer.target))
            value: ir.Node = ir.Call(module, tuple(ir.Name(s) for s in srcs))
        elif kind is not None:  # an op of several inputs, or of a list of tensors
            value = self.op_of_many(kind, step.layer, srcs, step.srcs[0] in self.sig.lists)
        elif step.kind == "neg":
            value = ir.Unary("-", ir.Name(srcs[0]))
        else:
            tensor = next(s for s in srcs if isinstance(s, str))
            left, right = (ir.Name(s) if isinstance(s, str) else self._number(s, tensor) for s in srcs)
            value = ir.Compare((step.op,), (left, right)) if step.op in COMPARE else ir.BinOp(step.op, left, right)
        w.append(ir.Assign(ir.Name(dest), value, comment))
        self.local[step.dest] = dest

    def _number(self, e: n.Expr, tensor: str) -> ir.Node:
        """A number a tensor is combined with: as the spec writes it where it is arithmetic of numbers only
        (``(0.485 - 0.5) / 0.5``, as torchvision writes it; Python computes the same float the checker folded), else
        as folded."""
        numbers_only = all(isinstance(x, (n.Num, n.BinOp, n.UnaryOp)) for x in e.walk())
        return lower(e) if numbers_only else self.fwd.fwd_expr(e, tensor)

    def choice(self, step: n.Flow, w: list) -> None:
        """``if cond: ...`` computing each branch's tensor into one local (a branch that names an existing tensor
        assigns it)."""
        dest = self._dest(step.dest)
        test = self.fwd.fwd_expr(step.cond, self.sig.inputs[0])
        bodies = []
        for key, steps in zip(step.srcs, step.branches):  # (a module's None check the branch decides: irfacts)
            if key not in self.local:
                self.local[key] = dest  # the branch's chain computes straight into the let's local
            inner: list[ir.Node] = []
            for s in steps:
                self.step(s, inner)
            if self.local[key] != dest:
                inner.append(ir.Assign(ir.Name(dest), ir.Name(self.local[key])))
            bodies.append(tuple(inner))
        w.append(ir.If(test, bodies[0], bodies[1]))
        self.local[step.dest] = dest

    def op_of_many(self, kind, layer: n.Layer, srcs: list[str], whole: bool = False) -> ir.Node:
        """``q @ k``, ``torch.cat([a, b], 1)``: the op's template over its tensors (x, y, z, or the list xs)."""
        given = given_args(kind, layer)
        if kind.template is None:  # F.scaled_dot_product_attention(q, k, v, ...): the arguments written
            kwargs = []
            for f in kind.positional:
                if f not in given:
                    continue
                value = self.fwd.fwd_lower(as_tuple(self.fwd.fwd_fold(given[f], srcs[0])))
                if f in kind.training_only:  # off in eval, as the module would be
                    default = lower(literal(kind.args.model_fields[f].default, SPAN))
                    value = ir.IfExp(ir.Attr(SELF, "training"), value, default)
                kwargs.append((f, value))
            return ir.Call(irparse.expression(kind.functional), tuple(map(ir.Name, srcs)), tuple(kwargs))
        values = {f: self.fwd.fwd_lower(as_tuple(self.fwd.fwd_fold(given[f], srcs[0]))) if f in given else
                  lower(literal(kind.args.model_fields[f].default, SPAN)) for f in kind.positional}
        if kind.operands:  # torch.where(m, t, 0.0): each operand a tensor or the number given
            tensors = iter(srcs)
            values.update({f: next(tensors) if f not in given else values[f] for f in kind.operands})
            values.update({f: ir.Name(v) for f, v in values.items() if isinstance(v, str)})
        elif kind.inputs == 0:  # (whole: srcs is one list's local)
            values["xs"] = (self.inline.get(srcs[0]) or ir.Name(srcs[0])) if whole else ir.List(tuple(map(ir.Name, srcs)))
        else:
            values.update(zip(("x", "y", "z"), map(ir.Name, srcs)))
        template = irparse.expression(kind.template, ("x", "y", "z", "xs", *kind.positional))
        return ir.substitute(template, values)

    # ---------------------------------------------------------------- __init__

    def init(self) -> tuple[list[ir.Node], n.Expr]:
        """The statements that make the declared modules, in declaration order, and the output's width."""
        self.emitter = InitEmitter(self.ctx)
        for name in input_widths(self.ctx.d):
            self.emitter.init_ns.reserve(name)
        self.layouts: dict[str, str | None] = {}
        self.unknown: dict[str, SpecError] = {}  # stand-ins for widths __init__ cannot know
        shapes: dict[str, tuple] = {}
        inputs = self.ctx.info.get(self.sig)
        for i, (key, arg) in enumerate(zip(self.sig.inputs, input_widths(self.ctx.d))):
            types = [ins[i] for ins, _ in inputs]
            layout = _one({t.layout for t in types}, f"input '{key}'", self.sig.span)
            self.layouts[key] = layout
            shapes[key] = _Shape.of(layout, symbol(arg))
            sizes = self.sig.sizes[i]
            if sizes is not None and layout is not None and len(sizes) == len(layout):  # x: seq_len x dim
                shapes[key] = _Shape(layout, tuple(self.emitter.fold(e) for e in sizes))
        chunks: dict[object, list] = {}  # statement -> its __init__ lines, placed where the statement stands
        order = {name: i for i, name in enumerate(self.sig.decls)}
        owner: dict[str, str] = {}  # a name a width may read -> the declared module whose lines define it
        self.elements: dict[str, _Shape | None] = {}  # a list's key -> its tensors' shape, where all alike
        self.loop_widths: dict[str, n.For] = {}  # a local that follows a width through a loop -> the loop
        self.init_body(self.ctx.d.body, shapes, chunks, order, owner)
        body = self.placed(self.ctx.d.body, chunks)
        outs = []
        for output in self.sig.outputs:
            key = self.sig.keys[output]
            layout = self.layouts.get(key)
            like = self.layouts.get(self.sig.inputs[0])
            named = given_back(TensorType((0,) * len(layout), layout), like).layout if layout else None  # as it leaves
            if not inputs and shapes[key].features_in(named) is None and not self.called():
                outs.append(n.Const(None, SPAN))  # a library's block nothing here calls: no caller reads its width
                continue
            outs.append(self.emitter.fold(self.width(shapes[key], key, self.producers.get(key),
                                                     f"the output '{output}'", named, unseen=not inputs)))
        lowered = [self.emitter.lower(out) for out in outs]
        self.check_known(lowered)
        read = set().union(*(ir.reads(low) for low in lowered))
        body = prune_lets(body, read)
        self.no_run_time_sizes([*body, *lowered])
        return body, outs[0] if len(outs) == 1 else outs

    def no_run_time_sizes(self, lines: list) -> None:
        """__init__ reads no size that forward reads from a tensor (``let h, w = x.shape``): a module is made once,
        for every input size."""
        read = set().union(*(ir.reads(line) for line in lines))
        for stmt in self.sig.shapes:
            for name in stmt.names:
                if name in read:
                    raise SpecError(f"'{name}' is a size of a tensor, read as forward runs, but a module's size "
                                    "depends on it", stmt.span,
                                    hint="a module is made once, for every input: size it by the block's parameters")

    def called(self) -> bool:
        """Whether a block or network of this file calls the block (such a caller would size what follows by its
        output's width)."""
        name = self.ctx.d.name
        return any(isinstance(node, n.Layer) and node.func == name
                   for d in [*self.ctx.blocks.values(), *self.ctx.networks.values()] for node in d.walk())

    def init_steps(self, steps: tuple, shapes: dict, chunks: dict, order: dict, owner: dict) -> None:
        """Each step's shape in ``shapes`` by its key, the modules it applies made (in ``chunks``)."""
        for step in steps:
            if step.dests:  # a block of several outputs: a shape each
                for i, d in enumerate(step.dests):
                    seen = self.ctx.info.get((step, i))
                    self.layouts[d] = _one({out.layout for _, out in seen}, "this value", step.span)
                for d, shape in zip(step.dests, self.init_step(step, shapes, chunks, order, owner)):
                    shapes[d] = shape
                continue
            seen = self.ctx.info.get(step)
            self.layouts[step.dest] = _one({out.layout for _, out in seen}, "this value", step.span)
            if step.kind in ("copy", "list", "item"):
                shapes[step.dest] = self.list_shape(step, shapes)
                continue
            if step.kind == "if":
                for branch in step.branches:
                    self.init_steps(branch, shapes, chunks, order, owner)
                shapes[step.dest] = self._chosen(step, shapes)
                continue
            shapes[step.dest] = self.init_step(step, shapes, chunks, order, owner)

    def _chosen(self, step: n.Flow, shapes: dict) -> _Shape:
        """A conditional tensor's sizes: the branch's the condition picks where __init__ knows it, else each size
        both branches know, as one expression where they agree and a conditional one where they differ."""
        first, second = (shapes[k] for k in step.srcs)
        test = self.emitter.fold(step.cond)
        if isinstance(test, n.Const) and isinstance(test.value, bool):
            return first if test.value else second

        def either(a, b):
            if a is None or b is None:
                return None
            return a if self.emitter.lower(a) == self.emitter.lower(b) else n.IfExp(step.cond, a, b, step.span)

        layout = self.layouts[step.dest]
        if first.axes is None or second.axes is None or layout is None:
            return _Shape.of(layout, either(first.features, second.features))
        return _Shape(layout, tuple(either(a, b) for a, b in zip(first.axes, second.axes)))

    def width(self, shape: _Shape, key: str, producer, what: str, layout: str | None = None,
              unseen: bool = False) -> n.Expr:
        """The features of a value (read in ``layout``, if given), as an expression over the constructor's
        arguments; where the tracked sizes do not give it, a stand-in that is an error where __init__ reads it (an
        activation needs no width). No number seen while elaborating stands in: the class serves any arguments.
        ``unseen``: no variant makes the block (only a caller's argument would), so nothing was worked out."""
        layout = layout or shape.layout
        if shape.features_in(layout) is not None:
            return shape.features_in(layout)
        span = producer.span if producer is not None else self.sig.span
        if unseen:
            error = SpecError(f"the width of {what} is not known: no variant makes this block, so its shapes were "
                              "never worked out", span,
                              hint="add a variant that makes it (one that sets the option that switches it on)")
        else:
            error = SpecError(f"the width of {what} is not known from the block's parameters: it comes through a "
                              "reshape or transpose of an axis whose size no parameter gives", span,
                              hint="give the input's sizes in the signature, '(x: seq_len x dim)', or the sizes "
                                   "of the reshape or unflatten from parameters")
        marker = f"<unknown width {len(self.unknown)}>"
        self.unknown[marker] = error
        return symbol(marker)

    def check_known(self, lines: list) -> None:
        """Raise the error of a width __init__ cannot know, where ``lines`` read it."""
        for line in lines:
            for node in line.walk():
                if isinstance(node, ir.Name) and node.id in self.unknown:
                    raise self.unknown[node.id]

    def init_step(self, step: n.Flow, shapes: dict, chunks: dict, order: dict, owner: dict) -> _Shape:
        tensors = [s for s in step.srcs if isinstance(s, str)]
        seen = self.ctx.info.get(step)
        layout = self.layouts[step.dest]
        read = [ins[i].layout for i in range(len(tensors)) for ins, _ in seen[:1]] or [None] * len(tensors)
        if step.kind == "apply":
            decl = step.layer
            name = step.op
            widths = [self.width(shapes[k], k, self.producers.get(k), f"the input of '{name}'", lay)
                      for k, lay in zip(tensors, read)]
            for width in widths:
                for free in free_names(width):
                    if free in owner and order[owner[free]] > order[name]:
                        raise SpecError(f"'{name}' is sized by the output of '{owner[free]}', which is declared "
                                        "after it", decl.span, hint=f"declare '{owner[free]}' before '{name}'")
                    self.after_loop(free, name, decl)
            made = [self.emitter.lower(w) for w in widths]
            if self.made_for.setdefault(decl, made) != made:  # applied in each branch of a conditional tensor
                raise SpecError(f"'{name}' is applied in both branches of a conditional tensor to tensors of "
                                "different widths, but a module is made once", step.span,
                                hint=f"apply it once, to the conditional tensor: '{name}(a if flag else b)'")
            before = set(self.emitter.symbols) | self.emitter.channel_vars
            chunks[decl] = []
            if len(tensors) == 1 and not step.dests:
                out = self.emitter.init_stmt(decl, widths[0], chunks[decl], _Seq(None))
            else:
                out = self.block_of_many(decl, widths, chunks[decl], len(step.dests) or 1)
            self.check_known(chunks[decl])
            for new in (set(self.emitter.symbols) | self.emitter.channel_vars) - before:
                owner[new] = name
            if step.dests:
                return [_Shape.of(self.layouts[d], w) for d, w in zip(step.dests, out)]
            return self.declared_op(decl, shapes[tensors[0]], layout) or shapes[tensors[0]].then(layout, out, seen)
        if step.kind == "op" and step.dests:  # an op of several parts (split): each part's sizes
            kind = REGISTRY[step.layer.func]
            args = {f: self.emitter.fold(e) for f, e in given_args(kind, step.layer).items()}
            axes = shapes[tensors[0]].axes
            return [_Shape(self.layouts[d], None if axes is None else kind.sym({**args, "index": i}, axes))
                    for i, d in enumerate(step.dests)]
        if step.kind == "op" and tensors and tensors[0] in self.sig.lists:  # cat(xs, 1): a whole list
            return self.of_list(step, shapes[tensors[0]], layout, seen)
        if step.kind == "op":
            kind = REGISTRY[step.layer.func]
            if kind.sym is not None:
                args = {f: self.emitter.fold(e) for f, e in given_args(kind, step.layer).items()}
                ins = [shapes[k].axes for k in tensors]
                axes = kind.sym(args, ins[0] if kind.inputs == 1 else tuple(ins)) if None not in ins else None
                return _Shape(layout, axes)
            scratch: list = []
            width = self.width(shapes[tensors[0]], tensors[0], self.producers.get(tensors[0]), "this op's input", read[0])
            out = self.emitter.init_stmt(step.layer, width, scratch, _Seq(None))
            assert not scratch, "an op applied in a let has no module"
            return shapes[tensors[0]].then(layout, out, seen)
        if step.kind == "neg" or len(tensors) == 1:
            return shapes[tensors[0]]
        # two tensors: each axis from the one whose size the result has (the other may broadcast from 1)
        first, second = shapes[tensors[0]], shapes[tensors[1]]
        if layout is None:  # nothing elaborated (a library): the features alone, the first operand's
            return _Shape.of(None, first.features)
        if first.axes is None or second.axes is None:  # the sizes of the operand the result has in every use
            same = [i for i in (0, 1) if seen and all(ins[i].shape == out.shape for ins, out in seen)]
            known = [(first, second)[i] for i in same if (first, second)[i].axes is not None]
            return _Shape(layout, known[0].axes if known else None)
        axes = []
        for i, (a, b) in enumerate(zip(first.axes, second.axes)):
            grows = seen and all(ins[0].shape[i] == 1 and out.shape[i] != 1 for ins, out in seen)
            axes.append(b if grows else a)
        return _Shape(layout, tuple(axes))

    def declared_op(self, decl: n.Layer, before: _Shape, layout: str | None) -> _Shape | None:
        """A declared op's value, every axis by the op's symbolic shape rule where it gives them (a learned tensor's
        are its own sizes, whatever it is applied to: a table of n x 1 x 1 has n features as a map, 1 as a tensor
        of unnamed axes); None where it does not, or where a condition may switch it off (its input passes)."""
        kind = REGISTRY.get(decl.func) if isinstance(decl, n.Layer) else None  # (not a seq)
        if kind is None or kind.sym is None or decl.func in self.ctx.blocks or layout is None or \
                decl.cond is not None or (before.axes is None and kind.learned is None):
            return None
        args = {f: self.emitter.fold(e) for f, e in given_args(kind, decl).items()}
        axes = kind.sym(args, before.axes)
        return _Shape(layout, axes) if axes is not None and len(axes) == len(layout) else None

    def block_of_many(self, decl: n.Layer, widths: list[n.Expr], w: list, outputs: int = 1):
        """``Fuse(fine_width, coarse_width, ...)``: a block with several inputs, and its output width (a list of
        them where it gives ``outputs`` tensors, several)."""
        emitter = self.emitter
        self.ctx.referenced.add(decl.func)
        args = [emitter.init_expr(a) for a in decl.arguments.args]
        kwargs = [(k, emitter.init_expr(v)) for k, v, _ in decl.arguments.kwargs]
        emitter.register(decl.target, ir.Call(ir.Name(decl.func), (*map(emitter.lower, widths), *args),
                                              tuple(kwargs)), w, _Seq(None))
        block = self.ctx.blocks.get(decl.func)
        info = emitter.infos(decl.func) if block is not None else None
        formulas = (info.out_formulas if outputs > 1 else [info.out_formula]) if info is not None else None
        own = plain(decl.target)
        if formulas is None or None in formulas:  # read from the module: self.m.out_channels (or [i])
            found = []
            for i in range(outputs):
                key = f"<out_channels of {own}{'' if outputs == 1 else f' {i}'}>"
                attr = ir.Attr(ir.Attr(SELF, own), "out_channels")
                emitter.symbols[key] = attr if outputs == 1 else ir.Index(attr, ir.const(i))
                found.append(symbol(key))
            return found[0] if outputs == 1 else found
        found = [emitter.fold(emitter.block_width(block, decl.arguments, formula, dict(zip(input_widths(block), widths))))
                 for formula in formulas]
        return found[0] if outputs == 1 else found


def _flat(steps: tuple) -> list[n.Flow]:
    """A let's steps and those of its branches."""
    return [inner for step in steps for inner in [step, *(s for b in step.branches for s in _flat(b))]]


__all__ = ["FlowEmitter", "input_widths"]
