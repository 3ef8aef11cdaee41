"""Parsing again only what an edit changed, for the language server.

A spec is a list of top-level items (``use``, ``let``, ``def``, ``block``, ``network``, ``variant``), each
starting at the first column of a line outside any bracket. ``ItemParser`` cuts the text there and keeps each
piece's syntax tree, keyed by its text and the line it starts on (so every span in it is still right): an edit
inside one block parses that block again and hands back the very same node objects for the others, which lets
the elaborator keep what it worked out for them (``sema.memo``'s records of block calls).

A piece that does not parse alone sends the whole text to ``parse``, so a syntax error reads exactly as the
compiler's; the pieces' trees joined are the tree ``parse`` gives for the whole text.
"""

from __future__ import annotations

from ..errors import remember_source
from . import nodes as n
from .limits import check_nesting, check_text
from .parser import _header_comment, _ToAst, parse
from .syntax import _parser


def items(text: str) -> list[tuple[int, str]]:
    """The text cut before each top-level item: (the piece's first line, counted from 1; the piece)."""
    lines = text.splitlines(keepends=True)
    starts, depth = [0], 0
    for i, line in enumerate(lines):
        if i and depth == 0 and line[:1] not in ("", " ", "\t", "\r", "\n", "#", "}", ")", "]"):
            starts.append(i)
        depth = max(0, depth + _depth_change(line))
    starts.append(len(lines))
    return [(a + 1, "".join(lines[a:b])) for a, b in zip(starts, starts[1:]) if b > a]


def _depth_change(line: str) -> int:
    """Brackets opened minus closed on a line, outside strings (which end at the line) and comments."""
    change, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif c == "#":
            break
        elif c in "([{":
            change += 1
        elif c in ")]}":
            change -= 1
    return change


class ItemParser:
    """``parse`` for a text that changes a little at a time: the items that did not change are not parsed again."""

    def __init__(self) -> None:
        self._trees: dict[tuple[str, int, str], n.Module] = {}

    def parse(self, text: str, file: str = "<string>") -> n.Module:
        text = text.removeprefix("\ufeff")
        check_text(text, file)
        trees: dict[tuple[str, int, str], n.Module] = {}
        for line, piece in items(text):
            key = (file, line, piece)
            tree = self._trees.get(key) or _parse_piece(piece, file, line)
            if tree is None:  # let the whole text say what is wrong, as the compiler does
                self._trees = {}
                return parse(text, file)
            trees[key] = tree
        self._trees = trees  # only the latest text's pieces are kept
        remember_source(file, text)
        module = n.Module(file, text, header=_header_comment(text))
        for tree in trees.values():
            for name in ("uses", "lets", "funcs", "blocks", "networks", "variants"):
                getattr(module, name).extend(getattr(tree, name))
        return module


def _parse_piece(piece: str, file: str, line: int) -> n.Module | None:
    """One piece's tree, its spans where the piece stands in the file (blank lines before it keep them so)."""
    try:
        tree = _ToAst(file).transform(_parser().parse("\n" * (line - 1) + piece))
        check_nesting(tree)  # (a module's items nest alike alone: an item checked once need not be again)
        return tree
    except Exception:  # a syntax error (or deeper trouble) that the whole text's parse reports as the compiler does
        return None
