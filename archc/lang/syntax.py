"""The Lark parsers over ``grammar.lark`` (LALR, positions kept), the post-lexer that turns line ends into
statement separators, and syntax errors as located ``SpecError``s with a hint."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import SpecError, source_text
from . import nodes as n

# the language's keywords (grammar.lark), and those of them that may also name a parameter or a module
# (torchvision's `block`, timm's `gate`)
KEYWORDS = ("and", "block", "concat", "def", "dense", "else", "ensemble", "false", "for", "from", "gate", "if", "in",
            "init", "input", "let", "network", "none", "not", "option", "or", "out", "residual", "return", "seq",
            "shortcut", "side", "tap", "true", "use", "variant")
IDENTIFIER_KEYWORDS = ("block", "ensemble", "gate", "init", "option", "tap")

_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}
# what continues the statement before it on a new line: a statement never starts with '{'
_JOINS_PREVIOUS = {"SHORTCUT", "ELSE", "LBRACE"}


class _Separators:
    """Post-lexer: newlines and ';' become _SEP where they end a statement."""

    always_accept = ("_NL", "SEMI")

    def process(self, stream):
        stack: list[Token] = []  # open brackets: '(' '[' or the '{' of a name interpolation
        self.open_brackets = stack
        bodies: list[Token] = []  # open '{' of bodies
        self.open_bodies = bodies
        pending: Token | None = None
        last: Token | None = None
        for tok in stream:
            if tok.type in ("_NL", "SEMI"):
                if not stack and last is not None and last.type not in ("LBRACE", "INTERP", "_SEP"):
                    pending = pending or Token.new_borrow_pos("_SEP", tok.value, tok)
                continue
            if pending is not None:
                if tok.type not in _JOINS_PREVIOUS:
                    last = pending
                    yield pending
                pending = None
            if tok.type == "RBRACE" and stack and stack[-1].type == "INTERP":
                stack.pop()
            elif tok.type == "RBRACE":
                if bodies:
                    bodies.pop()
                if last is not None and last.type not in ("LBRACE", "_SEP"):
                    last = Token.new_borrow_pos("_SEP", "", tok)
                    yield last
            elif tok.type == "LBRACE" and _interpolates(last, tok):
                tok = Token.new_borrow_pos("INTERP", tok.value, tok)
                stack.append(tok)
            elif tok.type in _OPEN:
                stack.append(tok)
            elif tok.type == "LBRACE":
                bodies.append(tok)
            elif tok.type in _CLOSE and stack:
                stack.pop()
            last = tok
            yield tok
        if last is not None and last.type != "_SEP":
            yield Token("_SEP", "", end_pos=getattr(last, "end_pos", 0))


def _interpolates(last: Token | None, brace: Token) -> bool:
    """``layer{s + 1}``, ``convs.{i}``: a '{' written right after a name or a dot opens an interpolation."""
    return (
        last is not None
        and last.type in ("NAME", "BLOCK", "GATE", "INIT", "ENSEMBLE", "TAP", "OPTION", "RBRACE", "DOT")
        and last.end_pos == brace.start_pos
    )


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",  # the post-lexer looks one token ahead, which a contextual lexer cannot follow
        postlex=_Separators(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=True,  # the LALR tables, kept by lark in the temporary directory keyed by grammar and version
    )


_TOKEN_WORDS = {
    "_SEP": "end of statement",
    "$END": "end of file",
    "NAME": "name",
    "NUMBER": "number",
    "STRING": "string",
    "LBRACE": "'{'",
    "INTERP": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "DOT": "'.'",
    "EQUAL": "'='",
}


def _describe(tok: Token) -> str:
    if tok.type == "_SEP":
        return "end of line" if "\n" in tok.value else ("';'" if tok.value == ";" else "end of statement")
    if tok.type == "$END":
        return "end of file"
    return repr(str(tok.value))


def _word_before(tok: Token, file: str) -> tuple[str, n.Span] | None:
    """The one word a statement holds before ``tok`` (its '='), and where it stands."""
    lines = source_text(file).splitlines()
    if not tok.line or tok.line > len(lines):
        return None
    before = lines[tok.line - 1][:tok.column - 1]
    start = max(before.rfind(c) for c in ";{") + 1
    word = before[start:].strip()
    if word not in {t.pattern.value for t in _parser().terminals if t.pattern.type == "str"}:  # not a keyword
        return None
    column = start + before[start:].index(word) + 1
    return word, n.Span(file, tok.line, column, tok.line, column + len(word))


def _syntax_error(exc: UnexpectedInput, file: str) -> SpecError:
    line = getattr(exc, "line", None) or 1
    column = getattr(exc, "column", None) or 1
    if isinstance(exc, UnexpectedCharacters):
        char = exc.char
        span = n.Span(file, line, column, line, column + 1)
        return SpecError(f"unexpected character {char!r}", span)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        bodies = getattr(_parser().options.postlex, "open_bodies", [])
        if (tok.type == "$END" or tok.line is None) and bodies:
            return SpecError("'{' is never closed", _tok_span(bodies[-1], file), hint="add the missing '}'")
        if tok.type == "$END" or tok.line is None:
            return SpecError("unexpected end of file", None if tok.line is None else _tok_span(tok, file),
                             hint="a '{' or '(' may be missing its closing partner")
        expected = sorted(_TOKEN_WORDS.get(t, t.lower().strip('"')) for t in exc.expected if not t.startswith("__"))
        hint = None
        unclosed = getattr(_parser().options.postlex, "open_brackets", [])
        # a bracket left open swallows the line ends after it, so the error shows up a line or more later
        if unclosed and (tok.type in ("RBRACE", "_SEP", "$END") or (tok.line or 0) > (unclosed[-1].line or 0)):
            opener = unclosed[-1]
            closer = {"(": ")", "[": "]", "{": "}"}[opener.value]
            notes = [] if tok.type in ("_SEP", "$END") or tok.line is None else \
                [(f"still inside it at {_describe(tok)} here", _tok_span(tok, file))]
            return SpecError(f"'{opener.value}' is never closed", _tok_span(opener, file),
                             hint=f"add the missing '{closer}'", notes=notes)
        elif "NAME" in exc.expected and str(tok.value).isidentifier() and tok.type != "NAME":
            # a reserved word where a name may stand (let side = ..., block Mlp(hidden, out))
            return SpecError(f"'{tok.value}' is a reserved word of the language, so it cannot be a name here",
                             _tok_span(tok, file), hint=f"choose another name ('{tok.value}_', say)")
        elif tok.type == "EQUAL" and (word := _word_before(tok, file)) is not None:
            # a reserved word where a statement's name stands (if = conv(...))
            return SpecError(f"'{word[0]}' is a reserved word of the language, so it cannot name a layer unquoted",
                             word[1], hint=f"write it quoted (\"{word[0]}\" = ...) to use it as a state_dict key, "
                                           f"or choose another name ('{word[0]}_', say)")
        elif {"NUMBER", "NAME"} <= set(exc.expected):
            hint = "expected an expression"
        elif expected:
            shown = ", ".join(expected[:6]) + (", ..." if len(expected) > 6 else "")
            hint = f"expected {shown}"
        return SpecError(f"unexpected {_describe(tok)}", _tok_span(tok, file), hint=hint)
    if isinstance(exc, UnexpectedEOF):
        return SpecError("unexpected end of file", None, hint="a '{' or '(' may be missing its closing partner")
    return SpecError(str(exc), n.Span(file, line, column, line, column + 1))


def _tok_span(tok: Token, file: str) -> n.Span:
    line = tok.line or 1
    col = tok.column or 1
    end_line = tok.end_line or line
    end_col = tok.end_column or col + max(1, len(str(tok.value)))
    if end_line != line or end_col <= col:
        end_line, end_col = line, col + 1
    return n.Span(file, line, col, end_line, end_col)


@lru_cache(maxsize=1)
def _fragment_parser() -> Lark:
    """Expressions alone, for the interpolations inside a quoted name (which hold no newline)."""
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic", start="expr", propagate_positions=True,
                maybe_placeholders=True, cache=True)
