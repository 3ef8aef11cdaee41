"""``forward`` of a generated class: one call per line with the shape as a comment.

Structure lives here, as torchvision writes it: branches are ``torch.cat``, residuals
``out = out + identity`` (``out += identity`` where that is safe), dense blocks a list of
feature maps, side outputs a training-only tuple. An unnamed parameter-free layer is a function
call; a ReLU is in place where its input is a fresh tensor nothing else reads.
"""

from __future__ import annotations

import os
import re

from ...errors import SpecError
from ...lang import nodes as n
from ...ops import REGISTRY, OpKind
from ...sema.exprfold import fold, free_names, to_python
from .context import ClassContext
from .emit import (
    Namespace,
    Writer,
    as_tuple,
    creates_modules,
    default_text,
    emit_if,
    fstring,
    given_args,
    let_line,
    loop_target,
    plain,
    prune_lets,
    read_attribute,
    shape_comment,
    static_name,
    symbol,
)
from .emit_forward_merge import MergeForward


class ForwardEmitter(MergeForward):
    """Writes the body of one class's ``forward``."""

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
        self.owner = "self"  # the module whose attributes the statements' names are
        self.sides: dict[n.Side, str] = {}  # side output -> its local, in the order forward computes them
        self.current: n.Stmt | None = None  # the statement being written (its recorded tensor types)
        self.sides_from: dict[str, list[n.Side]] = {}  # layer name -> the side outputs that read it
        for s in ctx.d.body:
            if isinstance(s, n.Side) and s.source is not None:
                self.sides_from.setdefault(s.source, []).append(s)

    def emit(self, depth: int) -> list[str]:
        fwd = Writer(depth)
        var, _ = self.fwd_body(self.ctx.d.body, "x", False, fwd, None)
        if self.sides:
            # returned as the spec writes them (a ``side ... from`` is computed where its source is)
            sides = [self.sides[s] for s in sorted(self.sides, key=lambda s: (s.span.line, s.span.column))]
            cond = " or ".join(f"{s} is not None" for s in sides)
            fwd.line(f"if self.training and ({cond}):")
            fwd.indent().line(f"return {', '.join([var] + sides)}")
            fwd.dedent()
        fwd.line(f"return {var}")
        return prune_lets(fwd.lines)

    def fwd_expr(self, e: n.Expr, var: str) -> str:
        return self.fwd_print(self.fwd_fold(e, var))

    def fwd_print(self, tree: n.Expr) -> str:
        """A forward expression tree as Python: the parameters it reads are ``self.`` attributes."""
        def name(s: str) -> str:
            if s in self.fwd_locals or "." in s:
                return s
            if s in self.params:
                self.ctx.stored.add(s)
                return f"self.{s}"
            return s

        return to_python(tree, name)

    def fwd_fold(self, e: n.Expr, var: str) -> n.Expr:
        """``e`` as forward computes it: constants folded, ``in``/``out`` channels read at run time."""
        ctx = self.ctx

        def tensors(ref: n.TensorRef, attr: str):
            if attr != "channels":
                raise SpecError(f"'{ref.which}.{attr}' cannot be used at run time", ref.span)
            if ref.which == "in" and ctx.is_network:
                return ctx.fold(ctx.d.input[0])
            if ref.which == "in":
                ctx.stored.add("in_channels")
                return symbol("self.in_channels")
            layouts = {t.layout for t, _ in self.info.get(self.current)} if self.current is not None else set()
            axis = 1 if not layouts or layouts == {"CHW"} else -1 if layouts <= {"HWC", "F", "LD", "GLD"} else None
            if axis is None:
                raise SpecError(f"'out.channels' sees tensors of different layouts here ({', '.join(sorted(layouts))})",
                                ref.span)
            return symbol(f"{var}.shape[{axis}]")

        folded = fold(e, ctx.printing, ctx.named, tensors=tensors)
        ctx.referenced |= free_names(folded)
        return folded

    def fwd_body(self, stmts: list[n.Stmt], var: str, fresh: bool, w: Writer, taps: dict | None) -> tuple[str, bool]:
        for stmt in stmts:
            var, fresh = self.fwd_stmt(stmt, var, fresh, w, taps)
            for side in self.sides_from.get(static_name(stmt) or "", []):  # side ... from this layer: here, in order
                self._side(side, var, w)
                fresh = False
        return var, fresh

    def _side(self, stmt: n.Side, var: str, w: Writer) -> None:
        """A side output, computed in training only, where its input is."""
        name = plain(stmt.target)
        if name is None:
            raise SpecError("a side output needs a plain name", stmt.target.span)
        local = self.fwd_ns.create(name)
        self.sides[stmt] = local
        w.line(f"{local}: Tensor | None = None")
        if stmt.cond is not None:
            w.line(f"if {read_attribute('self', name)} is not None and self.training:")
        else:
            w.line("if self.training:")
        w.indent().line(f"{local} = {read_attribute('self', name)}({var})")
        w.dedent()

    def _module_ref(self, target: n.Target, var: str) -> str:
        """The module (or learned tensor) a statement's name refers to in forward: an attribute of ``owner``."""
        if target.is_plain:
            return read_attribute(self.owner, plain(target))
        name = fstring(target, lambda e: self.fwd_expr(e, var))
        if not target.quoted and name.startswith('"') and name[1:-1].isidentifier():
            return f"{self.owner}.{name[1:-1]}"  # the interpolation is a constant
        return f"getattr({self.owner}, {name})"

    def fwd_stmt(self, stmt: n.Stmt, var: str, fresh: bool, w: Writer, taps: dict | None) -> tuple[str, bool]:
        if isinstance(stmt, n.Init):  # nothing in forward
            return var, fresh
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, (n.If, n.Side)) else None
        if cond is not None:
            test = self.fwd_cond(stmt, cond, var)
            if test == "False":
                return var, fresh
            if test != "True":
                sub = Writer()
                sub.depth = w.depth + 1
                new, sub_fresh = self.fwd_one(stmt, var, fresh, sub, taps, dest=var)
                if new != var:  # skipped, the statement leaves the tensor as it was: the same name either way
                    sub.line(f"{var} = {new}")
                if sub.lines:
                    w.line(f"if {test}:")
                    w.lines += sub.lines
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
                made = fresh if kind.view or kind.name == "identity" else not kind.keeps_output
            elif isinstance(stmt, n.Seq):
                made = self._seq_fresh(stmt.body)
            else:
                made = False
            fresh = (fresh and made) if getattr(stmt, "cond", None) is not None else made
        return fresh

    def fwd_cond(self, stmt, cond: n.Expr, var: str) -> str:
        if creates_modules(stmt, self.blocks, self.block_params):
            name = static_name(stmt)
            if name is not None and isinstance(stmt, (n.Layer, n.Seq)):
                return f"{read_attribute('self', name)} is not None"
        return self.fwd_expr(cond, var)

    def fwd_one(self, stmt: n.Stmt, var: str, fresh: bool, w: Writer, taps: dict | None,
                dest: str | None = None) -> tuple[str, bool]:
        dest = dest or var
        self.current = stmt
        if isinstance(stmt, n.Let):
            self.fwd_locals.add(stmt.name)
            text = self.fwd_expr(stmt.value, var)
            w.lines.append(let_line("    " * w.depth + f"{stmt.name} = {text}", stmt.name))
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
            self._comment_line(w, f"{dest} = {self._module_ref(stmt.target, var)}({var})", stmt)
            self._tap(stmt, dest, taps)
            return dest, self._seq_fresh(stmt.body)
        if isinstance(stmt, n.Concat):
            outs = []
            for branch in stmt.branches:
                if isinstance(branch, n.Layer) and branch.func == "identity" and branch.cond is None:
                    outs.append(var)
                    continue
                base = _branch_name(branch)
                local = self.fwd_ns.create(base)
                out, _ = self.fwd_stmt_into(branch, var, w, local, taps)
                outs.append(out)
            self._comment_line(w, f"{dest} = torch.cat([{', '.join(outs)}], 1)", stmt)
            return dest, True
        if isinstance(stmt, n.Residual):
            return self.fwd_residual(stmt, var, w, dest)
        if isinstance(stmt, n.Ensemble):
            parts = []
            for s in stmt.body:  # each member's softmax; a for loop of members as a comprehension
                if isinstance(s, n.Layer):
                    parts.append(f"{self._module_ref(s.target, var)}({var}).softmax(1)")
                elif isinstance(s, n.For) and len(s.body) == 1 and isinstance(s.body[0], n.Layer):
                    self.fwd_locals.update(n.pattern_names(s.var))
                    member = f"{self._module_ref(s.body[0].target, var)}({var}).softmax(1)"
                    loop = f"{member} for {loop_target(s.var, [member])} in {self.fwd_expr(s.iterable, var)}"
                    parts.append(f"[{loop}]" if len(stmt.body) == 1 else f"*[{loop}]")
                elif not isinstance(s, (n.Let, n.Init)):
                    raise SpecError("the generated code lists an ensemble's members, or loops over one member",
                                    s.span, hint="write each member, or one for loop of one member")
            listed = parts[0] if len(parts) == 1 and parts[0].startswith("[") else f"[{', '.join(parts)}]"
            self._comment_line(w, f"{dest} = torch.stack({listed}).mean(0)", stmt)
            return dest, True
        if isinstance(stmt, n.Gate):
            scale = self.fwd_ns.create("scale")
            self._fwd_into(stmt.body, var, False, w, scale, taps)
            self._comment_line(w, f"{dest} = {scale} * {var}", stmt)
            return dest, True
        if isinstance(stmt, n.Dense):
            return self.fwd_dense(stmt, var, w, dest, taps)
        if isinstance(stmt, (n.For, n.If)) and dest != var:
            w.line(f"{dest} = {var}")
            var = dest
        if isinstance(stmt, n.For):
            self.fwd_locals.update(n.pattern_names(stmt.var))
            sub = Writer()
            sub.depth = w.depth + 1
            new, _ = self._fwd_into(stmt.body, var, False, sub, var, taps)
            if sub.lines:
                w.line(f"for {loop_target(stmt.var, sub.lines)} in {self.fwd_expr(stmt.iterable, var)}:")
                w.lines += sub.lines
            return var, False
        if isinstance(stmt, n.If):
            test = self.fwd_expr(stmt.cond, var)
            if test in ("True", "False"):
                return self._fwd_into(stmt.body if test == "True" else stmt.orelse, var, False, w, var, taps)
            a, b = Writer(), Writer()
            a.depth = b.depth = w.depth + 1
            self._fwd_into(stmt.body, var, False, a, var, taps)
            self._fwd_into(stmt.orelse, var, False, b, var, taps)
            emit_if(w, test, a, b)
            return var, False
        raise TypeError(type(stmt))

    def _fwd_into(self, stmts, var, fresh, w, dest, taps):
        """Run ``stmts`` on ``var`` leaving the result in ``dest``."""
        if not stmts:
            if dest != var:
                w.line(f"{dest} = {var}")
            return dest, fresh
        cur = var
        for stmt in stmts:
            cur, fresh = self.fwd_stmt_into(stmt, cur, w, dest, taps, fresh)
        if cur != dest:
            w.line(f"{dest} = {cur}")
        return dest, fresh

    def fwd_stmt_into(self, stmt, var, w, dest, taps, fresh=False):
        if isinstance(stmt, n.Init):
            return var, fresh
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, (n.If, n.Side)) else None
        if cond is not None and dest != var:
            w.line(f"{dest} = {var}")
            return self.fwd_stmt(stmt, dest, False, w, taps)
        if cond is not None:
            return self.fwd_stmt(stmt, var, fresh, w, taps)
        return self.fwd_one(stmt, var, fresh, w, taps, dest=dest)

    def fwd_layer(self, stmt: n.Layer, var: str, fresh: bool, w: Writer, dest: str, taps) -> tuple[str, bool]:
        is_block = stmt.func in self.blocks or stmt.func in self.block_params or stmt.func in self.ctx.networks
        held = stmt.func in self.ctx.op_params  # a parameter holding an op: a module like any named layer
        kind = None if is_block or held else REGISTRY[stmt.func]
        if kind is not None and kind.template is not None and (stmt.target is None or kind.learned is not None):
            printed = self.template_args(kind, stmt, var)
            if kind.learned is not None:
                printed["param"] = self._module_ref(stmt.target, var)
            self._comment_line(w, f"{dest} = {kind.template.format(x=var, **printed)}", stmt)
            return dest, False
        if kind is not None and stmt.target is None and kind.functional is not None:
            if kind.functional == "":
                if dest != var:
                    w.line(f"{dest} = {var}")
                return dest, fresh if dest == var else False
            pos, kw = self.fwd_op_args(kind, stmt, var)
            if kind.inplace:
                self.inplace_ok[stmt] = fresh
                if fresh and dest == var:
                    kw.append("inplace=True")
            call = f"{kind.functional}({', '.join([var] + pos + kw + list(kind.functional_extra))})"
            self._comment_line(w, f"{dest} = {call}", stmt)
            return dest, fresh if kind.view else not kind.keeps_output
        if (kind is not None and kind.inplace) or held:
            self.inplace_ok[stmt] = fresh and dest == var
        assert stmt.target is not None
        module = self._module_ref(stmt.target, var)
        call = f"{module}({var})" if kind is None or kind.call is None else kind.call.format(module=module, x=var)
        self._comment_line(w, f"{dest} = {call}", stmt)
        self._tap(stmt, dest, taps)
        if kind is None:  # a block, or an op held by a parameter: its output may be anything
            return dest, False
        return dest, fresh if kind.view else not kind.keeps_output

    def template_args(self, kind: OpKind, stmt: n.Layer, var: str) -> dict[str, str]:
        """Every argument of a forward-only form, printed (defaults too), lists as tuples."""
        given = given_args(kind, stmt)
        used = [f for f in kind.positional if "{" + f + "}" in kind.template]
        return {f: self.fwd_print(as_tuple(self.fwd_fold(given[f], var))) if f in given else default_text(kind, f)
                for f in used}

    def fwd_op_args(self, kind: OpKind, stmt: n.Layer, var: str) -> tuple[list[str], list[str]]:
        given = given_args(kind, stmt)
        pos, kw = [], []
        for i, fname in enumerate(kind.positional):
            if fname not in given:
                continue
            text = self.fwd_print(as_tuple(self.fwd_fold(given[fname], var)))
            if i == 0 and kind.args.model_fields[fname].is_required():  # F.max_pool2d(x, 3); F.gelu(x, approximate=...)
                pos.append(text)
            else:
                kw.append(f"{fname}={text}")
        return pos, kw

    def _tap(self, stmt, dest: str, taps: dict | None) -> None:
        if taps is not None and getattr(stmt, "target", None) is not None:
            name = plain(stmt.target)
            if name in taps:
                taps[name] = dest

    def _comment_line(self, w: Writer, text: str, stmt) -> None:
        shapes = [out for _, out in self.info.get(stmt)]
        comment = shape_comment(shapes)
        w.line(f"{text}  # {comment}" if comment else text)


def _branch_name(stmt) -> str:
    """A local name for a concat branch's output: its own name, else what its layers are called."""
    own = plain(getattr(stmt, "target", None))
    if own:
        return own
    if isinstance(stmt, n.Seq):
        names = [x for x in (plain(getattr(s, "target", None)) for s in stmt.body) if x]
        if len(names) == 1:
            return re.sub(r"_\d+[a-z]?$", "", names[0]) or names[0]
        if names:
            prefix = os.path.commonprefix(names).rstrip("_")
            if prefix.isidentifier() and len(prefix) > 1:
                return prefix
    return "branch"

