"""AST + variant -> validated ``Graph``.

Blocks are expanded, expressions evaluated, repeats unrolled; every op's arguments are checked
against its schema and every tensor type (shape and layout) inferred. Each mistake is a
``SpecError`` at the spec line that caused it, with notes that say through which block calls and
which variant elaboration got there. Everything is bounded: evaluation steps, operations, block
nesting and errors.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ValidationError

from . import nodes as n
from .elabstruct import StructureElaboration
from .errors import SpecError, SpecErrors, did_you_mean
from .expr import Budget, BudgetExceeded, Evaluator, bind, evaluate
from .graph import Graph, OpNode, ScopeInfo, Tap
from .initrules import PARAMETERS, Rule, check_rule, classify, resolve
from .layout import TensorType, kinds, stride_factor
from .loader import Program
from .ops import REGISTRY, OpKind, ShapeError
from .scope import Frame, Scope, Tensor, check_name, show, signature_bind
from .values import BlockRef, Function, Iteration, OpRef, TensorInfo, type_name

MAX_NODES = 200_000  # operations in one variant
MAX_ERRORS = 20  # distinct errors reported for one variant
MAX_FAILURES = 2_000  # failed statements (repeats included) before elaboration gives up
MAX_DEPTH = 32  # block calls nested
MAX_ELEMENTS = 2**40  # elements of one tensor (activation or parameters): more than any machine holds
_STRUCTURE = (n.Concat, n.Gate, n.Ensemble, n.Dense, n.Residual, n.Side)  # statements that live in forward, not nn.Sequential


class Fatal(SpecErrors):
    """A mistake after which elaboration stops at once (going on would only repeat it)."""

    def __init__(self, error: SpecError):
        super().__init__([error])


class Elaborator(StructureElaboration):
    def __init__(self, program: Program, record_shapes: dict[n.Stmt, list] | None = None):
        """``record_shapes`` collects (input, output) tensor types per statement, for the code generator."""
        self.program = program
        self.budget = Budget()
        self.globals: dict[str, object] = {name: BlockRef(name) for name in program.blocks}
        for func in program.funcs.values():  # they see the globals as they are when called: later lets too
            self.globals[func.name] = Function(func, self.globals)
        try:
            for let in program.lets:
                self.globals[let.name] = evaluate(let.value, self.globals, budget=self.budget)
        except BudgetExceeded as exc:
            raise Fatal(exc) from None
        self.stmt_shapes = record_shapes
        self.graph: Graph | None = None
        self.block_stack: list[str] = []
        self.param_values: dict[tuple[str, str], list] = {}  # (block, param) -> values it was called with
        self.validated: dict[str, BaseModel] = {}  # op arguments already checked, by kind and values
        self.dumped: dict[int, dict] = {}  # and as plain dicts, by id of the validated model (kept alive above)
        self.callees: dict[n.Layer, str] = {}  # layer statement -> "block" or "op" it called through a value
        self.rules: list[Rule] = []  # the current variant's init rules, in the order met
        self.errors: list[SpecError] = []  # the current variant's, in the order found
        self.failures = 0

    # ------------------------------------------------------------ entry point

    def network(self, net: n.NetworkDef, variant: str | None, values: dict[str, object]) -> Graph:
        """Elaborate one variant; every independent mistake found is raised together at the end."""
        self.graph = Graph(net.name, variant)
        self.errors, self.failures, self.rules = [], 0, []
        env = dict(self.globals)
        env.update(values)
        ev = Evaluator(env, budget=self.budget)
        dims = [ev(d) for d in net.input]
        for d, e in zip(dims, net.input):
            if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
                raise SpecError(f"input sizes must be positive integers, got {show(d)}", e.span)
        layout = {1: "F", 2: "LD", 3: "CHW"}.get(len(dims))
        if layout is None:
            raise SpecError(f"input must be C x H x W (or F, or L x D tokens), got {len(dims)} sizes", net.input_span)
        inp_type = TensorType(tuple(dims), layout)
        inp = self.graph.add(OpNode(id="input", name=None, op="input", args={}, in_shapes=(), shape=inp_type.shape,
                                    layout=layout, span=net.input_span), [])
        self.graph.input = inp.id
        frame = Frame(env, Scope("", False, ()), Tensor("input", inp_type), [], allow_side=True, main=True)
        self.reduction, self.nested = 1, 0  # the main path's stride so far; depth inside one of its steps
        self.tap_holders = n.tap_holders(net.body)
        try:
            out = self.body(net.body, frame, Tensor("input", inp_type))
        except BudgetExceeded as exc:
            raise SpecErrors(self.errors + [exc]) from None
        except Fatal as exc:
            raise SpecErrors(self.errors + exc.errors) from None
        if not self.errors and self.rules:
            try:
                self.graph.inits = resolve(self.rules, self.graph.ops(), self.graph.scopes, self.budget)
            except SpecError as exc:
                self.record(exc, frame)
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
        except (SpecErrors, BudgetExceeded):  # fatal, or a limit reached
            raise
        except SpecError as exc:
            self.record(exc, frame)
            return x

    def _stmt(self, stmt: n.Stmt, frame: Frame, x: Tensor, taps: dict | None) -> Tensor:
        kind = type(stmt).__name__
        if frame.scope.numbered and isinstance(stmt, _STRUCTURE):
            what = kind.lower()
            raise SpecError(f"a named seq becomes nn.Sequential and cannot hold a {what}", stmt.span,
                            hint=f"move the {what} into a block and call the block here")
        cond = getattr(stmt, "cond", None)
        if cond is not None and kind != "If" and not self._truth(cond, frame, x):
            return x
        on_main = frame.main and not self.nested and n.is_step(stmt, self.tap_holders)
        self.nested += on_main
        try:
            out = getattr(self, "_" + kind)(stmt, frame, x)
        finally:
            self.nested -= on_main
        if on_main and self.reduction is not None:  # a layer or branch on the main path: its stride counts
            factor = stride_factor(x.type, out.type)
            self.reduction = None if factor is None else self.reduction * factor
        if kind in ("Layer", "Seq") and stmt.target is not None:
            name = self.target_name(stmt.target, frame, x)
            if taps is not None:
                taps[name] = (out, stmt.target.is_plain and not stmt.target.quoted)
            if stmt.target.is_plain and not stmt.target.quoted:
                frame.outputs["".join(stmt.target.parts)] = out
            if frame.main and not self.nested:  # a layer of the main path: a tap after it takes its name
                frame.last_named = (frame.scope.child(name), out.node)
        if self.stmt_shapes is not None:
            self.stmt_shapes.setdefault(stmt, []).append((x.type, out.type))
        return out

    def _truth(self, cond: n.Expr, frame: Frame, x: Tensor) -> bool:
        value = self.eval(cond, frame, x)
        if not isinstance(value, (bool, int)) or value is None:
            raise SpecError(f"a condition must be a bool, got {type_name(value)}", cond.span)
        return bool(value)

    def _Let(self, stmt: n.Let, frame: Frame, x: Tensor) -> Tensor:
        frame.env[stmt.name] = self.eval(stmt.value, frame, x)
        return x

    def _Init(self, stmt: n.Init, frame: Frame, x: Tensor) -> Tensor:
        kind, block, path, param = classify(stmt, self.program.blocks, PARAMETERS)
        check_rule(stmt)
        self.rules.append(Rule(kind, block, path, param, stmt.rule, dict(frame.env), frame.block_path,
                               len(self.block_stack), len(self.rules), stmt))
        return x

    def _If(self, stmt: n.If, frame: Frame, x: Tensor) -> Tensor:
        branch = stmt.body if self._truth(stmt.cond, frame, x) else stmt.orelse
        return self.body(branch, frame, x)

    def _For(self, stmt: n.For, frame: Frame, x: Tensor) -> Tensor:
        for _ in self.iterate(stmt, frame, x):
            x = self.body(stmt.body, frame, x)
        return x

    def iterate(self, stmt: n.For, frame: Frame, x: Tensor):
        """Bind a for loop's variables to each value in turn; they are restored afterwards."""
        items = self.eval(stmt.iterable, frame, x)
        if not isinstance(items, (list, tuple, Iteration)):
            raise SpecError(f"'for' needs a list or range(...), got {type_name(items)}", stmt.iterable.span)
        names = n.pattern_names(stmt.var)
        saved = {name: frame.env.get(name, _MISSING) for name in names}
        try:
            for item in items:
                self.budget.spend(stmt.span)
                bind(stmt.var, item, frame.env, stmt.span)
                yield item
        finally:
            for name, value in saved.items():
                if value is _MISSING:
                    frame.env.pop(name, None)
                else:
                    frame.env[name] = value

    def _Seq(self, stmt: n.Seq, frame: Frame, x: Tensor) -> Tensor:
        if stmt.target is None and not frame.scope.numbered:
            return self.body(stmt.body, frame, x)  # it only groups statements of this block
        if stmt.target is None:  # inside a named seq: a numbered nn.Sequential of its own
            if frame.main and stmt in self.tap_holders:
                raise SpecError("a tap in an unnamed seq inside a named one: the inner seq is a numbered module",
                                stmt.span, hint="name the inner seq, or tap outside it")
            name = str(frame.scope.count)
            frame.scope.count += 1
        else:
            name = self.claim(stmt.target, frame, x)
        path = frame.scope.child(name)
        self.graph.scopes[path] = ScopeInfo(path=path, kind="seq", block=None, call="seq", span=stmt.span)
        inner = Frame(frame.env, Scope(path, True, frame.scope.path + (path,)), frame.block_input, frame.where,
                      frame.side, block_path=frame.block_path, main=frame.main)
        return self.body(stmt.body, inner, x)

    def _Side(self, stmt: n.Side, frame: Frame, x: Tensor) -> Tensor:
        if not frame.allow_side:
            raise SpecError("side outputs are allowed only in the body of the network being built", stmt.span,
                            hint="not in a block, nor in a network used as a layer (an ensemble member: turn its "
                                 "side outputs off)")
        name = self.target_name(stmt.target, frame, x)
        if name in self.graph.sides:
            raise SpecError(f"side output '{name}' is defined twice", stmt.span)
        layer = stmt.layer
        side_frame = Frame(frame.env, frame.scope, frame.block_input, frame.where, side=name,
                           block_path=frame.block_path)
        source = x
        if stmt.source is not None:
            if stmt.source not in frame.outputs:
                raise SpecError(f"'{stmt.source}' is not a layer written before this side output", stmt.source_span,
                                hint=did_you_mean(stmt.source, frame.outputs,
                                                  otherwise="name the layer whose output the side output reads"))
            source = frame.outputs[stmt.source]
        out = self._Layer(layer, side_frame, source)
        if self.stmt_shapes is not None:  # the code generator picks the side layer's module by its input's layout
            self.stmt_shapes.setdefault(layer, []).append((source.type, out.type))
        self.graph.sides[name] = out.node
        return x

    def _Tap(self, stmt: n.Tap, frame: Frame, x: Tensor) -> Tensor:
        if not frame.main:
            return x  # a network called as a layer (an ensemble's member): its taps are its own
        if x.type.layout not in ("CHW", "HWC"):
            raise SpecError(f"a tap marks a feature map (C x H x W); the tensor here is {x.info().kind}", stmt.span,
                            hint="tap before the layers that flatten or pool the map away")
        if stmt.target is not None:
            name = frame.scope.child(self.target_name(stmt.target, frame, x, dotted=True))
        elif frame.last_named is not None and frame.last_named[1] == x.node:
            name = frame.last_named[0]
        else:
            raise SpecError("this tap needs a name: the tensor here is not the output of a named layer", stmt.span,
                            hint="write 'tap NAME', or name the layer before it")
        if name in self.graph.taps:
            raise SpecError(f"tap '{name}' is defined twice", stmt.span)
        if self.reduction is None:
            raise SpecError("the stride up to this tap is unknown: a layer before it flattens the map", stmt.span)
        self.graph.taps[name] = Tap(name, x.node, self.reduction, stmt.span)
        return x

    def _Layer(self, stmt: n.Layer, frame: Frame, x: Tensor) -> Tensor:
        kind, block, as_value = self.resolve(stmt.func, stmt.func_span, frame)
        if as_value or (block is not None and stmt.func not in self.program.blocks):
            self.callees[stmt] = "op" if as_value else "block"  # called through a name that holds it
        pos, kw = self.call_args(stmt.arguments, frame, x)
        if block is not None:
            return self.call_block(stmt, block, pos, kw, frame, x)
        assert kind is not None
        if as_value and (pos or kw):
            raise SpecError(f"'{stmt.func}' holds the op {kind.name}, which is called without arguments here",
                            stmt.span, hint="an op passed as a value is parameter-free: give its arguments a default")
        numbered = frame.scope.numbered
        t = x.type
        if kind.layouts is not None and t.layout not in kind.layouts:
            raise SpecError(f"{kind.name} needs {kinds(kind.layouts)}, got {t.describe()}", stmt.span,
                            hint=_layout_hint(kind, t.layout), follows_shapes=True)
        if kind.learned is not None and (stmt.target is None or numbered):
            raise SpecError(f"{kind.name} is a learned tensor: it needs a name, outside a named seq", stmt.span,
                            hint=f"write 'NAME = {kind.name}(...)' in a block body: NAME is its state_dict key")
        if kind.call is not None and (stmt.target is None or numbered):
            raise SpecError(f"{kind.name} is called with more than its input: it needs a name, outside a named seq",
                            stmt.span, hint=f"write 'NAME = {kind.name}(...)' in a block body")
        if kind.learned is None and (stmt.target is not None or numbered) and kind.module_for(t.layout) is None:
            raise SpecError(f"{kind.name} has no module form: it cannot be named or sit in a named seq", stmt.span,
                            hint="use it unnamed in a block body")
        if as_value and not (stmt.target is not None or numbered):
            raise SpecError(f"'{stmt.func}' holds an op, so it is a module: it needs a name here", stmt.span,
                            hint=f"write 'NAME = {stmt.func}'")
        if stmt.target is None and numbered:
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
        try:
            out = kind.shape(values, t)
            params = kind.params(values, t)
            macs = kind.macs(values, t, out)
        except ShapeError as exc:
            raise SpecError(f"{kind.name}: {exc}", stmt.span, notes=[(f"its input is {t.describe()}", None)],
                            hint=exc.hint, follows_shapes=True) from None
        node = self.add_node(frame, None if name is None else frame.scope.child(name), kind.name,
                             dict(self.dumped[id(values)]), [x], out, stmt.span, params, macs,
                             learned=kind.learned is not None)
        return Tensor(node.id, out)

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
        if len(self.block_stack) >= MAX_DEPTH:
            raise Fatal(SpecError(f"blocks nested more than {MAX_DEPTH} deep", stmt.span))
        self.budget.spend(stmt.span)
        path = frame.scope.child(name)
        call = f"{block.name}({', '.join([show(v) for v in pos] + [f'{k}={show(v)}' for k, v, _ in kw])})"
        self.graph.scopes[path] = ScopeInfo(path=path, kind="block", block=block.name, call=call, span=stmt.span)
        env = dict(self.globals)
        values = signature_bind(block.params, pos, kw, f"block {block.name}", stmt.span,
                                lambda p, bound: evaluate(p.default, self.globals, budget=self.budget))
        env.update(values)
        if isinstance(block, n.NetworkDef):
            self._check_network_input(block, env, x, stmt)
        for key, value in values.items():
            if self.stmt_shapes is None:  # recording for the code generator only
                break
            seen = self.param_values.setdefault((block.name, key), [])
            kind = (type(value), len(value) if isinstance(value, (list, tuple)) else 0)
            if len(seen) < 8 and kind not in {(type(v), len(v) if isinstance(v, (list, tuple)) else 0) for v in seen}:
                seen.append(value)  # one value of each kind: enough to annotate the generated parameter
        inner = Frame(env, Scope(path, getattr(block, "sequential", False), frame.scope.path + (path,)), x,
                      frame.where + [(f"in block {block.name}, called here", stmt.span)], frame.side, block_path=path)
        self.block_stack.append(block.name)
        try:
            out = self.body(block.body, inner, x)
        except Fatal as exc:
            exc.errors[0].add_note(f"in block {block.name}, called here", stmt.span)
            raise
        finally:
            self.block_stack.pop()
        return out

    def _check_network_input(self, net: n.NetworkDef, env: dict, x: Tensor, stmt: n.Layer) -> None:
        """A network used as a layer must be given the input it declares."""
        dims = tuple(Evaluator(env, budget=self.budget)(d) for d in net.input)
        if dims != x.shape:
            raise SpecError(f"network {net.name} takes {' x '.join(map(str, dims))}, but here its input is "
                            f"{x.type.describe()}", stmt.span, follows_shapes=True,
                            hint="pass its size parameter, or resize before it")

    def resolve(self, name: str, span: n.Span, frame: Frame) -> tuple[OpKind | None, n.BlockDef | None, bool]:
        """What a layer statement calls: (op, None, whether the op came from a value) or (None, block, False)."""
        value = frame.env.get(name, _MISSING)
        if isinstance(value, BlockRef):
            return None, self.program.blocks[value.name], False
        if isinstance(value, OpRef):
            return REGISTRY[value.name], None, True
        if value is None and name not in REGISTRY and name not in self.program.blocks:
            raise SpecError(f"'{name}' is none here, so there is nothing to call", span,
                            hint=f"make the statement conditional: '{name} if {name} != none'")
        if value is not _MISSING and name not in REGISTRY and name not in self.program.blocks:
            raise SpecError(f"'{name}' is a {type_name(value)}, not a layer or block", span)
        if name in self.program.blocks:
            return None, self.program.blocks[name], False
        if name in self.program.networks:  # a whole network as a layer: an ensemble's member, say
            return None, self.program.networks[name], False
        if name in REGISTRY:
            return REGISTRY[name], None, False
        known = list(REGISTRY) + list(self.program.blocks) + list(self.program.networks)
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
                                hint=did_you_mean(key, fields, otherwise=f"its arguments: {', '.join(fields) or 'none'}"))
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
            raise SpecError(f"{kind.name}: bad value {show(got)} for '{field_name}': {err['msg'].lower()}",
                            spans.get(field_name, stmt.span)) from None
        self.validated[key] = values
        self.dumped[id(values)] = values.model_dump()
        return values

    def eval(self, e: n.Expr, frame: Frame, x: Tensor):
        def tensors(which: str, span: n.Span) -> TensorInfo:
            return (frame.block_input if which == "in" else x).info()

        return Evaluator(frame.env, tensors, self.budget)(e)

    def target_name(self, target: n.Target, frame: Frame, x: Tensor, dotted: bool = False) -> str:
        """A statement's name; ``dotted``: a tap's, which may be a path (``features.norm5``)."""
        parts = []
        for p in target.parts:
            if isinstance(p, str):
                parts.append(p)
            else:
                v = self.eval(p, frame, x)
                if not isinstance(v, (int, str)) or isinstance(v, bool):
                    raise SpecError(f"a name can interpolate only ints and strings, got {type_name(v)}", p.span)
                parts.append(str(v))
        if dotted:
            return ".".join(check_name(part, target) for part in "".join(parts).split("."))
        return check_name("".join(parts), target)

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
                 t: TensorType, span: n.Span, params: int = 0, macs: int = 0, learned: bool = False) -> OpNode:
        graph = self.graph
        if len(graph) >= MAX_NODES:
            raise Fatal(SpecError(f"the network has more than {MAX_NODES} operations", span,
                                  hint="check repeat counts"))
        self.budget.spend(span, 20)  # an operation is kept (every variant's graph is): it costs more than a step
        size = math.prod(t.shape)
        if size > MAX_ELEMENTS or params > MAX_ELEMENTS:
            what = f"an output of {size:,} elements" if size > MAX_ELEMENTS else f"{params:,} parameters"
            raise SpecError(f"this {op} would have {what}, more than the limit of {MAX_ELEMENTS:,}", span,
                            hint="check the sizes: no machine holds a tensor this large")
        if name is None:
            key = frame.scope.prefix
            frame.scope.unnamed[op] += 1
            node_id = f"{key + '.' if key else ''}{op}#{frame.scope.unnamed[op]}"
        else:
            node_id = name
        node = OpNode(id=node_id, name=name, op=op, args=args, in_shapes=tuple(i.shape for i in inputs),
                      shape=t.shape, layout=t.layout, params=params, macs=macs, scope=frame.scope.path,
                      side=frame.side, span=span, learned=learned, inputs=tuple(i.node for i in inputs))
        return graph.add(node, list(node.inputs))


_MISSING = object()


def _layout_hint(kind: OpKind, layout: str) -> str | None:
    if layout == "F":
        return "put it before 'flatten'"
    if layout == "HWC" and "CHW" in (kind.layouts or ()):
        return "permute the map back first: permute([0, 3, 1, 2])"
    if layout == "CHW" and "HWC" in (kind.layouts or ()):
        return "flatten first, or make the map channels-last: permute([0, 2, 3, 1])"
    if layout == "LD" and "CHW" in (kind.layouts or ()):
        return "turn the tokens back into a map first: to_map(height, width)"
    if layout == "CHW" and kind.layouts == ("LD",):
        return "make the map a token sequence first: to_tokens"
    return None
