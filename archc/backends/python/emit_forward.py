"""``forward`` of a generated class: one call per line with the shape as a comment.

Structure lives here, as torchvision writes it: branches are ``torch.cat``, residuals
``out = out + identity`` (``out += identity`` where that is safe), dense blocks a list of
feature maps, side outputs a training-only tuple. An unnamed parameter-free layer is a function
call; a ReLU is in place where its input is a fresh tensor nothing else reads. A residual, a gate, a
concat and a dense are written from the steps they lower to (``lang/dataflow_sugar.py``; the mixins
``emit_forward_sugar`` and ``emit_forward_merge``): each run of statements into a local (an arranged
concat's branches appended to a list, a dense's members to its growing list), then the join.

The body is built as IR statements (``ir``); locals are plain strings until a statement names them.
"""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from ...lang.dataflow_sugar import grown
from ...ops import REGISTRY, OpKind
from ...sema.exprfold import fold, free_names, literal
from . import containers, ir, irparse
from .context import ClassContext
from .emit import (
    SPAN,
    Namespace,
    as_tuple,
    creates_modules,
    given_args,
    input_features,
    is_attribute,
    keeps_output,
    may_work_in_place,
    plain,
    shape_comment,
    static_name,
    symbol,
)
from .emit_forward_sugar import SugarForward
from .irbuild import if_, interpolated, let, loop_target, prune_lets, read_attribute, without_assignments
from .lower import lower

SELF = ir.Name("self")
TRAINING = ir.Attr(SELF, "training")


