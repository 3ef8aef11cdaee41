"""``__init__`` of a generated class, continued: repeats stay loops and conditionals stay ``if``s; where a
loop or a branch changes the width, a local ``channels`` variable carries it, as one writes it by hand. A mixin
of ``emit_init.InitEmitter``."""

from __future__ import annotations

from ...lang import nodes as n
from . import ir
from .emit import SPAN, symbol
from .emit_init_layer import LayerInit, _Seq
from .irbuild import assigns, if_, loop_target, reads_name

_TRUE, _FALSE = ir.Const(True), ir.Const(False)


class ControlInit(LayerInit):
    """InitEmitter methods for loops and conditionals."""

    def init_for(self, stmt: n.For, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        # a module made in the loop serves every iteration (and none may run): its first layer does not work in
        # place on what came before, nor the layer after the loop on what it made (as forward decides for loops)
        seq.fresh = False
        try:
            return self._init_for(stmt, cur, w, seq)
        finally:
            seq.fresh = False

    def _init_for(self, stmt: n.For, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        if not (isinstance(cur, n.Var) and cur.name in self.channel_vars):
            taken, chans = set(self.init_ns.taken), set(self.channel_vars)
            tapped = self.taps.snapshot() if self.taps is not None else None
            trial: list[ir.Node] = []
            for name in n.pattern_names(stmt.var):
                self.init_ns.reserve(name)
            inner = self.init_body(stmt.body, cur, trial, seq)
            if self.same(inner, cur) and self.channel_vars == chans:
                if trial:
                    w.append(ir.For(loop_target(stmt.var, trial), self.init_expr(stmt.iterable, cur), tuple(trial)))
                return cur
            self.init_ns.taken, self.channel_vars, seq.fresh = taken, chans, False
            if tapped is not None:
                self.taps.restore(tapped)
        chan = self.channel_var(cur)
        variable = ir.Name(chan)
        for name in n.pattern_names(stmt.var):
            self.init_ns.reserve(name)
        sub: list[ir.Node] = []
        inner = self.init_body(stmt.body, symbol(chan), sub, seq)
        changes = self.lower(inner) != variable
        if changes:
            sub.append(ir.Assign(variable, self.lower(inner)))
        changes = changes or assigns(sub, chan)
        if not sub:
            return cur
        if (assigns(sub, chan) or reads_name(sub, chan)) and self.lower(cur) != variable:  # the loop uses it
            w.append(ir.Assign(variable, self.lower(cur)))
        w.append(ir.For(loop_target(stmt.var, sub), self.init_expr(stmt.iterable, cur), tuple(sub)))
        return symbol(chan) if changes else cur

    def init_if(self, stmt: n.If, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        cond = self.init_expr(stmt.cond, cur)
        if cond in (_TRUE, _FALSE):
            return self.init_body(stmt.body if cond == _TRUE else stmt.orelse, cur, w, seq)
        a: list[ir.Node] = []
        b: list[ir.Node] = []
        tapped = self.taps.snapshot() if self.taps is not None else None
        fresh = seq.fresh
        out_a = self.init_body(stmt.body, cur, a, seq)
        fresh_a, seq.fresh = seq.fresh, fresh  # each branch starts from the state before the if
        if tapped is not None:
            after_a = self.taps.snapshot()
            self.taps.restore(tapped)
        out_b = self.init_body(stmt.orelse, cur, b, seq)
        seq.fresh = seq.fresh and fresh_a  # a layer after the if works in place only if both branches allow it
        if tapped is not None:
            self.taps.join(after_a)
        if self.same(out_a, out_b):
            result = out_a
        elif not (a or b):
            result = n.IfExp(self.fold(stmt.cond, cur), out_a, out_b, SPAN)
        else:  # each branch that changes the width says so, as one writes it by hand
            chan = self.channel_var(cur)
            variable = ir.Name(chan)
            width, width_a, width_b = self.lower(cur), self.lower(out_a), self.lower(out_b)
            holds_cur = width == variable  # the variable already holds the width before the if
            if not holds_cur and variable not in (width_a, width_b):
                w.append(ir.Assign(variable, width))
                holds_cur = True
            elif not holds_cur:
                keep = b if width_a == variable else a
                keep.append(ir.Assign(variable, width))
            for branch, out in ((a, width_a), (b, width_b)):
                if out != variable and not (holds_cur and out == width):
                    branch.append(ir.Assign(variable, out))
            result = symbol(chan)
        w += if_(cond, a, b)
        return result
