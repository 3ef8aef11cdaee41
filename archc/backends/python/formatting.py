"""The generated file's prose and order: docstrings (escaped, closing quotes on their own line) and ``__all__``
in isort's order. Code is printed from the IR (``irprint.Printer``)."""

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


def all_sorted(names: list[str]) -> list[str]:
    """``__all__`` in isort style: constants, classes, then functions, each in natural order."""
    def key(name: str):
        group = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return (group, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])

    return sorted(names, key=key)
