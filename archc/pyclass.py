"""One block or network -> the statement lines of one ``nn.Module`` class.

The class mirrors the spec: the block's parameters (and its inferred input
channels) are constructor arguments, repeats stay loops, conditionals stay
``if``s, and ``forward`` makes one call per line with the shape as a comment.
Channel counts are tracked symbolically through ``__init__``: an expression
over the constructor's arguments, folded to a number wherever the spec gives
numbers, so a call like ``Inception(192, 64, 96, ...)`` reads as in
torchvision rather than as a chain of attribute look-ups.
"""

from __future__ import annotations

import builtins
import keyword
import os
import re
from dataclasses import dataclass, field

from . import nodes as n
from .errors import SpecError
from .expr import BUILTINS, BlockRef, fold, free_names, literal, to_python
from .loader import GENERATED_IMPORTS
from .ops import REGISTRY, OpKind

FIXED_NAMES = {*GENERATED_IMPORTS, "self", "x", "super"}


class Namespace:
    """Hands out legal, unique local names (clashes get _1, _2, ...)."""

    def __init__(self, taken: set[str] = frozenset()):
        self.taken = set(taken) | FIXED_NAMES | set(dir(builtins)) | set(keyword.kwlist)

    def reserve(self, name: str) -> None:
        self.taken.add(name)

    def create(self, base: str) -> str:
        base = re.sub(r"\W", "_", base) or "v"
        if base[0].isdigit():
            base = "_" + base
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


class LetLine(str):
    """A line that binds a ``let``: dropped when nothing after it reads the name."""

    name: str


def let_line(text: str, name: str) -> LetLine:
    line = LetLine(text)
    line.name = name
    return line


def prune_lets(lines: list[str]) -> list[str]:
    """Drop ``let`` bindings no other line reads (a let may serve __init__ only, or forward only)."""
    while True:
        text = "\n".join(lines)
        dead = [i for i, line in enumerate(lines) if isinstance(line, LetLine)
                and len(re.findall(rf"\b{re.escape(line.name)}\b", text)) <= len(re.findall(rf"\b{re.escape(line.name)}\b", line))]
        if not dead:
            return lines
        lines = [line for i, line in enumerate(lines) if i not in dead]


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def indent(self) -> Writer:
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1


def emit_if(w: Writer, test: str, then: Writer, orelse: Writer) -> None:
    """``if test:`` with both branches' lines, leaving out an empty one."""
    if then.lines:
        w.line(f"if {test}:")
        w.lines += then.lines
        if orelse.lines:
            w.line("else:")
            w.lines += orelse.lines
    elif orelse.lines:
        w.line(f"if not ({test}):")
        w.lines += orelse.lines


@dataclass
class ClassInfo:
    """What a caller needs to know about a generated block class."""

    name: str
    out_formula: n.Expr | None  # output channels over the parameters and in_channels, if expressible


@dataclass
class StmtInfo:
    """Shapes seen for each statement in every elaboration: (input, output) pairs."""

    shapes: dict[int, list[tuple[tuple[int, ...], tuple[int, ...]]]] = field(default_factory=dict)

    def get(self, stmt) -> list:
        return self.shapes.get(id(stmt), [])


_SPAN = n.Span("<generated>", 1, 1, 1, 1)


def _var(name: str) -> n.Var:
    return n.Var(name, _SPAN)


def shape_comment(shapes: list[tuple[int, ...]]) -> str:
    """``N x 64 x 56 x 56``; a dimension that differs between uses shows its values."""
    if not shapes:
        return ""
    dims = []
    for values in zip(*shapes):
        distinct = sorted(set(values))
        if len(distinct) == 1:
            dims.append(str(distinct[0]))
        elif len(distinct) <= 3:
            dims.append("|".join(map(str, distinct)))
        else:
            dims.append(f"{distinct[0]}..{distinct[-1]}")
    if len({len(s) for s in shapes}) != 1:
        return ""
    return "N x " + " x ".join(dims)


def creates_modules(stmt: n.Stmt, program_blocks: dict, env_blocks: set[str]) -> bool:
    if isinstance(stmt, n.Layer):
        if stmt.func in program_blocks or stmt.func in env_blocks:
            return True
        kind = REGISTRY.get(stmt.func)
        return stmt.target is not None or (kind is not None and kind.has_params)
    if isinstance(stmt, n.Side):
        return True
    if isinstance(stmt, n.Seq):
        return stmt.target is not None or any(creates_modules(s, program_blocks, env_blocks) for s in stmt.body)
    if isinstance(stmt, n.Concat):
        return any(creates_modules(s, program_blocks, env_blocks) for s in stmt.branches)
    if isinstance(stmt, n.Dense):
        return any(creates_modules(s, program_blocks, env_blocks) for s in stmt.body)
    if isinstance(stmt, n.Residual):
        inner = list(stmt.body) + (list(stmt.shortcut.body) if stmt.shortcut else [])
        return any(creates_modules(s, program_blocks, env_blocks) for s in inner)
    if isinstance(stmt, (n.For, n.If)):
        inner = list(stmt.body) + list(getattr(stmt, "orelse", []))
        return any(creates_modules(s, program_blocks, env_blocks) for s in inner)
    return False


