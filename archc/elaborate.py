"""AST + variant -> validated ``Graph``.

Blocks are expanded, expressions evaluated, repeats unrolled; every op's
arguments are checked against its schema and every shape inferred. Each
mistake is a ``SpecError`` at the spec line that caused it, with notes that
say through which block calls and which variant elaboration got there.
"""

from __future__ import annotations

import keyword
from collections import defaultdict
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from . import nodes as n
from .errors import SpecError, SpecErrors, did_you_mean
from .expr import BlockRef, Evaluator, TensorInfo, evaluate, type_name
from .graph import Graph, OpNode, ScopeInfo
from .loader import Program
from .ops import REGISTRY, OpKind, ShapeError

MAX_NODES = 200_000
MAX_ERRORS = 20  # distinct errors reported for one variant
MAX_FAILURES = 2_000  # failed statements (repeats included) before elaboration gives up
RESERVED = {"self", "torch", "nn", "F", "in_channels", "forward", "training", "out_channels"}  # module attribute names


class Fatal(SpecErrors):
    """A mistake after which elaboration stops at once (going on would only repeat it)."""

    def __init__(self, error: SpecError):
        super().__init__([error])


@dataclass
class Tensor:
    node: str
    shape: tuple[int, ...]

    def info(self) -> TensorInfo:
        if len(self.shape) == 3:
            return TensorInfo(*self.shape)
        return TensorInfo(None, features=self.shape[0])


