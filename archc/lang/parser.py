"""Source text -> typed AST (``nodes.Module``).

Lark (LALR, grammar in ``grammar.lark``, set up in ``syntax``) parses with positions kept; a
Transformer turns the parse tree into ``nodes`` classes.
"""

from __future__ import annotations

from lark import Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedInput, VisitError

from ..errors import SpecError, remember_source
from . import nodes as n
from .dataflow import lower_block
from .limits import check_nesting, check_text
from .syntax import _fragment_parser, _parser, _syntax_error, _tok_span


def parse(text: str, file: str = "<string>") -> n.Module:
    """Parse one spec file's text into a ``nodes.Module``."""
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    remember_source(file, text)
    check_text(text, file)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, file) from None
    try:
        module = _ToAst(file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SpecError):
            raise exc.orig_exc from None
        raise
    check_nesting(module)
    module.source = text
    module.header = _header_comment(text)
    return module


def _one_name_each(stmts: list) -> None:
    """A let names one value, but in a block with named tensors, where it may take a block's several outputs."""
    for stmt in stmts:
        for node in stmt.walk():
            if isinstance(node, n.Let) and node.more:
                raise SpecError("a let of several names takes the outputs of a block that gives several", node.span,
                                hint="only in a block with named tensors: 'let a, b = m(x)'")


def _header_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return "\n".join(lines).strip()


