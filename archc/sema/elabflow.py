"""A dataflow block's body, as elaboration sees it (``lang/dataflow.py`` lowered it): value lets and init rules as
anywhere, declarations kept until a let applies them, and each tensor let's steps in order. A mixin of
``elaborate.Elaborator``."""

from __future__ import annotations

import operator
from contextlib import closing

from ..errors import SpecError, SpecErrors
from ..lang import nodes as n
from ..lang.dataflow import decl_name
from ..ops import REGISTRY, ShapeError
from ..ops.base import ANY
from .expr import BudgetExceeded
from .layout import TensorType, as_named, broadcast, given_back
from .scope import Frame, Tensor
from .values import type_name

ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow}


class FlowElaboration:
    """Elaborator methods for the body of a block with named tensors."""

    def dataflow(self, block: n.BlockDef, frame: Frame, xs: list[Tensor]) -> Tensor | tuple[Tensor, ...]:
        """The block's output, or its outputs (a tuple) where it names several."""
        sig = block.signature
        if len(xs) != len(sig.inputs):
            raise SpecError(f"block {block.name} takes {len(sig.inputs)} tensors ({', '.join(sig.inputs)}), "
                            f"given {len(xs)}", frame.where[-1][1] if frame.where else block.span,
                            hint=f"apply it in a block with named tensors: 'm = {block.name}(...)', then "
                                 f"'let y = m({', '.join(sig.inputs)})'")
        for name, sizes, x in zip(sig.inputs, sig.sizes, xs):
            if sizes is not None:
                try:
                    self.check_sizes(name, sizes, x, frame, sig.span)
                except SpecError as exc:
                    self.record(exc, frame)  # with the call that got here
        values: dict[str, Tensor | None] = dict(zip(sig.inputs, xs))
        if self.stmt_shapes is not None:  # the inputs' types, for the code generator
            self.note_shapes(sig, (tuple(x.type for x in xs), None))
        decls: dict[str, Frame] = {}  # declared module -> the frame it was declared in (the lets it sees then)
        read: set = set()  # the keys of the values the steps that ran read, and ("module", name) of those applied
        failures = self.failures
        self.flow_body(block.body, sig, frame, decls, values, xs[0], read)
        if self.failures == failures:  # (a step that failed leaves what it would have read unread)
            self.check_all_used(sig, values, read, decls, xs[0])
        outs = []

        for output in sig.outputs:
            if sig.keys.get(output) not in values:
                where = next((let.span for let in sig.lets if output in let.names), sig.span)
                self.record(SpecError(f"the output '{output}' is computed only in a loop, which runs no iteration "
                                      "here", where, hint="compute it after the loop too, or run the loop "
                                                             "at least once"), frame)
            out = values.get(sig.keys.get(output, ""))
            if out is None:
                out = xs[0]  # what failed is reported; the caller goes on with a stand-in
            named = given_back(out.type, xs[0].type.layout)  # a map, tokens or features: its input's, or the rank's
            if named != out.type:
                node = self.add_node(frame, None, "identity", {}, [Tensor(out.node, named)], named, sig.span)
                out = Tensor(node.id, named)
            outs.append(out)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def flow_body(self, body: list[n.Stmt], sig: n.Signature, frame: Frame, decls: dict[str, Frame], values: dict,
                  x: Tensor, read: set) -> None:
        """Run a body's statements (a loop's once an iteration, its variable bound in ``frame``)."""
        for stmt in body:
            if isinstance(stmt, (n.Layer, n.Seq)):
                decls[decl_name(sig, stmt)] = Frame(dict(frame.env), frame.scope, x, frame.where, frame.side,
                                                    block_path=frame.block_path, flow=True)
            elif isinstance(stmt, n.Let) and stmt in sig.shapes:
                self.sizes_of(stmt, values.get(sig.shapes[stmt]), frame)
            elif isinstance(stmt, n.Let) and stmt in sig.lets:
                self.flow_steps(sig.lets[stmt], frame, decls, values, x, read)
                out = values.get(sig.keys[stmt.name])
                if self.stmt_shapes is not None and isinstance(out, Tensor):  # the let's tensor, for the hints
                    self.note_shapes(stmt, (x.type, out.type))
            elif isinstance(stmt, n.For):
                for name, key in sig.loops[stmt]:  # the tensors the loop rebinds, from before it
                    read.add(key)
                    values[name] = values.get(key)
                for _ in self.iterate(stmt, frame, x):
                    self.flow_body(stmt.body, sig, frame, decls, values, x, read)
            else:
                self.stmt(stmt, frame, x)

    def sizes_of(self, stmt: n.Let, x: Tensor | None, frame: Frame) -> None:
        """``let h, w, c = x.shape``: each name the size of its axis (the batch not counted), as the input checked
        with has it; the generated forward reads them from the tensor."""
        if x is None:  # (what failed is reported)
            frame.env.update(dict.fromkeys(stmt.names, 1))
            return
        if len(stmt.names) != len(x.shape):
            frame.env.update(dict.fromkeys(stmt.names, 1))
            self.record(SpecError(f"{len(stmt.names)} names for the sizes of {x.type.describe()}, which has "
                            f"{len(x.shape)} (the batch is not one)", stmt.span, follows_shapes=True,
                            hint=f"one name an axis: 'let {', '.join(f'd{i}' for i in range(len(x.shape)))} = "
                                 f"{stmt.value.value.name}.shape'"), frame)
            return
        frame.env.update(zip(stmt.names, x.shape))

    def flow_steps(self, steps: tuple, frame: Frame, decls: dict[str, Frame], values: dict, x: Tensor,
                   read: set[str]) -> dict:
        """Run a let's steps (or a branch's), each value put in ``values`` by its key (None where it failed), the
        keys they read put in ``read``; gives ``values``."""
        for step in steps:
            dests = step.dests or (step.dest,)
            for s in step.srcs:
                if isinstance(s, str) and s not in values and step.kind != "if":  # read before a loop bound it
                    name = s.split("%")[0]
                    raise SpecError(f"'{name}' is read before any let gives it a value: the loop binds it in a "
                                    "later statement, or an earlier iteration, than this one", step.span,
                                    hint=f"give '{name}' a value before the loop, or read it only where an "
                                         "earlier iteration has (a conditional tensor: '... if i > 0 else ...')")
            srcs = [values.get(s) if isinstance(s, str) else s for s in step.srcs]
            if step.kind == "if":  # (its branch may read the tensor it rebinds)
                try:
                    chosen = 0 if self._truth(step.cond, frame, x) else 1
                except SpecError as exc:
                    self.record(exc, frame)
                    values[step.dest] = None
                    continue
                self.flow_steps(step.branches[chosen], frame, decls, values, x, read)
                read.add(step.srcs[chosen])
                out = values.get(step.srcs[chosen])
                values[step.dest] = out
                if self.stmt_shapes is not None and out is not None:
                    self.note_shapes(step, ((out.type,), out.type))
                continue
            values.update(dict.fromkeys(dests))  # until made: an operand failed (reported), or this does
            # (a step of a let's own chain, gelu(m(t)), reads the key it writes: that is no use of the let)
            read.update(s for s in step.srcs if isinstance(s, str) and s not in dests)
            if step.kind == "apply":
                read.add(("module", step.op))
            if any(s is None for s in srcs):
                continue
            if step.kind in ("copy", "list", "item"):
                try:
                    values[step.dest] = self.flow_list(step, frame, srcs, x)
                except SpecError as exc:
                    self.record(exc, frame)
                continue
            if any(isinstance(s, tuple) for s in srcs):  # cat(xs, 1): a list's tensors
                srcs = [t for s in srcs for t in (s if isinstance(s, tuple) else (s,))]
                if not srcs and step.kind != "join":  # (a concat whose every branch is off says so)
                    self.record(SpecError(f"{step.layer.func} of an empty list of tensors", step.span), frame)
                    continue
            try:
                if step.kind == "run":  # statements in turn, written out here: a recursion through a structured
                    if not srcs:  # statement opens no more Python frames than through a seq (recursion.py)
                        self.no_source(step, frame)
                    out = srcs[0]
                    for stmt in step.body:
                        out = self.stmt(stmt, frame, out)
                elif step.kind == "each":  # a concat's branches as its for/if/let give them (a generator: as above)
                    outs = []
                    with closing(self._leaves(step.body, frame, srcs[0])) as leaves:
                        for stmt in leaves:  # a branch its condition switches off leaves the list
                            if getattr(stmt, "cond", None) is None or isinstance(stmt, n.Side) or \
                                    self._truth(stmt.cond, frame, srcs[0]):
                                outs.append(self.stmt(stmt, frame, srcs[0]))
                    out = tuple(outs)
                elif step.kind == "grow":  # a dense's list: each member on the concatenation so far (as above)
                    features = [srcs[0]]
                    with closing(self._leaves(step.body, frame, srcs[0])) as leaves:
                        for stmt in leaves:
                            inp = self.member_input(stmt, frame, features)
                            self.grow(stmt, features, inp, self.stmt(stmt, frame, inp))
                    out = self.grown_list(step, features)
                else:
                    out = self.flow_step(step, frame, decls, srcs)
            except (SpecErrors, BudgetExceeded):
                raise
            except SpecError as exc:
                self.record(exc, frame)
                continue
            values.update(zip(dests, out) if step.dests else [(step.dest, out)])
        return values

    def flow_list(self, step: n.Flow, frame: Frame, srcs: list, x: Tensor):
        """A copy, a list of tensors (its lists' tensors in order), or one tensor of a list."""
        if step.kind == "copy":
            return srcs[0]
        if step.kind == "list":
            return tuple(t for s in srcs for t in (s if isinstance(s, tuple) else (s,)))
        index = self.eval(step.index, frame, x)
        if not isinstance(index, int) or isinstance(index, bool):
            raise SpecError(f"a list of tensors is indexed by an integer, got {type_name(index)}", step.index.span)
        if not -len(srcs[0]) <= index < len(srcs[0]):
            raise SpecError(f"index {index} is out of range: the list holds {len(srcs[0])} tensors here",
                            step.index.span)
        return srcs[0][index]

    def check_all_used(self, sig: n.Signature, values: dict, read: set, decls: dict, x: Tensor) -> None:
        """Every module this call makes is applied and every tensor it computes read, where a conditional tensor
        took one branch: what the other branch alone uses would get no gradient (and its parameters no count)."""
        outputs = {sig.keys.get(o) for o in sig.outputs}
        for let in sig.lets:
            for name in let.names:
                if sig.keys.get(name) == name and values.get(name) is not None and name not in read | outputs:
                    raise SpecError(f"'{name}' is computed but not used here: the conditional tensor that reads it "
                                    "takes its other branch", let.span,
                                    hint=f"compute it in that branch instead, '... if flag else <what {name} is>'")
        for name, decl in sig.decls.items():  # made unconditionally, or where its condition holds
            if name in decls and ("module", name) not in read and (
                    decl.cond is None or self._truth(decl.cond, decls[name], x)):
                raise SpecError(f"module '{name}' is made here but this call applies it nowhere: the conditional "
                                "tensor that applies it takes its other branch", decl.span,
                                hint=f"make it where that branch runs only: '{name} = ... if <its condition>'")

    def check_sizes(self, name: str, sizes: list[n.Expr], x: Tensor, frame: Frame, span: n.Span) -> None:
        """An input given as ``x: seq_len x dim`` must have those sizes here."""
        want = [self.eval(e, frame, x) for e in sizes]
        for v, e in zip(want, sizes):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise SpecError(f"a size of input '{name}' must be a positive integer, got {type_name(v)} {v!r}",
                                e.span)
        if tuple(want) != x.shape:
            written, values = " x ".join(_text(e) for e in sizes), " x ".join(map(str, want))
            says = written if written == values else f"{written} = {values}"  # (not '3 = 3')
            raise SpecError(f"input '{name}' is {x.type.describe()} here, but the block says {says}", span,
                            follows_shapes=True,
                            hint="the sizes in the signature are what every caller must pass")

    def flow_step(self, step: n.Flow, frame: Frame, decls: dict[str, Frame], srcs: list) -> Tensor:
        accepted = _reads(step, self)
        if accepted != ANY:  # a tensor of unnamed axes, read in the layout the module or op needs
            prefer = frame.block_input.type.layout  # (MaxViT's groups of tokens stay groups through a linear layer)
            srcs = [Tensor(s.node, as_named(s.type, accepted, prefer)) if isinstance(s, Tensor) else s for s in srcs]
        if step.kind == "apply":
            decl = step.layer
            at = decls[step.op]
            if len(srcs) == 1 and not step.dests:
                self._one_output(decl, step, at)
                out = self.stmt(decl, at, srcs[0])
            else:
                out = self.apply_many(decl, at, srcs, len(step.dests) or 1)
                if step.dests:
                    if self.stmt_shapes is not None:  # each output's types, under (step, its index)
                        ins = tuple(s.type for s in srcs)
                        for i, o in enumerate(out):
                            self.note_shapes((step, i), (ins, o.type))
                    return out
        elif step.kind == "op" and step.dests:
            out = self.op_parts(step.layer, frame, srcs[0], len(step.dests))
            if self.stmt_shapes is not None:  # each part's types, under (step, its index)
                for i, o in enumerate(out):
                    self.note_shapes((step, i), ((srcs[0].type,), o.type))
            return out
        elif step.kind == "op" and REGISTRY[step.layer.func].inputs != 1:
            out = self.op_many(step.layer, frame, srcs)
        elif step.kind == "op":
            out = self.stmt(step.layer, frame, srcs[0])
        elif step.kind == "join":
            out = self.join(step, frame, srcs)
        elif step.kind == "neg":
            (x,) = srcs
            node = self.add_node(frame, None, "arith", {"op": "*", "right": -1}, [x], x.type, step.span)
            out = Tensor(node.id, x.type)
        else:
            out = self.arith(step, frame, srcs)
        if self.stmt_shapes is not None:  # the operands' types, and the result's
            ins = tuple(s.type for s in srcs if isinstance(s, Tensor))
            self.note_shapes(step, (ins, out.type))
        return out

    def arith(self, step: n.Flow, frame: Frame, srcs: list) -> Tensor:
        tensors = [s for s in srcs if isinstance(s, Tensor)]
        args: dict[str, object] = {"op": step.op}
        for side, s in zip(("left", "right"), srcs):
            if isinstance(s, Tensor):
                continue
            value = self.eval(s, frame, tensors[0])
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SpecError(f"a tensor is combined with numbers only, got {type_name(value)}", s.span)
            if step.op == "/" and side == "right" and value == 0:
                raise SpecError("division by zero", s.span)
            args[side] = value
        t = tensors[0].type
        if len(tensors) == 2:
            t = _broadcast(tensors[0].type, tensors[1].type, step)
        node = self.add_node(frame, None, "arith", args, tensors, t, step.span)
        return Tensor(node.id, t)

    def op_many(self, layer: n.Layer, frame: Frame, xs: list[Tensor]) -> Tensor:
        """An op of several tensors (matmul, attention, cat): its arguments checked, its shape rule given every
        input's type."""
        kind = REGISTRY[layer.func]
        pos, kw = self.call_args(layer.arguments, frame, xs[0])
        values, dumped = self.op_args(kind, pos, kw, layer)
        types = tuple(x.type for x in xs)
        try:
            out = kind.shape(values, types)
            macs = kind.macs(values, types, out)
        except ShapeError as exc:
            raise SpecError(f"{kind.name}: {exc}", layer.span, hint=exc.hint, follows_shapes=True) from None
        node = self.add_node(frame, None, kind.name, dict(dumped), xs, out, layer.span, 0, macs)
        if self.stmt_shapes is not None:
            self.note_shapes(layer, (types, out))
        return Tensor(node.id, out)

    def op_parts(self, layer: n.Layer, frame: Frame, x: Tensor, names: int) -> tuple[Tensor, ...]:
        """An op that gives several tensors (split): one node a part, its ``index`` the part's."""
        kind = REGISTRY[layer.func]
        pos, kw = self.call_args(layer.arguments, frame, x)
        if len(pos) > 2 or any(k == "index" for k, _, _ in kw):
            raise SpecError(f"{kind.name} takes its sizes and dim: each part is a tensor of its own", layer.span,
                            hint=f"'let a, b = {kind.name}(x, [3, 5], 1)'")
        values, dumped = self.op_args(kind, pos, kw, layer)
        count = kind.outputs(values)
        if count != names:
            raise SpecError(f"{kind.name} gives {count} tensors here, but the let names {names}", layer.span,
                            hint="name as many tensors in the let as the op gives")
        outs = []
        for i in range(count):
            part = kind.args(**{**dict(dumped), "index": i})
            try:
                t = kind.shape(part, x.type)
            except ShapeError as exc:
                raise SpecError(f"{kind.name}: {exc}", layer.span, hint=exc.hint, follows_shapes=True) from None
            node = self.add_node(frame, None, kind.name, part.model_dump(), [x], t, layer.span)
            outs.append(Tensor(node.id, t))
        return tuple(outs)

    def _one_output(self, decl: n.Stmt, step: n.Flow, frame: Frame) -> None:
        """A declared block of several outputs applied where one tensor is expected: said where it is applied."""
        if not isinstance(decl, n.Layer):
            return
        _, block, _ = self.resolve(decl.func, decl.func_span, frame)
        outputs = getattr(getattr(block, "signature", None), "outputs", None) or ()
        if len(outputs) > 1:
            what = "".join(decl.target.parts)
            raise SpecError(f"'{what}' ({decl.func}) gives {len(outputs)} tensors ({', '.join(outputs)}), where one "
                            "is expected", step.span, notes=[("declared here", decl.span)],
                            hint=f"name them in a let of their own: 'let {', '.join(outputs)} = {what}(...)'")

    def apply_many(self, decl: n.Stmt, frame: Frame, xs: list[Tensor], outputs: int = 1):
        """A declared block applied to several tensors, or giving ``outputs`` tensors (a tuple where several)."""
        block = None
        if isinstance(decl, n.Layer):
            _, block, _ = self.resolve(decl.func, decl.func_span, frame)
        what = "".join(decl.target.parts)
        if block is None or getattr(block, "signature", None) is None:
            if len(xs) == 1:
                raise SpecError(f"'{what}' gives one tensor, not {outputs}", decl.span,
                                hint="only a block with named tensors gives several: 'block B(...) (x) -> (a, b)'")
            raise SpecError(f"'{what}' takes one tensor, given {len(xs)}", decl.span,
                            hint="only a block with named tensors takes several")
        if len(block.signature.outputs) != outputs:
            given = len(block.signature.outputs)
            raise SpecError(f"'{what}' gives {given} tensor{'s' if given > 1 else ''} "
                            f"({', '.join(block.signature.outputs)}), but the let names {outputs}", decl.span,
                            hint="name as many tensors in the let as the block gives")
        if decl.cond is not None and not self._truth(decl.cond, frame, xs[0]):
            raise SpecError(f"'{''.join(decl.target.parts)}' is switched off here, and a module of several inputs "
                            "has no output then", decl.cond.span, hint="make the let that applies it conditional "
                                                                       "instead: call a block")
        pos, kw = self.call_args(decl.arguments, frame, xs[0])
        out = self.call_block(decl, block, pos, kw, frame, xs)
        if self.stmt_shapes is not None:
            first = out[0] if isinstance(out, tuple) else out
            self.note_shapes(decl, (xs[0].type, first.type))
        return out


