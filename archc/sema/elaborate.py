"""AST + variant -> validated ``Graph``.

Blocks are expanded, expressions evaluated, repeats unrolled; every op's arguments are checked
against its schema and every tensor type (shape and layout) inferred. Each mistake is a
``SpecError`` at the spec line that caused it, with notes that say through which block calls and
which variant elaboration got there. Everything is bounded: evaluation steps, operations, block
nesting and errors.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from ..errors import SpecError, SpecErrors, did_you_mean
from ..lang import nodes as n
from ..lang.loader import Program
from ..ops import REGISTRY
from .elabcalls import _MISSING, CallElaboration, Fatal
from .elabflow import FlowElaboration
from .elabstruct import StructureElaboration
from .elabtaps import TapElaboration
from .expr import Budget, BudgetExceeded, Evaluator, bind, evaluate
from .graph import MAX_NODES, Graph, OpNode, ScopeInfo
from .initresolve import resolve
from .initrules import PARAMETERS, Rule, check_rule, classify
from .layout import TensorType
from .memo import Recording
from .scope import Frame, Scope, Tensor, check_name, check_path, claim_member, show
from .taps import read_numbers, step_stride, tapped_blocks
from .values import BlockRef, Function, Iteration, TensorInfo, type_name

MAX_ERRORS = 20  # distinct errors reported for one variant
MAX_FAILURES = 2_000  # failed statements (repeats included) before elaboration gives up
MAX_ELEMENTS = 2**40  # elements of one tensor (activation or parameters): more than any machine holds
_STRUCTURE = (n.Concat, n.Gate, n.Ensemble, n.Dense, n.Residual, n.Side)  # statements that live in forward, not nn.Sequential


class Elaborator(TapElaboration, StructureElaboration, CallElaboration, FlowElaboration):
    def __init__(self, program: Program, record_shapes: dict[n.Stmt, list] | None = None, memoize: bool = True):
        """``record_shapes`` collects (input, output) tensor types per statement, for the code generator;
        ``memoize``: copy a block call's records where an earlier call had the same key (memo.py)."""
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
        self.block_stack: list[tuple[str, str, tuple | None]] = []  # the open block calls (recursion.py)
        self.deepest = 0  # the most calls open at once within the call being elaborated (memo.entered)
        self.param_values: dict[tuple[str, str], list] = {}  # (block, param) -> values it was called with
        self.validated: dict[str, tuple[BaseModel, dict]] = {}  # op arguments checked (and dumped), by kind and values
        self.callees: dict[n.Layer, str] = {}  # layer statement -> "block" or "op" it called through a value
        self.rules: list[Rule] = []  # the current variant's init rules, in the order met
        self.errors: list[SpecError] = []  # the current variant's, in the order found
        self.failures = 0
        self.shape_log: list[tuple] = []  # (statement, shapes) in the order recorded, for memo's copies
        self.memo: dict[tuple, Recording] | None = {} if memoize else None  # block calls elaborated once, by key
        self.tapped = tapped_blocks(program.blocks)  # blocks whose taps become their caller's
        self.entering: tuple[list, dict | None] | None = None  # a tapped block's body about to run, and the memo
        self.residuals: list[dict] = []  # the options of each residual being elaborated, the innermost last

    # ------------------------------------------------------------ entry point

    def network(self, net: n.NetworkDef, variant: str | None, values: dict[str, object],
                input_size: tuple[int, ...] | None = None) -> Graph:
        """Elaborate one variant; every independent mistake found is raised together at the end. ``input_size``
        replaces the sizes the network's ``input`` gives: all of them, or (for a C x H x W map) H x W, or one
        size for a square map."""
        self.graph = Graph(net.name, variant)
        self.errors, self.failures, self.rules = [], 0, []
        env = dict(self.globals)
        env.update(values)
        ev = Evaluator(env, budget=self.budget)
        dims = [ev(d) for d in net.input]
        for d, e in zip(dims, net.input):
            if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
                raise SpecError(f"input sizes must be positive integers, got {show(d)}", e.span)
        if input_size is not None:
            dims = _resized(dims, tuple(input_size), net)
        layout = input_layout(net)
        if layout is None:
            raise SpecError(f"input must be C x H x W (or F, L x D tokens, a C x L signal or a C x D x H x W volume), "
                            f"got {len(dims)} sizes", net.input_span)
        inp_type = TensorType(tuple(dims), layout)
        inp = self.graph.add(OpNode(id="input", name=None, op="input", args={}, in_shapes=(), shape=inp_type.shape,
                                    layout=layout, span=net.input_span), [])
        self.graph.input = inp.id
        frame = Frame(env, Scope("", False, ()), Tensor("input", inp_type), [], allow_side=True, main=True)
        self.reduction, self.nested = 1, 0  # the main path's stride so far; depth inside one of its steps
        self.step: n.Stmt | None = None  # the step of the main path being elaborated
        self.tap_holders = n.tap_holders(net.body, self.tapped)
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

    def note_shapes(self, stmt, shapes: tuple) -> None:
        """Record a statement's types for the code generator (called only while recording)."""
        self.stmt_shapes.setdefault(stmt, []).append(shapes)
        self.shape_log.append((stmt, shapes))

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
        if self.entering is not None and stmts is self.entering[0]:  # a tapped block's body: the main path goes on
            frame.main, self.memo, self.entering = True, self.entering[1], None
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
        if on_main:
            self.step = stmt
        try:
            out = getattr(self, "_" + kind)(stmt, frame, x)
        finally:
            self.nested -= on_main
        if isinstance(out, tuple):  # a block with several outputs, where one tensor is expected
            name = getattr(stmt, "func", "this block")
            raise SpecError(f"{name} gives {len(out)} tensors, where one is expected", stmt.span,
                            hint=f"apply it in a block with named tensors: 'm = {name}(...)', then "
                                 f"'let {', '.join(f'y{i + 1}' for i in range(len(out)))} = m(x)'")
        if on_main and self.reduction is not None:  # a layer or branch on the main path: its stride counts
            factor = step_stride(x.type, out.type)
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
            self.note_shapes(stmt, (x.type, out.type))
            if frame.main:  # the whole numbers a step of the network reads: a stride that follows a parameter
                self.note_shapes(("names", stmt), read_numbers(stmt, frame.env))
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
            name = self.number(frame, stmt.span)
        else:
            name = self.claim(stmt.target, frame, x)
        path = frame.scope.child(name)
        self.graph.scopes[path] = ScopeInfo(path=path, kind="seq", block=None, call="seq", span=stmt.span)
        inner = Frame(frame.env, Scope(path, True, frame.scope.path + (path,)), frame.block_input, frame.where,
                      frame.side, block_path=frame.block_path, main=frame.main, flow=frame.flow)
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
            if stmt.source in frame.scope.containers:
                raise SpecError(f"'{stmt.source}' is a container of modules, not a layer with an output",
                                stmt.source_span, hint="read the output of a layer with a plain name")
            if stmt.source not in frame.outputs:
                raise SpecError(f"'{stmt.source}' is not a layer written before this side output", stmt.source_span,
                                hint=did_you_mean(stmt.source, frame.outputs,
                                                  otherwise="name the layer whose output the side output reads"))
            source = frame.outputs[stmt.source]
        out = self._Layer(layer, side_frame, source)
        if self.stmt_shapes is not None:  # the code generator picks the side layer's module by its input's layout
            self.note_shapes(layer, (source.type, out.type))
        self.graph.sides[name] = out.node
        return x

    def eval(self, e: n.Expr, frame: Frame, x: Tensor):
        def tensors(which: str, span: n.Span) -> TensorInfo:
            return (frame.block_input if which == "in" else x).info()

        return Evaluator(frame.env, tensors, self.budget)(e)

    def target_name(self, target: n.Target, frame: Frame, x: Tensor, dotted: bool = False) -> str:
        """A statement's name; ``dotted``: a tap's, which may be a path (``features.norm5``)."""
        parts: list = []
        for p in target.parts:
            if isinstance(p, str):
                parts.append(p)
            else:
                v = self.eval(p, frame, x)
                if not isinstance(v, (int, str)) or isinstance(v, bool):
                    raise SpecError(f"a name can interpolate only ints and strings, got {type_name(v)}", p.span)
                parts.append(v)
        if target.dotted:
            return check_path(target, [v for p, v in zip(target.parts, parts) if not isinstance(p, str)], dotted)
        parts = [str(p) for p in parts]
        if dotted:
            return ".".join(check_name(part, target) for part in "".join(parts).split("."))
        return check_name("".join(parts), target)

    def number(self, frame: Frame, span: n.Span) -> str:
        """The name of an unnamed layer of a numbered seq: its position, unless a quoted name took it already."""
        scope = frame.scope
        name = str(scope.count)
        if name in scope.names:
            raise SpecError(f"this layer stands at position {name} of its seq, a name given already", span,
                            notes=[("given here", scope.names[name])],
                            hint="name the layers of a seq by their positions throughout, or not at all")
        scope.names[name] = span
        scope.count += 1
        return name

    def claim(self, target: n.Target, frame: Frame, x: Tensor) -> str:
        name = self.target_name(target, frame, x)
        scope = frame.scope
        if name in scope.names:
            raise SpecError(f"'{name}' is already defined in this scope", target.span,
                            notes=[("first defined here", scope.names[name])])
        for level, *member in claim_member(scope, name, target):
            if self.stmt_shapes is not None:  # the code generator picks each container's class
                self.note_shapes(("member", target, level), tuple(member))
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
        layouts = tuple(i.type.layout for i in inputs)
        if any(lay != graph.node(i.node).layout for lay, i in zip(layouts, inputs)):
            in_layouts = layouts  # read in another layout than made (a tensor of unnamed axes as a map)
        else:
            in_layouts = ()
        node = OpNode(id=node_id, name=name, op=op, args=args, in_shapes=tuple(i.shape for i in inputs),
                      shape=t.shape, layout=t.layout, params=params, macs=macs, scope=frame.scope.path,
                      side=frame.side, span=span, learned=learned, inputs=tuple(i.node for i in inputs),
                      in_layouts=in_layouts)
        return graph.add(node, list(node.inputs))


