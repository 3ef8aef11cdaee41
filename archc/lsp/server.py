"""``archc lsp``: a language server over stdio for ``.arch`` specs (pygls).

Every change re-checks the document's text as ``archc check`` would (its ``use``d files from disk) and
publishes the errors (those of the code generator's own checks once the edits pause, ``GENERATOR_DELAY_S``); requests are answered from that analysis. The server runs nothing but the compiler,
never imports torch, and a handler that fails answers empty and logs: no spec stops the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from pathlib import Path

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from .. import __version__
from ..errors import SpecError
from ..lang.format import UnsafeFormat, format_source
from .analysis import Incremental, analyse, generator_checks
from .completion import completions
from .features import Document, diagnostics, document_symbols, hover, inlay_hints, uri_of
from .symbols import build_index
from .workspace import GLOBAL, mentions

log = logging.getLogger(__name__)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RENAMEABLE = ("block", "func", "let", "local", "layer", "variant")
# the pause after an edit before the code generator's checks run: typing and hovers are answered first
GENERATOR_DELAY_S = 0.15


class ArchServer(LanguageServer):
    def __init__(self):
        super().__init__("archc", __version__)
        self.documents: dict[str, Document] = {}
        self.last_indexed: dict[str, Document] = {}  # the latest version that parsed: for completion
        self.incremental: dict[str, Incremental] = {}  # what each open document's next analysis may keep

    def analyse(self, uri: str, generate: bool = True) -> Document:
        text = self.workspace.get_text_document(uri).source
        path = to_fs_path(uri) if uri.startswith("file:") else None
        path = Path(path) if path else Path.cwd() / "untitled.arch"
        analysis = analyse(path, text, generate, self.incremental.setdefault(uri, Incremental()))
        index = None
        try:
            if analysis.module is not None:
                modules = analysis.program.modules if analysis.program is not None else [analysis.module]
                index = build_index(modules, path)
        except Exception:
            log.exception("indexing %s failed", uri)
        doc = Document(uri, analysis, index)
        self.documents[uri] = doc
        if index is not None:
            self.last_indexed[uri] = doc
        return doc

    def document(self, uri: str) -> Document:
        return self.documents.get(uri) or self.analyse(uri)


server = ArchServer()


def safe(default=None):
    """Answer ``default`` where a handler fails: a bug shows in the log, not as a dead server."""
    def wrap(f):
        @functools.wraps(f)
        def handler(params):
            try:
                return f(params)
            except Exception:
                log.exception("%s failed", f.__name__)
                return default() if callable(default) else default
        return handler
    return wrap


def _refresh(uri: str) -> None:
    """The check's errors at once; then, once the edits pause, the code generator's own checks on a spec that
    checked, published again only if they find something (rare: names Python cannot take, and the like)."""
    doc = None
    try:
        doc = server.analyse(uri, generate=False)
        found = diagnostics(doc)
    except Exception as exc:
        found = _internal_error(uri, exc)
    server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri, found))
    if doc is None or doc.analysis.checked is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on the server's loop: now
        _generator_checks(uri, doc)
        return
    loop.call_later(GENERATOR_DELAY_S, _generator_checks, uri, doc)


def _generator_checks(uri: str, doc: Document) -> None:
    if server.documents.get(uri) is not doc:  # edited again (or closed) since: that analysis takes over
        return
    try:
        if not generator_checks(doc.analysis):
            return
        found = diagnostics(doc)
    except Exception as exc:
        found = _internal_error(uri, exc)
    server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri, found))


def _internal_error(uri: str, exc: Exception) -> list[t.Diagnostic]:
    log.exception("checking %s failed", uri)
    return [t.Diagnostic(t.Range(t.Position(0, 0), t.Position(0, 0)), f"archc: internal error ({exc})",
                         t.DiagnosticSeverity.Error, source="archc")]


@server.feature(t.TEXT_DOCUMENT_DID_OPEN)
def did_open(params: t.DidOpenTextDocumentParams) -> None:
    _refresh(params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
def did_change(params: t.DidChangeTextDocumentParams) -> None:
    _refresh(params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_DID_SAVE)
def did_save(params: t.DidSaveTextDocumentParams) -> None:
    _refresh(params.text_document.uri)  # a used file may have changed on disk


@server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
def did_close(params: t.DidCloseTextDocumentParams) -> None:
    server.documents.pop(params.text_document.uri, None)
    server.last_indexed.pop(params.text_document.uri, None)
    server.incremental.pop(params.text_document.uri, None)
    server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(params.text_document.uri, []))


@server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@safe(list)
def symbols(params: t.DocumentSymbolParams):
    return document_symbols(server.document(params.text_document.uri))


@server.feature(t.TEXT_DOCUMENT_HOVER)
@safe()
def on_hover(params: t.HoverParams):
    doc = server.document(params.text_document.uri)
    return hover(doc, *doc.position(params.position))


def _occurrence(params):
    doc = server.document(params.text_document.uri)
    if doc.index is None:
        return doc, None
    return doc, doc.index.at(*doc.position(params.position))


@server.feature(t.TEXT_DOCUMENT_DEFINITION)
@safe()
def definition(params: t.DefinitionParams):
    doc, o = _occurrence(params)
    if o is None:
        return None
    if o.key[0] == "use":
        return t.Location(uri_of(o.key[1]), t.Range(t.Position(0, 0), t.Position(0, 0)))
    span = doc.index.definitions.get(o.key)
    return doc.location(span) if span is not None else None


def _workspace_mentions(doc: Document, key) -> dict | None:
    """For a block, network, function or let: its mentions in every spec of the workspace whose program holds
    its definition (None for other names, which only their own file sees)."""
    definition = doc.index.definitions.get(key)
    if key[0] not in GLOBAL or definition is None:
        return None
    roots = [Path(to_fs_path(f.uri)) for f in server.workspace.folders.values() if to_fs_path(f.uri)]
    if not roots and server.workspace.root_path:
        roots = [Path(server.workspace.root_path)]
    buffers = {}
    for uri, document in server.workspace.text_documents.items():
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path:
            buffers[Path(path).resolve()] = document.source
    buffers.setdefault(Path(doc.file).resolve(), doc.analysis.text)
    # the folders of the document and of the definition too: a library of blocks and its users sit together
    roots += [Path(doc.file).parent, Path(definition.file).parent]
    return mentions(key, definition.file, list(dict.fromkeys(roots)), buffers)


def _range(lines, span) -> t.Range:
    (a, b), (c, d) = lines.span_range(span)
    return t.Range(t.Position(a, b), t.Position(c, d))


@server.feature(t.TEXT_DOCUMENT_REFERENCES)
@safe(list)
def references(params: t.ReferenceParams):
    doc, o = _occurrence(params)
    if o is None:
        return []
    found = _workspace_mentions(doc, o.key)
    if found is not None:
        return [t.Location(uri_of(str(path)), _range(m.lines, s)) for path, m in found.items() for s in m.spans
                if params.context.include_declaration or s not in m.definitions]
    skip = set() if params.context.include_declaration else \
        {x.span for x in doc.index.occurrences if x.key == o.key and x.definition}
    return [doc.location(s) for s in doc.index.references(o.key) if s not in skip]


@server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=["("]))
@safe(list)
def completion(params: t.CompletionParams):
    uri = params.text_document.uri
    doc = server.document(uri)
    if doc.index is None:
        doc = server.last_indexed.get(uri, doc)
    line, column = server.document(uri).position(params.position)
    return t.CompletionList(is_incomplete=False, items=completions(doc, line, column))


@server.feature(t.TEXT_DOCUMENT_FORMATTING)
@safe(list)
def formatting(params: t.DocumentFormattingParams):
    document = server.workspace.get_text_document(params.text_document.uri)
    text = document.source
    try:
        formatted = format_source(text, str(to_fs_path(params.text_document.uri) or "<buffer>"))
    except (SpecError, UnsafeFormat, RecursionError):
        return []  # a spec that does not parse is left as it is (its diagnostics say why)
    if formatted == text:
        return []
    lines = text.split("\n")
    end = t.Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)
    return [t.TextEdit(t.Range(t.Position(0, 0), end), formatted)]


@server.feature(t.TEXT_DOCUMENT_INLAY_HINT)
@safe(list)
def inlay_hint(params: t.InlayHintParams):
    doc = server.document(params.text_document.uri)
    return inlay_hints(doc, params.range.start.line + 1, params.range.end.line + 1)


def _renameable(doc: Document, o):
    """A name defined in this file, or (a block, function or let) in a file this one uses."""
    if o is None or o.key[0] not in RENAMEABLE:
        return False
    span = doc.index.definitions.get(o.key)
    return span is not None and (span.file == doc.file or o.key[0] in GLOBAL)


@server.feature(t.TEXT_DOCUMENT_PREPARE_RENAME)
@safe()
def prepare_rename(params: t.PrepareRenameParams):
    doc, o = _occurrence(params)
    return doc.range(o.span) if _renameable(doc, o) else None


@server.feature(t.TEXT_DOCUMENT_RENAME)
@safe()
def rename(params: t.RenameParams):
    doc, o = _occurrence(params)
    if not _renameable(doc, o) or not IDENTIFIER.match(params.new_name):
        return None
    found = _workspace_mentions(doc, o.key)
    if found is not None:  # every spec that holds the definition, the defining file too
        changes = {uri_of(str(path)): [t.TextEdit(_range(m.lines, s), params.new_name) for s in m.spans]
                   for path, m in found.items()}
        if Path(doc.file).resolve() in found:
            changes[doc.uri] = changes.pop(uri_of(str(Path(doc.file).resolve())))
        return t.WorkspaceEdit(changes=changes)
    edits = [t.TextEdit(doc.range(s), params.new_name) for s in doc.index.references(o.key)]
    return t.WorkspaceEdit(changes={doc.uri: edits})


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="archc lsp: %(levelname)s: %(message)s")
    server.start_io()
    return 0
