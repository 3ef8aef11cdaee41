"""``__init__`` of a generated class: the modules a block or network creates, in spec order.

Channel counts are tracked symbolically: an expression over the constructor's arguments (and
``in_channels``), folded to a number wherever the spec gives numbers, so a call like
``Inception(192, 64, 96, ...)`` reads as in torchvision rather than as a chain of attribute
look-ups. Repeats stay loops and conditionals stay ``if``s; where a loop or branch changes the
width, a local ``channels`` variable carries it.
"""

from __future__ import annotations

import re
from collections import Counter

from ...lang import nodes as n
from ...sema.exprfold import free_names, to_python
from .context import ClassContext
from .emit import (
    SPAN,
    Namespace,
    Writer,
    conditional_names,
    drop_empty_blocks,
    emit_if,
    let_line,
    loop_target,
    plain,
    prune_lets,
    set_attribute,
    static_name,
    symbol,
)
from .emit_init_layer import LayerInit, _Seq
from .emit_taps import TapTracker


class InitEmitter(LayerInit):
    """Writes the body of one class's ``__init__``; returns the output channels as an expression."""

    def __init__(self, ctx: ClassContext):
        self.ctx = ctx
        self.blocks = ctx.blocks
        self.block_params = ctx.block_params
        self.params = ctx.params
        self.constants = ctx.constants
        self.info = ctx.info
        self.infos = ctx.infos
        self.inplace_ok = ctx.inplace_ok
        self.modules_named = ctx.modules_named
        self.init_ns = Namespace(set(ctx.params) | {"in_channels"} | ctx.locals)
        self.channel_vars: set[str] = set()
        self.reassigned: Counter = Counter()  # channel variable -> how often a later statement gave it a new width
        # layers side outputs read (``side ... from NAME``), and their output channels once written
        self.read_later = {s.source for s in ctx.d.body if isinstance(s, n.Side) and s.source is not None}
        self.outputs: dict[str, n.Expr] = {}
        self.taps = TapTracker(ctx.d.body, ctx.info, self.init_expr, self.init_ns.create) \
            if ctx.is_network and n.has_taps(ctx.d.body) else None

    def emit(self, cur: n.Expr, depth: int, into: str | None = None) -> tuple[list[str], n.Expr]:
        """The lines creating the modules (``into``: the Sequential they are appended to, ``self`` for a seq
        block) and the output channels."""
        body = Writer(depth)
        if self.taps is not None:
            body.line("self.feature_info = []  # timm's: each tap's channels, reduction and name")
        cur = self.init_body(self.ctx.d.body, cur, body, _Seq(into))
        needed = set() if self.ctx.is_network else free_names(cur)  # a block's out_channels reads the last width
        lines = prune_lets(body.lines, needed)
        for chan in self.channel_vars - needed:  # a running width nothing reads in the end
            assign = re.compile(rf"\s*{chan} = ")
            reads = [line for line in lines if re.search(rf"\b{chan}\b", line) and not assign.match(line)]
            reads += [line for line in lines if assign.match(line) and re.search(rf"\b{chan}\b", line.split("=", 1)[1])]
            if not reads:
                lines = drop_empty_blocks([line for line in lines if not assign.match(line)])
        return lines, cur

    def fold(self, e: n.Expr, cur: n.Expr | None = None) -> n.Expr:
        return self.ctx.fold(e, cur)

    def init_expr(self, e: n.Expr, cur: n.Expr | None = None) -> str:
        return to_python(self.fold(e, cur))

    def init_body(self, stmts: list[n.Stmt], cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        for stmt in stmts:
            cur = self.init_stmt(stmt, cur, w, seq)
            name = static_name(stmt) if isinstance(stmt, (n.Layer, n.Seq)) and stmt.cond is None else None
            if name is not None and name in self.read_later:  # a side output reads it further on
                if free_names(cur) & self.channel_vars:  # the variable will move on: keep its value now
                    snapshot = self.init_ns.create(f"{name}_channels")
                    w.line(f"{snapshot} = {to_python(cur)}")
                    self.outputs[name] = symbol(snapshot)
                else:
                    self.outputs[name] = cur
        return cur

    def init_stmt(self, stmt: n.Stmt, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Init):  # applied at the end of the network's __init__ (emit_weights)
            return cur
        if self.taps is not None:
            self.taps.before(stmt, w)
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, n.If) else None
        if cond is not None:
            cond_text = self.init_expr(cond, cur)
            if cond_text == "True":
                cond = None
            elif cond_text == "False":
                name = static_name(stmt)
                if name and seq.var is None:
                    w.line(set_attribute("self", name, "None"))
                return cur
        if cond is not None:
            sub = Writer()
            sub.depth = w.depth + 1
            new = self._init_one(stmt, cur, sub, seq)
            name = static_name(stmt)
            if not sub.lines:
                return cur if to_python(new) == to_python(cur) else n.IfExp(self.fold(cond, cur), new, cur, SPAN)
            if seq.var is None:
                for none_name in conditional_names(stmt, self.blocks, self.block_params):
                    w.line(set_attribute("self", none_name, "None"))
            w.line(f"if {cond_text}:")
            w.lines += sub.lines
            if to_python(new) == to_python(cur):
                return cur
            if isinstance(cur, n.Var) and cur.name in self.channel_vars:
                self.reassigned[cur.name] += 1
                w.indent().line(f"{cur.name} = {to_python(new)}")
                w.dedent()
                return cur
            if _mentions_locals(new, sub.lines):
                chan = self.channel_var(cur)
                w.lines.insert(len(w.lines) - len(sub.lines) - 1, "    " * w.depth + f"{chan} = {to_python(cur)}")
                w.indent().line(f"{chan} = {to_python(new)}")
                w.dedent()
                return symbol(chan)
            return n.IfExp(self.fold(cond, cur), new, cur, SPAN)
        return self._init_one(stmt, cur, w, seq)

    def _init_one(self, stmt: n.Stmt, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Tap):
            if self.taps is not None and self.taps.state.main:
                w.line(self.taps.line(stmt, to_python(cur)))
            seq.fresh = False  # the next layer must not change the feature map in place
            return cur
        if self.taps is None:
            return self._init_statement(stmt, cur, w, seq)
        step = self.taps.enter(stmt)
        new = self._init_statement(stmt, cur, w, seq)
        self.taps.leave(stmt, step, w)
        return new

    def _init_statement(self, stmt: n.Stmt, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Let):
            w.lines.append(let_line("    " * w.depth + f"{stmt.name} = {self.init_expr(stmt.value, cur)}", stmt.name))
            self.init_ns.reserve(stmt.name)
            return cur
        if isinstance(stmt, n.Layer):
            return self.init_layer(stmt, cur, w, seq)
        if isinstance(stmt, n.Side):
            layer = stmt.layer
            source = cur if stmt.source is None else self.outputs[stmt.source]
            self.init_layer(layer, source, w, seq)
            return cur
        if isinstance(stmt, n.Seq):
            if stmt.target is None and seq.var is None:
                return self.init_body(stmt.body, cur, w, seq)
            var = self.init_ns.create(plain(stmt.target) or "layers")
            sub = Writer()
            sub.depth = w.depth
            inner = _Seq(var)
            new = self.init_body(stmt.body, cur, sub, inner)
            if seq.var is not None:  # what the next layer of the enclosing Sequential may do in place
                seq.fresh = (seq.fresh and inner.fresh) if stmt.cond is not None else inner.fresh
            prefix = "    " * w.depth + f"{var}.append("
            if sub.lines and all(line.startswith(prefix) and line.endswith(")") for line in sub.lines):
                self.init_ns.taken.discard(var)  # written inline: the name is free again
                items = [line[len(prefix):-1] for line in sub.lines]
                self.register(stmt.target, "nn.Sequential(\n" + "".join(
                    "    " * (w.depth + 1) + item + ",\n" for item in items) + "    " * w.depth + ")", w, seq)
                return new
            w.line(f"{var} = nn.Sequential()")
            w.lines += sub.lines
            self.register(stmt.target, var, w, seq)
            return new
        if isinstance(stmt, n.Concat):
            return self.fold(_sum([self.init_stmt(branch, cur, w, seq) for branch in stmt.branches]))
        if isinstance(stmt, n.Dense):  # each member widens the running concatenation by its own output
            return self.init_body(_growing(stmt.body), cur, w, seq)
        if isinstance(stmt, n.Ensemble):  # the members' class scores, averaged
            widths = [self.init_stmt(s, cur, w, seq) for s in stmt.body]
            return widths[0] if widths else cur
        if isinstance(stmt, n.Gate):  # the gate multiplies its input: the width stays
            self.init_body(stmt.body, cur, w, seq)
            return cur
        if isinstance(stmt, n.Residual):
            attr = self.ctx.when_attributes.get(stmt)
            if attr is not None:
                when = next(v for k, v, _ in stmt.arguments.kwargs if k == "when")
                w.line(f"self.{attr} = {self.init_expr(when, cur)}")
            if stmt.shortcut is not None and stmt.shortcut_first:  # its modules are made first, as written
                self.init_shortcut(stmt, cur, w, seq)
            before, at = self.reassigned.copy(), len(w.lines)
            new = self.init_body(stmt.body, cur, w, seq)
            if stmt.shortcut is not None and not stmt.shortcut_first:
                if any(self.reassigned[v] != before[v] for v in free_names(cur) & self.channel_vars):
                    # the body gave the running width a new value: the shortcut reads the residual's input's
                    snapshot = self.init_ns.create("residual_channels")
                    w.lines.insert(at, "    " * w.depth + f"{snapshot} = {to_python(cur)}")
                    cur = symbol(snapshot)
                self.init_shortcut(stmt, cur, w, seq)
            return new
        if isinstance(stmt, n.For):
            return self.init_for(stmt, cur, w, seq)
        if isinstance(stmt, n.If):
            return self.init_if(stmt, cur, w, seq)
        raise TypeError(type(stmt))

    def init_shortcut(self, stmt: n.Residual, cur: n.Expr, w: Writer, seq: _Seq) -> None:
        """The shortcut's modules; its channels are the body's, so no bookkeeping is kept."""
        sc = stmt.shortcut
        assert sc is not None
        start = self._tap_channels(stmt.body, sc.source, cur) if sc.source is not None else cur
        when = next((v for k, v, _ in stmt.arguments.kwargs if k == "when"), None)
        test = sc.cond if when is None else when if sc.cond is None else n.BinOp("and", when, sc.cond, SPAN)
        cond = self.init_expr(test, cur) if test is not None else "True"  # only where the residual adds
        if cond == "False":
            return
        sub = Writer()
        sub.depth = w.depth + (cond != "True")
        self.init_body(sc.body, start, sub, seq)
        lines = prune_lets(sub.lines)
        if not lines:
            return
        if cond == "True":
            w.lines += lines
            return
        if seq.var is None:
            for name in [x for s in sc.body for x in conditional_names(s, self.blocks, self.block_params)]:
                w.line(set_attribute("self", name, "None"))
        w.line(f"if {cond}:")
        w.lines += lines

    def _tap_channels(self, body: list[n.Stmt], source: str, cur: n.Expr) -> n.Expr:
        w = Writer()
        for stmt in body:
            cur = self._init_one(stmt, cur, w, _Seq("_probe")) if not isinstance(stmt, n.Let) else cur
            if getattr(stmt, "target", None) is not None and plain(stmt.target) == source:
                return cur
        return cur

    def init_for(self, stmt: n.For, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        if not (isinstance(cur, n.Var) and cur.name in self.channel_vars):
            taken, chans = set(self.init_ns.taken), set(self.channel_vars)
            tapped = self.taps.snapshot() if self.taps is not None else None
            trial = Writer()
            trial.depth = w.depth + 1
            for name in n.pattern_names(stmt.var):
                self.init_ns.reserve(name)
            inner = self.init_body(stmt.body, cur, trial, seq)
            if to_python(inner) == to_python(cur) and self.channel_vars == chans:
                if trial.lines:
                    w.line(f"for {loop_target(stmt.var, trial.lines)} in {self.init_expr(stmt.iterable, cur)}:")
                    w.lines += trial.lines
                return cur
            self.init_ns.taken, self.channel_vars = taken, chans
            if tapped is not None:
                self.taps.restore(tapped)
        chan = self.channel_var(cur)
        for name in n.pattern_names(stmt.var):
            self.init_ns.reserve(name)
        sub = Writer()
        sub.depth = w.depth + 1
        inner = self.init_body(stmt.body, symbol(chan), sub, seq)
        changes = to_python(inner) != chan
        if changes:
            sub.line(f"{chan} = {to_python(inner)}")
        changes = changes or any(re.match(rf"\s*{chan} = ", line) for line in sub.lines)
        uses = any(re.search(rf"\b{chan}\b", line) for line in sub.lines)
        if not sub.lines:
            return cur
        if uses and to_python(cur) != chan:
            w.line(f"{chan} = {to_python(cur)}")
        w.line(f"for {loop_target(stmt.var, sub.lines)} in {self.init_expr(stmt.iterable, cur)}:")
        w.lines += sub.lines
        return symbol(chan) if changes else cur

    def init_if(self, stmt: n.If, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        cond = self.init_expr(stmt.cond, cur)
        if cond in ("True", "False"):
            return self.init_body(stmt.body if cond == "True" else stmt.orelse, cur, w, seq)
        a, b = Writer(), Writer()
        a.depth = b.depth = w.depth + 1
        tapped = self.taps.snapshot() if self.taps is not None else None
        out_a = self.init_body(stmt.body, cur, a, seq)
        if tapped is not None:  # each branch starts from the state before the if
            after_a = self.taps.snapshot()
            self.taps.restore(tapped)
        out_b = self.init_body(stmt.orelse, cur, b, seq)
        if tapped is not None:
            self.taps.join(after_a)
        if to_python(out_a) == to_python(out_b):
            result = out_a
        elif not (a.lines or b.lines):
            result = n.IfExp(self.fold(stmt.cond, cur), out_a, out_b, SPAN)
        else:  # each branch that changes the width says so, as one writes it by hand
            chan = self.channel_var(cur)
            holds_cur = to_python(cur) == chan  # the variable already holds the width before the if
            if not holds_cur and chan not in (to_python(out_a), to_python(out_b)):
                w.line(f"{chan} = {to_python(cur)}")
                holds_cur = True
            elif not holds_cur:
                keep = b if to_python(out_a) == chan else a
                keep.line(f"{chan} = {to_python(cur)}")
            for branch, out in ((a, out_a), (b, out_b)):
                if to_python(out) != chan and not (holds_cur and to_python(out) == to_python(cur)):
                    branch.line(f"{chan} = {to_python(out)}")
            result = symbol(chan)
        emit_if(w, cond, a, b)
        return result


def _growing(stmts: list[n.Stmt]) -> list[n.Stmt]:
    """A dense's members as ``concat { identity; member }``: the same modules and widths, for __init__."""
    out: list[n.Stmt] = []
    for s in stmts:
        if isinstance(s, n.For):
            out.append(n.For(s.var, s.iterable, _growing(s.body), s.span))
        elif isinstance(s, n.If):
            out.append(n.If(s.cond, _growing(s.body), _growing(s.orelse), s.span))
        elif isinstance(s, (n.Let, n.Init)):
            out.append(s)
        else:
            identity = n.Layer(None, "identity", s.span, n.Arguments([], []), None, s.span)
            out.append(n.Concat([identity, s], None, s.span))
    return out


def _sum(terms: list[n.Expr]) -> n.Expr:
    """``a + b + c`` as one reads it; a long sum (a concat of many branches) as a balanced tree, so later
    passes never walk a chain as deep as the sum is long."""
    if len(terms) <= 16:
        total = terms[0]
        for term in terms[1:]:
            total = n.BinOp("+", total, term, SPAN)
        return total
    half = len(terms) // 2
    return n.BinOp("+", _sum(terms[:half]), _sum(terms[half:]), SPAN)


def _mentions_locals(e: n.Expr, lines: list[str]) -> bool:
    """Whether ``e`` reads a name assigned in ``lines`` (so it cannot move out of them)."""
    assigned = set()
    for line in lines:
        m = re.match(r"\s*(\w+) = ", line)
        if m:
            assigned.add(m.group(1))
        m = re.match(r"\s*for (\w+) in ", line)
        if m:
            assigned.add(m.group(1))
    return bool(free_names(e) & assigned) or "." in to_python(e)


