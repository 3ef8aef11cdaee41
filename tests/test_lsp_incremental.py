"""The language server's analyses of a document being edited (archc/lsp/analysis.py, ``Incremental``): the items an
edit did not change are not parsed again, and the records of block calls that still hold are kept. The oracle is
a fresh analysis of the same text: errors, every variant's graph and the shapes recorded for each statement must
be the same after every edit of a sequence (into a block, a network, a let, a line added above everything, a
syntax error and back)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archc.lang.incremental import ItemParser, items
from archc.lang.parser import parse
from archc.lsp import symbols
from archc.lsp.analysis import Incremental, analyse, statement_info
from archc.lsp.symbols import build_index
from archc.sema import memo

SPECS = Path(__file__).resolve().parent.parent / "specs"
NUMBER = re.compile(r"(?<![\w.])([1-9][0-9]*)(?![\w.])")


def _record(result) -> tuple:
    errors = [e.render() for e in result.errors]
    graphs = {name: (g.ops(), g.scopes, g.sides, g.taps, g.input, g.output) for name, g in result.graphs.items()}
    shapes = {variant: sorted((repr(getattr(stmt, "span", stmt)), type(stmt).__name__, repr(pairs))
                              for stmt, pairs in records.items())
              for variant, records in result.shapes.items()}
    return errors, graphs, shapes, result.internal


def _edit_number(text: str, item_kind: str) -> str:
    """The first number written inside the first item of a kind (``block``, ``network``) made one larger."""
    for line, piece in items(text):
        if piece.startswith(item_kind):
            body = piece.index("{")
            match = NUMBER.search(piece, body)
            if match:
                start = sum(len(t) for _, t in items(text) if _ < line) + match.start()
                return text[:start] + str(int(match.group(1)) + 1) + text[match.end() - match.start() + start:]
    raise AssertionError(f"no number in a {item_kind}")


def _edits(text: str) -> list[str]:
    broken = text.replace("{", "{ conv(", 2)
    return [text, _edit_number(text, "block"), text, _edit_number(text, "network"), "\n" + text, text, broken, text,
            _edit_number(_edit_number(text, "block"), "network"), text]


@pytest.mark.parametrize("stem", ["googlenet", pytest.param("resnet", marks=pytest.mark.slow),
                                  pytest.param("densenet", marks=pytest.mark.slow)])
def test_an_edited_document_analyses_as_a_fresh_one(stem, monkeypatch):
    copies = []
    real = memo.replay
    monkeypatch.setattr(memo, "replay", lambda *a: copies.append(a[2]) or real(*a))
    path = SPECS / f"{stem}.arch"
    incremental = Incremental()
    for i, text in enumerate(_edits(path.read_text())):
        kept = len(copies)
        assert _record(analyse(path, text, incremental=incremental)) == _record(analyse(path, text)), i
        if i and text == _edits(path.read_text())[0]:
            assert len(copies) > kept  # the memo's records were carried over: the comparison exercises them


def test_unchanged_items_keep_their_trees_and_the_whole_tree_is_the_parsers():
    text = (SPECS / "googlenet.arch").read_text()
    parser = ItemParser()
    first = parser.parse(text, "g.arch")
    edited = _edit_number(text, "network")
    second = parser.parse(edited, "g.arch")
    assert repr(second) == repr(parse(edited, "g.arch"))  # spans, names, values: the same tree
    assert all(a is b for a, b in zip(first.blocks, second.blocks))  # the blocks were not parsed again
    assert first.networks[0] is not second.networks[0]


def test_an_item_that_does_not_parse_alone_reads_as_the_compilers_error():
    text = "block B(c) {\n    conv(c, 3\n}\nnetwork N() {\n    input 3 x 8 x 8\n    B(4)\n}\nvariant n = N()\n"
    with pytest.raises(Exception) as whole:
        parse(text, "t.arch")
    with pytest.raises(Exception) as pieces:
        ItemParser().parse(text, "t.arch")
    assert type(pieces.value) is type(whole.value) and str(pieces.value) == str(whole.value)


def test_items_start_at_the_first_column_outside_brackets():
    text = 'let a = [1,\n2]\n# note\nblock B() {\n    relu\n}\n"x"\nvariant v = N()\n'
    assert [line for line, _ in items(text)] == [1, 4, 7, 8]
    assert "".join(piece for _, piece in items(text)) == text


def _index_of(result) -> tuple:
    index = build_index(result.program.modules, result.path)
    return ([(o.span, o.key, o.definition) for o in index.occurrences], index.definitions,
            {k: id(v) for k, v in index.nodes.items()})


def test_the_index_of_an_edit_is_a_fresh_ones_and_reindexes_only_what_changed(monkeypatch):
    path = SPECS / "googlenet.arch"
    text = path.read_text()
    incremental = Incremental()
    _index_of(analyse(path, text, incremental=incremental))
    indexed = []
    real = symbols._Indexer.definition
    monkeypatch.setattr(symbols._Indexer, "definition", lambda self, d: indexed.append(d.name) or real(self, d))
    for edited in [_edit_number(text, "block"), text.replace("let", "let  ", 1) if "\nlet" in text else text,
                   text.replace("num_classes = 1000", "classes = 1000").replace("(num_classes", "(classes")]:
        result = analyse(path, edited, incremental=incremental)
        indexed.clear()
        kept, again = _index_of(result), list(indexed)
        monkeypatch.setattr(symbols, "_FOUND", {})
        assert kept == _index_of(result)  # what the kept items found is what indexing them again finds
        if edited == _edit_number(text, "block"):
            assert again == ["Inception"]  # the edited block alone


def test_an_item_is_indexed_again_where_the_files_globals_change(tmp_path):
    path = tmp_path / "n.arch"
    text = "network N() {\n    input 3 x 8 x 8\n    conv(width, 3)\n}\nvariant n = N()\n"
    incremental = Incremental()
    _index_of(analyse(path, text, incremental=incremental))
    result = analyse(path, text + "let width = 8\n", incremental=incremental)  # the network's item is kept
    occurrences = _index_of(result)[0]
    assert any(key == ("let", "width") and not definition for _, key, definition in occurrences)  # its 'width'


def test_a_statements_params_and_macs_are_its_ops_and_its_instances_ops():
    path = SPECS / "googlenet.arch"
    result = analyse(path, path.read_text())
    calls = {s.target.text: s for s in result.module.networks[0].body if getattr(s, "target", None) is not None}
    for name in ("inception3a", "conv1", "fc"):  # a block instance, one of common.arch's, an op
        for info in statement_info(result, calls[name]):
            ids = [(op, re.sub(r"^member\d+\.", "", op.id)) for op in result.graphs[info.variant].ops()]  # (ensemble)
            ops = [op for op, i in ids if i == name or i.startswith(name + ".")]
            assert ops and (info.params, info.macs) == (sum(o.params for o in ops), sum(o.macs for o in ops)), name