@dataclass
class _Seq:
    """Where __init__ puts modules: ``self`` or a local nn.Sequential."""

    var: str | None  # None: attributes of self
    fresh: bool = False  # the last child made a new tensor (so an inplace ReLU may follow)


class ClassGen:
    """Generates one class. ``infos`` gives the classes it calls."""

    def __init__(self, definition: n.BlockDef | n.NetworkDef, blocks: dict[str, n.BlockDef],
                 constants: dict[str, object], stmt_info: StmtInfo, infos, block_params: set[str]):
        self.d = definition
        self.is_network = isinstance(definition, n.NetworkDef)
        self.blocks = blocks
        self.constants = constants  # top-level lets: folded into the code as literals
        self.info = stmt_info
        self.infos = infos  # callable: block name -> ClassInfo
        self.params = [p.name for p in definition.params]
        for p in definition.params:
            if keyword.iskeyword(p.name) or p.name in FIXED_NAMES or p.name in BUILTINS or p.name in dir(builtins) \
                    or p.name in ("in_channels", "training"):
                raise SpecError(f"parameter name '{p.name}' is reserved in the generated code", p.span,
                                hint="choose another name")
        self.block_params = block_params  # parameters that hold a block class
        self.stored: set[str] = set()  # names forward reads from self
        self.inplace_ok: dict[int, bool] = {}
        self.modules_named: set[str] = set()
        self.fwd_locals: set[str] = set()
        self.channel_vars: set[str] = set()
        self.referenced: set[str] = set()  # names the generated code reads

    # ----------------------------------------------------------- expressions

    def fold(self, e: n.Expr, cur: n.Expr | None = None) -> n.Expr:
        def tensors(ref: n.TensorRef, attr: str):
            if attr != "channels":
                raise SpecError(f"'{ref.which}.{attr}' is known only while elaborating; generated code tracks "
                                "channels alone", ref.span, hint="use .channels, or compute the size from parameters")
            if ref.which == "in":
                return _var("in_channels")
            if cur is None:
                raise SpecError("'out' is not available here", ref.span)
            return cur

        folded = fold(e, self.constants, tensors=tensors)
        self.referenced |= free_names(folded)
        return folded

    def init_expr(self, e: n.Expr, cur: n.Expr | None = None) -> str:
        return to_python(self.fold(e, cur))

    def fwd_expr(self, e: n.Expr, var: str) -> str:
        def tensors(ref: n.TensorRef, attr: str):
            if attr != "channels":
                raise SpecError(f"'{ref.which}.{attr}' cannot be used at run time", ref.span)
            if ref.which == "in":
                self.stored.add("in_channels")
                return _var("self.in_channels")
            return _var(f"{var}.shape[1]")

        folded = fold(e, self.constants, tensors=tensors)
        self.referenced |= free_names(folded)

        def name(s: str) -> str:
            if s in self.fwd_locals or "." in s:
                return s
            if s in self.params:
                self.stored.add(s)
                return f"self.{s}"
            return s

        return to_python(folded, name)

    # ------------------------------------------------------------------ init

    def generate(self) -> tuple[list[str], list[str], ClassInfo]:
        fwd = Writer()
        fwd.depth = 2
        ns = Namespace(set(self.params))
        ns.reserve("x")
        self.fwd_ns = ns
        if self.is_network:
            self.sides: list[str] = []
            var, _ = self.fwd_body(self.d.body, "x", False, fwd, None)
            if self.sides:
                cond = " or ".join(f"{s} is not None" for s in self.sides)
                fwd.line(f"if self.training and ({cond}):")
                fwd.indent().line(f"return {', '.join([var] + self.sides)}")
                fwd.dedent()
            fwd.line(f"return {var}")
        else:
            var, _ = self.fwd_body(self.d.body, "x", False, fwd, None)
            fwd.line(f"return {var}")

        init = Writer()
        init.depth = 2
        self.init_ns = Namespace(set(self.params) | {"in_channels"})
        if self.is_network:
            cur: n.Expr = self.fold(self.d.input[0])  # only the channels: sizes are checked, not constructed
        else:
            cur = _var("in_channels")
        body = Writer()
        body.depth = 2
        cur = self.init_body(self.d.body, cur, body, _Seq(None))
        fwd.lines = prune_lets(fwd.lines)
        body.lines = prune_lets(body.lines)
        fwd_text = "\n".join(fwd.lines)
        # forward expressions asked for these; a pruned let may have been the only reader
        self.stored = {name for name in self.stored if re.search(rf"\bself\.{re.escape(name)}\b", fwd_text)}
        init.line("super().__init__()")
        for name in sorted(self.stored):
            if name in self.modules_named or name == "out_channels":
                raise SpecError(f"'{name}' names both a parameter read in forward and a layer", self.d.span,
                                hint="rename one of them")
            init.line(f"self.{name} = {name}")
        init.lines += body.lines
        if not self.is_network:
            init.line(f"self.out_channels = {to_python(cur)}")
        formula = None
        if not self.is_network and free_names(cur) <= set(self.params) | {"in_channels"} and not _has_attr(cur):
            formula = cur
        return init.lines, fwd.lines, ClassInfo(self.d.name, formula)

    def init_body(self, stmts: list[n.Stmt], cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        for stmt in stmts:
            cur = self.init_stmt(stmt, cur, w, seq)
        return cur

    def init_stmt(self, stmt: n.Stmt, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, n.If) else None
        if cond is not None:
            cond_text = self.init_expr(cond, cur)
            if cond_text == "True":
                cond = None
            elif cond_text == "False":
                name = self._static_name(stmt)
                if name and seq.var is None:
                    w.line(f"self.{name} = None")
                return cur
        if cond is not None:
            sub = Writer()
            sub.depth = w.depth + 1
            new = self._init_one(stmt, cur, sub, seq)
            name = self._static_name(stmt)
            if not sub.lines:
                return cur if to_python(new) == to_python(cur) else n.IfExp(self.fold(cond, cur), new, cur, _SPAN)
            if seq.var is None:
                for none_name in self._conditional_names(stmt):
                    w.line(f"self.{none_name} = None")
            w.line(f"if {cond_text}:")
            w.lines += sub.lines
            if to_python(new) == to_python(cur):
                return cur
            if isinstance(cur, n.Var) and cur.name in self.channel_vars:
                w.indent().line(f"{cur.name} = {to_python(new)}")
                w.dedent()
                return cur
            if _mentions_locals(new, sub.lines):
                chan = self.channel_var(cur)
                w.lines.insert(len(w.lines) - len(sub.lines) - 1, "    " * w.depth + f"{chan} = {to_python(cur)}")
                w.indent().line(f"{chan} = {to_python(new)}")
                w.dedent()
                return _var(chan)
            return n.IfExp(self.fold(cond, cur), new, cur, _SPAN)
        return self._init_one(stmt, cur, w, seq)

    def _init_one(self, stmt: n.Stmt, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        if isinstance(stmt, n.Let):
            w.lines.append(let_line("    " * w.depth + f"{stmt.name} = {self.init_expr(stmt.value, cur)}", stmt.name))
            self.init_ns.reserve(stmt.name)
            return cur
        if isinstance(stmt, n.Layer):
            return self.init_layer(stmt, cur, w, seq)
        if isinstance(stmt, n.Side):
            layer = n.Layer(stmt.target, stmt.func, stmt.func_span, stmt.arguments, None, stmt.span)
            self.init_layer(layer, cur, w, seq)
            return cur
        if isinstance(stmt, n.Seq):
            if stmt.target is None:
                return self.init_body(stmt.body, cur, w, seq)
            var = self.init_ns.create(_plain(stmt.target) or "layers")
            sub = Writer()
            sub.depth = w.depth
            new = self.init_body(stmt.body, cur, sub, _Seq(var))
            prefix = "    " * w.depth + f"{var}.append("
            if sub.lines and all(line.startswith(prefix) and line.endswith(")") for line in sub.lines):
                items = [line[len(prefix):-1] for line in sub.lines]
                self.register(stmt.target, "nn.Sequential(\n" + "".join(
                    "    " * (w.depth + 1) + item + ",\n" for item in items) + "    " * w.depth + ")", w, seq)
                return new
            w.line(f"{var} = nn.Sequential()")
            w.lines += sub.lines
            self.register(stmt.target, var, w, seq)
            return new
        if isinstance(stmt, n.Concat):
            total: n.Expr | None = None
            for branch in stmt.branches:
                out = self.init_stmt(branch, cur, w, seq)
                total = out if total is None else n.BinOp("+", total, out, _SPAN)
            assert total is not None
            return self.fold(total)
        if isinstance(stmt, n.Dense):  # each member widens the running concatenation by its own output
            return self.init_body(_growing(stmt.body), cur, w, seq)
        if isinstance(stmt, n.Residual):
            new = self.init_body(stmt.body, cur, w, seq)
            if stmt.shortcut is not None:
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
        cond = self.init_expr(sc.cond, cur) if sc.cond is not None else "True"
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
            for name in [x for s in sc.body for x in self._conditional_names(s)]:
                w.line(f"self.{name} = None")
        w.line(f"if {cond}:")
        w.lines += lines

    def _tap_channels(self, body: list[n.Stmt], source: str, cur: n.Expr) -> n.Expr:
        w = Writer()
        for stmt in body:
            cur = self._init_one(stmt, cur, w, _Seq("_probe")) if not isinstance(stmt, n.Let) else cur
            if getattr(stmt, "target", None) is not None and _plain(stmt.target) == source:
                return cur
        return cur

    def init_for(self, stmt: n.For, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        if not (isinstance(cur, n.Var) and cur.name in self.channel_vars):
            taken, chans = set(self.init_ns.taken), set(self.channel_vars)
            trial = Writer()
            trial.depth = w.depth + 1
            self.init_ns.reserve(stmt.var)
            inner = self.init_body(stmt.body, cur, trial, seq)
            if to_python(inner) == to_python(cur) and self.channel_vars == chans:
                if trial.lines:
                    w.line(f"for {_loop_var(stmt.var, trial.lines)} in {self.init_expr(stmt.iterable, cur)}:")
                    w.lines += trial.lines
                return cur
            self.init_ns.taken, self.channel_vars = taken, chans
        chan = self.channel_var(cur)
        self.init_ns.reserve(stmt.var)
        sub = Writer()
        sub.depth = w.depth + 1
        inner = self.init_body(stmt.body, _var(chan), sub, seq)
        changes = to_python(inner) != chan
        if changes:
            sub.line(f"{chan} = {to_python(inner)}")
        changes = changes or any(re.match(rf"\s*{chan} = ", line) for line in sub.lines)
        uses = any(re.search(rf"\b{chan}\b", line) for line in sub.lines)
        if not sub.lines:
            return cur
        if uses and to_python(cur) != chan:
            w.line(f"{chan} = {to_python(cur)}")
        w.line(f"for {_loop_var(stmt.var, sub.lines)} in {self.init_expr(stmt.iterable, cur)}:")
        if uses:
            w.lines += sub.lines
        else:
            w.lines += [line.replace(chan, to_python(cur)) for line in sub.lines]
        return _var(chan) if changes else cur

    def init_if(self, stmt: n.If, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        cond = self.init_expr(stmt.cond, cur)
        if cond in ("True", "False"):
            return self.init_body(stmt.body if cond == "True" else stmt.orelse, cur, w, seq)
        a, b = Writer(), Writer()
        a.depth = b.depth = w.depth + 1
        out_a = self.init_body(stmt.body, cur, a, seq)
        out_b = self.init_body(stmt.orelse, cur, b, seq)
        if to_python(out_a) == to_python(out_b):
            result = out_a
        elif not (a.lines or b.lines):
            result = n.IfExp(self.fold(stmt.cond, cur), out_a, out_b, _SPAN)
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
            result = _var(chan)
        emit_if(w, cond, a, b)
        return result

    def init_layer(self, stmt: n.Layer, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        kind = REGISTRY.get(stmt.func)
        is_block = stmt.func in self.blocks or stmt.func in self.block_params
        if stmt.func in self.block_params or (stmt.func in self.blocks and not (kind and stmt.func in self.params)):
            kind = None
        if is_block:
            seq.fresh = False
            return self.init_block_call(stmt, cur, w, seq)
        assert kind is not None
        new = self.op_channels(kind, stmt, cur)
        needs_module = (stmt.target is not None or kind.has_params or seq.var is not None) and kind.template is None
        if needs_module:
            if seq.var is not None and kind.inplace:
                self.inplace_ok[id(stmt)] = seq.fresh and stmt.cond is None
            self.register(stmt.target, self.op_ctor(kind, stmt, cur), w, seq)
        if seq.var is not None:
            made_new = kind.name != "identity"  # an optional layer keeps what the last one made, or makes anew
            seq.fresh = (seq.fresh and made_new) if stmt.cond is not None else made_new
        return new

    def op_channels(self, kind: OpKind, stmt: n.Layer, cur: n.Expr) -> n.Expr:
        if kind.channels_from is not None:
            fields = kind.positional
            idx = fields.index(kind.channels_from)
            for key, value, _ in stmt.arguments.kwargs:
                if key == kind.channels_from:
                    return self.fold(value, cur)
            return self.fold(stmt.arguments.args[idx], cur)
        if kind.channels_rule is not None:
            fields = kind.positional
            given = dict(zip(fields, stmt.arguments.args))
            given.update({k: v for k, v, _ in stmt.arguments.kwargs})
            return self.fold(kind.channels_rule(cur, {k: self.fold(v, cur) for k, v in given.items()}), cur)
        if kind.flattens:
            spatial = {s_in[1:] for s_in, _ in self.info.get(stmt)}
            if len(spatial) != 1:
                raise SpecError("flatten sees different input sizes in different uses; generated code needs one",
                                stmt.span, hint="pool to a fixed size first (adaptive_avgpool)")
            (hw,) = spatial
            out = cur
            for d in hw:
                if d != 1:
                    out = n.BinOp("*", out, n.Num(d, _SPAN), _SPAN)
            return out
        return cur

    def op_args(self, kind: OpKind, stmt: n.Layer, cur: n.Expr, skip: str | None = None) -> tuple[list[str], list[str]]:
        """The op's arguments as Python: (positional, keyword)."""
        fields = kind.positional
        given = {}
        for fname, value in zip(fields, stmt.arguments.args):
            given[fname] = value
        for key, value, _ in stmt.arguments.kwargs:
            given[key] = value
        pos, kw = [], []
        for fname in fields:
            if fname not in given:
                continue
            folded = self.fold(given[fname], cur)
            if isinstance(folded, n.ListExpr):
                folded = n.ListExpr(folded.items, folded.span, tuple=True)
            text = to_python(folded)
            if fname == skip:
                pos.append(text)
            else:
                kw.append(f"{fname}={text}")
        return pos, kw

    def op_ctor(self, kind: OpKind, stmt: n.Layer, cur: n.Expr) -> str:
        pos, kw = self.op_args(kind, stmt, cur, kind.channels_from)
        lead = [to_python(cur)] if kind.in_arg else []
        if kind.inplace and self.inplace_ok.get(id(stmt)):
            kw.append("inplace=True")
        module = kind.module
        if kind.flat_module and self.info.get(stmt) and all(len(i) == 1 for i, _ in self.info.get(stmt)):
            module = kind.flat_module
        return f"{module}({', '.join(lead + pos + kw)})"

    def init_block_call(self, stmt: n.Layer, cur: n.Expr, w: Writer, seq: _Seq) -> n.Expr:
        self.referenced.add(stmt.func)
        args = [self.init_expr(a, cur) for a in stmt.arguments.args]
        args += [f"{k}={self.init_expr(v, cur)}" for k, v, _ in stmt.arguments.kwargs]
        ctor = f"{stmt.func}({', '.join([to_python(cur)] + args)})"
        formula = None
        if stmt.func in self.blocks and stmt.func not in self.block_params:
            info = self.infos(stmt.func)
            formula = info.out_formula
            block = self.blocks[stmt.func]
        if formula is not None:
            subst: dict[str, n.Expr] = {"in_channels": cur}
            bound = _bind(block, stmt.arguments)
            for p in block.params:
                if p.name in bound:
                    subst[p.name] = self.fold(bound[p.name], cur)
                elif p.default is not None:
                    subst[p.name] = fold(p.default, self.constants)
            new = fold(formula, {}, subst)
            self.register(stmt.target, ctor, w, seq)
            return self.fold(new)
        plain = _plain(stmt.target) if stmt.target is not None else None
        if plain and seq.var is None:
            self.register(stmt.target, ctor, w, seq)
            return _var(f"self.{plain}.out_channels")
        if seq.var is not None:
            self.register(stmt.target, ctor, w, seq)
            source = f"{seq.var}[-1].out_channels"
        else:
            var = self.init_ns.create("block")
            w.line(f"{var} = {ctor}")
            self.register(stmt.target, var, w, seq)
            source = f"{var}.out_channels"
        chan = self.channel_var(cur)
        w.line(f"{chan} = {source}")
        return _var(chan)

    def channel_var(self, cur: n.Expr) -> str:
        """The mutable local that holds a channel count: ``cur`` itself if it is one."""
        if isinstance(cur, n.Var) and cur.name in self.channel_vars:
            return cur.name
        name = self.init_ns.create("channels")
        self.channel_vars.add(name)
        return name

    def register(self, target: n.Target | None, value: str, w: Writer, seq: _Seq) -> None:
        if target is not None and target.is_plain:
            name = _plain(target)
            self.modules_named.add(name)
            if seq.var is None:
                w.line(f"self.{name} = {value}")
            else:
                w.line(f'{seq.var}.add_module("{name}", {value})')
            return
        if target is not None:
            owner = "self" if seq.var is None else seq.var
            w.line(f"{owner}.add_module({self.fstring(target, init=True)}, {value})")
            return
        assert seq.var is not None
        w.line(f"{seq.var}.append({value})")

    def fstring(self, target: n.Target, init: bool, var: str = "x") -> str:
        parts = []
        for p in target.parts:
            if isinstance(p, str):
                parts.append(p.replace("{", "{{").replace("}", "}}"))
            else:
                parts.append("{" + (self.init_expr(p) if init else self.fwd_expr(p, var)) + "}")
        return 'f"' + "".join(parts) + '"'

    def _conditional_names(self, stmt) -> list[str]:
        """Attributes a conditional statement creates under a fixed name: set to None when it is skipped."""
        if isinstance(stmt, (n.Layer, n.Side)):
            name = self._static_name(stmt)
            return [name] if name and creates_modules(stmt, self.blocks, self.block_params) else []
        if isinstance(stmt, n.Seq) and stmt.target is not None:
            return [_plain(stmt.target)] if stmt.target.is_plain else []
        if isinstance(stmt, (n.Seq, n.Concat, n.Dense)):
            inner = stmt.branches if isinstance(stmt, n.Concat) else stmt.body
            return [name for s in inner for name in self._conditional_names(s)]
        if isinstance(stmt, n.Residual):
            inner = list(stmt.body) + (list(stmt.shortcut.body) if stmt.shortcut else [])
            return [name for s in inner for name in self._conditional_names(s)]
        return []

    def _static_name(self, stmt) -> str | None:
        return _plain(getattr(stmt, "target", None))

    # --------------------------------------------------------------- forward

    def fwd_body(self, stmts: list[n.Stmt], var: str, fresh: bool, w: Writer, taps: dict | None) -> tuple[str, bool]:
        for stmt in stmts:
            var, fresh = self.fwd_stmt(stmt, var, fresh, w, taps)
        return var, fresh

    def _module_ref(self, target: n.Target, var: str) -> str:
        if target.is_plain:
            return f"self.{_plain(target)}"
        return f"getattr(self, {self.fstring(target, init=False, var=var)})"

    def fwd_stmt(self, stmt: n.Stmt, var: str, fresh: bool, w: Writer, taps: dict | None) -> tuple[str, bool]:
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, (n.If, n.Side)) else None
        if cond is not None:
            test = self.fwd_cond(stmt, cond, var)
            if test == "False":
                return var, fresh
            if test != "True":
                sub = Writer()
                sub.depth = w.depth + 1
                new, sub_fresh = self.fwd_one(stmt, var, fresh, sub, taps, dest=var)
                if sub.lines:
                    w.line(f"if {test}:")
                    w.lines += sub.lines
                return new, fresh and sub_fresh
        return self.fwd_one(stmt, var, fresh, w, taps)

    def fwd_cond(self, stmt, cond: n.Expr, var: str) -> str:
        if creates_modules(stmt, self.blocks, self.block_params):
            name = self._static_name(stmt)
            if name is not None and isinstance(stmt, (n.Layer, n.Seq)):
                return f"self.{name} is not None"
        return self.fwd_expr(cond, var)

    def fwd_one(self, stmt: n.Stmt, var: str, fresh: bool, w: Writer, taps: dict | None,
                dest: str | None = None) -> tuple[str, bool]:
        dest = dest or var
        if isinstance(stmt, n.Let):
            self.fwd_locals.add(stmt.name)
            text = self.fwd_expr(stmt.value, var)
            w.lines.append(let_line("    " * w.depth + f"{stmt.name} = {text}", stmt.name))
            return var, fresh
        if isinstance(stmt, n.Layer):
            return self.fwd_layer(stmt, var, fresh, w, dest, taps)
        if isinstance(stmt, n.Side):
            name = _plain(stmt.target)
            if name is None:
                raise SpecError("a side output needs a plain name", stmt.target.span)
            local = self.fwd_ns.create(name)
            self.sides.append(local)
            w.line(f"{local}: Tensor | None = None")
            if stmt.cond is not None:
                w.line(f"if self.{name} is not None and self.training:")
            else:
                w.line("if self.training:")
            w.indent().line(f"{local} = self.{name}({var})")
            w.dedent()
            return var, fresh
        if isinstance(stmt, n.Seq):
            if stmt.target is None:
                return self.fwd_body(stmt.body, var, fresh, w, taps) if dest == var else \
                    self._fwd_into(stmt.body, var, fresh, w, dest, taps)
            self._comment_line(w, f"{dest} = {self._module_ref(stmt.target, var)}({var})", stmt)
            self._tap(stmt, dest, taps)
            return dest, True
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
        if isinstance(stmt, n.Dense):
            return self.fwd_dense(stmt, var, w, dest, taps)
        if isinstance(stmt, (n.For, n.If)) and dest != var:
            w.line(f"{dest} = {var}")
            var = dest
        if isinstance(stmt, n.For):
            self.fwd_locals.add(stmt.var)
            sub = Writer()
            sub.depth = w.depth + 1
            new, _ = self._fwd_into(stmt.body, var, False, sub, var, taps)
            if sub.lines:
                w.line(f"for {_loop_var(stmt.var, sub.lines)} in {self.fwd_expr(stmt.iterable, var)}:")
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
        cond = getattr(stmt, "cond", None) if not isinstance(stmt, (n.If, n.Side)) else None
        if cond is not None and dest != var:
            w.line(f"{dest} = {var}")
            return self.fwd_stmt(stmt, dest, False, w, taps)
        if cond is not None:
            return self.fwd_stmt(stmt, var, fresh, w, taps)
        return self.fwd_one(stmt, var, fresh, w, taps, dest=dest)

    def fwd_layer(self, stmt: n.Layer, var: str, fresh: bool, w: Writer, dest: str, taps) -> tuple[str, bool]:
        is_block = stmt.func in self.blocks or stmt.func in self.block_params
        kind = None if is_block else REGISTRY[stmt.func]
        if kind is not None and kind.template is not None:
            fields = kind.positional
            given = dict(zip(fields, stmt.arguments.args))
            given.update({k: v for k, v, _ in stmt.arguments.kwargs})
            printed = {f: self.fwd_expr(given[f], var) if f in given else repr(kind.args.model_fields[f].default)
                       for f in fields}
            self._comment_line(w, f"{dest} = {kind.template.format(x=var, **printed)}", stmt)
            return dest, False
        if kind is not None and stmt.target is None and kind.functional is not None:
            if kind.functional == "":
                if dest != var:
                    w.line(f"{dest} = {var}")
                return dest, fresh if dest == var else False
            pos, kw = self.fwd_op_args(kind, stmt, var)
            if kind.inplace:
                self.inplace_ok[id(stmt)] = fresh
                if fresh and dest == var:
                    kw.append("inplace=True")
            call = f"{kind.functional}({', '.join([var] + pos + kw + list(kind.functional_extra))})"
            self._comment_line(w, f"{dest} = {call}", stmt)
            return dest, True
        if kind is not None and kind.inplace:
            self.inplace_ok[id(stmt)] = fresh and dest == var
        assert stmt.target is not None
        self._comment_line(w, f"{dest} = {self._module_ref(stmt.target, var)}({var})", stmt)
        self._tap(stmt, dest, taps)
        return dest, not is_block

    def fwd_op_args(self, kind: OpKind, stmt: n.Layer, var: str) -> tuple[list[str], list[str]]:
        fields = kind.positional
        given = {}
        for fname, value in zip(fields, stmt.arguments.args):
            given[fname] = value
        for key, value, _ in stmt.arguments.kwargs:
            given[key] = value
        pos, kw = [], []
        for i, fname in enumerate(fields):
            if fname not in given:
                continue
            folded = given[fname]
            text = self.fwd_expr(folded, var)
            if text.startswith("[") and text.endswith("]"):
                text = "(" + text[1:-1] + ("," if text.count(",") == 0 else "") + ")"
            if i == 0:
                pos.append(text)
            else:
                kw.append(f"{fname}={text}")
        return pos, kw

    def _tap(self, stmt, dest: str, taps: dict | None) -> None:
        if taps is not None and getattr(stmt, "target", None) is not None:
            name = _plain(stmt.target)
            if name in taps:
                taps[name] = dest

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
            if isinstance(s, n.Let):
                self.fwd_one(s, var, False, w, taps)
                continue
            sub = Writer()
            sub.depth = w.depth + 1
            if isinstance(s, n.For):
                self.fwd_locals.add(s.var)
                self._fwd_members(s.body, var, features, checkpoint, sub, taps)
                if sub.lines:
                    w.line(f"for {_loop_var(s.var, sub.lines)} in {self.fwd_expr(s.iterable, var)}:")
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
        sc = stmt.shortcut
        taps: dict[str, str | None] = {}
        if sc is not None and sc.source is not None:
            taps[sc.source] = None
        ident = self.fwd_ns.create("identity")
        out = self.fwd_ns.create("out")
        if sc is None or sc.cond is not None:
            w.line(f"{ident} = {var}")  # the identity shortcut reads the block's input
        body_w = Writer()
        body_w.depth = w.depth
        self._residual_body(stmt.body, var, body_w, out, taps, sc)
        w.lines += body_w.lines
        if sc is not None:
            start = var
            if sc.source is not None:
                start = taps.get(sc.source) or var
            sub = Writer()
            sub.depth = w.depth + 1 if sc.cond is not None else w.depth
            self._fwd_into(sc.body, start, False, sub, ident, None)
            if sc.cond is not None and sub.lines:
                w.line(f"if {self._shortcut_test(sc)}:")
            w.lines += sub.lines
        scale = None
        for key, value, _ in stmt.arguments.kwargs:
            if key == "scale":
                scale = self.fwd_expr(value, var)
        if scale is None and self._adds_in_place(stmt):
            self._comment_line(w, f"{out} += {ident}", stmt)
        else:
            added = f"{out} * {scale} + {ident}" if scale is not None else f"{out} + {ident}"
            self._comment_line(w, f"{out} = {added}", stmt)
        if dest != var and dest != out:
            w.line(f"{dest} = {out}")
            return dest, True
        return out, True

    def _adds_in_place(self, stmt: n.Residual) -> bool:
        """``out += identity`` (no new tensor) when the body ends in a layer whose fresh output autograd
        does not keep for its backward (a conv, batch norm or linear), as torchvision writes it."""
        last = stmt.body[-1] if stmt.body else None
        if not isinstance(last, n.Layer) or last.cond is not None or last.target is None:
            return False
        sc = stmt.shortcut
        if sc is not None and sc.source is not None and sc.source == _plain(last.target):
            return False  # the shortcut reads this very output
        return last.func in _ADDS_IN_PLACE_AFTER and last.func not in self.blocks

    def _residual_body(self, body, var, w, out, taps, sc) -> None:
        cur, fresh = var, False
        for stmt in body:
            name = _plain(getattr(stmt, "target", None)) if getattr(stmt, "target", None) is not None else None
            if name is not None and name in taps:
                local = self.fwd_ns.create(name)
                cur, fresh = self.fwd_stmt_into(stmt, cur, w, local, None, fresh)
                taps[name] = local
                fresh = False
                continue
            cur, fresh = self.fwd_stmt_into(stmt, cur, w, out, None, fresh)
        if cur != out:
            w.line(f"{out} = {cur}")

    def _shortcut_test(self, sc: n.Shortcut) -> str:
        if len(sc.body) == 1 and self._static_name(sc.body[0]) and \
                creates_modules(sc.body[0], self.blocks, self.block_params):
            return f"self.{self._static_name(sc.body[0])} is not None"
        return self.fwd_expr(sc.cond, "x")

    def _comment_line(self, w: Writer, text: str, stmt) -> None:
        shapes = [out for _, out in self.info.get(stmt)]
        comment = shape_comment(shapes)
        w.line(f"{text}  # {comment}" if comment else text)


# Layers whose output is a new tensor that their backward does not read: adding into it in place is safe.
_ADDS_IN_PLACE_AFTER = {"conv", "batchnorm", "linear"}


def _growing(stmts: list[n.Stmt]) -> list[n.Stmt]:
    """A dense's members as ``concat { identity; member }``: the same modules and widths, for __init__."""
    out: list[n.Stmt] = []
    for s in stmts:
        if isinstance(s, n.For):
            out.append(n.For(s.var, s.iterable, _growing(s.body), s.span))
        elif isinstance(s, n.If):
            out.append(n.If(s.cond, _growing(s.body), _growing(s.orelse), s.span))
        elif isinstance(s, n.Let):
            out.append(s)
        else:
            identity = n.Layer(None, "identity", s.span, n.Arguments([], []), None, s.span)
            out.append(n.Concat([identity, s], None, s.span))
    return out


def _branch_name(stmt) -> str:
    """A local name for a concat branch's output: its own name, else what its layers are called."""
    own = _plain(getattr(stmt, "target", None))
    if own:
        return own
    if isinstance(stmt, n.Seq):
        names = [x for x in (_plain(getattr(s, "target", None)) for s in stmt.body) if x]
        if len(names) == 1:
            return re.sub(r"_\d+[a-z]?$", "", names[0]) or names[0]
        if names:
            prefix = os.path.commonprefix(names).rstrip("_")
            if prefix.isidentifier() and len(prefix) > 1:
                return prefix
    return "branch"


def _loop_var(name: str, body: list[str]) -> str:
    """A loop variable the body never reads is written ``_``."""
    return name if any(re.search(rf"\b{re.escape(name)}\b", line) for line in body) else "_"


def _plain(target: n.Target | None) -> str | None:
    if target is None or not target.is_plain:
        return None
    return "".join(target.parts)  # type: ignore[arg-type]


def _has_attr(e: n.Expr) -> bool:
    return "." in to_python(e)


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


def _bind(block: n.BlockDef, arguments: n.Arguments) -> dict[str, n.Expr]:
    bound = {p.name: a for p, a in zip(block.params, arguments.args)}
    for key, value, _ in arguments.kwargs:
        bound[key] = value
    return bound


def value_literal(value) -> str:
    if isinstance(value, BlockRef):
        return value.name
    return to_python(literal(value, _SPAN))


__all__ = ["ClassGen", "ClassInfo", "Namespace", "StmtInfo", "shape_comment", "value_literal"]
