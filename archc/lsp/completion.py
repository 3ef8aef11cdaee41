"""Completion that knows where the cursor is: a statement (ops, blocks, keywords and the definition's names), an
expression (values only: parameters, locals, lets, functions, constants), the arguments of a call (the op's or
block's parameters not given yet, as ``name = ``), ``in.`` or ``out.`` (the tensor's attributes), or the file
name of a ``use``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types as t

from ..lang.syntax import KEYWORDS
from ..ops import REGISTRY
from ..sema.values import TensorInfo
from .features import Document, op_signature, signature

_CALLEE = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)\s*$")
_KWARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
VALUE_KEYWORDS = ("and", "else", "false", "for", "if", "in", "none", "not", "or", "out", "true")


@dataclass
class Context:
    kind: str  # "statement", "expression", "arguments", "tensor", "use", "string", "comment"
    callee: str | None = None  # for arguments: the op or block called
    given: set[str] = field(default_factory=set)  # for arguments: keywords written already, "#0".. by position


def context_at(text: str, line: int, column: int) -> Context:
    """Where (1-based ``line``, ``column``) falls in ``text``: scanned from the start, strings and comments
    skipped, brackets counted."""
    lines = text.split("\n")
    before = "\n".join(lines[:line - 1] + [lines[line - 1][:column - 1] if line - 1 < len(lines) else ""])
    stack: list[tuple[str, str | None, int]] = []  # (bracket, the word before it, where it opened)
    i, in_string, string_start = 0, False, 0
    while i < len(before):
        c = before[i]
        if in_string:
            if c == '"' or c == "\n":
                in_string = False
        elif c == '"':
            in_string, string_start = True, i
        elif c == "#":
            end = before.find("\n", i)
            if end < 0:
                return Context("comment")
            i = end
            continue
        elif c in "([{":
            m = _CALLEE.search(before, max(0, i - 80), i)
            stack.append((c, m.group(1) if m and c == "(" else None, i))
        elif c in ")]}" and stack:
            stack.pop()
        i += 1
    if in_string:
        head = before[:string_start].rstrip()
        return Context("use") if head.endswith("use") else Context("string")
    if re.search(r"(?<![\w.])(in|out)\.\w*$", before):
        return Context("tensor")
    if stack and stack[-1][0] == "(" and stack[-1][1] is not None:
        opened = stack[-1][2]
        inside = before[opened + 1:]
        top = _top_level(inside)
        given = {m.group(1) for m in _KWARG.finditer(top)}
        # the arguments before the cursor written by position: the first parameters
        positional = sum(1 for piece in top.split(",")[:-1] if piece.strip() and not _KWARG.match(piece.strip()))
        given |= {f"#{i}" for i in range(positional)}
        if re.search(r"(^|,)\s*[A-Za-z_]*$", inside):  # where an argument begins
            return Context("arguments", stack[-1][1], given)
        return Context("expression")
    if stack and stack[-1][0] in "([":
        return Context("expression")
    statement = before[before.rfind("\n") + 1:]
    statement = statement[statement.rfind(";") + 1:]
    if "=" in statement.replace("==", "").replace("!=", "").replace("<=", "").replace(">=", "") and \
            re.match(r"\s*(let\b|variant\b)", statement):
        return Context("expression")
    if re.search(r"\b(if|for|in|return)\s+\S*$", statement):
        return Context("expression")
    return Context("statement")


def _top_level(inside: str) -> str:
    """The text of a call's arguments with nested brackets' contents left out."""
    out, depth = [], 0
    for c in inside:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def completions(doc: Document, line: int, column: int | None = None) -> list[t.CompletionItem]:
    """What may be written at (``line``, ``column``) of the document."""
    context = Context("statement") if column is None else context_at(doc.analysis.text, line, column)
    if context.kind in ("comment", "string"):
        return []
    if context.kind == "use":
        return _files(doc)
    if context.kind == "tensor":
        return [t.CompletionItem(a, kind=t.CompletionItemKind.Property, detail=f"the tensor's {a}")
                for a in TensorInfo.ATTRIBUTES]
    items: list[t.CompletionItem] = []
    if context.kind == "arguments":
        items += _arguments(doc, context)
    statement = context.kind == "statement"
    items += [t.CompletionItem(k, kind=t.CompletionItemKind.Keyword) for k in (KEYWORDS if statement else
                                                                                VALUE_KEYWORDS)]
    if statement:
        for kind, op in sorted(REGISTRY.items()):
            items.append(t.CompletionItem(kind, kind=t.CompletionItemKind.Function, detail=op_signature(kind),
                                          documentation=op.doc or None))
    return items + _names(doc, line, statement)


def _arguments(doc: Document, context: Context) -> list[t.CompletionItem]:
    """The parameters of the op or block called, those not given yet, first in the list."""
    callee = context.callee
    params: list[tuple[str, str]] = []
    if callee in REGISTRY:
        params = [(name, op_signature(callee)) for name in REGISTRY[callee].args.model_fields]
    elif doc.index is not None:
        node = doc.index.nodes.get(("block", callee)) or doc.index.nodes.get(("func", callee))
        params = [(p.name, signature(doc, node)) for p in node.params] if node is not None else []
    return [t.CompletionItem(f"{name} = ", kind=t.CompletionItemKind.Property, detail=detail, sort_text=f"0{i:03}",
                             filter_text=name)
            for i, (name, detail) in enumerate(params) if name not in context.given and f"#{i}" not in context.given]


def _names(doc: Document, line: int, statement: bool) -> list[t.CompletionItem]:
    """Blocks and networks (where a statement may call them), functions, lets, and the enclosing definition's
    parameters, locals and (in a statement) layers."""
    index = doc.index
    if index is None:
        return []
    owner = None
    for key, node in index.nodes.items():
        if key[0] in ("block", "func") and node.span.file == doc.file and node.span.line <= line <= node.span.end_line:
            owner = key[1]
    items = []
    for key, node in sorted(index.nodes.items()):
        if key[0] == "block":
            items.append(t.CompletionItem(key[1], kind=t.CompletionItemKind.Class, detail=signature(doc, node),
                                          documentation=node.doc or None))
        elif key[0] == "func":
            items.append(t.CompletionItem(key[1], kind=t.CompletionItemKind.Function, detail=signature(doc, node)))
        elif key[0] == "let":
            items.append(t.CompletionItem(key[1], kind=t.CompletionItemKind.Constant,
                                          detail=doc.source(node.value.span)))
        elif key[0] in ("local", "layer") and key[1] == owner and (statement or key[0] == "local"):
            kind = t.CompletionItemKind.Variable if key[0] == "local" else t.CompletionItemKind.Field
            items.append(t.CompletionItem(key[2], kind=kind, detail=f"{'layer' if key[0] == 'layer' else 'local'} "
                                                                     f"of {owner}"))
    return items


def _files(doc: Document) -> list[t.CompletionItem]:
    """The specs next to the document (and in its folders, one level down), as a ``use`` names them."""
    here = Path(doc.file).parent
    found = []
    try:
        for path in sorted([*here.glob("*.arch"), *here.glob("*/*.arch")])[:500]:
            if path.resolve() != Path(doc.file).resolve():
                found.append(t.CompletionItem(path.relative_to(here).as_posix(), kind=t.CompletionItemKind.File))
    except OSError:
        pass
    return found


__all__ = ["Context", "completions", "context_at"]