@dataclass
class Scope:
    """Where new module names go: a block instance or a named seq."""

    prefix: str
    numbered: bool  # a named seq: unnamed children are numbered, every child is a module
    path: tuple[str, ...]
    names: dict[str, n.Span] = field(default_factory=dict)
    count: int = 0
    unnamed: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def child(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass
class Frame:
    """One block (or network) body being elaborated."""

    env: dict[str, object]
    scope: Scope
    block_input: Tensor
    where: list[tuple[str, n.Span | None]]  # notes: the call chain
    side: str | None = None
    allow_side: bool = False


def signature_bind(params: list[n.Param], args: list, kwargs: list[tuple[str, object, n.Span]],
                   what: str, call_span: n.Span, eval_default) -> dict[str, object]:
    """Bind call arguments to a block's or network's parameters."""
    names = [p.name for p in params]
    if len(args) > len(params):
        raise SpecError(f"{what} takes {len(params)} positional argument{'s' * (len(params) != 1)} but "
                        f"{len(args)} were given", call_span)
    bound = dict(zip(names, args))
    for key, value, span in kwargs:
        if key not in names:
            raise SpecError(f"{what} has no parameter '{key}'", span, hint=did_you_mean(key, names))
        if key in bound:
            raise SpecError(f"{what} got parameter '{key}' twice", span)
        bound[key] = value
    result = {}
    for p in params:
        if p.name in bound:
            result[p.name] = bound[p.name]
        elif p.default is not None:
            result[p.name] = eval_default(p, result)
        else:
            raise SpecError(f"{what} is missing its argument '{p.name}'", call_span)
    return result


class Elaborator:
    def __init__(self, program: Program, record_shapes: dict[int, list] | None = None):
        """``record_shapes`` collects (input, output) shapes per statement, for the code generator."""
        self.program = program
        self.globals: dict[str, object] = {name: BlockRef(name) for name in program.blocks}
        for let in program.lets:
            self.globals[let.name] = evaluate(let.value, self.globals)
        self.stmt_shapes = record_shapes
        self.graph: Graph | None = None
        self.block_stack: list[str] = []
        self.param_values: dict[tuple[str, str], list] = {}  # (block, param) -> values it was called with
        self.validated: dict[str, BaseModel] = {}  # op arguments already checked, by kind and values
        self.dumped: dict[int, dict] = {}  # and as plain dicts, by id of the validated model (kept alive above)
        self.errors: list[SpecError] = []  # the current variant's, in the order found
        self.failures = 0

    # ------------------------------------------------------------ entry point

    def network(self, net: n.NetworkDef, variant: str | None, values: dict[str, object]) -> Graph:
        """Elaborate one variant; every independent mistake found is raised together at the end."""
        self.graph = Graph(net.name, variant)
        self.errors, self.failures = [], 0
        env = dict(self.globals)
        env.update(values)
        ev = Evaluator(env)
        dims = [ev(d) for d in net.input]
        for d, e in zip(dims, net.input):
            if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
                raise SpecError(f"input sizes must be positive integers, got {d!r}", e.span)
        if len(dims) not in (1, 3):
            raise SpecError(f"input must be C x H x W (or F), got {len(dims)} sizes", net.input_span)
        shape = tuple(dims)
        inp = self.graph.add(OpNode(id="input", name=None, op="input", args={}, in_shapes=(), shape=shape,
                                    span=net.input_span), [])
        self.graph.input = inp.id
        frame = Frame(env, Scope("", False, ()), Tensor("input", shape), [], allow_side=True)
        try:
            out = self.body(net.body, frame, Tensor("input", shape))
        except Fatal as exc:
            raise SpecErrors(self.errors + exc.errors) from None
        if self.errors:
            raise SpecErrors(self.errors) if len(self.errors) > 1 else self.errors[0]
        self.graph.output = out.node
        return self.graph

    def record(self, exc: SpecError, frame: Frame) -> None:
        """Keep a statement's error and go on as if the statement were absent, to find the others."""
        self.failures += 1
        if self.failures > MAX_FAILURES:
            raise SpecErrors(self.errors or [exc], stopped=True)
        if exc.follows_shapes and self.errors:
            return  # shapes after an earlier mistake are not the ones the user meant
        for text, span in reversed(frame.where):
            exc.add_note(text, span)
        if any(e.span == exc.span and e.message == exc.message for e in self.errors):
            return  # the same mistake in another instance of a block
        self.errors.append(exc)
        if len(self.errors) >= MAX_ERRORS:
            raise SpecErrors(self.errors, stopped=True)

    # ------------------------------------------------------------- statements

    def body(self, stmts: list[n.Stmt], frame: Frame, x: Tensor, taps: dict | None = None) -> Tensor:
        for stmt in stmts:
            x = self.stmt(stmt, frame, x, taps)
        return x

    def stmt(self, stmt: n.Stmt, frame: Frame, x: Tensor, taps: dict | None = None) -> Tensor:
        try:
            return self._stmt(stmt, frame, x, taps)
        except SpecErrors:  # fatal, or the limit reached
            raise
        except SpecError as exc:
            self.record(exc, frame)
            return x

    def _stmt(self, stmt: n.Stmt, frame: Frame, x: Tensor, taps: dict | None) -> Tensor:
        kind = type(stmt).__name__
        cond = getattr(stmt, "cond", None)
        if cond is not None and kind != "If" and not self._truth(cond, frame, x):
            return x
        out = getattr(self, "_" + kind)(stmt, frame, x)
        if taps is not None and getattr(stmt, "target", None) is not None:
            taps[self.target_name(stmt.target, frame, x)] = out
        if self.stmt_shapes is not None and kind in ("Layer", "Seq", "Concat", "Dense", "Residual"):
            self.stmt_shapes.setdefault(id(stmt), []).append((x.shape, out.shape))
        return out

    def _truth(self, cond: n.Expr, frame: Frame, x: Tensor) -> bool:
        value = self.eval(cond, frame, x)
        if not isinstance(value, (bool, int)) or value is None:
            raise SpecError(f"a condition must be a bool, got {type_name(value)}", cond.span)
        return bool(value)

    def _Let(self, stmt: n.Let, frame: Frame, x: Tensor) -> Tensor:
        frame.env[stmt.name] = self.eval(stmt.value, frame, x)
        return x

    def _If(self, stmt: n.If, frame: Frame, x: Tensor) -> Tensor:
        branch = stmt.body if self._truth(stmt.cond, frame, x) else stmt.orelse
        return self.body(branch, frame, x)

    def _For(self, stmt: n.For, frame: Frame, x: Tensor) -> Tensor:
        for item in self._items(stmt, frame, x):
            frame.env[stmt.var] = item
            x = self.body(stmt.body, frame, x)
        return x

    def _items(self, stmt: n.For, frame: Frame, x: Tensor):
        """A for loop's values; its variable is restored afterwards."""
        items = self.eval(stmt.iterable, frame, x)
        if not isinstance(items, (list, tuple)):
            raise SpecError(f"'for' needs a list or range(...), got {type_name(items)}", stmt.iterable.span)
        saved = frame.env.get(stmt.var, _MISSING)
        try:
            yield from items
        finally:
            if saved is _MISSING:
                frame.env.pop(stmt.var, None)
            else:
                frame.env[stmt.var] = saved

    def _Seq(self, stmt: n.Seq, frame: Frame, x: Tensor) -> Tensor:
        if stmt.target is None:
            return self.body(stmt.body, frame, x)
        name = self.claim(stmt.target, frame, x)
        path = frame.scope.child(name)
        self.graph.scopes[path] = ScopeInfo(path=path, kind="seq", block=None, call="seq", span=stmt.span)
        inner = Frame(frame.env, Scope(path, True, frame.scope.path + (path,)), frame.block_input, frame.where,
                      frame.side)
        return self._seq_body(stmt.body, inner, x)

    def _seq_body(self, stmts: list[n.Stmt], frame: Frame, x: Tensor) -> Tensor:
        for s in stmts:
            if isinstance(s, (n.Concat, n.Dense, n.Residual, n.Side)):
                what = type(s).__name__.lower()
                raise SpecError(f"a named seq becomes nn.Sequential and cannot hold a {what}", s.span,
                                hint=f"move the {what} into a block and call the block here")
            x = self.stmt(s, frame, x)
        return x

    def _Concat(self, stmt: n.Concat, frame: Frame, x: Tensor) -> Tensor:
        if not stmt.branches:
            raise SpecError("concat needs at least one branch", stmt.span)
        outs = [self.stmt(b, frame, x) for b in stmt.branches]
        spatial = {o.shape[1:] for o in outs}
        if any(len(o.shape) != 3 for o in outs):
            raise SpecError("concat needs C x H x W branches", stmt.span, follows_shapes=True)
        if len(spatial) > 1:
            sizes = ", ".join(f"{o.shape[1]}x{o.shape[2]}" for o in outs)
            raise SpecError(f"concat branches have different spatial sizes: {sizes}", stmt.span,
                            hint="every branch must keep the same height and width (check strides and padding)",
                            follows_shapes=True)
        shape = (sum(o.shape[0] for o in outs), *outs[0].shape[1:])
        node = self.add_node(frame, None, "concat", {}, [o for o in outs], shape, stmt.span)
        return Tensor(node.id, shape)

    def _Dense(self, stmt: n.Dense, frame: Frame, x: Tensor) -> Tensor:
        pos, kw = self.call_args(stmt.arguments, frame, x)
        if pos or any(k != "checkpoint" for k, _, _ in kw):
            raise SpecError("dense takes only 'checkpoint = ...'", stmt.span)
        if kw and not isinstance(kw[0][1], bool):
            raise SpecError(f"checkpoint must be true or false, got {type_name(kw[0][1])}", kw[0][2])
        if len(x.shape) != 3:
            raise SpecError("dense needs a C x H x W input", stmt.span, follows_shapes=True)
        features = [x]
        self._dense_members(stmt.body, frame, features, stmt)
        if len(features) == 1:
            raise SpecError("dense needs at least one member", stmt.span)
        return self._concat(features, frame, stmt.span)

    def _dense_members(self, stmts: list[n.Stmt], frame: Frame, features: list[Tensor], dense: n.Dense) -> None:
        """Each member reads the concatenation of everything before it; for, if and let only arrange them."""
        for s in stmts:
            if isinstance(s, (n.For, n.If, n.Let, n.Side)):
                if isinstance(s, n.Side):
                    raise SpecError("a side output cannot be a member of a dense", s.span)
                if isinstance(s, n.Let):
                    self.stmt(s, frame, features[0])
                elif isinstance(s, n.If):
                    branch = s.body if self._truth(s.cond, frame, features[0]) else s.orelse
                    self._dense_members(branch, frame, features, dense)
                else:
                    for item in self._items(s, frame, features[0]):
                        frame.env[s.var] = item
                        self._dense_members(s.body, frame, features, dense)
                continue
            inp = features[0] if len(features) == 1 else self._concat(features, frame, s.span)
            out = self.stmt(s, frame, inp)
            if out is inp:  # skipped by its condition, or failed (already reported)
                continue
            if len(out.shape) != 3 or out.shape[1:] != features[0].shape[1:]:
                got = " x ".join(map(str, out.shape))
                raise SpecError(f"a dense member must keep the input's height and width, but this one gives {got}",
                                s.span, hint="every member is concatenated with the input (check strides and padding)",
                                follows_shapes=True)
            features.append(out)

    def _concat(self, parts: list[Tensor], frame: Frame, span: n.Span) -> Tensor:
        shape = (sum(p.shape[0] for p in parts), *parts[0].shape[1:])
        node = self.add_node(frame, None, "concat", {}, parts, shape, span)
        return Tensor(node.id, shape)

    def _Residual(self, stmt: n.Residual, frame: Frame, x: Tensor) -> Tensor:
        args = self.call_args(stmt.arguments, frame, x)
        pos, kw = args
        if pos or any(k != "scale" for k, _, _ in kw):
            raise SpecError("residual takes only 'scale = ...'", stmt.span)
        scale = kw[0][1] if kw else None
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
            raise SpecError(f"scale must be a number, got {type_name(scale)}", kw[0][2])
        taps: dict[str, Tensor] = {}
        body_out = self.body(stmt.body, frame, x, taps)
        short = x
        sc = stmt.shortcut
        if sc is not None and (sc.cond is None or self._truth(sc.cond, frame, x)):
            start = x
            if sc.source is not None:
                if sc.source not in taps:
                    raise SpecError(f"'{sc.source}' is not a named layer of this residual's body", sc.source_span,
                                    hint=did_you_mean(sc.source, taps) or "name the layer whose output the shortcut reads")
                start = taps[sc.source]
            short = self.body(sc.body, frame, start)
        if body_out.shape != short.shape:
            b = " x ".join(map(str, body_out.shape))
            s = " x ".join(map(str, short.shape))
            hint = None
            if body_out.shape[1:] != short.shape[1:] or body_out.shape[0] != short.shape[0]:
                hint = ("add a projection shortcut: 'shortcut if ... { conv(...); batchnorm }'"
                        if sc is None else "the shortcut must produce the body's shape")
            raise SpecError(f"residual branch gives {b} but the shortcut gives {s}", stmt.span, hint=hint,
                            follows_shapes=True)
        shape = body_out.shape
        node = self.add_node(frame, None, "add", {"scale": scale} if scale is not None else {},
                             [body_out, short], shape, stmt.span)
        return Tensor(node.id, shape)

    def _Side(self, stmt: n.Side, frame: Frame, x: Tensor) -> Tensor:
        if not frame.allow_side:
            raise SpecError("side outputs are allowed only in a network's body", stmt.span)
        name = self.target_name(stmt.target, frame, x)
        if name in self.graph.sides:
            raise SpecError(f"side output '{name}' is defined twice", stmt.span)
        layer = n.Layer(stmt.target, stmt.func, stmt.func_span, stmt.arguments, None, stmt.span)
        side_frame = Frame(frame.env, frame.scope, frame.block_input, frame.where, side=name)
        out = self._Layer(layer, side_frame, x)
        self.graph.sides[name] = out.node
        return x

    def _Layer(self, stmt: n.Layer, frame: Frame, x: Tensor) -> Tensor:
        kind, block = self.resolve(stmt.func, stmt.func_span, frame)
        pos, kw = self.call_args(stmt.arguments, frame, x)
        if block is not None:
            return self.call_block(stmt, block, pos, kw, frame, x)
        assert kind is not None
        if kind.module is None and (stmt.target is not None or frame.scope.numbered):
            raise SpecError(f"{kind.name} has no module form: it cannot be named or sit in a named seq", stmt.span,
                            hint="use it unnamed in a block body")
        if stmt.target is None and frame.scope.numbered:
            name: str | None = str(frame.scope.count)
            frame.scope.count += 1
        elif stmt.target is None:
            if kind.has_params:
                raise SpecError(f"this {kind.name} has parameters and needs a name", stmt.span,
                                hint=f"write 'NAME = {kind.name}(...)': the name becomes its state_dict key")
            name = None
        else:
            name = self.claim(stmt.target, frame, x)
        values = self.op_args(kind, pos, kw, stmt)
        if not kind.flat_input and len(x.shape) != 3:
            raise SpecError(f"{kind.name} needs a C x H x W input, got {x.shape[0]} features", stmt.span,
                            hint="put it before 'flatten'", follows_shapes=True)
        try:
            shape = kind.shape(values, x.shape)
            params = kind.params(values, x.shape)
            macs = kind.macs(values, x.shape, shape)
        except ShapeError as exc:
            raise SpecError(f"{kind.name}: {exc}", stmt.span,
                            notes=[(f"its input is {' x '.join(map(str, x.shape))}", None)], follows_shapes=True) from None
        node = self.add_node(frame, None if name is None else frame.scope.child(name), kind.name,
                             dict(self.dumped[id(values)]), [x], shape, stmt.span, params, macs)
        return Tensor(node.id, shape)

    # --------------------------------------------------------------- helpers

    def call_block(self, stmt: n.Layer, block: n.BlockDef, pos, kw, frame: Frame, x: Tensor) -> Tensor:
        if stmt.target is None:
            if not frame.scope.numbered:
                raise SpecError(f"this {block.name} needs a name", stmt.span,
                                hint=f"write 'NAME = {block.name}(...)': the name becomes its attribute")
            name = str(frame.scope.count)
            frame.scope.count += 1
        else:
            name = self.claim(stmt.target, frame, x)
        if block.name in self.block_stack:
            raise SpecError(f"block '{block.name}' calls itself (through {' -> '.join(self.block_stack)})", stmt.span)
        if len(self.block_stack) > 100:
            raise Fatal(SpecError("blocks nested more than 100 deep", stmt.span))
        path = frame.scope.child(name)
        call = f"{block.name}({', '.join([_show(v) for v in pos] + [f'{k}={_show(v)}' for k, v, _ in kw])})"
        self.graph.scopes[path] = ScopeInfo(path=path, kind="block", block=block.name, call=call, span=stmt.span)
        env = dict(self.globals)
        values = signature_bind(block.params, pos, kw, f"block {block.name}", stmt.span,
                                lambda p, bound: evaluate(p.default, self.globals))
        env.update(values)
        for key, value in values.items():
            if self.stmt_shapes is None:  # recording for the code generator only
                break
            seen = self.param_values.setdefault((block.name, key), [])
            kind = (type(value), len(value) if isinstance(value, (list, tuple)) else 0)
            if len(seen) < 8 and kind not in {(type(v), len(v) if isinstance(v, (list, tuple)) else 0) for v in seen}:
                seen.append(value)  # one value of each kind: enough to annotate the generated parameter
        inner = Frame(env, Scope(path, False, frame.scope.path + (path,)), x,
                      frame.where + [(f"in block {block.name}, called here", stmt.span)], frame.side)
        self.block_stack.append(block.name)
        try:
            out = self.body(block.body, inner, x)
        except Fatal as exc:
            exc.errors[0].add_note(f"in block {block.name}, called here", stmt.span)
            raise
        finally:
            self.block_stack.pop()
        return out

    def resolve(self, name: str, span: n.Span, frame: Frame) -> tuple[OpKind | None, n.BlockDef | None]:
        value = frame.env.get(name)
        if isinstance(value, BlockRef):
            return None, self.program.blocks[value.name]
        if value is not None and name not in REGISTRY and name not in self.program.blocks:
            raise SpecError(f"'{name}' is a {type_name(value)}, not a layer or block", span)
        if name in self.program.blocks:
            return None, self.program.blocks[name]
        if name in REGISTRY:
            return REGISTRY[name], None
        known = list(REGISTRY) + list(self.program.blocks)
        raise SpecError(f"unknown layer or block '{name}'", span, hint=did_you_mean(name, known))

    def call_args(self, arguments: n.Arguments, frame: Frame, x: Tensor):
        pos = [self.eval(a, frame, x) for a in arguments.args]
        kw = []
        seen = set()
        for key, value, span in arguments.kwargs:
            if key in seen:
                raise SpecError(f"argument '{key}' given twice", span)
            seen.add(key)
            kw.append((key, self.eval(value, frame, x), span))
        return pos, kw

    def op_args(self, kind: OpKind, pos: list, kw: list, stmt: n.Layer):
        fields = kind.positional
        if len(pos) > len(fields):
            raise SpecError(f"{kind.name} takes at most {len(fields)} positional arguments "
                            f"({', '.join(fields) or 'none'}), got {len(pos)}", stmt.span)
        data: dict[str, object] = {}
        spans: dict[str, n.Span] = {}
        for fname, value, expr in zip(fields, pos, stmt.arguments.args):
            data[fname], spans[fname] = value, expr.span
        for key, value, span in kw:
            if key not in fields:
                raise SpecError(f"{kind.name} has no argument '{key}'", span,
                                hint=did_you_mean(key, fields) or f"its arguments: {', '.join(fields) or 'none'}")
            if key in data:
                raise SpecError(f"{kind.name} got argument '{key}' twice", span)
            data[key], spans[key] = value, span
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        # deep networks repeat the same few layers thousands of times; repr tells True from 1 and 1.0
        key = f"{kind.name}{sorted(data.items())!r}"
        if key in self.validated:
            return self.validated[key]
        try:
            values = kind.args(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field_name = str(err["loc"][0]) if err["loc"] else ""
            if err["type"] == "missing":
                raise SpecError(f"{kind.name} is missing its argument '{field_name}'", stmt.span,
                                hint=f"{kind.name}({', '.join(fields)})") from None
            got = data.get(field_name)
            raise SpecError(f"{kind.name}: bad value {_show(got)} for '{field_name}': {err['msg'].lower()}",
                            spans.get(field_name, stmt.span)) from None
        self.validated[key] = values
        self.dumped[id(values)] = values.model_dump()
        return values

    def eval(self, e: n.Expr, frame: Frame, x: Tensor):
        def tensors(which: str, span: n.Span) -> TensorInfo:
            return (frame.block_input if which == "in" else x).info()

        return Evaluator(frame.env, tensors)(e)

    def target_name(self, target: n.Target, frame: Frame, x: Tensor) -> str:
        parts = []
        for p in target.parts:
            if isinstance(p, str):
                parts.append(p)
            else:
                v = self.eval(p, frame, x)
                if not isinstance(v, (int, str)) or isinstance(v, bool):
                    raise SpecError(f"a name can interpolate only ints and strings, got {type_name(v)}", p.span)
                parts.append(str(v))
        name = "".join(parts)
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SpecError(f"'{name}' is not a valid Python identifier", target.span)
        if name in RESERVED or name.startswith("_"):
            raise SpecError(f"'{name}' is reserved for the generated code", target.span, hint="choose another name")
        return name

    def claim(self, target: n.Target, frame: Frame, x: Tensor) -> str:
        name = self.target_name(target, frame, x)
        scope = frame.scope
        if name in scope.names:
            raise SpecError(f"'{name}' is already defined in this scope", target.span,
                            notes=[("first defined here", scope.names[name])])
        scope.names[name] = target.span
        if scope.numbered:
            scope.count += 1
        return name

    def add_node(self, frame: Frame, name: str | None, op: str, args: dict, inputs: list[Tensor],
                 shape: tuple[int, ...], span: n.Span, params: int = 0, macs: int = 0) -> OpNode:
        graph = self.graph
        if len(graph) >= MAX_NODES:
            raise Fatal(SpecError(f"the network has more than {MAX_NODES} operations", span,
                                  hint="check repeat counts"))
        if name is None:
            key = frame.scope.prefix
            frame.scope.unnamed[op] += 1
            node_id = f"{key + '.' if key else ''}{op}#{frame.scope.unnamed[op]}"
        else:
            node_id = name
        node = OpNode(id=node_id, name=name, op=op, args=args, in_shapes=tuple(t.shape for t in inputs),
                      shape=shape, params=params, macs=macs, scope=frame.scope.path, side=frame.side, span=span)
        return graph.add(node, [t.node for t in inputs])


_MISSING = object()


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_show(i) for i in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    return repr(v)
