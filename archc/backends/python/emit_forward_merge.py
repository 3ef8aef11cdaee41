"""``forward`` of a generated class, continued: the statements that merge tensors, a dense block's growing
list of feature maps (its "grow" step), an ensemble's mean and a residual's sum (in place where that is safe). A
mixin of ``emit_forward.ForwardEmitter``."""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from ...lang.dataflow_sugar import IN, lowered
from . import ir
from .emit import creates_modules, plain, static_name
from .irbuild import if_, loop_target, read_attribute

# Layers whose output is a new tensor that their backward does not read: adding into it in place is safe.
ADDS_IN_PLACE_AFTER = {"conv", "batchnorm", "linear"}


class MergeForward:
    """ForwardEmitter methods for dense blocks, ensembles and residuals."""

    def fwd_grow(self, stmt: n.Dense, var: str, w: list, taps) -> str:
        """A dense's "grow" step: a list of feature maps, ``[var]`` first, where each member reads their
        concatenation and appends its output (``_checkpointed`` where the dense checkpoints); the list's local."""
        checkpoint = None
        for _, value, _ in stmt.arguments.kwargs:
            test = self.fwd_expr(value, var)
            checkpoint = None if test == ir.Const(False) else test
        features = ir.Name(self.fwd_ns.create("features"))
        self.dense_names: dict[str, str] = {}
        w.append(ir.Assign(features, ir.List((ir.Name(var),))))
        self._fwd_members(stmt.body, var, features, checkpoint, w, taps)
        return features.id

    def _fwd_members(self, stmts, var: str, features: ir.Name, checkpoint: ir.Node | None, w: list, taps) -> None:
        self.fwd_arranged(stmts, var, w, taps,
                          lambda s, into: self._fwd_member(s, var, features, checkpoint, into, taps))

    def fwd_arranged(self, stmts, var: str, w: list, taps, leaf) -> None:
        """Statements that ``for``, ``if`` and ``let`` arrange (a dense's members, a concat's branches): ``leaf(s,
        into)`` writes each other statement into ``into``, under its condition where that is not fixed."""
        for s in stmts:
            if isinstance(s, n.Init):
                continue
            if isinstance(s, n.Let):
                self.fwd_one(s, var, False, w, taps)
                continue
            sub: list[ir.Node] = []
            if isinstance(s, n.For):
                self.fwd_locals.update(n.pattern_names(s.var))
                self.fwd_arranged(s.body, var, sub, taps, leaf)
                if sub:
                    w.append(ir.For(loop_target(s.var, sub), self.fwd_expr(s.iterable, var), tuple(sub)))
                continue
            if isinstance(s, n.If):
                test = self.fwd_expr(s.cond, var)
                if test == ir.Const(True) or test == ir.Const(False):
                    self.fwd_arranged(s.body if test == ir.Const(True) else s.orelse, var, w, taps, leaf)
                    continue
                other: list[ir.Node] = []
                self.fwd_arranged(s.body, var, sub, taps, leaf)
                self.fwd_arranged(s.orelse, var, other, taps, leaf)
                w.extend(if_(test, sub, other))
                continue
            test = self.fwd_cond(s, s.cond, var) if getattr(s, "cond", None) is not None else ir.Const(True)
            if test == ir.Const(False):
                continue
            if test == ir.Const(True):
                leaf(s, w)
            else:
                leaf(s, sub)
                w.extend(if_(test, sub))

    def _fwd_member(self, s: n.Stmt, var: str, features: ir.Name, checkpoint: ir.Node | None, w: list, taps) -> None:
        new = self.dense_names.setdefault("new", self.fwd_ns.create("new_features"))
        is_module = isinstance(s, (n.Layer, n.Seq)) and s.target is not None and \
            creates_modules(s, self.blocks, self.block_params)
        if checkpoint is not None and not is_module:
            raise SpecError("with checkpoint, each member of a dense must be one named layer or block", s.span,
                            hint="wrap the member's layers in a block and call it by name")
        append = ir.Expr(ir.call(ir.Attr(features, "append"), ir.Name(new)))
        if not is_module:
            inp = self.dense_names.setdefault("inputs", self.fwd_ns.create("inputs"))
            w.append(ir.Assign(ir.Name(inp), _cat(features)))
            out, _ = self.fwd_stmt_into(s, inp, w, new, taps)
            w.append(ir.Expr(ir.call(ir.Attr(features, "append"), ir.Name(out))))
            return
        module = self._module_ref(s.target, var)
        if checkpoint is None:
            self._assign(w, new, ir.Call(module, (_cat(features),)), s)
        else:
            if not s.target.is_plain:
                layer = ir.Name(self.dense_names.setdefault("layer", self.fwd_ns.create("layer")))
                w.append(ir.Assign(layer, module))
                module = layer
            grad = ir.call("torch.is_grad_enabled")
            test = grad if checkpoint == ir.Const(True) else ir.BinOp("and", checkpoint, grad)
            saved = ir.Assign(ir.Name(new), ir.call("_checkpointed", module, features))
            plain_call = ir.Assign(ir.Name(new), ir.Call(module, (_cat(features),)), self._shape(s))
            w.append(ir.If(test, (saved,), (plain_call,)))
        w.append(append)

    def _ensemble(self, stmt: n.Ensemble, var: str) -> ir.Node:
        """The mean of the members' softmax; a for loop of members as a comprehension."""
        def softmax(layer: n.Layer) -> ir.Node:
            return ir.call(ir.Attr(ir.Call(self._module_ref(layer.target, var), (ir.Name(var),)), "softmax"),
                           ir.Const(1))

        parts: list[ir.Node] = []
        for s in stmt.body:
            if isinstance(s, n.Layer):
                parts.append(softmax(s))
            elif isinstance(s, n.For) and len(s.body) == 1 and isinstance(s.body[0], n.Layer):
                self.fwd_locals.update(n.pattern_names(s.var))
                member = softmax(s.body[0])
                loop = ir.Comp("list", member, ((loop_target(s.var, [member]), self.fwd_expr(s.iterable, var), ()),))
                parts.append(loop if len(stmt.body) == 1 else ir.Starred(loop))
            elif not isinstance(s, (n.Let, n.Init)):
                raise SpecError("the generated code lists an ensemble's members, or loops over one member",
                                s.span, hint="write each member, or one for loop of one member")
        listed = parts[0] if len(parts) == 1 and isinstance(parts[0], ir.Comp) else ir.List(tuple(parts))
        return ir.call(ir.Attr(ir.call("torch.stack", listed), "mean"), ir.Const(0))

    def fwd_residual(self, stmt: n.Residual, var: str, w: list, dest: str) -> tuple[str, bool]:
        """The residual's steps (``lang/dataflow_sugar.py``), as torchvision writes them: ``identity = x`` first
        where the shortcut may be the input, the body into ``out`` (a layer the shortcut reads into a local of its
        own), then, where ``when`` holds, stochastic depth on ``out``, the shortcut and the sum."""
        sc = stmt.shortcut
        opts = {k: v for k, v, _ in stmt.arguments.kwargs}
        when = self.ctx.static_truth(opts["when"]) if "when" in opts else True
        if when is None:  # (named before the body's own residuals name theirs)
            test = ir.Attr(ir.Name("self"), self.ctx.when_attribute(stmt))
        ident, out = self.fwd_ns.create("identity"), self.fwd_ns.create("out")
        local = {IN: var, "out%": out, "identity%": ident, "identity%1": ident}
        # a shortcut whose condition the constants decide is there always, or never (__init__ made nothing)
        sc_when = None if sc is None or sc.cond is None else self.ctx.static_truth(sc.cond)
        if when is not False and (sc is None or (sc.cond is not None and sc_when is not True)):
            w.append(ir.Assign(ir.Name(ident), ir.Name(var)))  # the identity shortcut reads the block's input
        steps = lowered(stmt).steps
        body_fresh, i = False, 0
        while steps[i].kind == "run" and steps[i].dest != "identity%":  # the body, in two runs where the shortcut
            into = self.fwd_ns.create(steps[i].dest) if steps[i].dest != "out%" else out  # reads a layer of it
            body_fresh = self._run_into(steps[i].body, local[steps[i].srcs[0]], w, out, into)
            local[steps[i].dest] = into
            i += 1
        if steps[i].kind == "if" and steps[i].dest == "y%":  # the shortcut and the sum where ``when`` holds
            if when is False:
                return self._result(out, var, dest, w, body_fresh)
            add = self._residual_sum(steps[i].branches[0], stmt, opts, local, var)
            if when is None:
                w.append(ir.If(test, tuple(add)))
                return self._result(out, var, dest, w, body_fresh)
        else:
            add = self._residual_sum(steps[i:], stmt, opts, local, var)
        w.extend(add)
        return self._result(out, var, dest, w, True)

    def _residual_sum(self, steps: tuple, stmt: n.Residual, opts: dict, local: dict, var: str) -> list[ir.Node]:
        """Stochastic depth on the body's output, the shortcut (its own steps), and the sum of the two."""
        *shortcut, _ = steps  # (the last, the sum)
        out, ident = local["out%"], local["identity%"]
        add: list[ir.Node] = []
        if "stochastic_depth" in opts:
            p = self.fwd_expr(opts["stochastic_depth"], var)
            mode = self.fwd_expr(opts["mode"], var) if "mode" in opts else ir.Const("row")
            if p != ir.Const(0) and p != ir.Const(0.0):
                dropped = ir.call("_stochastic_depth", ir.Name(out), p, mode, ir.attr("self.training"))
                self._assign(add, out, dropped, stmt)
        for step in shortcut:
            sc = stmt.shortcut
            made = step.branches[0][0] if step.kind == "if" else step
            sc_when = None if sc.cond is None else self.ctx.static_truth(sc.cond)
            if sc_when is False:
                continue
            sub: list[ir.Node] = []
            self._fwd_into(made.body, local.get(made.srcs[0], var) if made.srcs else var, False, sub, ident, None)
            if step.kind == "if" and sc_when is None and sub:
                sub = [ir.If(self._shortcut_test(sc), tuple(sub))]
            add += sub
        self.written[stmt.span] = "scale" not in opts and self._adds_in_place(stmt)
        if self.written[stmt.span]:
            add.append(ir.AugAssign(ir.Name(out), "+", ir.Name(ident), self._shape(stmt)))
        else:
            body: ir.Node = ir.Name(out)
            if "scale" in opts:  # a tree, so the scale keeps its parentheses: out * (1.0 - slope)
                body = ir.BinOp("*", body, self.fwd_expr(opts["scale"], var))
            self._assign(add, out, ir.BinOp("+", body, ir.Name(ident)), stmt)
        return add

    @staticmethod
    def _result(out: str, var: str, dest: str, w: list, fresh: bool) -> tuple[str, bool]:
        """The sum is a new tensor; without it (``when`` false) the body's output is as fresh as it was."""
        if dest != var and dest != out:
            w.append(ir.Assign(ir.Name(dest), ir.Name(out)))
        return (dest if dest != var and dest != out else out), fresh

    def _adds_in_place(self, stmt: n.Residual) -> bool:
        """``out += identity`` (no new tensor) when the body ends in a layer whose fresh output autograd
        does not keep for its backward (a conv, batch norm or linear, or a norm a parameter holds), as torchvision
        writes it."""
        last = stmt.body[-1] if stmt.body else None
        if not isinstance(last, n.Layer) or last.cond is not None or last.target is None:
            return False
        sc = stmt.shortcut
        if sc is not None and sc.source is not None and sc.source == plain(last.target):
            return False  # the shortcut reads this very output
        if self.ctx.op_params.get(last.func) == "width":  # a norm a parameter holds: as torchvision's norm_layer
            return True
        return last.func in ADDS_IN_PLACE_AFTER and last.func not in self.blocks

    def _run_into(self, body: list, var: str, w: list, out: str, into: str) -> bool:
        """A run of a residual's body: its statements into ``out``, the last into ``into`` where that is the
        layer the shortcut reads; whether the result is a fresh tensor."""
        cur, fresh = var, False
        for i, stmt in enumerate(body):
            last = into != out and i == len(body) - 1
            cur, fresh = self.fwd_stmt_into(stmt, cur, w, into if last else out, None, fresh)
        if into != out:
            return False
        if cur != out:
            w.append(ir.Assign(ir.Name(out), ir.Name(cur)))
        return fresh

    def _shortcut_test(self, sc: n.Shortcut) -> ir.Node:
        if len(sc.body) == 1 and static_name(sc.body[0]) and \
                creates_modules(sc.body[0], self.blocks, self.block_params):
            return ir.is_not_none(read_attribute(ir.Name("self"), static_name(sc.body[0])))
        return self.fwd_expr(sc.cond, "x")


def _cat(features: ir.Node) -> ir.Node:
    return ir.call("torch.cat", features, ir.Const(1))