def _parse_fragment(text: str, file: str, line: int, column: int) -> n.Expr:
    """An expression written at ``line``:``column`` inside a string."""
    try:
        tree = _fragment_parser().parse(text)
    except UnexpectedInput as exc:
        error = _syntax_error(exc, file)
        col = column + (getattr(exc, "column", 1) or 1) - 1
        raise SpecError(error.message, n.Span(file, line, col, line, col + 1), hint=error.hint) from None
    try:
        return _ToAst(file, line - 1, column - 1).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SpecError):
            raise exc.orig_exc from None
        raise


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """Parse tree -> ``nodes`` objects, every one with its span (shifted by an offset for a fragment)."""

    def __init__(self, file: str, line_offset: int = 0, column_offset: int = 0):
        super().__init__()
        self.file = file
        self.line_offset = line_offset
        self.column_offset = column_offset

    def _span(self, meta) -> n.Span:
        if getattr(meta, "empty", True):
            return n.Span(self.file, 1 + self.line_offset, 1 + self.column_offset, 1 + self.line_offset,
                          2 + self.column_offset)
        return n.Span(self.file, meta.line + self.line_offset, meta.column + self.column_offset,
                      meta.end_line + self.line_offset, meta.end_column + self.column_offset)

    def _tspan(self, tok: Token) -> n.Span:
        span = _tok_span(tok, self.file)
        if not (self.line_offset or self.column_offset):
            return span
        return n.Span(self.file, span.line + self.line_offset, span.column + self.column_offset,
                      span.end_line + self.line_offset, span.end_column + self.column_offset)

    # top level
    def start(self, meta, items):
        _one_name_each([i for i in items if isinstance(i, n.Let)])
        module = n.Module(self.file, "")
        for item in items:
            {
                n.Use: module.uses,
                n.Let: module.lets,
                n.FuncDef: module.funcs,
                n.BlockDef: module.blocks,
                n.NetworkDef: module.networks,
                n.VariantDef: module.variants,
            }[type(item)].append(item)
        return module

    def use(self, meta, items):
        return n.Use(items[0][1:-1], self._span(meta))

    def let(self, meta, items):
        *names, value = items
        return n.Let(str(names[0]), value, self._span(meta), [str(x) for x in names[1:]])

    def params(self, meta, items):
        return items

    def param(self, meta, items):
        option, name, default = items
        return n.Param(str(name), default, self._span(meta), option=option is not None)

    def block(self, meta, items):
        _, name, params, signature, seq_mark, body = items
        _no_options(params, "a block")
        block = n.BlockDef(str(name), params or [], body, self._span(meta), sequential=seq_mark is not None,
                           signature=signature)
        if signature is not None:
            lower_block(block)
        else:
            _one_name_each(body)
        return block

    def signature(self, meta, items):
        inputs = [i for i in items if isinstance(i, tuple)]
        outputs = [str(i) for i in items if not isinstance(i, tuple)]
        return n.Signature([name for name, _ in inputs], outputs, self._span(meta), [s for _, s in inputs])

    def tensor_param(self, meta, items):
        name, *rest = items
        if rest == [None]:  # no sizes written
            return str(name), None
        for sep in rest[1::2]:
            if sep != "x":
                raise SpecError(f"expected 'x' between an input's sizes, found {str(sep)!r}", self._tspan(sep),
                                hint="write the sizes as L x D, e.g. 'x: seq_len x dim'")
        return str(name), rest[::2]

    def seq_mark(self, meta, items):
        return True

    def def_(self, meta, items):
        name, params, *lets, result = items
        _no_options(params, "a function")
        _one_name_each(lets)
        return n.FuncDef(str(name), params or [], lets, result, self._span(meta))

    def network(self, meta, items):
        name, params, (dims, dspan), *body = items
        _one_name_each(body)
        return n.NetworkDef(str(name), params or [], dims, dspan, body, self._span(meta))

    def input(self, meta, items):
        for sep in items[1::2]:
            if sep != "x":
                raise SpecError(f"expected 'x' between input sizes, found {str(sep)!r}", self._tspan(sep),
                                hint="write the input as C x H x W, e.g. 'input 3 x 224 x 224'")
        return (items[::2], self._span(meta))

    def variant(self, meta, items):
        name, net, args = items
        return n.VariantDef(str(name), str(net), self._tspan(net), args or n.Arguments([], []), self._span(meta))

    # statements
    def body(self, meta, items):
        return items

    def target(self, meta, items):
        parts: list = []
        for item in items:
            if item is None or (isinstance(item, Token) and item.type == "INTERP"):
                continue
            for part in item if isinstance(item, list) else [item]:  # a dotted key's parts, its '.' first
                part = str(part) if isinstance(part, Token) else part
                if isinstance(part, str) and parts and isinstance(parts[-1], str):
                    parts[-1] += part
                else:
                    parts.append(part)
        return n.Target(parts, self._span(meta))

    def target_key(self, meta, items):
        """``.name`` or ``.{i}`` of a dotted path: its parts, after the '.'."""
        return ["."] + [i for i in items if i is not None and not (isinstance(i, Token) and i.type == "INTERP")]

    def target_index(self, meta, items):
        """``.0`` of a dotted path, which the lexer reads as a number."""
        tok, *rest = items
        if not str(tok)[1:].isdigit() or not str(tok).startswith("."):
            raise SpecError(f"{str(tok)!r} is no key of a dotted name", self._tspan(tok),
                            hint="a dotted name's parts are names, whole numbers or {...}: 'convs.0', 'convs.{i}'")
        return [str(tok)] + [i for i in rest if i is not None and not (isinstance(i, Token) and i.type == "INTERP")]

    def string_target(self, meta, items):
        """``"block{s + 1}-{i}"``: text and ``{expr}`` interpolations, parsed where they stand."""
        tok = items[0]
        text = str(tok)[1:-1]
        parts: list = []
        i = 0
        while i < len(text):
            start = text.find("{", i)
            if start < 0:
                parts.append(text[i:])
                break
            if start > i:
                parts.append(text[i:start])
            end = text.find("}", start)
            if end < 0:
                raise SpecError("'{' in a name is never closed", n.Span(self.file, tok.line, tok.column + 1 + start,
                                                                         tok.line, tok.column + 2 + start))
            parts.append(_parse_fragment(text[start + 1:end], self.file, tok.line, tok.column + 1 + start + 1))
            i = end + 1
        if "}" in "".join(p for p in parts if isinstance(p, str)):
            raise SpecError("'}' in a name closes nothing", self._tspan(tok))
        return n.Target(parts, self._tspan(tok), quoted=True)

    def init_(self, meta, items):
        _, *parts, rule, cond, when = items
        return n.Init([str(p) for p in parts], rule, cond, self._span(meta), made=when is not None)

    def init_when(self, meta, items):
        if [str(i) for i in items] != ["when", "made"]:
            raise SpecError(f"an init rule ends with its condition or 'when made', not '{items[0]} {items[1]}'",
                            self._span(meta), hint="'when made' draws the rule where its target is made, in "
                                                   "construction order; without it the rule is drawn after")
        return True

    def ensemble(self, meta, items):
        _, body, cond = items
        return n.Ensemble(body, cond, self._span(meta))

    def gate(self, meta, items):
        _, body, cond = items
        return n.Gate(body, cond, self._span(meta))

    def pattern(self, meta, items):
        names = tuple(str(i) if isinstance(i, Token) else i for i in items)
        return names[0] if len(names) == 1 and isinstance(names[0], str) else names

    def call(self, meta, items):
        name, args = items
        return (str(name), self._tspan(name), args or n.Arguments([], []))

    def layer(self, meta, items):
        target, (func, fspan, args), cond = items
        return n.Layer(target, func, fspan, args, cond, self._span(meta))

    def seq(self, meta, items):
        target, body, cond = items
        return n.Seq(target, body, cond, self._span(meta))

    def concat(self, meta, items):
        body, cond = items
        return n.Concat(body, cond, self._span(meta))

    def dense(self, meta, items):
        args, body, cond = items
        return n.Dense(args or n.Arguments([], []), body, cond, self._span(meta))

    def residual(self, meta, items):
        args, before, body, after, cond = items
        if before is not None and after is not None:
            raise SpecError("a residual has one shortcut", after.span, notes=[("the other is here", before.span)])
        return n.Residual(args or n.Arguments([], []), body, before or after, cond, self._span(meta),
                          shortcut_first=before is not None)

    def shortcut(self, meta, items):
        source, cond, body = items
        return n.Shortcut(
            str(source) if source is not None else None,
            self._tspan(source) if source is not None else None,
            cond,
            body,
            self._span(meta),
        )

    def side(self, meta, items):
        target, (func, fspan, args), source, cond = items
        return n.Side(target, func, fspan, args, cond, self._span(meta), None if source is None else str(source),
                      None if source is None else self._tspan(source))

    def tap(self, meta, items):
        _, target = items
        return n.Tap(target, self._span(meta))

    def cond(self, meta, items):
        return items[0]

    def for_(self, meta, items):
        var, iterable, body = items
        return n.For(var, iterable, body, self._span(meta))

    def if_(self, meta, items):
        cond, body, orelse = items
        if isinstance(orelse, n.If):
            orelse = [orelse]
        return n.If(cond, body, orelse or [], self._span(meta))

    # arguments
    def args(self, meta, items):
        pos, kw = [], []
        for item in items:
            if isinstance(item, tuple):
                kw.append(item)
            else:
                if kw:
                    raise SpecError("positional argument after keyword argument", item.span)
                pos.append(item)
        return n.Arguments(pos, kw)

    def kwarg(self, meta, items):
        name, value = items
        return (str(name), value, self._tspan(name))

    # expressions
    def number(self, meta, items):
        text = str(items[0])
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        return n.Num(value, self._span(meta))

    def string(self, meta, items):
        return n.Str(str(items[0])[1:-1], self._span(meta))

    def true(self, meta, items):
        return n.Const(True, self._span(meta))

    def false(self, meta, items):
        return n.Const(False, self._span(meta))

    def none(self, meta, items):
        return n.Const(None, self._span(meta))

    def var(self, meta, items):
        return n.Var(str(items[0]), self._span(meta))

    def in_ref(self, meta, items):
        return n.TensorRef("in", self._span(meta))

    def out_ref(self, meta, items):
        return n.TensorRef("out", self._span(meta))

    def list_(self, meta, items):
        return n.ListExpr([i for i in items if i is not None], self._span(meta))

    def tuple_(self, meta, items):
        return n.ListExpr([i for i in items if i is not None], self._span(meta), tuple=True)

    def _chain(self, meta, items):
        left = items[0]
        for i in range(1, len(items), 2):
            left = n.BinOp(str(items[i]), left, items[i + 1], self._span(meta))
        return left

    arith = _chain

    def compare(self, meta, items):
        """``a < b`` is a BinOp; a chain ``a < b < c`` is one Compare (Python's meaning, not ``(a < b) < c``)."""
        if len(items) <= 3:  # the rule is kept for one operand too, as an alias keeps it
            return self._chain(meta, items)
        return n.Compare([str(op) for op in items[1::2]], list(items[::2]), self._span(meta))

    def _logical(op):
        def rule(self, meta, items):
            left = items[0]
            for right in items[1:]:
                left = n.BinOp(op, left, right, self._span(meta))
            return left

        return rule

    or_ = _logical("or")
    and_ = _logical("and")

    def not_(self, meta, items):
        return n.UnaryOp("not", items[0], self._span(meta))

    def neg(self, meta, items):
        return n.UnaryOp(str(items[0]), items[1], self._span(meta))

    def pow(self, meta, items):
        return n.BinOp("**", items[0], items[2], self._span(meta))

    def ifexp(self, meta, items):
        then, cond, orelse = items
        return n.IfExp(cond, then, orelse, self._span(meta))

    def funcall(self, meta, items):
        func, args = items
        args = args or n.Arguments([], [])
        return n.Call(func, args.args, [(k, v) for k, v, _ in args.kwargs], self._span(meta))

    def index(self, meta, items):
        return n.Index(items[0], items[1], self._span(meta))

    def slice(self, meta, items):
        return n.Slice(items[0], items[1], items[2], self._span(meta))

    def listcomp(self, meta, items):
        element, pattern, iterable, cond = items
        return n.ListComp(element, pattern, iterable, cond, self._span(meta))

    def attr(self, meta, items):
        return n.Attr(items[0], str(items[1]), self._span(meta))


def _no_options(params: list[n.Param] | None, what: str) -> None:
    """``option`` marks what a network's factories take: a block or function has no factory."""
    for p in params or []:
        if p.option:
            raise SpecError(f"'option' marks a network's parameter: {what} has no factory", p.span,
                            hint=f"write '{p.name}' without 'option'")
