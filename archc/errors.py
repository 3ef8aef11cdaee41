"""The one exception type for mistakes in a spec, and how it is printed."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from .lang.nodes import Span

_sources: dict[str, str] = {}


def remember_source(file: str, text: str) -> None:
    """Keep a file's text so an error can quote the offending line."""
    _sources[file] = text


def source_text(file: str) -> str:
    """A remembered file's text ('' if none)."""
    return _sources.get(file, "")


class SpecError(Exception):
    """A mistake in a spec, located at ``span``.

    ``notes`` are extra located lines ("in block X, called at line L") that
    say how elaboration got there. ``follows_shapes`` marks a mistake found by
    comparing inferred shapes: after an earlier error those shapes are
    unreliable, so such an error is not reported as a second one.
    """

    def __init__(
        self,
        message: str,
        span: Span | None,
        hint: str | Callable[[], str | None] | None = None,
        notes: list[tuple[str, Span | None]] | None = None,
        follows_shapes: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.span = span
        self._hint = hint  # a callable is worked out only if the error is shown (did-you-mean is not free)
        self.notes = list(notes or [])
        self.follows_shapes = follows_shapes

    @property
    def hint(self) -> str | None:
        if callable(self._hint):
            self._hint = self._hint()
        return self._hint

    @hint.setter
    def hint(self, value) -> None:
        self._hint = value

    @property
    def errors(self) -> list[SpecError]:
        return [self]

    def add_note(self, text: str, span: Span | None) -> SpecError:  # type: ignore[override]
        if (text, span) not in self.notes:
            self.notes.append((text, span))
        return self

    def render(self) -> str:
        lines = [_located(self.span, "error", self.message)]
        lines += _excerpt(self.span)
        for text, span in self.notes:
            lines.append(_located(span, "note", text))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class SpecErrors(SpecError):
    """Several independent errors (in one file or in several); caught as a ``SpecError`` like one."""

    def __init__(self, errors: list[SpecError], stopped: bool = False):
        flat: list[SpecError] = []
        for error in errors:
            flat += error.errors
        first = flat[0]
        super().__init__(first.message, first.span, first._hint, first.notes)
        self._errors = flat
        self.stopped = stopped  # the limit was reached: there may be more

    @property
    def errors(self) -> list[SpecError]:
        return self._errors

    def add_note(self, text: str, span: Span | None) -> SpecErrors:  # type: ignore[override]
        for error in self._errors:
            error.add_note(text, span)
        return self

    def render(self) -> str:
        summary = f"{len(self._errors)} errors" + (" (stopped there; fix these and check again)" if self.stopped else "")
        return "\n".join([*(e.render() for e in self._errors), summary])


def _located(span: Span | None, level: str, message: str) -> str:
    if span is None:
        return f"{level}: {message}"
    return f"{span.file}:{span.line}:{span.column}: {level}: {message}"


def _excerpt(span: Span | None) -> list[str]:
    if span is None or span.file not in _sources:
        return []
    src_lines = _sources[span.file].splitlines()
    if not 1 <= span.line <= len(src_lines):
        return []
    text = src_lines[span.line - 1].expandtabs(4)
    end = span.end_column if span.end_line == span.line else len(text) + 1
    width = max(1, end - span.column)
    return [f"    {text}", "    " + " " * (span.column - 1) + "^" + "~" * (width - 1)]


MAX_CANDIDATES = 2_000  # names a did-you-mean hint compares with


def _edits(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def did_you_mean(name: str, candidates: Iterable[str], otherwise: str | None = None) -> Callable[[], str | None]:
    """A hint naming the closest candidate (else ``otherwise``), worked out when the error is shown:
    errors that are only counted, like the 2,001st failing statement, never pay for it."""
    pool = sorted({c for c in candidates if isinstance(c, str)})[:MAX_CANDIDATES]

    def closest() -> str | None:
        close = difflib.get_close_matches(name[:200], pool, n=5, cutoff=0.6)
        if not close:
            return otherwise
        # fewest edits first, then the same length (relu7 is relu6 mistyped more likely than relu), then difflib's
        best = min(close, key=lambda c: (_edits(name[:200], c), abs(len(c) - len(name)), close.index(c)))
        return f"did you mean '{best}'?"

    return closest
