"""What the server answers, as LSP types: diagnostics, the outline, hover texts, inlay hints (completions are
``completion``).
Built from an ``Analysis`` and its ``Index``; the protocol's wiring is ``server.py``."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as t

from ..errors import SpecError
from ..lang import nodes as n
from ..ops import REGISTRY
from .analysis import Analysis, describe_outputs, shape_range, statement_info
from .positions import Lines, contains, size
from .symbols import Index, Occurrence

# statements that compute a tensor: those a shape is shown for
COMPUTING = (n.Layer, n.Side, n.Seq, n.Concat, n.Gate, n.Ensemble, n.Dense, n.Residual)


def computes(d: n.BlockDef | n.NetworkDef, node: n.Node) -> bool:
    """Whether a statement of ``d`` computes a tensor: a layer or structure, or a let over tensors in a block with
    named tensors (any other let names a value)."""
    if isinstance(node, n.Let):
        return d.signature is not None and node in d.signature.lets if isinstance(d, n.BlockDef) else False
    return isinstance(node, COMPUTING)


def uri_of(file: str) -> str:
    return Path(file).resolve().as_uri()


class Document:
    """One analysed document with the helpers every feature needs: positions, and the text of other files."""

    def __init__(self, uri: str, analysis: Analysis, index: Index | None):
        self.uri, self.analysis, self.index = uri, analysis, index
        self.file = str(analysis.path)
        self.lines = Lines(analysis.text)
        self._lines = {m.file: Lines(m.source) for m in (analysis.program.modules if analysis.program else [])}
        self._lines[self.file] = self.lines

    def lines_of(self, file: str) -> Lines:
        return self._lines.get(file) or Lines("")

    def range(self, span: n.Span | None) -> t.Range:
        if span is None:
            return t.Range(t.Position(0, 0), t.Position(0, len(self.lines.lines[0])))
        (a, b), (c, d) = self.lines_of(span.file).span_range(span)
        return t.Range(t.Position(a, b), t.Position(c, d))

    def location(self, span: n.Span) -> t.Location:
        return t.Location(self.uri if span.file == self.file else uri_of(span.file), self.range(span))

    def position(self, p: t.Position) -> tuple[int, int]:
        return self.lines.from_lsp(p.line, p.character)

    def source(self, span: n.Span) -> str:
        return self.lines_of(span.file).text(span)


# ---------------------------------------------------------------- diagnostics


def diagnostics(doc: Document) -> list[t.Diagnostic]:
    out = [_diagnostic(doc, e) for e in doc.analysis.errors]
    if doc.analysis.internal:
        out.append(t.Diagnostic(doc.range(None), doc.analysis.internal, t.DiagnosticSeverity.Error, source="archc"))
    return out


def _diagnostic(doc: Document, error: SpecError) -> t.Diagnostic:
    span, message = error.span, error.message
    if span is not None and span.file != doc.file:  # in a used file: shown where this document leads there
        message = f"{message} ({span.file}:{span.line}:{span.column})"
        here = [s for _, s in error.notes if s is not None and s.file == doc.file]
        uses = doc.analysis.module.uses if doc.analysis.module else []
        span = here[0] if here else (uses[0].span if uses else None)
    message += "".join(f"\nnote: {text}" for text, s in error.notes if s is None)
    if error.hint:
        message += f"\nhint: {error.hint}"
    related = [t.DiagnosticRelatedInformation(doc.location(s), text) for text, s in error.notes if s is not None]
    if error.span is not None and span is not error.span:
        related.insert(0, t.DiagnosticRelatedInformation(doc.location(error.span), error.message))
    return t.Diagnostic(doc.range(span), message, t.DiagnosticSeverity.Error, source="archc",
                        related_information=related or None)


# ---------------------------------------------------------------- outline


def document_symbols(doc: Document) -> list[t.DocumentSymbol]:
    module, index = doc.analysis.module, doc.index
    if module is None or index is None:
        return []
    found = []

    def symbol(name: str, kind: t.SymbolKind, node, key, detail: str = "", children=None) -> None:
        selection = index.definitions.get(key) or node.span
        if selection.file != doc.file:
            selection = node.span
        found.append((node.span, t.DocumentSymbol(name, kind, doc.range(node.span), doc.range(selection),
                                                  detail=detail or None, children=children)))

    for let in module.lets:
        symbol(let.name, t.SymbolKind.Constant, let, ("let", let.name), doc.source(let.value.span))
    for func in module.funcs:
        symbol(func.name, t.SymbolKind.Function, func, ("func", func.name), signature(doc, func))
    for d in [*module.blocks, *module.networks]:
        kind = t.SymbolKind.Class if isinstance(d, n.BlockDef) else t.SymbolKind.Module
        symbol(d.name, kind, d, ("block", d.name), signature(doc, d), _members(doc, d))
    for v in module.variants:
        symbol(v.name, t.SymbolKind.Function, v, ("variant", v.name), doc.source(v.span).partition("=")[2].strip())
    return [s for _, s in sorted(found, key=lambda pair: (pair[0].line, pair[0].column))]


def _members(doc: Document, d: n.BlockDef | n.NetworkDef) -> list[t.DocumentSymbol]:
    members = []
    for node in d.walk():
        if isinstance(node, n.Let):
            name = doc.lines.find(node.name, node.span) or node.span
            members.append(t.DocumentSymbol(node.name, t.SymbolKind.Variable, doc.range(node.span), doc.range(name),
                                            detail=doc.source(node.value.span)))
        elif isinstance(node, (n.Layer, n.Side, n.Seq)) and node.target is not None:
            detail = "seq" if isinstance(node, n.Seq) else node.func
            members.append(t.DocumentSymbol(node.target.text, t.SymbolKind.Field, doc.range(node.span),
                                            doc.range(node.target.span), detail=detail))
    return members


def signature(doc: Document, d) -> str:
    """``Bottleneck(planes, stride = 1)`` as written."""
    return f"{d.name}({', '.join(doc.source(p.span) for p in d.params)})"


def op_signature(kind: str) -> str:
    args = []
    for name, f in REGISTRY[kind].args.model_fields.items():
        args.append(name if f.is_required() else f"{name} = {f.default!r}".replace("None", "none")
                    .replace("True", "true").replace("False", "false"))
    return f"{kind}({', '.join(args)})"


# ---------------------------------------------------------------- hover


def statement_at(module: n.Module | None, line: int, column: int) -> n.Stmt | None:
    """The innermost statement that computes a tensor at an archc position."""
    if module is None:
        return None
    hits = [node for d in [*module.blocks, *module.networks] if contains(d.span, line, column)
            for node in d.walk() if computes(d, node) and contains(node.span, line, column)]
    return min(hits, key=lambda s: size(s.span), default=None)


def hover(doc: Document, line: int, column: int) -> t.Hover | None:
    occurrence = doc.index.at(line, column) if doc.index else None
    stmt = statement_at(doc.analysis.module, line, column)
    parts, span = [], None
    if occurrence is not None:
        parts.append(_describe(doc, occurrence))
        span = occurrence.span
    shows = occurrence is None or occurrence.key[0] in ("block", "op", "layer") or \
        (occurrence.key[0] == "local" and isinstance(stmt, n.Let))  # a tensor's name in a block with named tensors
    if stmt is not None and shows:
        if occurrence is None or contains(stmt.span, occurrence.span.line, occurrence.span.column):
            parts.append(shapes_table(doc, stmt))
    parts = [p for p in parts if p]
    if not parts:
        return None
    return t.Hover(t.MarkupContent(t.MarkupKind.Markdown, "\n\n".join(parts)), doc.range(span) if span else None)


def _describe(doc: Document, o: Occurrence) -> str:
    kind, node = o.key[0], doc.index.nodes.get(o.key)
    if kind == "op":
        return f"```\n{op_signature(o.key[1])}\n```\n{REGISTRY[o.key[1]].doc}" if o.key[1] in REGISTRY else ""
    if kind == "use":
        return f"use `{o.key[1]}`"
    if node is None:
        return ""
    if kind in ("block", "func"):
        word = {n.BlockDef: "block", n.NetworkDef: "network", n.FuncDef: "def"}[type(node)]
        doc_comment = getattr(node, "doc", "")
        return f"```\n{word} {signature(doc, node)}\n```" + (f"\n{doc_comment}" if doc_comment else "")
    if kind == "variant":
        text = f"```\n{doc.source(node.span)}\n```"
        graph = doc.analysis.graphs.get(node.name)
        return text + (f"\n{graph.params:,} parameters, {graph.macs:,} MACs" if graph is not None else "")
    if kind == "layer":
        return ""  # the statement's table says it
    return f"```\n{doc.source(node.span).splitlines()[0]}\n```"


def shapes_table(doc: Document, stmt: n.Stmt) -> str:
    infos = statement_info(doc.analysis, stmt)
    if not infos:
        return "no variant makes this statement" if doc.analysis.shapes else ""
    rows = ["| variant | output | params | MACs |", "|---|---|---|---|"]
    rows += [f"| {i.variant} | {describe_outputs(i.outputs)} | {i.params:,} | {i.macs:,} |" for i in infos]
    return "\n".join(rows)


# ---------------------------------------------------------------- inlay hints


def inlay_hints(doc: Document, first: int, last: int) -> list[t.InlayHint]:
    """Each statement's output shape (a range over its instances and variants) after it, on lines
    ``first``..``last`` (archc's numbering)."""
    module = doc.analysis.module
    if module is None:
        return []
    hints = []
    for d in [*module.blocks, *module.networks]:
        for node in d.walk():
            if not computes(d, node) or not first <= node.span.end_line <= last:
                continue
            outputs = [o for info in statement_info(doc.analysis, node) for o in info.outputs]
            if outputs:
                (a, b) = doc.lines.to_lsp(node.span.end_line, node.span.end_column)
                hints.append(t.InlayHint(t.Position(a, b), f": {shape_range(outputs)}", kind=t.InlayHintKind.Type,
                                         padding_left=True))
    return sorted(hints, key=lambda h: (h.position.line, h.position.character))