class ForwardEmitter(SugarForward):
    """Builds the body of one class's ``forward``."""

    def __init__(self, ctx: ClassContext):
        self.ctx = ctx
        self.blocks = ctx.blocks
        self.block_params = ctx.block_params
        self.params = ctx.params
        self.info = ctx.info
        self.inplace_ok = ctx.inplace_ok
        self.fwd_ns = Namespace(set(ctx.params) | ctx.locals)
        self.fwd_ns.reserve("x")
        self.fwd_locals: set[str] = set()
        self.owner: ir.Node = SELF  # the module whose attributes the statements' names are
        self.sides: dict[n.Side, str] = {}  # side output -> its local, in the order forward computes them
        self.current: n.Stmt | None = None  # the statement being written (its recorded tensor types)
        self.sides_from: dict[str, list[n.Side]] = {}  # layer name -> the side outputs that read it
        self.run_time: dict[str, ir.Node] = {}  # a name folding keeps whole -> the value forward reads there
        self.candidates: dict[str, n.Let] = {}  # lets __init__ could compute once as attributes
        # whether each call it writes works in place, by statement (forward's become the record, ``StmtInfo``;
        # forward_taps' are its own: a tap before an activation keeps it out of place there)
        self.written: dict[n.Span, bool] = {}
        for s in ctx.d.body:
            if isinstance(s, n.Side) and s.source is not None:
                self.sides_from.setdefault(s.source, []).append(s)

    def emit(self) -> list[ir.Node]:
        body: list[ir.Node] = []
        var, _ = self.fwd_body(self.ctx.d.body, "x", False, body, None)
        if self.sides:
            # returned as the spec writes them (a ``side ... from`` is computed where its source is)
            sides = [ir.Name(self.sides[s]) for s in sorted(self.sides, key=lambda s: (s.span.line, s.span.column))]
            test = ir.is_not_none(sides[0])
            for side in sides[1:]:
                test = ir.BinOp("or", test, ir.is_not_none(side))
            body.append(ir.If(ir.BinOp("and", TRAINING, test), (ir.Return(ir.Tuple((ir.Name(var), *sides))),)))
        body.append(ir.Return(ir.Name(var)))
        self.info.in_place.update(self.written)
        return self.hoist(prune_lets(body))

    def fwd_expr(self, e: n.Expr, var: str) -> ir.Node:
        return self.fwd_lower(self.fwd_fold(e, var))

    def fwd_lower(self, tree: n.Expr) -> ir.Node:
        """A forward expression tree as IR: the parameters it reads are ``self.`` attributes."""
        return lower(tree, self._name)

    def _construction_time(self) -> set[str]:
        """The run-time names forward made that __init__ knows too: ``self.in_channels``."""
        return {k for k, v in self.run_time.items() if v == ir.Attr(SELF, "in_channels")}

    def hoist(self, body: list) -> list:
        """``body`` with the lets it reads that __init__ can compute once read from ``self`` instead (``self.pad``,
        as a person writes a block's constant): their bindings leave forward, and __init__ sets the attributes."""
        read = set()
        for s in body:
            read |= ir.reads(s.value) if isinstance(s, ir.Assign) and s.let else ir.reads(s)
        names = {name for name in self.candidates if name in read and self.ctx.hoist(self.candidates[name])}
        if not names:
            return body
        body = without_assignments(body, names)
        return prune_lets([ir.substitute(s, {name: ir.Attr(SELF, name) for name in names}) for s in body])

    def _name(self, s: str) -> ir.Node:
        if s in self.run_time:
            return self.run_time[s]
        if s in self.fwd_locals:
            return ir.Name(s)
        if "." in s:  # a module's class: nn.ReLU6
            return ir.attr(s)
        if s in self.params:
            self.ctx.stored.add(s)
            return ir.Attr(SELF, s)
        return ir.Name(s)

    def _run_time_value(self, value: ir.Node) -> n.Var:
        """A value only forward knows (``self.in_channels``, ``x.shape[1]``) as a name that folding keeps whole
        and ``_name`` gives back (no spec name holds ``<``)."""
        key = f"<run time {len(self.run_time)}>"
        self.run_time[key] = value
        return symbol(key)

    def fwd_fold(self, e: n.Expr, var: str) -> n.Expr:
        """``e`` as forward computes it: constants folded, ``in``/``out`` channels read at run time."""
        ctx = self.ctx

        def tensors(ref: n.TensorRef, attr: str):
            if attr != "channels":
                raise SpecError(f"'{ref.which}.{attr}' cannot be used at run time", ref.span)
            if ref.which == "in" and ctx.is_network:
                return ctx.fold(input_features(ctx.d))
            if ref.which == "in":
                ctx.stored.add("in_channels")
                return self._run_time_value(ir.Attr(SELF, "in_channels"))
            layouts = {t.layout for t, _ in self.info.get(self.current)} if self.current is not None else set()
            first, last = {"CHW", "CL", "CDHW"}, {"HWC", "F", "LD", "GLD"}  # where the layouts keep the channels
            axis = 1 if not layouts or layouts <= first else -1 if layouts <= last else None
            if axis is None:
                raise SpecError(f"'out.channels' sees tensors of different layouts here ({', '.join(sorted(layouts))})",
                                ref.span)
            return self._run_time_value(ir.Index(ir.Attr(ir.Name(var), "shape"), ir.const(axis)))

        folded = fold(e, ctx.printing, ctx.named, tensors=tensors)
        ctx.referenced |= free_names(folded)
        return folded

    def fwd_body(self, stmts: list[n.Stmt], var: str, fresh: bool, w: list, taps: dict | None) -> tuple[str, bool]:
        for stmt in stmts:
            var, fresh = self.fwd_stmt(stmt, var, fresh, w, taps)
            for side in self.sides_from.get(static_name(stmt) or "", []):  # side ... from this layer: here, in order
                self._side(side, var, w)
                fresh = False
        return var, fresh

    def _side(self, stmt: n.Side, var: str, w: list) -> None:
        """A side output, computed in training only, where its input is."""
        name = plain(stmt.target)
        if name is None:
            raise SpecError("a side output needs a plain name", stmt.target.span)
        local = ir.Name(self.fwd_ns.create(name))
        self.sides[stmt] = local.id
        w.append(ir.Assign(local, ir.Const(None), annotation="Tensor | None"))
        head = read_attribute(SELF, name)
        test = TRAINING if stmt.cond is None else ir.BinOp("and", ir.is_not_none(head), TRAINING)
        w.append(ir.If(test, (ir.Assign(local, ir.Call(head, (ir.Name(var),))),)))

    def _module_ref(self, target: n.Target, var: str) -> ir.Node:
        """The module (or learned tensor) a statement's name refers to in forward: an attribute of ``owner``."""
        if target.is_plain:
            return read_attribute(self.owner, plain(target))
        if target.dotted:
            return containers.get(self.owner, target, self.ctx.containers, lambda e: self.fwd_expr(e, var))
        name = interpolated(target, lambda e: self.fwd_expr(e, var))
        if not target.quoted and isinstance(name, ir.Const) and is_attribute(name.value):
            return ir.Attr(self.owner, name.value)  # the interpolation is a constant
        return ir.call("getattr", self.owner, name)

    def fwd_stmt(self, stmt: n.Stmt, var: str, fresh: bool, w: list, taps: dict | None) -> tuple[str, bool]:
        if isinstance(stmt, n.Init):  # nothing in forward
            return var, fresh
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, (n.If, n.Side)) else None
        if cond is not None:
            test = self.fwd_cond(stmt, cond, var)
            if test == ir.Const(False):
                return var, fresh
            if not test == ir.Const(True):
                sub: list[ir.Node] = []
                new, sub_fresh = self.fwd_one(stmt, var, fresh, sub, taps, dest=var)
                if new != var:  # skipped, the statement leaves the tensor as it was: the same name either way
                    sub.append(assign(var, new))
                w.extend(if_(test, sub))
                return var, fresh and sub_fresh
        return self.fwd_one(stmt, var, fresh, w, taps)

    def _seq_fresh(self, body) -> bool:
        """Whether an nn.Sequential's output is a new tensor that no backward reads, as __init__ decides its
        ReLUs (a Sequential starts from an input it does not own): a view or a ReLU's output is not."""
        fresh = False
        for stmt in body:
            if isinstance(stmt, (n.Let, n.Init)):
                continue
            if isinstance(stmt, n.Layer) and stmt.func in REGISTRY and not (
                    stmt.func in self.blocks or stmt.func in self.block_params or stmt.func in self.ctx.networks
                    or stmt.func in self.ctx.op_params):
                kind = REGISTRY[stmt.func]
                made = fresh if kind.view or kind.name == "identity" else not keeps_output(kind, stmt, lambda e: e)
            elif isinstance(stmt, n.Layer) and self.ctx.op_params.get(stmt.func) == "width":  # a norm, as above
                made = fresh
            elif isinstance(stmt, n.Seq):
                made = self._seq_fresh(stmt.body)
            else:
                made = False
            fresh = (fresh and made) if getattr(stmt, "cond", None) is not None else made
        return fresh

    def fwd_cond(self, stmt, cond: n.Expr, var: str) -> ir.Node:
        if creates_modules(stmt, self.blocks, self.block_params):
            name = static_name(stmt)
            if name is not None and isinstance(stmt, (n.Layer, n.Seq)):
                return ir.is_not_none(read_attribute(SELF, name))
        return self.fwd_expr(cond, var)

    def fwd_one(self, stmt: n.Stmt, var: str, fresh: bool, w: list, taps: dict | None,
                dest: str | None = None) -> tuple[str, bool]:
        dest = dest or var
        self.current = stmt
        if isinstance(stmt, n.Let):
            value = self.fwd_fold(stmt.value, var)
            if self.ctx.hoistable(stmt, value, self.fwd_locals - set(self.candidates), self._construction_time()):
                self.candidates[stmt.name] = stmt  # __init__ may compute it once (``hoist``)
            self.fwd_locals.add(stmt.name)
            w.append(let(stmt.name, self.fwd_lower(value)))
            return var, fresh
        if isinstance(stmt, n.Layer):
            return self.fwd_layer(stmt, var, fresh, w, dest, taps)
        if isinstance(stmt, n.Side):
            if stmt.source is None:
                self._side(stmt, var, w)
            return var, False  # the side output read it: nothing may change it in place
        if isinstance(stmt, n.Tap):
            return var, False  # a feature map forward_taps returns: nothing may change it in place
        if isinstance(stmt, n.Seq):
            if stmt.target is None:
                return self.fwd_body(stmt.body, var, fresh, w, taps) if dest == var else \
                    self._fwd_into(stmt.body, var, fresh, w, dest, taps)
            self._assign(w, dest, ir.Call(self._module_ref(stmt.target, var), (ir.Name(var),)), stmt)
            self._tap(stmt, dest, taps)
            return dest, self._seq_fresh(stmt.body)
        if isinstance(stmt, (n.Concat, n.Gate)):
            return self.fwd_sugar(stmt, var, w, dest, taps)
        if isinstance(stmt, n.Residual):
            return self.fwd_residual(stmt, var, w, dest)
        if isinstance(stmt, n.Ensemble):
            self._assign(w, dest, self._ensemble(stmt, var), stmt)
            return dest, True
        if isinstance(stmt, n.Dense):  # a checkpointed one as its grown list, which ``_checkpointed`` takes
            return self.fwd_sugar(stmt, var, w, dest, taps, grown(stmt) if self.checkpoints(stmt, var) else None)
        if isinstance(stmt, (n.For, n.If)) and dest != var:
            w.append(assign(dest, var))
            var = dest
        if isinstance(stmt, n.For):
            self.fwd_locals.update(n.pattern_names(stmt.var))
            sub: list[ir.Node] = []
            self._fwd_into(stmt.body, var, False, sub, var, taps)
            if sub:
                w.append(ir.For(loop_target(stmt.var, sub), self.fwd_expr(stmt.iterable, var), tuple(sub)))
            return var, False
        if isinstance(stmt, n.If):
            test = self.fwd_expr(stmt.cond, var)
            if test == ir.Const(True) or test == ir.Const(False):
                return self._fwd_into(stmt.body if test == ir.Const(True) else stmt.orelse, var, False, w, var, taps)
            then: list[ir.Node] = []
            orelse: list[ir.Node] = []
            self._fwd_into(stmt.body, var, False, then, var, taps)
            self._fwd_into(stmt.orelse, var, False, orelse, var, taps)
            w.extend(if_(test, then, orelse))
            return var, False
        raise TypeError(type(stmt))

    def _fwd_into(self, stmts, var: str, fresh: bool, w: list, dest: str, taps) -> tuple[str, bool]:
        """Run ``stmts`` on ``var`` leaving the result in ``dest``."""
        if not stmts:
            if dest != var:
                w.append(assign(dest, var))
            return dest, fresh
        cur = var
        for stmt in stmts:
            cur, fresh = self.fwd_stmt_into(stmt, cur, w, dest, taps, fresh)
        if cur != dest:
            w.append(assign(dest, cur))
        return dest, fresh

    def fwd_stmt_into(self, stmt, var: str, w: list, dest: str, taps, fresh: bool = False) -> tuple[str, bool]:
        if isinstance(stmt, n.Init):
            return var, fresh
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, (n.If, n.Side)) else None
        if cond is not None and dest != var:
            w.append(assign(dest, var))
            return self.fwd_stmt(stmt, dest, False, w, taps)
        if cond is not None:
            return self.fwd_stmt(stmt, var, fresh, w, taps)
        return self.fwd_one(stmt, var, fresh, w, taps, dest=dest)

    def fwd_layer(self, stmt: n.Layer, var: str, fresh: bool, w: list, dest: str, taps) -> tuple[str, bool]:
        is_block = stmt.func in self.blocks or stmt.func in self.block_params or stmt.func in self.ctx.networks
        held = stmt.func in self.ctx.op_params  # a parameter holding an op: a module like any named layer
        kind = None if is_block or held else REGISTRY[stmt.func]
        x = ir.Name(var)
        if kind is not None and kind.template is not None and (stmt.target is None or kind.learned is not None):
            values = self.template_args(kind, stmt, var)
            values["x"] = x
            if kind.learned is not None:
                values["param"] = self._module_ref(stmt.target, var)
            self._assign(w, dest, ir.substitute(_template(kind), values), stmt)
            return dest, False
        if kind is not None and stmt.target is None and kind.functional is not None:
            if kind.functional == "":
                if dest != var:
                    w.append(assign(dest, var))
                return dest, fresh if dest == var else False
            pos, kw = self.fwd_op_args(kind, stmt, var)
            if may_work_in_place(kind, stmt, lambda e: self.fwd_fold(e, var)):
                self.inplace_ok[stmt] = fresh
                self.written[stmt.span] = fresh and dest == var
                if self.written[stmt.span]:
                    kw.append(("inplace", ir.Const(True)))
            extra, extra_kw = irparse.arguments(kind.functional_extra)
            same = kind.same_functional is not None and stmt.span in self.info.same_padded  # a helper takes "same"
            call = ir.Call(irparse.expression(kind.same_functional if same else kind.functional), (x, *pos, *extra),
                           (*kw, *extra_kw))
            self._assign(w, dest, call, stmt)
            return dest, fresh if kind.view else not keeps_output(kind, stmt, lambda e: self.fwd_fold(e, var))
        if (kind is not None and may_work_in_place(kind, stmt, lambda e: self.fwd_fold(e, var))) or held:
            self.inplace_ok[stmt] = fresh and dest == var
        assert stmt.target is not None
        module = self._module_ref(stmt.target, var)
        if kind is None or kind.call is None:
            call = ir.Call(module, (x,))
        else:
            call = ir.substitute(irparse.expression(kind.call, ("module", "x")), {"module": module, "x": x})
        self._assign(w, dest, call, stmt)
        self._tap(stmt, dest, taps)
        if kind is None:  # a block, or an op held by a parameter: its output may be anything, but a norm's is new
            return dest, held and fresh and self.ctx.op_params[stmt.func] == "width"  # (or, nn.Identity, its input)
        return dest, fresh if kind.view else not keeps_output(kind, stmt, lambda e: self.fwd_fold(e, var))

    def template_args(self, kind: OpKind, stmt: n.Layer, var: str) -> dict[str, ir.Node]:
        """Every argument a forward-only form reads (defaults too), lists as tuples."""
        given = given_args(kind, stmt)
        read = ir.reads(_template(kind))
        return {f: self.fwd_lower(as_tuple(self.fwd_fold(given[f], var))) if f in given else
                lower(literal(kind.args.model_fields[f].default, SPAN)) for f in kind.positional if f in read}

    def fwd_op_args(self, kind: OpKind, stmt: n.Layer, var: str) -> tuple[list[ir.Node], list[tuple[str, ir.Node]]]:
        given = given_args(kind, stmt)
        pos, kw = [], []
        for i, fname in enumerate(kind.positional):
            if fname not in given:
                continue
            value = self.fwd_lower(as_tuple(self.fwd_fold(given[fname], var)))
            if i == 0 and kind.args.model_fields[fname].is_required():  # F.max_pool2d(x, 3); F.gelu(x, approximate=...)
                pos.append(value)
            else:
                kw.append((fname, value))
        return pos, kw

    def _tap(self, stmt, dest: str, taps: dict | None) -> None:
        if taps is not None and getattr(stmt, "target", None) is not None:
            name = plain(stmt.target)
            if name in taps:
                taps[name] = dest

    def _assign(self, w: list, dest: str, value: ir.Node, stmt) -> None:
        """``dest = value  # the statement's output shape``."""
        w.append(ir.Assign(ir.Name(dest), value, self._shape(stmt)))

    def _shape(self, stmt) -> str:
        return shape_comment([out for _, out in self.info.get(stmt)])


def _template(kind: OpKind) -> ir.Node:
    """An op's forward-only form: its input ``x``, its learned tensor ``param`` and its arguments as names."""
    return irparse.expression(kind.template, ("x", "param", *kind.positional))


def assign(dest: str, source: str) -> ir.Assign:
    return ir.Assign(ir.Name(dest), ir.Name(source))
