"""The names of a document: where each is defined and every place the document mentions it.

A name's key says what it names: ``("block", B)`` (blocks and networks), ``("func", F)``, ``("let", L)`` (a
file's let), ``("variant", V)``, ``("local", D, x)`` (a parameter, let or loop variable of the block, network
or function D: locals never reuse a name of the file, so a name in D is D's if D binds it), ``("layer", D, x)``
(a named layer of D's body), ``("op", kind)`` and ``("use", path)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..lang import nodes as n
from ..ops import REGISTRY
from .positions import Lines, contains, size

Key = tuple


@dataclass
class Occurrence:
    span: n.Span
    key: Key
    definition: bool = False


@dataclass
class Index:
    path: Path
    occurrences: list[Occurrence] = field(default_factory=list)  # in the document only
    definitions: dict[Key, n.Span] = field(default_factory=dict)  # anywhere (used files too)
    nodes: dict[Key, n.Node] = field(default_factory=dict)  # what a definition's key names

    def at(self, line: int, column: int) -> Occurrence | None:
        """The name at an archc position (the smallest span holding it)."""
        hits = [o for o in self.occurrences if contains(o.span, line, column)]
        return min(hits, key=lambda o: size(o.span), default=None)

    def references(self, key: Key) -> list[n.Span]:
        return sorted({o.span for o in self.occurrences if o.key == key},
                      key=lambda s: (s.line, s.column))

    def locals_of(self, definition: str) -> list[str]:
        return sorted({k[2] for k in self.definitions if k[0] in ("local", "layer") and k[1] == definition})


def build_index(modules: list[n.Module], path: Path) -> Index:
    """The index of the last of ``modules`` (the document), with the definitions of all of them."""
    index = Index(path)
    main = modules[-1]
    globals_: dict[str, Key] = {kind: ("op", kind) for kind in REGISTRY}
    for module in modules:
        for let in module.lets:
            globals_[let.name] = ("let", let.name)
        for func in module.funcs:
            globals_[func.name] = ("func", func.name)
        for d in [*module.blocks, *module.networks]:
            globals_[d.name] = ("block", d.name)
    names = tuple(sorted(globals_.items()))
    for module in modules:
        _Indexer(index, module, globals_, module is main).run(names)
    return index


# What indexing each top-level item found (its name's definitions and mentions, in order), by the item: an editor's
# item that an edit did not change is the same object (``lang.incremental``), and what it finds depends only on it,
# on whether it is the document's, and on the names of the file's globals. The latest few thousand are kept.
_FOUND: dict[int, tuple] = {}  # id(item) -> (item, whether the document's, the globals' names, what it found)
MAX_FOUND = 4096


class _Indexer:
    def __init__(self, index: Index, module: n.Module, globals_: dict[str, Key], main: bool):
        self.index, self.module, self.globals, self.main = index, module, globals_, main
        self._lines: Lines | None = None
        self.found: list[tuple] = []  # (span, key, definition, node): what the item being indexed adds

    @property
    def lines(self) -> Lines:
        if self._lines is None:  # (only where an item is indexed again)
            self._lines = Lines(self.module.source)
        return self._lines

    def add(self, span: n.Span | None, key: Key, definition: bool = False, node: n.Node | None = None) -> None:
        if span is not None:
            self.found.append((span, key, definition, node))

    def _put(self, found: list[tuple]) -> None:
        for span, key, definition, node in found:
            if definition and key not in self.index.definitions:
                self.index.definitions[key] = span
                if node is not None:
                    self.index.nodes[key] = node
            if self.main:
                self.index.occurrences.append(Occurrence(span, key, definition))

    def name(self, name: str, span: n.Span, key: Key, node: n.Node | None = None, skip: int = 0) -> None:
        self.add(self.lines.find(name, span, skip), key, True, node)

    def run(self, names: tuple) -> None:
        m = self.module
        for item, index in [*((u, self.use) for u in m.uses), *((let, self.let) for let in m.lets),
                            *((f, self.func) for f in m.funcs), *((d, self.definition) for d in [*m.blocks, *m.networks]),
                            *((v, self.variant) for v in m.variants)]:
            known = _FOUND.pop(id(item), None)
            if known is not None and known[0] is item and known[1] == self.main and known[2] == names:
                found = known[3]
            else:
                self.found = []
                index(item)
                found = self.found
            _FOUND[id(item)] = (item, self.main, names, found)  # the most recently used last
            self._put(found)
        while len(_FOUND) > MAX_FOUND:
            del _FOUND[next(iter(_FOUND))]

    def use(self, use: n.Use) -> None:
        self.add(use.span, ("use", str(Path(self.module.file).parent / use.path)))

    def let(self, let: n.Let) -> None:
        self.name(let.name, let.span, ("let", let.name), let)
        self.expr(let.value, None, set())

    def func(self, func: n.FuncDef) -> None:
        self.name(func.name, func.span, ("func", func.name), func)
        local = {p.name for p in func.params} | {let.name for let in func.lets}
        for p in func.params:
            self.name(p.name, p.span, ("local", func.name, p.name), p)
            self.expr(p.default, None, set())
        for let in func.lets:
            self.name(let.name, let.span, ("local", func.name, let.name), let)
            self.expr(let.value, func.name, local)
        self.expr(func.result, func.name, local)

    def variant(self, v: n.VariantDef) -> None:
        self.name(v.name, v.span, ("variant", v.name), v)
        self.add(v.network_span, ("block", v.network))
        self.arguments(v.arguments, v.network, None, set())

    def definition(self, d: n.BlockDef | n.NetworkDef) -> None:
        self.name(d.name, d.span, ("block", d.name), d)
        local = {p.name for p in d.params}
        for node in d.walk():
            if isinstance(node, n.Let):
                local.update(node.names)
            elif isinstance(node, n.For):
                local.update(n.pattern_names(node.var))
        for p in d.params:
            self.name(p.name, p.span, ("local", d.name, p.name), p)
            self.expr(p.default, None, set())
        sig = getattr(d, "signature", None)
        self.modules = dict.fromkeys(sig.decls, d.name) if sig is not None else {}  # applied by name in lets
        if sig is not None:  # the named tensors: its inputs (and their sizes)
            local.update(sig.inputs)
            for i, name in enumerate(sig.inputs):
                self.name(name, sig.span, ("local", d.name, name), sig, skip=sig.inputs[:i].count(name))
            for sizes in sig.sizes:
                for e in sizes or []:
                    self.expr(e, d.name, local)
        for e in getattr(d, "input", []):
            self.expr(e, d.name, local)
        for node in d.walk():
            self.statement(node, d.name, local)

    def statement(self, s: n.Node, owner: str, local: set[str]) -> None:
        if isinstance(s, n.Let):
            for name in s.names:
                self.name(name, s.span, ("local", owner, name), s)
            self.expr(s.value, owner, local)
        elif isinstance(s, n.For):
            for name in n.pattern_names(s.var):
                self.name(name, s.span, ("local", owner, name), s)
            self.expr(s.iterable, owner, local)
        elif isinstance(s, (n.Layer, n.Side)):
            if s.target is not None and s.target.is_plain:
                self.add(s.target.span if not s.target.quoted else None, ("layer", owner, s.target.text), True, s)
            self.add(s.func_span, self.resolve(s.func, owner, local))
            callee = s.func if self.globals.get(s.func, ("",))[0] == "block" else None
            self.arguments(s.arguments, callee, owner, local)
        elif isinstance(s, n.Seq) and s.target is not None and s.target.is_plain and not s.target.quoted:
            self.add(s.target.span, ("layer", owner, s.target.text), True, s)
        elif isinstance(s, n.Init):
            self.init(s, owner)
            self.expr(s.rule, owner, local)
        elif isinstance(s, n.Dense | n.Residual):
            self.arguments(s.arguments, None, owner, local)
        if isinstance(s, (n.Side, n.Shortcut)) and s.source is not None:
            self.add(s.source_span, ("layer", owner, s.source))
        self.expr(getattr(s, "cond", None), owner, local)

    def init(self, s: n.Init, owner: str) -> None:
        """``init conv.weight``, ``init conv1.weight`` (a layer of this body), ``init Block.bn3.weight``."""
        spans, start = [], s.span
        for part in s.path:
            found = self.lines.find(part, start)
            if found is None:
                return
            spans.append(found)
            start = n.Span(s.span.file, found.end_line, found.end_column, s.span.end_line, s.span.end_column)
        first = s.path[0]
        if self.globals.get(first, ("",))[0] == "block" and len(s.path) >= 3:
            self.add(spans[0], ("block", first))
            self.add(spans[1], ("layer", first, s.path[1]))
        elif first in REGISTRY and len(s.path) == 2:
            self.add(spans[0], ("op", first))
        elif len(s.path) >= 2:
            self.add(spans[0], ("layer", owner, first))

    def arguments(self, a: n.Arguments, callee: str | None, owner: str | None, local: set[str]) -> None:
        if not self.main:  # arguments define nothing: in a used file they have nothing to add
            return
        for e in a.args:
            self.expr(e, owner, local)
        for name, e, span in a.kwargs:
            if callee is not None:
                self.add(span, ("local", callee, name))
            self.expr(e, owner, local)

    def resolve(self, name: str, owner: str | None, local: set[str]) -> Key | None:
        if owner is not None and name in local:
            return ("local", owner, name)
        if owner is not None and getattr(self, "modules", {}).get(name) == owner:  # a declared module, applied
            return ("layer", owner, name)
        return self.globals.get(name)

    def expr(self, e: n.Node | None, owner: str | None, local: set[str]) -> None:
        if e is None or not self.main:  # an expression defines nothing: in a used file it has nothing to add
            return
        bound = set()  # names a comprehension binds: its own
        for node in e.walk():
            if isinstance(node, n.ListComp):
                bound.update(n.pattern_names(node.pattern))
        for node in e.walk():
            if isinstance(node, n.Var) and node.name not in bound:
                key = self.resolve(node.name, owner, local)
                if key is not None:
                    self.add(node.span, key)
