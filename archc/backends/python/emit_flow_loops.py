"""Loops and lists of tensors in a dataflow block's class: a mixin of ``emit_flow.FlowEmitter``.

``forward`` keeps a spec's loop a Python loop over its range, as a hand-written module iterates its
``nn.ModuleList``: ``for i in range(...)`` around the steps of the loop's lets, ``self.convs[i](sp)``; dynamo unrolls
it (a range of constructor arguments). ``__init__`` makes the loop's members in a loop of its own, sized as the lets
apply them. A tensor the loop rebinds keeps its width, or __init__ follows it in a local (``spo_channels``) that the
loop updates, as it does for a width that a plain block's loop changes; a list's width is that of its tensors side
by side, what ``cat`` along the features makes of it.
"""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from ...ops import REGISTRY
from ...sema.layout import feature_axis
from . import containers, ir
from .emit import SPAN, given_args, shape_comment, symbol
from .emit_flow_shape import _Shape
from .emit_init_layer import _Seq
from .irbuild import loop_target


class FlowLoops:
    """Needs the FlowEmitter's ``sig``, ``ctx``, ``fwd``, ``local``, ``_dest``, ``step``, ``emitter`` and
    ``init_steps``."""

    # ---------------------------------------------------------------- forward

    def body(self, body: list[n.Stmt], w: list) -> None:
        for stmt in body:
            if isinstance(stmt, n.Let) and stmt in self.sig.shapes:  # _, h, w, c = x.shape: sizes as it runs
                self.fwd.fwd_locals.update(stmt.names)
                names = (ir.Name("_"), *map(ir.Name, stmt.names))
                w.append(ir.Assign(ir.Tuple(names), ir.Attr(ir.Name(self.local[self.sig.shapes[stmt]]), "shape")))
            elif isinstance(stmt, n.Let) and stmt in self.sig.lets:
                for step in self.sig.lets[stmt]:
                    self.step(step, w)
            elif isinstance(stmt, n.Let):
                self.fwd.fwd_one(stmt, "x", False, w, None)
            elif isinstance(stmt, n.For):
                for name, key in self.sig.loops[stmt]:  # a tensor the loop rebinds, from before it
                    w.append(ir.Assign(ir.Name(self._dest(name)), ir.Name(self.local[key])))
                self.fwd.fwd_locals.update(n.pattern_names(stmt.var))
                inner: list[ir.Node] = []
                self.body(stmt.body, inner)
                if inner:
                    iterable = self.fwd.fwd_expr(stmt.iterable, self.sig.inputs[0])
                    w.append(ir.For(loop_target(stmt.var, inner), iterable, tuple(inner)))

    def list_step(self, step: n.Flow, srcs: list[str], w: list) -> None:
        """``sp = part``; ``outs = outs + [sp]`` (a list's tensors, then a literal of the tensors after it);
        ``part = parts[i]``."""
        if step.kind == "copy":
            value: ir.Node = ir.Name(srcs[0])
        elif step.kind == "item":
            value = ir.Index(ir.Name(srcs[0]), self.fwd.fwd_expr(step.index, self.sig.inputs[0]))
        else:
            parts: list[ir.Node] = []
            for key, local in zip(step.srcs, srcs):
                if key in self.sig.lists:
                    parts.append(ir.Name(local))
                elif parts and isinstance(parts[-1], ir.List):
                    parts[-1] = ir.List((*parts[-1].items, ir.Name(local)))
                else:
                    parts.append(ir.List((ir.Name(local),)))
            value = parts[0] if parts else ir.List(())
            for part in parts[1:]:
                value = ir.BinOp("+", value, part)
        if step.kind == "list" and "%" in step.dest:  # a list an op takes whole: written in its call
            self.inline[step.dest] = value
            self.local[step.dest] = step.dest
            return
        comment = shape_comment([out for _, out in self.ctx.info.get(step)]) if step.kind != "list" else ""
        dest = self._dest(step.dest)
        w.append(ir.Assign(ir.Name(dest), value, comment))
        self.local[step.dest] = dest

    # ---------------------------------------------------------------- __init__

    def init_body(self, body: list[n.Stmt], shapes: dict, chunks: dict, order: dict, owner: dict) -> None:
        for stmt in body:
            if isinstance(stmt, n.Let) and stmt in self.sig.shapes:  # sizes forward reads: none here
                continue
            if isinstance(stmt, n.Let) and stmt in self.sig.lets:
                self.init_steps(self.sig.lets[stmt], shapes, chunks, order, owner)
            elif isinstance(stmt, (n.Let, n.Init)):
                chunks[stmt] = []
                self.emitter.init_stmt(stmt, symbol("in_channels"), chunks[stmt], _Seq(None))
            elif isinstance(stmt, n.For):
                self.init_loop(stmt, shapes, chunks, order, owner)

    def placed(self, body: list[n.Stmt], chunks: dict) -> list[ir.Node]:
        """The lines of a body's statements where they stand, each container made before its first member."""
        out = []
        for stmt in body:
            for container in containers.first_named(stmt):
                if container not in self.emitter.modules_named:
                    self.emitter.modules_named.add(container)
                    out.append(containers.make(container, self.ctx.containers[container]))
            out.extend(chunks.get(stmt, []))
        return out

    def init_loop(self, stmt: n.For, shapes: dict, chunks: dict, order: dict, owner: dict) -> None:
        """The loop's members made in a loop; a tensor whose width an iteration changes followed in a local."""
        emitter = self.emitter
        for name, key in self.sig.loops[stmt]:
            shapes[name] = shapes[key]
        carried = list(dict.fromkeys(name for let in stmt.walk() if isinstance(let, n.Let) and let in self.sig.lets
                                     for name in let.names))
        for name in carried:
            shapes.setdefault(name, _unknown())  # read before the loop binds it: only where a branch is not taken
        for name in n.pattern_names(stmt.var):
            emitter.init_ns.reserve(name)
        saved = (set(emitter.init_ns.taken), set(emitter.channel_vars), dict(emitter.symbols), dict(owner),
                 dict(self.made_for), dict(shapes))
        entry = {name: shapes[name] for name in carried}
        inner: dict = {}
        self.init_body(stmt.body, shapes, inner, order, owner)
        changing = [name for name in carried if entry[name].features is not None or name in self.sig.lists
                    if not self._same_width(entry[name], shapes[name])]
        before: list[ir.Node] = []
        if changing:  # again, each such tensor's width in a local that the loop moves on
            taken, chans, symbols, kept_owner, made, kept_shapes = saved
            emitter.init_ns.taken, emitter.channel_vars = taken, chans
            emitter.symbols.clear()
            emitter.symbols.update(symbols)
            owner.clear()
            owner.update(kept_owner)
            self.made_for = made
            shapes.clear()
            shapes.update(kept_shapes)
            locals_ = {}
            for name in changing:
                chan = emitter.init_ns.create(f"{name}_channels")
                emitter.channel_vars.add(chan)
                self.loop_widths[chan] = stmt
                locals_[name] = chan
                before.append(ir.Assign(ir.Name(chan), emitter.lower(entry[name].features), let=True))
                shapes[name] = _Shape.of(entry[name].layout, symbol(chan))
            inner = {}
            self.init_body(stmt.body, shapes, inner, order, owner)
            ends = {name: shapes[name].features for name in changing}
        lines = [line for inner_stmt in stmt.body for line in inner.get(inner_stmt, [])]  # (containers: before)
        if changing:
            lines += [ir.Assign(ir.Name(locals_[name]), emitter.lower(ends[name]), let=True) for name in changing]
            for name in changing:
                shapes[name] = _Shape.of(shapes[name].layout, symbol(locals_[name]))
        chunks[stmt] = before + ([ir.For(loop_target(stmt.var, lines), emitter.init_expr(stmt.iterable),
                                         tuple(lines))] if lines else [])

    def after_loop(self, free: str, name: str, decl: n.Stmt) -> None:
        """A module sized by a width that a loop changes is declared after that loop, where __init__ knows it."""
        loop = self.loop_widths.get(free)
        if loop is not None and (decl.span.line, decl.span.column) < (loop.span.line, loop.span.column):
            raise SpecError(f"'{name}' is sized by a width that the loop below it changes, which __init__ knows "
                            "only after the loop", decl.span, hint=f"declare '{name}' after the loop")

    def _same_width(self, a, b) -> bool:
        if a.features is None or b.features is None:
            return a.features is None and b.features is None
        return self.emitter.lower(a.features) == self.emitter.lower(b.features)

    def list_shape(self, step: n.Flow, shapes: dict):
        """A list's width: its tensors' features summed (0 for an empty one); a copy's and an item's."""
        if step.kind == "copy":
            return shapes[step.srcs[0]]
        if step.kind == "item":
            return self.elements.get(step.srcs[0]) or _unknown()
        total, element = None, None
        for key in step.srcs:
            shape = shapes[key]
            features = shape.features
            if key not in self.sig.lists:
                element = shape if element is None or self._same_width(element, shape) else _unknown()
            else:
                inner = self.elements.get(key)
                if inner is not None:
                    element = inner if element is None or self._same_width(element, inner) else _unknown()
            if features is None:
                return _Shape(None, None, None)
            total = features if total is None else n.BinOp("+", total, features, step.span)
        self.elements[step.dest] = element
        return _Shape(None, None, self.emitter.fold(total) if total is not None else n.Num(0, step.span))


    def of_list(self, step: n.Flow, shape, layout: str | None, seen):
        """An op of a whole list: ``cat(xs, dim)`` as ``joined`` says; another (``stack(xs, 2)``) by its kind's rule
        for as many tensors as every use gave it, unknown where the uses gave different numbers."""
        if step.layer.func == "cat":
            return self.joined(step, shape, layout, seen)
        kind, counts = REGISTRY[step.layer.func], {len(ins) for ins, _ in seen}
        kinds = {(len(t.shape), feature_axis(t.layout)) for ins, _ in seen for t in ins}  # the tensors' ranks
        if layout is None or kind.sym is None or len(counts) != 1 or len(kinds) != 1:
            return _Shape(layout, None)
        (count,), ((rank, features_at),) = counts, kinds
        axes = shape.axes
        if axes is None:  # a list keeps the sum of its tensors' features (for a cat): each one's is a share of it
            each = None if shape.features is None else n.BinOp("//", shape.features, n.Num(count, SPAN), SPAN)
            axes = tuple(each if i == features_at else None for i in range(rank))
        args = {f: self.emitter.fold(e) for f, e in given_args(kind, step.layer).items()}
        return _Shape(layout, kind.sym(args, (axes,) * count))

    def joined(self, step: n.Flow, shape, layout: str | None, seen):
        """``cat(xs, dim)`` of a whole list: the list's width where every use joined its tensors' features (a list
        of one tensor, as a dense's first member reads ``cat([x], 1)``, gives that tensor: its width, along any dim)."""
        if layout is None or not seen:
            return _Shape.of(layout, shape.features)
        fa = feature_axis(layout)
        along = all(sum(t.shape[fa] for t in ins) == out.shape[fa] for ins, out in seen)
        return _Shape.of(layout, shape.features) if along else _Shape(layout, None)


def _unknown():
    return _Shape(None, None, None)

