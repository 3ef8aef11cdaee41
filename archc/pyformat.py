"""The generated file's text: docstrings, lines broken at 100 columns as a person breaks them, ``elif``
chains, ``__all__`` in isort's order."""

from __future__ import annotations

import re
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
    open_at = _matching_open(text) if text.endswith(")") and len(indent + text + tail) > 100 else None
    if open_at is None or open_at == 0:
        return f"{indent}{text}{tail}"
    return wrap_call(text[:open_at], split_args(text[open_at + 1:-1]), tail, indent)


def _matching_open(line: str) -> int | None:
    """The index of the '(' that matches the final ')'."""
    depth = 0
    for i in range(len(line) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(line[i], 0)
        if depth == 0:
            return i
    return None


def split_args(text: str) -> list[str]:
    """Split a call's argument text at its top-level commas."""
    parts, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def wrap_lines(lines: list[str]) -> list[str]:
    """Break statement lines longer than 100 columns at the arguments of their last call."""
    out = []
    for line in lines:
        if len(line) <= 100 or "\n" in line or "#" in line or not line.endswith(")"):
            out.append(line)
            continue
        open_at = _matching_open(line)
        indent = line[: len(line) - len(line.lstrip())]
        if open_at is None:
            out.append(line)
            continue
        out.append(wrap_call(line[len(indent):open_at], split_args(line[open_at + 1:-1]), "", indent))
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
