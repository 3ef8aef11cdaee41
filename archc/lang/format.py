"""``archc fmt``: .arch source in one canonical style, comments and table alignment kept.

The formatter works on tokens and lines, not on the AST, so that comments and the user's layout
survive: it keeps every line break it may not move (a newline ends a statement), reindents (four
spaces a body; a continuation line under the bracket it continues, or four spaces in when the
bracket ends its line), normalises the spaces between tokens, keeps the extra spaces that align a
token with one on the line above or below (a table's columns), gives a trailing comment two spaces,
wraps a line longer than ``LINE_LIMIT`` after a comma of its outermost call, and leaves at most one
blank line in a row (none at a body's edges). ``format_source`` checks every result: it must parse
to the same AST with the same comments, or nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import SpecError, remember_source
from . import nodes as n
from .tree import same_ast

LINE_LIMIT = 120
INDENT = 4

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f\r]+) | (?P<nl>\n) | (?P<comment>\#[^\n]*) | (?P<string>"[^"\n\\]*")
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?) | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|//|==|!=|<=|>=|->|[-+*/%<>=,;()\[\]{}.:])
""", re.X)

# keywords that take an expression after them: a '(' or '[' there opens one, not a call or an index
_SPACED_KEYWORDS = {"if", "else", "and", "or", "not", "return", "for", "in", "from", "use", "let"}
# reserved words with token types of their own: a '{' right after one opens a body, not an interpolation
_RESERVED = {"and", "concat", "def", "dense", "else", "false", "for", "from", "if", "in", "input", "let", "network",
             "none", "not", "or", "out", "residual", "return", "seq", "shortcut", "side", "true", "use", "variant"}
