"""What the commands share: exit statuses, usage errors, reading the specs named on the command line, sizes."""

from __future__ import annotations

import argparse

from ..errors import SpecError, SpecErrors
from ..lang import files

EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


class Exit(Exception):
    """Stop with exit status ``code`` once ``text`` is printed on stderr."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code, self.text = code, text


def usage(message: str, hint: str | None = None) -> Exit:
    return Exit(EXIT_USAGE, f"archc: error: {message}" + (f"\nhint: {hint}" if hint else ""))


class InFile(SpecError):
    """A mistake in spec ``path`` that no one line holds: printed ``FILE: error: MESSAGE``."""

    def __init__(self, error: SpecError, path: str):
        super().__init__(error.message, None, error.hint, error.notes)
        self.path = path

    def render(self) -> str:
        return f"{self.path}: {super().render()}"


def load_spec(path: str):
    """The spec at ``path``, named on the command line: if it cannot be read, that is a usage error."""
    from ..lang.loader import SpecFileError
    from ..spec import load

    try:
        return load(path)
    except SpecFileError as exc:
        if exc.span is None:  # the file itself, not one that it uses
            raise usage(exc.message, files.did_you_mean_spec(path)) from None
        raise
    except SpecError as exc:
        if exc.span is None and len(exc.errors) == 1:
            raise InFile(exc, path) from None
        raise


def load_all(paths: list[str]):
    """Every spec, or every error: usage errors (exit 2) with any spec errors after them."""
    specs, errors, unreadable = [], [], []
    for path in paths:
        try:
            specs.append(load_spec(path))
        except Exit as exc:
            unreadable.append(exc.text)
        except SpecError as exc:
            errors.append(exc)
    if unreadable:
        raise Exit(EXIT_USAGE, "\n".join([*unreadable, *(e.render() for e in errors)]))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return specs


def variant_of(spec, variant: str | None) -> str:
    """The variant named on the command line, else the spec's first; naming one it lacks is a usage error."""
    try:
        variant = variant or spec.default_variant()
        if variant not in spec.variants:
            spec.values(variant)  # raises, with a hint
    except SpecError as exc:
        raise usage(exc.message, exc.hint) from None
    return variant


def check_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise usage("--depth must be at least 1")


def parse_size(text: str) -> tuple[int, ...]:
    """``224``, ``299x299`` or ``3x224x224``."""
    try:
        size = tuple(int(part) for part in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (write 224, 299x299 or 3x224x224)") from None
    if any(d <= 0 for d in size):
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return size
