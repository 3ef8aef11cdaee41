"""A file's names seen from the rest of the workspace: the specs that use (directly or through other files) the
file that defines a block, network, function or let, and where each of them mentions it. Find references and
rename reach them, so renaming a block of a shared library of blocks renames its calls in every spec.

Only specs whose text names the definition at all are parsed; the editor's unsaved buffers are read instead of
the files on disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError
from ..lang.files import MAX_SPEC_BYTES
from ..lang.loader import load_program
from ..lang.nodes import Span
from .positions import Lines
from .symbols import Key, build_index

log = logging.getLogger(__name__)

GLOBAL = ("block", "func", "let")  # keys whose names other files can use
MAX_FILES = 2000  # specs looked at in one search, at most


@dataclass
class Mentions:
    """One file's mentions of a name: its text (for positions) and the spans, definitions marked."""

    lines: Lines
    spans: list[Span]
    definitions: set[Span]


def spec_files(roots: list[Path]) -> list[Path]:
    """The ``.arch`` files under the workspace's folders, hidden folders left out."""
    found: dict[Path, None] = {}
    for root in roots:
        try:
            for path in sorted(root.rglob("*.arch")):
                if not any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
                    found[path.resolve()] = None
                if len(found) >= MAX_FILES:
                    return list(found)
        except OSError:
            continue
    return list(found)


def mentions(key: Key, defined_in: str, roots: list[Path], buffers: dict[Path, str]) -> dict[Path, Mentions]:
    """Every file of the workspace (and every open buffer) whose program holds the definition of ``key`` from
    ``defined_in``, with the places it mentions the name."""
    target = Path(defined_in).resolve()
    name = key[1]
    out: dict[Path, Mentions] = {}
    for path in dict.fromkeys([*buffers, *spec_files(roots)]):
        text = buffers.get(path)
        try:
            if text is None:
                if path.stat().st_size > MAX_SPEC_BYTES:
                    continue
                text = path.read_text(encoding="utf-8")
            if name not in text or (path != target and "use" not in text):
                continue
            program = load_program(path, text)
        except (OSError, UnicodeDecodeError, SpecError, RecursionError):
            continue  # a file that does not load mentions nothing we can find
        except Exception:
            log.exception("reading %s for references failed", path)
            continue
        if target not in {Path(m.file).resolve() for m in program.modules}:
            continue
        index = build_index(program.modules, path)
        spans = index.references(key)
        definition = index.definitions.get(key)
        if spans and definition is not None and Path(definition.file).resolve() == target:
            out[path] = Mentions(Lines(text), spans, {o.span for o in index.occurrences if o.key == key and o.definition})
    return out


__all__ = ["GLOBAL", "Mentions", "mentions", "spec_files"]
