"""The layer statement, as elaboration sees it: a call of an op (its arguments checked against the op's
schema, its shape rule applied) or of a block (its parameters bound, its body elaborated in a scope of its
own). A mixin of ``elaborate.Elaborator``, like ``elabstruct``."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from ..errors import SpecError, SpecErrors, did_you_mean
from ..lang import nodes as n
from ..ops import REGISTRY, OpKind, ShapeError
from . import memo
from .expr import BudgetExceeded, Evaluator, evaluate
from .graph import ScopeInfo
from .layout import as_named, kinds
from .recursion import MAX_DEPTH, recursive, same_call, too_deep
from .scope import Frame, Scope, Tensor, show, signature_bind
from .values import BlockRef, OpRef, type_name


class Fatal(SpecErrors):
    """A mistake after which elaboration stops at once (going on would only repeat it)."""

    def __init__(self, error: SpecError):
        super().__init__([error])


class CallElaboration:
    """Elaborator methods for a layer statement: an op's or a block's call."""

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
                            stmt.span, hint=f"give them where the value is written: {kind.name}(NAME = ...)")
        if as_value:  # the arguments the value was given (norm_layer = batchnorm(eps = 0.001))
            kw = [(k, v, stmt.span) for k, v in frame.env[stmt.func].args]
        if kind.outputs is not None:
            raise SpecError(f"{kind.name} gives several tensors: name them in a let of a block with named tensors",
                            stmt.span, hint=f"'let a, b = {kind.name}(x, ...)' in 'block B(...) (x) -> y {{ ... }}'")
        if kind.inputs != 1:
            raise SpecError(f"{kind.name} takes {kind.inputs or 'a list of'} tensors: apply it in a let of a block "
                            "with named tensors", stmt.span,
                            hint=f"'let y = {kind.name}(...)' in 'block B(...) (a, b) -> y {{ ... }}'")
        numbered = frame.scope.numbered
        if kind.layouts is not None and x.type.layout not in kind.layouts:  # unnamed axes read as the op needs
            x = Tensor(x.node, as_named(x.type, kind.layouts))
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
        if as_value and kind.module_for(t.layout) != kind.module:  # the class a parameter holds is one class
            own = [k.name for k in REGISTRY.values() if k.value and k.module == kind.module_for(t.layout)]
            raise SpecError(f"'{stmt.func}' holds {kind.name}, whose class is {kind.module_for(t.layout)} on "
                            f"{t.describe()}, not {kind.module}, the class a parameter holds", stmt.span,
                            hint=f"hold {own[0]}, whose class that is, or write {kind.name} itself here" if own
                            else f"write {kind.name} itself here", follows_shapes=True)
        if as_value and not (stmt.target is not None or numbered):
            raise SpecError(f"'{stmt.func}' holds an op, so it is a module: it needs a name here", stmt.span,
                            hint=f"write 'NAME = {stmt.func}'")
        if stmt.target is None and numbered:
            name: str | None = self.number(frame, stmt.span)
        elif stmt.target is None:
            if kind.has_params:
                raise SpecError(f"this {kind.name} has parameters and needs a name", stmt.span,
                                hint=f"write 'NAME = {kind.name}(...)': the name becomes its state_dict key")
            name = None
        else:
            name = self.claim(stmt.target, frame, x)
        values, dumped = self.op_args(kind, pos, kw, stmt)
        try:
            out = kind.shape(values, t)
            if not stmt.applied and not frame.flow:  # on the implicit path a tensor has a named layout
                out = as_named(out)
            params = kind.params(values, t)
            macs = kind.macs(values, t, out)
        except ShapeError as exc:
            raise SpecError(f"{kind.name}: {exc}", stmt.span, notes=[(f"its input is {t.describe()}", None)],
                            hint=exc.hint, follows_shapes=True) from None
        node = self.add_node(frame, None if name is None else frame.scope.child(name), kind.name,
                             dict(dumped), [x], out, stmt.span, params, macs,
                             learned=kind.learned is not None)
        return Tensor(node.id, out)

    # --------------------------------------------------------------- helpers

    def call_block(self, stmt: n.Layer, block: n.BlockDef, pos, kw, frame: Frame, x: Tensor | list[Tensor]) -> Tensor:
        """``x``: a list where a block with named tensors is applied to several."""
        xs = x if isinstance(x, list) else [x]
        x = xs[0]
        if stmt.target is None:
            if not frame.scope.numbered:
                raise SpecError(f"this {block.name} needs a name", stmt.span,
                                hint=f"write 'NAME = {block.name}(...)': the name becomes its attribute")
            name = self.number(frame, stmt.span)
        else:
            name = self.claim(stmt.target, frame, x)
        call = f"{block.name}({', '.join([show(v) for v in pos] + [f'{k}={show(v)}' for k, v, _ in kw])})"
        if len(self.block_stack) >= MAX_DEPTH:
            raise Fatal(too_deep(self.block_stack + [(block.name, call, None)], stmt.span,
                                 f"within {MAX_DEPTH} nested calls"))
        self.budget.spend(stmt.span)
        path = frame.scope.child(name)
        names = [p.name for p in block.params]
        args = tuple((names[i] if i < len(names) else None, v) for i, v in enumerate(pos)) + tuple(
            (k, v) for k, v, _ in kw)
        self.graph.scopes[path] = ScopeInfo(path=path, kind="block", block=block.name, call=call, span=stmt.span,
                                            args=args)
        env = dict(self.globals)
        values = signature_bind(block.params, pos, kw, f"block {block.name}", stmt.span,
                                lambda p, bound: evaluate(p.default, self.globals, budget=self.budget))
        env.update(values)
        again = (block.name, repr(sorted(values.items())), tuple(t.type for t in xs), frame.side)
        if any(entry[2] == again for entry in self.block_stack):  # elaborated alike, it would call itself forever
            raise Fatal(same_call(self.block_stack + [(block.name, call, again)], stmt.span))
        if isinstance(block, n.NetworkDef):
            self._check_network_input(block, env, x, stmt)
        for key, value in values.items():
            if self.stmt_shapes is None:  # recording for the code generator only
                break
            seen = self.param_values.setdefault((block.name, key), [])
            _one_kind_of_layer(block.name, key, value, seen, stmt.span)
            kind = (type(value), len(value) if isinstance(value, (list, tuple)) else 0)
            if len(seen) < 8 and kind not in {(type(v), len(v) if isinstance(v, (list, tuple)) else 0) for v in seen}:
                seen.append(value)  # one value of each kind: enough to annotate the generated parameter
        key = None
        if self.memo is not None:
            key = memo.call_key(block.name, values, xs, frame.side, self.stmt_shapes is not None)
            done = self.memo.get(key) if key is not None else None
            if done is not None and memo.fits(self, done):
                return memo.replay(self, done, path, frame.scope.path, xs)
        start = memo.mark(self)
        inner = Frame(env, Scope(path, getattr(block, "sequential", False), frame.scope.path + (path,)), x,
                      frame.where + [(f"in block {block.name}, called here", stmt.span)], frame.side, block_path=path)
        self.block_stack.append((block.name, call, again))
        depth = len(self.block_stack)
        memo.entered(self)
        try:
            if getattr(block, "signature", None) is not None:
                out = self.dataflow(block, inner, xs)
            else:
                out = self.body(block.body, inner, x)
        except Fatal as exc:
            exc.errors[0].add_note(f"in block {block.name}, called here", stmt.span)
            raise
        except BudgetExceeded as exc:  # in a recursion: said once, at the innermost call, with its chain
            if getattr(exc, "chain", False) or not recursive([entry[0] for entry in self.block_stack]):
                raise
            error = too_deep(self.block_stack, stmt.span, f"within the budget of {self.budget.limit:,} evaluation steps")
            raise _chained(BudgetExceeded(error)) from None
        except RecursionError:  # Python's stack, before MAX_DEPTH: blocks whose bodies nest deeply themselves
            raise Fatal(too_deep(self.block_stack, stmt.span, "before Python's stack runs out")) from None
        finally:
            self.block_stack.pop()
            reach = memo.left(self, start, depth)
        if key is not None and key not in self.memo:
            done = memo.record(self, start, path, len(frame.scope.path), xs, out, depth, reach)
            if done is not None:
                self.memo[key] = done
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

    def op_args(self, kind: OpKind, pos: list, kw: list, stmt: n.Layer) -> tuple[BaseModel, dict]:
        """The op's arguments checked by its pydantic model, and as a plain dict (both kept: deep networks repeat
        the same few layers thousands of times)."""
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
                            spans.get(field_name, stmt.span), hint=_padding_hint(kind, field_name, got)) from None
        self.validated[key] = (values, values.model_dump())
        return self.validated[key]


_MISSING = object()


def _padding_hint(kind: OpKind, field_name: str, got) -> str | None:
    """For a word given as a padding: the one word there is, and which kinds take it."""
    if field_name != "padding" or not isinstance(got, str):
        return None
    *others, last = [k.name for k in REGISTRY.values() if k.same_module is not None]
    takers = f"{', '.join(others)} and {last}"
    if got.lower() == "valid":
        return 'TensorFlow\'s "valid" is padding = 0'
    if kind.same_module is not None:
        return 'a padding is a number, a pair, or "same" (TensorFlow\'s: ceil(size / stride) outputs)'
    return f'a padding is a number or a pair here; "same" (TensorFlow\'s) is taken by {takers}'


def _chained(exc: BudgetExceeded) -> BudgetExceeded:
    exc.chain = True  # the calls around it leave it as it is
    return exc


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
    if kind.layouts == ("CDHW",):
        return "a volume is an input of four sizes, 'input C x D x H x W'; a C x H x W map takes the 2-D op"
    if kind.layouts == ("CL",):
        return "a signal is an input of two sizes, 'input C x L', whose first layer is a 1-D op; a map takes the 2-D op"
    return None


def _one_kind_of_layer(block: str, param: str, value, seen: list, span: n.Span) -> None:
    """A parameter that holds a layer holds blocks or ops, not both: the generated class builds a block from its
    input's width (``act(hidden)``) and an op from its arguments (``nn.GELU()``), so it can do only one."""
    kinds = {BlockRef: "a block", OpRef: "an op"}
    mine = kinds.get(type(value))
    other = next((v for v in seen if type(v) in kinds and kinds[type(v)] != mine), None)
    if mine is not None and other is not None:
        raise SpecError(f"parameter '{param}' of block {block} is given {mine} here ({show(value)}) and "
                        f"{kinds[type(other)]} elsewhere ({show(other)}): its class can build only one kind",
                        span, hint="wrap the op in a block of its own (block Gelu() = seq { gelu }), or use two "
                        "parameters")
