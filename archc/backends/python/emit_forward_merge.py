"""``forward`` of a generated class, continued: the statements that merge tensors, a dense block's growing
list of feature maps and a residual's sum (in place where that is safe). A mixin of
``emit_forward.ForwardEmitter``."""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from .emit import (
    SPAN,
    Writer,
    creates_modules,
    emit_if,
    loop_target,
    plain,
    read_attribute,
    static_name,
    symbol,
)

# Layers whose output is a new tensor that their backward does not read: adding into it in place is safe.
_ADDS_IN_PLACE_AFTER = {"conv", "batchnorm", "linear"}


class MergeForward:
    """ForwardEmitter methods for dense blocks and residuals."""

    def fwd_dense(self, stmt: n.Dense, var: str, w: Writer, dest: str, taps) -> tuple[str, bool]:
        """A list of feature maps; each member reads their concatenation and adds its output to the list."""
        checkpoint = None
        for _, value, _ in stmt.arguments.kwargs:
            test = self.fwd_expr(value, var)
            checkpoint = None if test == "False" else test
        features = self.fwd_ns.create("features")
        self.dense_names: dict[str, str] = {}
        w.line(f"{features} = [{var}]")
        self._fwd_members(stmt.body, var, features, checkpoint, w, taps)
        self._comment_line(w, f"{dest} = torch.cat({features}, 1)", stmt)
        return dest, True

    def _fwd_members(self, stmts, var: str, features: str, checkpoint: str | None, w: Writer, taps) -> None:
        for s in stmts:
            if isinstance(s, n.Init):
                continue
            if isinstance(s, n.Let):
                self.fwd_one(s, var, False, w, taps)
                continue
            sub = Writer()
            sub.depth = w.depth + 1
            if isinstance(s, n.For):
                self.fwd_locals.update(n.pattern_names(s.var))
                self._fwd_members(s.body, var, features, checkpoint, sub, taps)
                if sub.lines:
                    w.line(f"for {loop_target(s.var, sub.lines)} in {self.fwd_expr(s.iterable, var)}:")
                    w.lines += sub.lines
                continue
            if isinstance(s, n.If):
                test = self.fwd_expr(s.cond, var)
                if test in ("True", "False"):
                    self._fwd_members(s.body if test == "True" else s.orelse, var, features, checkpoint, w, taps)
                    continue
                other = Writer()
                other.depth = w.depth + 1
                self._fwd_members(s.body, var, features, checkpoint, sub, taps)
                self._fwd_members(s.orelse, var, features, checkpoint, other, taps)
                emit_if(w, test, sub, other)
                continue
            test = self.fwd_cond(s, s.cond, var) if getattr(s, "cond", None) is not None else "True"
            if test == "False":
                continue
            self._fwd_member(s, var, features, checkpoint, sub if test != "True" else w, taps)
            if test != "True" and sub.lines:
                w.line(f"if {test}:")
                w.lines += sub.lines

    def _fwd_member(self, s: n.Stmt, var: str, features: str, checkpoint: str | None, w: Writer, taps) -> None:
        new = self.dense_names.setdefault("new", self.fwd_ns.create("new_features"))
        is_module = isinstance(s, (n.Layer, n.Seq)) and s.target is not None and \
            creates_modules(s, self.blocks, self.block_params)
        if checkpoint is not None and not is_module:
            raise SpecError("with checkpoint, each member of a dense must be one named layer or block", s.span,
                            hint="wrap the member's layers in a block and call it by name")
        if not is_module:
            inp = self.dense_names.setdefault("inputs", self.fwd_ns.create("inputs"))
            w.line(f"{inp} = torch.cat({features}, 1)")
            out, _ = self.fwd_stmt_into(s, inp, w, new, taps)
            w.line(f"{features}.append({out})")
            return
        module = self._module_ref(s.target, var)
        call = f"{new} = {module}(torch.cat({features}, 1))"
        if checkpoint is None:
            self._comment_line(w, call, s)
        else:
            if not s.target.is_plain:
                layer = self.dense_names.setdefault("layer", self.fwd_ns.create("layer"))
                w.line(f"{layer} = {module}")
                module, call = layer, f"{new} = {layer}(torch.cat({features}, 1))"
            test = "torch.is_grad_enabled()" if checkpoint == "True" else f"{checkpoint} and torch.is_grad_enabled()"
            w.line(f"if {test}:")
            w.indent().line(f"{new} = _checkpointed({module}, {features})")
            w.dedent()
            w.line("else:")
            w.indent()
            self._comment_line(w, call, s)
            w.dedent()
        w.line(f"{features}.append({new})")

    def fwd_residual(self, stmt: n.Residual, var: str, w: Writer, dest: str) -> tuple[str, bool]:
        """``out = body(x)``, then (if ``when`` holds) stochastic depth on ``out`` and the shortcut added."""
        sc = stmt.shortcut
        opts = {k: v for k, v, _ in stmt.arguments.kwargs}
        when = self.ctx.static_truth(opts["when"]) if "when" in opts else True
        if when is None:
            test = f"self.{self.ctx.when_attribute(stmt)}"
        taps: dict[str, str | None] = {}
        if sc is not None and sc.source is not None:
            taps[sc.source] = None
        ident = self.fwd_ns.create("identity")
        out = self.fwd_ns.create("out")
        # a shortcut whose condition the constants decide is there always, or never (__init__ made nothing)
        sc_when = None if sc is None or sc.cond is None else self.ctx.static_truth(sc.cond)
        if when is not False and (sc is None or (sc.cond is not None and sc_when is not True)):
            w.line(f"{ident} = {var}")  # the identity shortcut reads the block's input
        body_w = Writer(w.depth)
        body_fresh = self._residual_body(stmt.body, var, body_w, out, taps, sc)
        w.lines += body_w.lines
        if when is False:
            return self._result(out, var, dest, w, body_fresh)
        add = w.nested() if when is None else Writer(w.depth)
        if "stochastic_depth" in opts:
            p = self.fwd_expr(opts["stochastic_depth"], var)
            mode = self.fwd_expr(opts["mode"], var) if "mode" in opts else '"row"'
            if p not in ("0", "0.0"):
                self._comment_line(add, f"{out} = _stochastic_depth({out}, {p}, {mode}, self.training)", stmt)
        if sc is not None and sc_when is not False:
            start = var
            if sc.source is not None:
                start = taps.get(sc.source) or var
            conditional = sc.cond is not None and sc_when is None
            sub = add.nested() if conditional else Writer(add.depth)
            self._fwd_into(sc.body, start, False, sub, ident, None)
            if conditional and sub.lines:
                add.line(f"if {self._shortcut_test(sc)}:")
            add.lines += sub.lines
        if "scale" not in opts and self._adds_in_place(stmt):
            self._comment_line(add, f"{out} += {ident}", stmt)
        else:
            body = symbol(out)
            if "scale" in opts:  # a tree, so the scale keeps its parentheses: out * (1.0 - slope)
                body = n.BinOp("*", body, self.fwd_fold(opts["scale"], var), SPAN)
            self._comment_line(add, f"{out} = {self.fwd_print(n.BinOp('+', body, symbol(ident), SPAN))}", stmt)
        if when is None:
            w.line(f"if {test}:")
        w.lines += add.lines
        return self._result(out, var, dest, w, body_fresh if when is None else True)

    @staticmethod
    def _result(out: str, var: str, dest: str, w: Writer, fresh: bool) -> tuple[str, bool]:
        """The sum is a new tensor; without it (``when`` false) the body's output is as fresh as it was."""
        if dest != var and dest != out:
            w.line(f"{dest} = {out}")
        return (dest if dest != var and dest != out else out), fresh

    def _adds_in_place(self, stmt: n.Residual) -> bool:
        """``out += identity`` (no new tensor) when the body ends in a layer whose fresh output autograd
        does not keep for its backward (a conv, batch norm or linear), as torchvision writes it."""
        last = stmt.body[-1] if stmt.body else None
        if not isinstance(last, n.Layer) or last.cond is not None or last.target is None:
            return False
        sc = stmt.shortcut
        if sc is not None and sc.source is not None and sc.source == plain(last.target):
            return False  # the shortcut reads this very output
        return last.func in _ADDS_IN_PLACE_AFTER and last.func not in self.blocks

    def _residual_body(self, body, var, w, out, taps, sc) -> bool:
        cur, fresh = var, False
        for stmt in body:
            name = plain(getattr(stmt, "target", None)) if getattr(stmt, "target", None) is not None else None
            if name is not None and name in taps:
                local = self.fwd_ns.create(name)
                cur, fresh = self.fwd_stmt_into(stmt, cur, w, local, None, fresh)
                taps[name] = local
                fresh = False
                continue
            cur, fresh = self.fwd_stmt_into(stmt, cur, w, out, None, fresh)
        if cur != out:
            w.line(f"{out} = {cur}")
        return fresh

    def _shortcut_test(self, sc: n.Shortcut) -> str:
        if len(sc.body) == 1 and static_name(sc.body[0]) and \
                creates_modules(sc.body[0], self.blocks, self.block_params):
            return f"{read_attribute('self', static_name(sc.body[0]))} is not None"
        return self.fwd_expr(sc.cond, "x")
