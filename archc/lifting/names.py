"""Names in a lifted spec: block names from class names, kept apart from the network's and from each
other's; and the names no parameter, tensor or block may take (keywords, ops, what generated code reserves)."""

from __future__ import annotations

import keyword

from ..lang.syntax import IDENTIFIER_KEYWORDS
from ..lang.syntax import KEYWORDS as LANGUAGE_KEYWORDS
from ..ops.base import REGISTRY
from ..sema.builtin_functions import BUILTINS
from ..sema.scope import RESERVED

KEYWORDS = frozenset(LANGUAGE_KEYWORDS) | frozenset(BUILTINS)  # what no parameter or tensor may be called


def plain(name: str) -> bool:
    """A name the spec may write unquoted for a module."""
    return name.isidentifier() and not keyword.iskeyword(name) and \
        (name not in KEYWORDS or name in IDENTIFIER_KEYWORDS) and name not in RESERVED and not name.startswith("_")


def member(name: str) -> tuple[str, str] | None:
    """``(container, key)`` where ``name`` is a member of a container a block with named tensors declares
    (``convs.0``: a plain name, a dot, a number), else None."""
    head, dot, key = name.partition(".")
    return (head, key) if dot and plain(head) and key.isdigit() and str(int(key)) == key else None


class Names:
    def __init__(self):
        self.blocks: set[str] = set()

    def block(self, cls: str) -> str:
        base = cls.lstrip("_") or "Block"
        base = base[0].upper() + base[1:]
        name, i = base, 2
        while name in self.blocks or name in REGISTRY or name in KEYWORDS:
            name, i = f"{base}{i}", i + 1
        self.blocks.add(name)
        return name

    def taken_in(self, template) -> set[str]:
        """What a parameter of a block may not be called: its children's names, keywords, ops, block names."""
        kids = {n for n, _ in getattr(template, "children", [])}
        return kids | set(REGISTRY) | KEYWORDS | set(RESERVED) | self.blocks | set(keyword.kwlist)

    @staticmethod
    def fresh(base: str, taken: set[str]) -> str:
        base = base.strip("_") or "t"
        if not base[0].isalpha():
            base = "t" + base
        if base in KEYWORDS or keyword.iskeyword(base):  # torch's `input`
            base = "x"
        name, i = base, 2
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name
