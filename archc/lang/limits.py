"""What a spec's text may hold, and how deeply it may nest: checked before and right after parsing,
so no later stage meets a character that could hide code from a reader (Trojan source) or a tree
deeper than it can walk. Each violation is an error at its place.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata

from ..errors import SpecError
from . import nodes as n

MAX_NESTING = 64  # levels of statements and expressions, counted together from the file's top

# C0 and C1 controls but tab, newline and the carriage return of a CRLF line end
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_INVISIBLE = ("Cf", "Zl", "Zp")  # format characters (bidi controls, zero-width ones), line and paragraph separators


def check_text(text: str, file: str) -> None:
    """Refuse control characters, and invisible or bidirectional formatting characters anywhere: in a
    comment or a string they could make the text read differently from what it does (as rustc does)."""
    bad = _CONTROL.search(text)
    at = bad.start() if bad else None
    for i, ch in enumerate(text):
        if at is not None and i >= at:
            break
        if ord(ch) > 0x7F and unicodedata.category(ch) in _INVISIBLE:
            at = i
            break
    if at is None:
        return
    ch = text[at]
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    span = n.Span(file, line, col, line, col + 1)
    if ch == "\r":
        raise SpecError("a carriage return that does not end a line", span, hint="end lines with \\n or \\r\\n")
    if unicodedata.category(ch) == "Cf" and unicodedata.bidirectional(ch) in ("LRE", "RLE", "LRO", "RLO", "PDF",
                                                                              "LRI", "RLI", "FSI", "PDI", "AL"):
        what = "bidirectional control character"
    elif unicodedata.category(ch) in ("Cc",) or ch in "\x7f":
        what = "control character"
    else:
        what = "invisible character"
    name = unicodedata.name(ch, "")
    raise SpecError(f"{what} U+{ord(ch):04X}{' (' + name + ')' if name else ''} in the spec", span,
                    hint="a spec is plain text: such a character can make it read differently from what it does")


def check_nesting(module: n.Module) -> None:
    """The AST may nest at most ``MAX_NESTING`` levels (statements inside statements, operands inside
    expressions, an ``else if`` inside its ``else``): walked without recursion, the first place past
    the limit is the error."""
    stack: list[tuple[object, int]] = [(item, 1) for item in
                                       [*module.lets, *module.funcs, *module.blocks, *module.networks, *module.variants]]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            span = getattr(node, "span", None)
            raise SpecError(f"the spec nests more than {MAX_NESTING} levels deep here", span,
                            hint="statements, brackets, operators and else-if chains all count as levels: "
                                 "flatten it, or name parts with let")
        for child in _children(node):
            stack.append((child, depth + 1))


def _children(node) -> list:
    if not dataclasses.is_dataclass(node) or isinstance(node, n.Span):
        return []
    out = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, (list, tuple)):
            for v in value:
                if isinstance(v, tuple):  # keyword arguments: (name, expr[, span])
                    out += [x for x in v if dataclasses.is_dataclass(x) and not isinstance(x, n.Span)]
                elif dataclasses.is_dataclass(v) and not isinstance(v, n.Span):
                    out.append(v)
        elif dataclasses.is_dataclass(value) and not isinstance(value, n.Span):
            out.append(value)
    return out