def input_layout(net: n.NetworkDef) -> str | None:
    """The layout of the network's input, by its number of sizes: flat features, L x D tokens, a C x H x W map, a
    C x D x H x W volume. Two sizes are a C x L signal instead of tokens where the network's first layer (or its
    first seq's) takes a signal and not tokens (conv1d, the 1-D pools): a network that reads tokens is unchanged."""
    if len(net.input) != 2:
        return {1: "F", 3: "CHW", 4: "CDHW"}.get(len(net.input))
    first = net.body[0] if net.body else None
    while isinstance(first, n.Seq) and first.body:
        first = first.body[0]
    kind = REGISTRY.get(first.func) if isinstance(first, n.Layer) else None
    return "CL" if kind is not None and kind.layouts and "CL" in kind.layouts and "LD" not in kind.layouts else "LD"


def _resized(dims: list, size: tuple[int, ...], net: n.NetworkDef) -> list:
    """The input's sizes with ``size`` in place of all, or of the spatial ones (a square if one is given)."""
    if any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in size):
        raise SpecError(f"an input size must be positive integers, got {' x '.join(map(str, size))}", net.input_span)
    if len(dims) == 3 and len(size) == 1:
        return [dims[0], size[0], size[0]]
    if len(dims) == 3 and len(size) == 2:
        return [dims[0], *size]
    if len(size) == len(dims):
        return list(size)
    raise SpecError(f"network {net.name} takes {' x '.join(map(str, dims))} inputs: an input size of "
                    f"{len(size)} numbers does not fit it", net.input_span,
                    hint="give H x W (or one size for a square) for a map, or every size")
