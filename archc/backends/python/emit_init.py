"""``__init__`` of a generated class: the modules a block or network creates, in spec order.

Channel counts are tracked symbolically: an expression over the constructor's arguments (and
``in_channels``), folded to a number wherever the spec gives numbers, so a call like
``Inception(192, 64, 96, ...)`` reads as in torchvision rather than as a chain of attribute
look-ups. Repeats stay loops and conditionals stay ``if``s; where a loop or branch changes the
width, a local ``channels`` variable carries it.

The body is built as IR (``ir``) and every question about it (which locals a branch assigns, whether the
running width is read) is answered on the trees; ``ir`` prints it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...lang import nodes as n
from ...lang.dataflow_sugar import arranged
from ...ops import REGISTRY
from ...sema.exprfold import free_names
from . import containers, ir
from .context import ClassContext
from .emit import SPAN, Namespace, conditional_names, plain, static_name, symbol
from .emit_head import AT_START
from .emit_init_control import ControlInit
from .emit_init_layer import _Seq
from .emit_taps import TapTracker, option_names
from .irbuild import (
    assigns,
    drop_empty,
    let,
    prune_lets,
    reads_name,
    set_attribute,
    statements,
    without_assignments,
)
from .lower import lower

_TRUE, _FALSE, _NONE, _SELF = ir.Const(True), ir.Const(False), ir.Const(None), ir.Name("self")


class InitEmitter(ControlInit):
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
        self.symbols: dict[str, ir.Node] = {}  # a name standing in a width for a module's attribute -> its IR
        self.features_end: n.Stmt | object | None = None  # num_features is the width after it (or AT_START)
        self.taps = TapTracker(ctx.d.body, ctx.info, self.init_expr, self.init_ns.create, ctx.tapped,
                               option_names(ctx.d)) if ctx.has_taps else None

    def emit(self, cur: n.Expr, into: str | None = None) -> tuple[list[ir.Node], n.Expr]:
        """The statements creating the modules (``into``: the Sequential they are appended to, ``self`` for a
        seq block) and the output channels."""
        body: list[ir.Node] = []
        if self.taps is not None:
            comment = "timm's: each tap's channels, reduction and name"
            body.append(ir.Assign(ir.attr("self.feature_info"), ir.List(), comment))
        if self.features_end is AT_START:
            body.append(ir.Assign(ir.attr("self.num_features"), self.lower(cur)))
        cur = self.init_body(self.ctx.d.body, cur, body, _Seq(into))
        needed = set() if self.ctx.is_network else ir.reads(self.lower(cur))  # a block's out_channels reads it
        body = prune_lets(body, needed)
        unread = [c for c in sorted(self.channel_vars - needed) if not reads_name(body, c)]
        while unread:  # a running width nothing reads in the end; dropping one may leave another unread
            body = drop_empty(without_assignments(body, set(unread)))
            unread = [c for c in sorted(self.channel_vars - needed) if assigns(body, c) and not reads_name(body, c)]
        return body, cur

    def fold(self, e: n.Expr, cur: n.Expr | None = None) -> n.Expr:
        return self.ctx.fold(e, cur)

    def lower(self, e: n.Expr) -> ir.Node:
        """A folded expression (a width, say) as IR."""
        return lower(e, lambda name: self.symbols.get(name) or ir.attr(name))

    def init_expr(self, e: n.Expr, cur: n.Expr | None = None) -> ir.Node:
        return self.lower(self.fold(e, cur))

    def same(self, a: n.Expr, b: n.Expr) -> bool:
        """Whether two widths are written alike."""
        return self.lower(a) == self.lower(b)

    def init_body(self, stmts: list[n.Stmt], cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        for stmt in stmts:
            for container in containers.first_named(stmt):  # made before the statement that first names it
                if container not in self.modules_named:
                    self.modules_named.add(container)
                    w.append(containers.make(container, self.ctx.containers[container]))
            for target, depth in self.ctx.containers.made.get(id(_original(stmt)), []):  # a container in a container
                made = containers.make_inner(target, depth, self.ctx.containers, self.init_expr)
                if made not in w:  # (a dense's member, rewritten twice: once)
                    w.append(made)
            cur = self.init_stmt(stmt, cur, w, seq)
            if stmt is self.features_end:
                w.append(ir.Assign(ir.attr("self.num_features"), self.lower(cur)))
            name = static_name(stmt) if isinstance(stmt, (n.Layer, n.Seq)) and stmt.cond is None else None
            if name is not None and name in self.read_later:  # a side output reads it further on
                if free_names(cur) & self.channel_vars:  # the variable will move on: keep its value now
                    snapshot = self.init_ns.create(f"{name}_channels")
                    w.append(ir.Assign(ir.Name(snapshot), self.lower(cur)))
                    self.outputs[name] = symbol(snapshot)
                else:
                    self.outputs[name] = cur
        return cur

    def init_stmt(self, stmt: n.Stmt, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Init):  # applied at the end of the network's __init__ (emit_weights)
            return cur
        if self.taps is not None:
            self.taps.before(stmt, w)
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, n.If) else None
        if cond is not None:
            test = self.init_expr(cond, cur)
            if test == _TRUE:
                cond = None
            elif test == _FALSE:
                name = static_name(stmt)
                if name and seq.var is None:
                    w.append(set_attribute(_SELF, name, _NONE))
                return cur
        if cond is None:
            return self._init_one(stmt, cur, w, seq)
        sub: list[ir.Node] = []
        new = self._init_one(stmt, cur, sub, seq)
        if not sub:
            return cur if self.same(new, cur) else n.IfExp(self.fold(cond, cur), new, cur, SPAN)
        if seq.var is None:
            for none_name in conditional_names(stmt, self.blocks, self.block_params):
                w.append(_skipped(stmt, none_name))
        result = cur
        if self.same(new, cur):
            pass
        elif isinstance(cur, n.Var) and cur.name in self.channel_vars:
            self.reassigned[cur.name] += 1
            sub.append(ir.Assign(ir.Name(cur.name), self.lower(new)))
        elif self._mentions_locals(new, sub):
            chan = self.channel_var(cur)  # (a let: dropped where nothing reads it, as Swin's shift mask's width)
            w.append(ir.Assign(ir.Name(chan), self.lower(cur), let=True))
            sub.append(ir.Assign(ir.Name(chan), self.lower(new), let=True))
            result = symbol(chan)
        else:
            result = n.IfExp(self.fold(cond, cur), new, cur, SPAN)
        w.append(ir.If(test, tuple(sub)))
        return result

    def _init_one(self, stmt: n.Stmt, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Tap):
            if self.taps is not None and self.taps.state.main:
                w.append(self.taps.statement(stmt, self.lower(cur)))
            seq.fresh = False  # the next layer must not change the feature map in place
            return cur
        if self.taps is None:
            return self._init_statement(stmt, cur, w, seq)
        step = self.taps.enter(stmt)
        new = self._init_statement(stmt, cur, w, seq)
        if step and stmt in self.taps.holders:  # a block with taps: they are this class's too
            w.append(self.taps.nested(stmt, _SELF if seq.var is None else ir.Name(seq.var)))
        self.taps.leave(stmt, step, w)
        return new

    def _init_statement(self, stmt: n.Stmt, cur: n.Expr, w: list, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Let):
            value = self.init_expr(stmt.value, cur)
            if stmt in self.ctx.hoisted:  # forward reads it from self: computed here once
                w.append(ir.Assign(ir.Attr(_SELF, stmt.name), value))
                value = ir.Attr(_SELF, stmt.name)
            w.append(let(stmt.name, value))
            self.init_ns.reserve(stmt.name)
            return cur
        if isinstance(stmt, n.Layer):
            return self.init_layer(stmt, cur, w, seq)
        if isinstance(stmt, n.Side):
            layer = stmt.layer
            source = cur if stmt.source is None else self.outputs[stmt.source]
            self.init_layer(layer, source, w, seq)
            return cur
        if isinstance(stmt, _OnInput):  # a concat's branch, read for its width alone
            return self._branch_width(stmt, w, seq)
        if isinstance(stmt, n.Seq):
            if stmt.target is None and seq.var is None:
                return self.init_body(stmt.body, cur, w, seq)
            var = self.init_ns.create(plain(stmt.target) or "layers")
            sub: list[ir.Node] = []
            inner = _Seq(var)
            new = self.init_body(stmt.body, cur, sub, inner)
            if seq.var is not None:  # what the next layer of the enclosing Sequential may do in place
                seq.fresh = (seq.fresh and inner.fresh) if stmt.cond is not None else inner.fresh
            items = [_appended(s, var) for s in sub]
            if items and None not in items:  # only appends: the modules are listed in the constructor
                self.init_ns.taken.discard(var)  # the name is free again
                self.register(stmt.target, ir.Stacked(ir.attr("nn.Sequential"), tuple(items)), w, seq)
                return new
            w.append(ir.Assign(ir.Name(var), ir.call("nn.Sequential")))
            w += sub
            self.register(stmt.target, ir.Name(var), w, seq)
            return new
        if isinstance(stmt, n.Concat) and arranged(stmt.branches):  # a running sum of the branches' widths
            if free_names(cur) & self.channel_vars:  # the branches read the input's width while the sum runs
                snapshot = self.init_ns.create("branch_channels")
                w.append(ir.Assign(ir.Name(snapshot), self.lower(cur)))
                cur = symbol(snapshot)
            return self.init_body(_summed(stmt.branches, cur), n.Num(0, SPAN), w, seq)
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
                w.append(ir.Assign(ir.Attr(_SELF, attr), self.init_expr(when, cur)))
            if stmt.shortcut is not None and stmt.shortcut_first:  # its modules are made first, as written
                self.init_shortcut(stmt, cur, w, seq)
            before, at = self.reassigned.copy(), len(w)
            new = self.init_body(stmt.body, cur, w, seq)
            if stmt.shortcut is not None and not stmt.shortcut_first:
                if any(self.reassigned[v] != before[v] for v in free_names(cur) & self.channel_vars):
                    # the body gave the running width a new value: the shortcut reads the residual's input's
                    snapshot = self.init_ns.create("residual_channels")
                    w.insert(at, ir.Assign(ir.Name(snapshot), self.lower(cur)))
                    cur = symbol(snapshot)
                self.init_shortcut(stmt, cur, w, seq)
            return new
        if isinstance(stmt, n.For):
            return self.init_for(stmt, cur, w, seq)
        if isinstance(stmt, n.If):
            return self.init_if(stmt, cur, w, seq)
        raise TypeError(type(stmt))

    def _branch_width(self, stmt: _OnInput, w: list, seq: _Seq) -> n.Expr:
        """A branch's width on the concat's input; a branch its condition switches off adds none."""
        branch = stmt.body[0]
        width = self.init_stmt(branch, stmt.width, w, seq)
        if getattr(branch, "cond", None) is None or isinstance(branch, n.Side):
            return width
        test = self.init_expr(branch.cond, stmt.width)
        if test == _FALSE:
            return n.Num(0, SPAN)
        if isinstance(width, n.IfExp) and width.orelse is stmt.width:  # (the input's width where it is off)
            return n.IfExp(width.cond, width.then, n.Num(0, SPAN), SPAN)
        return width

    def init_shortcut(self, stmt: n.Residual, cur: n.Expr, w: list, seq: _Seq) -> None:
        """The shortcut's modules; its channels are the body's, so no bookkeeping is kept."""
        sc = stmt.shortcut
        assert sc is not None
        start = self._tap_channels(stmt.body, sc.source, cur) if sc.source is not None else cur
        when = next((v for k, v, _ in stmt.arguments.kwargs if k == "when"), None)
        test = sc.cond if when is None else when if sc.cond is None else n.BinOp("and", when, sc.cond, SPAN)
        cond = self.init_expr(test, cur) if test is not None else _TRUE  # only where the residual adds
        if cond == _FALSE:
            return
        sub: list[ir.Node] = []
        self.init_body(sc.body, start, sub, seq)
        sub = prune_lets(sub)
        if not sub:
            return
        if cond == _TRUE:
            w += sub
            return
        if seq.var is None:
            for name in [x for s in sc.body for x in conditional_names(s, self.blocks, self.block_params)]:
                w.append(set_attribute(_SELF, name, _NONE))
        w.append(ir.If(cond, tuple(sub)))

    def _tap_channels(self, body: list[n.Stmt], source: str, cur: n.Expr) -> n.Expr:
        w: list[ir.Node] = []  # thrown away: only the widths are wanted
        for stmt in body:
            cur = self._init_one(stmt, cur, w, _Seq("_probe")) if not isinstance(stmt, n.Let) else cur
            if getattr(stmt, "target", None) is not None and plain(stmt.target) == source:
                return cur
        return cur

    def _mentions_locals(self, e: n.Expr, body: list) -> bool:
        """Whether the width ``e`` reads a name that ``body`` assigns or loops over, or a module's attribute
        (the module may be missing where ``body`` does not run): it cannot move out of ``body``."""
        assigned = set()  # the locals it binds: assigned names and loop variables
        for s in statements(body):
            if isinstance(s, ir.For) or (isinstance(s, ir.Assign) and isinstance(s.target, ir.Name)):
                assigned |= {x.id for x in s.target.walk() if isinstance(x, ir.Name)}
        tree = self.lower(e)
        return bool(ir.reads(tree) & assigned) or any(isinstance(x, ir.Attr) for x in tree.walk())


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


@dataclass(eq=False)
class _OnInput(n.Seq):
    """A concat's branch, which reads the concat's input (of ``width`` channels) whatever the running sum."""

    width: n.Expr | None = None


def _summed(stmts: list[n.Stmt], width: n.Expr) -> list[n.Stmt]:
    """A concat's branches as ``concat { identity; branch }`` each, the running width the sum of theirs so far,
    and each branch fed the concat's input: the same modules and widths, for __init__."""
    out: list[n.Stmt] = []
    for s in stmts:
        if isinstance(s, n.For):
            out.append(n.For(s.var, s.iterable, _summed(s.body, width), s.span))
        elif isinstance(s, n.If):
            out.append(n.If(s.cond, _summed(s.body, width), _summed(s.orelse, width), s.span))
        elif isinstance(s, (n.Let, n.Init)):
            out.append(s)
        else:
            identity = n.Layer(None, "identity", s.span, n.Arguments([], []), None, s.span)
            out.append(n.Concat([identity, _OnInput(None, [s], None, s.span, width)], None, s.span))
    return out