_OPERATORS = {"+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "="}
_NO_SPACE_BEFORE = {",", ";", ")", "]", ".", ":"}
_NO_SPACE_AFTER = {"(", "[", ".", ":"}
_UNARY_AFTER = _OPERATORS | {"(", "[", ",", ";", ":", "{"} | (_SPACED_KEYWORDS - {"for", "use", "let", "from"})


class UnsafeFormat(Exception):
    """Formatting would change the program (a bug in the formatter): the file is left as it is."""


@dataclass
class _Tok:
    kind: str  # name, number, string, op
    text: str
    gap: str  # the whitespace before it on its line
    col: int  # its column in the source, from 0
    role: str = ""  # body / interp for braces, unary for a sign

    @property
    def end(self) -> int:
        return self.col + len(self.text)


@dataclass
class _Line:
    toks: list[_Tok] = field(default_factory=list)
    comment: str | None = None
    comment_gap: str = ""
    statement: str = ""  # the first word of the statement the line starts or continues (within brackets)


@dataclass
class _Open:
    tok: _Tok
    col: int  # its column in the output
    line_indent: int  # the output indentation of its line
    hanging: bool = False  # the last token of its line: what it holds starts on the next line


def format_text(text: str) -> str:
    """``text`` in the canonical style (not checked: see ``format_source``)."""
    for _ in range(5):  # each pass keeps or drops alignment decided on its input's columns: run to a fixed point
        formatted = _format_once(text)
        if formatted == text:
            break
        text = formatted
    return text


def format_source(text: str, file: str = "<string>") -> str:
    """``text`` formatted, after checking that the result parses to the same AST with the same comments.

    A spec that does not parse raises its ``SpecError``; a result that differs raises ``UnsafeFormat``."""
    from .parser import parse

    before = parse(text, file)
    formatted = format_text(text)
    try:
        after = parse(formatted, file)
    except SpecError as exc:
        raise UnsafeFormat(f"the formatted text does not parse: {exc.message}") from None
    finally:
        remember_source(file, text)  # messages about the file quote the original
    if not same_ast(before, after):
        raise UnsafeFormat("the formatted text parses to a different program")
    if comments(text) != comments(formatted):
        raise UnsafeFormat("the formatted text has different comments")
    if _docs(before, text) != _docs(after, formatted):
        raise UnsafeFormat("the formatted text has different comments above its definitions")
    return formatted


def _docs(module: n.Module, text: str) -> list[str]:
    """The comment above each block, network and variant: what the generated code's docstrings hold."""
    from ..sema.variants import leading_comment

    return [leading_comment(text, d.span.line) for d in [*module.blocks, *module.networks, *module.variants]]


def comments(text: str) -> list[str]:
    """The text of every comment, in order."""
    return [line.comment.rstrip() for line in _lines(text) if line.comment is not None]


# ------------------------------------------------------------------ one pass


def _lines(text: str) -> list[_Line]:
    text = text.removeprefix("\ufeff")
    lines = [_Line()]
    pos = 0
    gap = ""
    col = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UnsafeFormat(f"cannot read {text[pos]!r}")  # the parser refuses it first
        kind, value = m.lastgroup, m.group()
        if kind == "ws":
            gap += value
        elif kind == "nl":
            lines.append(_Line())
            gap, col = "", -1
        elif kind == "comment":
            lines[-1].comment, lines[-1].comment_gap = value, gap
            gap = ""
        else:
            lines[-1].toks.append(_Tok(kind, value, gap, col))
            gap = ""
        col += len(value)
        pos = m.end()
    return lines


def _format_once(text: str) -> str:
    lines = _lines(text)
    _mark_roles(lines)
    out: list[tuple[str, str]] = []  # (line, "open"/"close"/"" for a body brace ending/starting it)
    stack: list[_Open] = []  # open brackets, interpolations and bodies
    header = True  # the file's first lines, if comments at the margin: the module's header (parser.py)
    for i, line in enumerate(lines):
        if not line.toks and line.comment is None:
            out.append(("", ""))
            header = False
            continue
        indent = _indent(stack, line.toks[0] if line.toks else None)
        if not line.toks:
            if header and line.comment_gap:  # an indented comment ends the header there: it stays as it is
                indent, header = len(line.comment_gap), False
            out.append((" " * indent + line.comment.rstrip(), ""))
            continue
        header = False
        neighbours = [lines[j] for j in _paragraph(lines, i)
                      if j != i and lines[j].toks and lines[j].toks[0].col == line.toks[0].col]
        pieces = _spaced(line, neighbours)
        for text_line in _layout(pieces, indent, stack, line):
            out.append(text_line)
    return _blank_lines(out)


def _mark_roles(lines: list[_Line]) -> None:
    """Which '{' and '}' open or close a body or a name interpolation, and which signs are unary."""
    stack: list[str] = []
    prev: _Tok | None = None
    statement = ""
    for line in lines:
        if prev is not None and not any(s in ("(", "[", "interp") for s in stack):
            prev = None  # the line end ended a statement
        if prev is None and line.toks:
            statement = line.toks[0].text
        line.statement = statement
        for idx, tok in enumerate(line.toks):
            if tok.text == "{":
                interp = (prev is not None and tok.gap == "" and idx > 0
                          and ((prev.kind == "name" and prev.text not in _RESERVED) or prev.text in "}."))
                tok.role = "interp" if interp else "body"
                stack.append(tok.role)
            elif tok.text == "}":
                if stack and stack[-1] == "interp":
                    tok.role = "interp"
                    stack.pop()
                else:
                    tok.role = "body"
                    while stack and stack.pop() != "body":
                        pass
            elif tok.text in "([":
                stack.append(tok.text)
            elif tok.text in ")]" and stack and stack[-1] in "([":
                stack.pop()
            elif tok.text in "+-" and (prev is None or (prev.text in _UNARY_AFTER and prev.kind != "string")
                                       or (prev.text == "}" and prev.role == "body")):
                tok.role = "unary"
            prev = tok


def _paragraph(lines: list[_Line], i: int) -> range:
    """The lines around line ``i`` up to a blank line each way: where a table's rows may stand."""
    start, end = i, i + 1
    while start > 0 and (lines[start - 1].toks or lines[start - 1].comment is not None):
        start -= 1
    while end < len(lines) and (lines[end].toks or lines[end].comment is not None):
        end += 1
    return range(start, end)


def _indent(stack: list[_Open], first: _Tok | None) -> int:
    """A line's indentation: its body's depth, or under the bracket it continues."""
    top = stack[-1] if stack else None
    if top is None or top.tok.role == "body":
        depth = sum(1 for o in stack if o.tok.role == "body")
        if first is not None and first.text == "}" and first.role == "body":
            depth -= 1
        return INDENT * max(depth, 0)
    if first is not None and first.text in ")]":
        return top.line_indent
    return top.line_indent + INDENT if top.hanging else top.col + 1


def _canonical(prev: _Tok, tok: _Tok, statement: str) -> str:
    """The space between two tokens on one line in the canonical style: '' or ' '."""
    if tok.role == "interp" and tok.text == "{":
        return ""
    if (prev.role == "interp" and prev.text == "{") or (tok.role == "interp" and tok.text == "}"):
        return ""
    if prev.role == "interp" and prev.text == "}" and tok.kind in ("name", "number"):
        return "" if tok.gap == "" else " "
    if tok.kind == "number" and tok.text.startswith(".") and tok.gap == "" and prev.kind in ("name", "number"):
        return ""  # a dotted name's key: convs.0
    if tok.text in _NO_SPACE_BEFORE and tok.kind == "op":
        return ""
    if prev.text == ":" and statement == "block":  # an input's sizes: (x: seq_len x dim)
        return " "
    if (prev.text in _NO_SPACE_AFTER and prev.kind == "op") or prev.role == "unary":
        return ""
    if tok.text in "([" and tok.kind == "op":
        if prev.kind == "name":
            if prev.text in _SPACED_KEYWORDS:
                return " "
            return (" " if tok.gap else "") if statement == "input" else ""
        if statement == "block" and prev.text == ")":  # block B(params) (inputs) -> output
            return " "
        return "" if prev.kind == "string" or prev.text in ")]" else " "
    if prev.text == "{" and tok.text == "}":
        return ""
    return " "


def _spaced(line: _Line, neighbours: list[_Line]) -> list[tuple[str, _Tok, bool]]:
    """The line's tokens with the space before each: canonical, or the source's wider one where it aligns
    the token with a like one after a like one (the same operator, a number with a number) on a line of its
    paragraph that starts in the same column: a table's column. The flag says which spaces were kept."""
    starts = {(_key(p), _key(t), t.col) for other in neighbours for p, t in zip(other.toks, other.toks[1:])}
    ends = {(_key(p), _key(t), t.end) for other in neighbours for p, t in zip(other.toks, other.toks[1:])}
    pieces = []
    statement = line.statement or line.toks[0].text
    prev = None
    for tok in line.toks:
        if prev is None:
            pieces.append(("", tok, False))
        else:
            gap = _canonical(prev, tok, statement)
            kept = len(tok.gap) > len(gap) and ((_key(prev), _key(tok), tok.col) in starts
                                                or (_key(prev), _key(tok), tok.end) in ends)
            pieces.append((" " * len(tok.gap) if kept else gap, tok, kept))
        if tok.text == ";":
            statement = ""
        elif statement == "" and tok.text != ";":
            statement = tok.text
        prev = tok
    return pieces


def _key(tok: _Tok) -> str:
    """What a token must match to stand in a column with another: the same operator or keyword, or a token of
    its kind."""
    return tok.text if tok.kind == "op" or tok.text in _RESERVED else tok.kind


def _layout(pieces, indent: int, stack: list[_Open], line: _Line) -> list[tuple[str, str]]:
    """The output lines for one source line: wrapped after commas if it is too long and can be."""
    wrap = line.comment is None and not any(kept for _, _, kept in pieces)
    out = []
    start = 0
    while True:
        text, cols, commas = _place(pieces, start, indent, stack)
        break_at = _break(start, cols, commas) if wrap and len(text) > LINE_LIMIT else None
        if break_at is None:
            _advance(pieces[start:], cols, indent, stack)
            if line.comment is not None:
                text += (line.comment_gap if len(line.comment_gap) >= 2 else "  ") + line.comment.rstrip()
            first, last = pieces[start][1], pieces[-1][1]
            out.append((text, ("close" if first.text == "}" and first.role == "body" else "")
                        + ("open" if last.text == "{" and last.role == "body" else "")))
            return out
        index, next_indent = break_at
        _advance(pieces[start:index + 1], cols, indent, stack)
        out.append((text[:cols[index - start] + 1], ""))
        start, indent = index + 1, next_indent


def _place(pieces, start: int, indent: int, stack: list[_Open]):
    """The text from piece ``start`` on at ``indent``, each token's column, and the commas that could end it
    (index, the indentation of what follows, bracket depth)."""
    parts, cols, commas = [" " * indent], [], []
    col = indent
    opens = [(o.tok.text, _indent(stack[:k + 1], None)) for k, o in enumerate(stack)]  # (bracket, next indent)
    for k, (gap, tok, _) in enumerate(pieces[start:], start):
        if k > start:
            parts.append(gap)
            col += len(gap)
        cols.append(col)
        parts.append(tok.text)
        col += len(tok.text)
        if tok.text in "([{" and tok.kind == "op":
            hanging = k == len(pieces) - 1
            opens.append((tok.text, indent + INDENT if hanging else cols[-1] + 1))
        elif tok.text in ")]}" and tok.kind == "op" and opens:
            opens.pop()
        elif tok.text == "," and opens and opens[-1][0] in "([" and k < len(pieces) - 1:
            commas.append((k, opens[-1][1], len(opens)))
    return "".join(parts), cols, commas


def _break(start: int, cols: list[int], commas) -> tuple[int, int] | None:
    """Where to wrap: the last comma that fits, of the outermost bracket that has one; None if none does."""
    fits = [(depth, -k, next_indent) for k, next_indent, depth in commas
            if cols[k - start] + 1 <= LINE_LIMIT and next_indent < cols[k + 1 - start]]
    if not fits:
        return None
    _, k, next_indent = min(fits)
    return -k, next_indent


def _advance(pieces, cols: list[int], indent: int, stack: list[_Open]) -> None:
    """Update the stack of open brackets and bodies over one output line's tokens."""
    for j, (_, tok, _) in enumerate(pieces):
        if tok.text in "([{" and tok.kind == "op":
            stack.append(_Open(tok, cols[j], indent, hanging=j == len(pieces) - 1))
        elif tok.text in ")]" and tok.kind == "op":
            if stack and stack[-1].tok.text in "([":
                stack.pop()
        elif tok.text == "}":
            if stack and stack[-1].tok.role == "interp":
                stack.pop()
            else:
                while stack and stack.pop().tok.role != "body":
                    pass


def _blank_lines(out: list[tuple[str, str]]) -> str:
    """At most one blank line in a row, none just inside a body, at the end of the file, or at its start but for
    one before a comment (which would otherwise become the module's header)."""
    kept: list[tuple[str, str]] = []
    for text, mark in out:
        if not text:
            if kept and kept[-1][0] and "open" not in kept[-1][1]:
                kept.append((text, mark))
            continue
        if kept and not kept[-1][0] and mark.startswith("close"):
            kept.pop()
        kept.append((text, mark))
    while kept and not kept[-1][0]:
        kept.pop()
    if out and not out[0][0] and kept and kept[0][0].startswith("#"):
        kept.insert(0, ("", ""))  # a blank first line keeps the comment after it out of the header
    return "".join(text + "\n" for text, _ in kept)
