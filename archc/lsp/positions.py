"""archc's spans (1-based lines and columns counted in characters) and LSP's positions (0-based lines,
columns counted in UTF-16 code units), converted both ways over one document's text."""

from __future__ import annotations

import re

from ..lang.nodes import Span


def _utf16(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


class Lines:
    """One document's lines, for converting positions. The parser drops a leading byte-order mark, so the
    columns of its first line count from after it."""

    def __init__(self, text: str):
        self.bom = text.startswith("\ufeff")
        self.lines = text.split("\n")

    def _text(self, line: int) -> str:
        text = self.lines[line] if 0 <= line < len(self.lines) else ""
        return text[1:] if self.bom and line == 0 else text

    def to_lsp(self, line: int, column: int) -> tuple[int, int]:
        """An archc (line, column) as LSP's (line, character)."""
        line0 = max(line - 1, 0)
        text = self._text(line0)
        before = max(column - 1, 0)
        units = _utf16(text[:before]) + max(before - len(text), 0)
        return line0, units + (1 if self.bom and line0 == 0 else 0)

    def from_lsp(self, line: int, character: int) -> tuple[int, int]:
        """LSP's (line, character) as an archc (line, column)."""
        text = self._text(line)
        if self.bom and line == 0:
            character -= 1
        units = 0
        for i, c in enumerate(text):
            if units >= character:
                return line + 1, i + 1
            units += 2 if ord(c) > 0xFFFF else 1
        return line + 1, len(text) + 1 + max(character - units, 0)

    def span_range(self, span: Span) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.to_lsp(span.line, span.column), self.to_lsp(span.end_line, span.end_column)

    def text(self, span: Span) -> str:
        """The source text a span covers."""
        if span.line == span.end_line:
            return self._text(span.line - 1)[span.column - 1:span.end_column - 1]
        parts = [self._text(span.line - 1)[span.column - 1:]]
        parts += [self._text(line - 1) for line in range(span.line + 1, span.end_line)]
        return "\n".join([*parts, self._text(span.end_line - 1)[:span.end_column - 1]])

    def find(self, name: str, span: Span, skip: int = 0) -> Span | None:
        """The span of the word ``name`` at or after the start of ``span`` (its ``skip``-th such word), or None."""
        for line in range(span.line, min(span.end_line, len(self.lines)) + 1):
            text = self._text(line - 1)
            start = span.column - 1 if line == span.line else 0
            for m in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", text[start:]):
                if skip == 0:
                    column = start + m.start() + 1
                    return Span(span.file, line, column, line, column + len(name))
                skip -= 1
        return None


def contains(span: Span, line: int, column: int) -> bool:
    """Whether an archc position lies in ``span`` (its end included: a cursor just after a name is on it)."""
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


def inside(inner: Span, outer: Span) -> bool:
    return inner.file == outer.file and (outer.line, outer.column) <= (inner.line, inner.column) and \
        (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column)


def size(span: Span) -> tuple[int, int]:
    return span.end_line - span.line, span.end_column - span.column