def _original(stmt: n.Stmt) -> n.Stmt:
    """The statement that ``_summed`` or ``_growing`` wrapped (``concat { identity; stmt }``), or ``stmt``."""
    if isinstance(stmt, n.Concat) and len(stmt.branches) == 2 and isinstance(stmt.branches[0], n.Layer) and \
            stmt.branches[0].func == "identity" and stmt.branches[0].span is stmt.span:
        inner = stmt.branches[1]
        return inner.body[0] if isinstance(inner, _OnInput) else inner
    return stmt


def _sum(terms: list[n.Expr]) -> n.Expr:
    """``a + b + c`` as one reads it; a long sum (a concat of many branches) as a balanced tree, so later
    passes never walk a chain as deep as the sum is long."""
    terms = [t for t in terms if not (isinstance(t, n.Num) and t.value == 0)] or terms[:1]  # (a sum from 0)
    if len(terms) <= 16:
        total = terms[0]
        for term in terms[1:]:
            total = n.BinOp("+", total, term, SPAN)
        return total
    half = len(terms) // 2
    return n.BinOp("+", _sum(terms[:half]), _sum(terms[half:]), SPAN)


def _appended(s: ir.Node, var: str) -> ir.Node | None:
    """The module of ``var.append(module)``; None for any other statement."""
    if isinstance(s, ir.Expr) and not s.comment and isinstance(s.value, ir.Call) and not s.value.kwargs and \
            s.value.func == ir.Attr(ir.Name(var), "append") and len(s.value.args) == 1:
        return s.value.args[0]
    return None


def _skipped(stmt, name: str) -> ir.Node:
    """The attribute of a conditional statement where it is skipped: None, and a buffer's (Swin V2's
    relative_coords_table) a buffer of None, which ``register_buffer`` may fill (not in the state_dict)."""
    kind = REGISTRY.get(stmt.func) if isinstance(stmt, n.Layer) else None
    if kind is not None and kind.buffer:
        return ir.Expr(ir.call(ir.Attr(_SELF, "register_buffer"), ir.Const(name), _NONE))
    return set_attribute(_SELF, name, _NONE)
