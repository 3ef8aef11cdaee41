"""The generated file's text: docstrings, lines broken at 100 columns as a person breaks them, ``elif``
chains, ``__all__`` in isort's order."""

from __future__ import annotations

import io
import keyword
import re
import tokenize
import unicodedata


def docstring(text: str, indent: str) -> str:
    """A docstring's text: closing quotes on their own line when it spans several lines."""
    text = escape_docstring(text)
    lines = text.splitlines()
    if len(lines) <= 1:
        return text
    return "\n".join([lines[0]] + [indent + line if line else "" for line in lines[1:]]) + f"\n{indent}"


def escape_docstring(text: str) -> str:
    """Spec comments and file names become docstrings: nothing in them may end the string early, and
    a character that is not plainly visible (in a file name: the text has been checked) is written as
    its escape, never as itself."""
    text = text.replace("\\", "\\\\")
    text = "".join(c if c in "\n\t" or (c.isprintable() and unicodedata.category(c) != "Cf") else
                   f"\\\\u{ord(c):04x}" for c in text)
    return re.sub(r'"(?=")|"$', r'\\"', text)  # no run of quotes, no quote against the closing ones


def wrap_call(head: str, params: list[str], tail: str, indent: str) -> str:
    """``head(a, b)tail`` on one line if it fits in 100 columns, else one parameter a line."""
    one = f"{indent}{head}({', '.join(params)}){tail}"
    if len(one) <= 100 or not params:
        return one
    inner = "".join(_wrap_expr(p, indent + "    ", ",") + "\n" for p in params)
    return f"{indent}{head}(\n{inner}{indent}){tail}"


def _wrap_expr(text: str, indent: str, tail: str) -> str:
    """``text`` (an argument) on its own line, itself broken at its last call's arguments if too long."""
    open_at = _call_open(text) if len(indent + text + tail) > 100 else None
    if open_at is None:
        return f"{indent}{text}{tail}"
    return wrap_call(text[:open_at], split_args(text[open_at + 1:-1]), tail, indent)


def _tokens(text: str) -> list[tuple[str, int, int]] | None:
    """The operators and other tokens of one line of Python as (string, start, end) columns; None where the
    text does not tokenize as one line. Strings are single tokens, so no bracket or comma inside one counts."""
    try:
        found = [(t.string, t.start[1], t.end[1], t.type) for t in tokenize.generate_tokens(io.StringIO(text).readline)
                 if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                                   tokenize.DEDENT)]
    except (tokenize.TokenError, SyntaxError):
        return None
    if any(t[3] == tokenize.COMMENT for t in found):
        return None
    return [(string, start, end) if kind == tokenize.OP else ("", start, end) for string, start, end, kind in found]


def _call_open(line: str) -> int | None:
    """The column of the '(' of the call whose ')' ends the line; None if the line does not end in a call's
    closing bracket (a parenthesised expression is no call: breaking it would make it a tuple)."""
    tokens = _tokens(line)
    if not tokens or tokens[-1][0] != ")" or tokens[-1][2] != len(line):
        return None
    depth = 0
    for i in range(len(tokens) - 1, -1, -1):
        depth += {")": 1, "]": 1, "}": 1, "(": -1, "[": -1, "{": -1}.get(tokens[i][0], 0)
        if depth == 0:
            before = line[tokens[i - 1][1]:tokens[i - 1][2]] if i > 0 else ""
            is_call = before in (")", "]") or (before.isidentifier() and not keyword.iskeyword(before))
            return tokens[i][1] if is_call and i > 0 else None
    return None


def split_args(text: str) -> list[str]:
    """Split a call's argument text at its top-level commas."""
    tokens = _tokens(text)
    if tokens is None:
        return [text.strip()] if text.strip() else []
    parts, depth, start = [], 0, 0
    for string, begin, end in tokens:
        if string in ("(", "[", "{"):
            depth += 1
        elif string in (")", "]", "}"):
            depth -= 1
        elif string == "," and depth == 0:
            parts.append(text[start:begin].strip())
            start = end
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def wrap_lines(lines: list[str]) -> list[str]:
    """Break statement lines longer than 100 columns at the arguments of their last call."""
    out = []
    for line in lines:
        if len(line) <= 100 or "\n" in line:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        open_at = _call_open(line[len(indent):])
        if open_at is None:
            out.append(line)
            continue
        body = line[len(indent):]
        out.append(wrap_call(body[:open_at], split_args(body[open_at + 1:-1]), "", indent))
    return out


def all_sorted(names: list[str]) -> list[str]:
    """``__all__`` in isort style: constants, classes, then functions, each in natural order."""
    def key(name: str):
        group = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return (group, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])

    return sorted(names, key=key)


def merge_elif(lines: list[str]) -> list[str]:
    """``else:`` whose whole body is one ``if`` chain becomes ``elif``, as a person writes it."""
    out = list(lines)
    i = 0
    while i < len(out) - 1:
        line = out[i]
        indent = len(line) - len(line.lstrip())
        nxt = out[i + 1]
        if line.strip() == "else:" and nxt.startswith(" " * (indent + 4) + "if ") and nxt.rstrip().endswith(":"):
            end = i + 2
            while end < len(out) and (not out[end].strip() or len(out[end]) - len(out[end].lstrip()) > indent):
                end += 1
            body = out[i + 1:end]
            inner = indent + 4
            heads = [b for b in body if len(b) - len(b.lstrip()) == inner]
            if all(h.lstrip().startswith(("if ", "elif ", "else:")) for h in heads) and \
                    sum(h.lstrip().startswith("if ") for h in heads) == 1:
                merged = [" " * indent + "el" + body[0].lstrip()] + [b[4:] for b in body[1:]]
                out[i:end] = merged
                continue
        i += 1
    return out