def _broadcast(a: TensorType, b: TensorType, step: n.Flow) -> TensorType:
    """Sizes equal or 1 axis by axis, in one layout; a tensor of unnamed axes takes the other's layout."""
    out = broadcast((a, b))
    if out is None:
        raise SpecError(f"'{step.op}' of {a.describe()} and {b.describe()}: the shapes do not broadcast", step.span,
                        hint="sizes must be equal, or 1 in one of them, in the same layout", follows_shapes=True)
    return out


def _reads(step: n.Flow, elab) -> tuple[str, ...] | None:
    """The layouts the first layer a step applies takes: an op's (ANY: any), the first op's of a declared seq;
    a block is given a map, tokens or features as the rank says (as it gives them back)."""
    if step.kind not in ("apply", "op"):
        return ANY
    layer = step.layer
    while isinstance(layer, n.Seq) and layer.body:
        layer = layer.body[0]
    if not isinstance(layer, n.Layer) or layer.func not in REGISTRY or layer.func in elab.program.blocks:
        return ("F", "LD", "CHW")
    return REGISTRY[layer.func].layouts


def _text(e: n.Expr) -> str:
    """A size as written, for a message: a name or number, else '(...)'."""
    if isinstance(e, n.Var):
        return e.name
    if isinstance(e, n.Num):
        return str(e.value)
    return "(...)"
