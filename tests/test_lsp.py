"""``archc lsp`` end to end: a real client (pytest-lsp) starts the server as a subprocess, opens specs, edits
them into errors and back, and checks what the server answers. Broken input (the robustness corpus) arrives
as edits too: the server keeps answering."""

import asyncio
import random
import re
import sys

import pytest
import pytest_lsp
from archtest import ROOT, SPECS
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from archc.lang.format import format_source
from archc.lsp.analysis import analyse

on_the_server = pytest.mark.asyncio(loop_scope="module")  # one server for the module's tests
BAD = ROOT / "tests" / "bad"
RESNET = (SPECS / "resnet.arch").read_text()


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "archc", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(t.InitializeParams(capabilities=t.ClientCapabilities(),
                                                           root_uri=ROOT.as_uri()))
    yield
    await lsp_client.shutdown_session()


_versions: dict[str, int] = {}


async def _open(client: LanguageClient, path, text: str | None = None) -> str:
    uri = path.resolve().as_uri()
    _versions[uri] = 1
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        t.TextDocumentItem(uri, "arch", 1, path.read_text() if text is None else text)))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return uri


async def _change(client: LanguageClient, uri: str, text: str) -> list[t.Diagnostic]:
    _versions[uri] += 1
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        t.VersionedTextDocumentIdentifier(version=_versions[uri], uri=uri), [t.TextDocumentContentChangeWholeDocument(text)]))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


async def _second_publication(client: LanguageClient) -> None:
    """The code generator's errors, published after the check's once the edits pause (a failure, not a hang,
    where they never come)."""
    await asyncio.wait_for(client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), timeout=60)


def _at(text: str, needle: str, nth: int = 0, offset: int = 0) -> t.Position:
    """The position of the ``nth`` occurrence of ``needle`` in ``text`` (plus ``offset`` characters)."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return t.Position(line, index - (text.rfind("\n", 0, index) + 1))


def _doc(uri: str) -> t.TextDocumentIdentifier:
    return t.TextDocumentIdentifier(uri)


def _apply(text: str, edits: list[t.TextEdit]) -> str:
    lines = text.split("\n")

    def offset(p: t.Position) -> int:
        return sum(len(line) + 1 for line in lines[:p.line]) + p.character

    for edit in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


@on_the_server
async def test_diagnostics_follow_the_edits(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    assert list(client.diagnostics[uri]) == []
    broken = RESNET.replace("conv1 = conv(16, 3, padding = 1, bias = false); bn1 = batchnorm",
                            "conv1 = conv(16, 3, padding = 1, bias = false); bn1 = batchnrm", 1)
    found = await _change(client, uri, broken)
    assert len(found) == 1
    d = found[0]
    assert d.severity == t.DiagnosticSeverity.Error and d.source == "archc"
    assert "batchnrm" in d.message and "hint: did you mean 'batchnorm'?" in d.message
    start = _at(broken, "batchnrm")
    assert d.range.start.line == start.line and d.range.start.character <= start.character <= d.range.end.character
    assert await _change(client, uri, RESNET) == []


@on_the_server
async def test_an_error_in_one_variant_is_reported_with_it(client: LanguageClient):
    """An error that only one variant meets: located in the block, with the variant among the related places."""
    text = (BAD / "error_in_block.arch").read_text()
    uri = await _open(client, BAD / "error_in_block.arch")
    [d] = list(client.diagnostics[uri])
    assert d.message.startswith("conv: kernel (99) is larger than the padded input height (32 + 2*0)")
    assert "note: its input is 3 x 32 x 32" in d.message
    assert d.range.start == _at(text, "conv = conv(c, 99)")
    assert [r.message for r in d.related_information] == ["in block Inner, called here", "in block Outer, called here",
                                                          "in variant n"]


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.glob("*.arch")))
@on_the_server
async def test_bad_specs_give_the_errors_of_archc_check(client: LanguageClient, name: str):
    """Every spec of tests/bad: the first diagnostic is the first error that archc check prints, on its line."""
    path = BAD / name
    expected = (BAD / name).with_suffix(".err").read_text().splitlines()[0]
    uri = await _open(client, path, path.read_bytes().decode("utf-8", "replace"))
    found = list(client.diagnostics[uri])
    if not found and name != "not_utf8.arch":  # an error only the code generator finds: published second
        await _second_publication(client)
        found = list(client.diagnostics[uri])
    if name == "not_utf8.arch":  # an editor sends text: the file's bytes are decoded before the server sees them
        return
    assert found, name
    message = expected.split(": error: ", 1)[1].replace("'nowhere.arch'", f"'{BAD / 'nowhere.arch'}'")
    assert found[0].message.split("\n")[0] == message
    location = expected.split(": error: ")[0].split(":")
    if len(location) == 3:
        assert found[0].range.start.line == int(location[1]) - 1


@on_the_server
async def test_the_outline(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    result = await client.text_document_document_symbol_async(t.DocumentSymbolParams(_doc(uri)))
    names = [s.name for s in result]
    assert names[:3] == ["BasicBlock", "Bottleneck", "ResNet"] and "resnet50" in names
    bottleneck = result[1]
    assert bottleneck.kind == t.SymbolKind.Class and bottleneck.detail.startswith("Bottleneck(planes, stride = 1")
    assert bottleneck.selection_range.start == _at(RESNET, "Bottleneck(planes")
    assert ["width", "conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample"] == \
        [c.name for c in bottleneck.children]


async def _hover(client: LanguageClient, uri: str, position: t.Position) -> str:
    result = await client.text_document_hover_async(t.HoverParams(_doc(uri), position))
    return result.contents.value if result is not None else ""


@on_the_server
async def test_hover_shows_shapes_params_and_macs_per_variant(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    text = await _hover(client, uri, _at(RESNET, "conv1 = conv(64, 7", offset=2))
    # conv1 of every ResNet: 64 x 112 x 112 from a 224 x 224 input, 3*64*49 weights
    assert "| resnet50 | 64 x 112 x 112 | 9,408 | 118,013,952 |" in text
    assert "| resnet20 |" not in text  # the CIFAR networks are another network: this conv1 is not theirs
    # a block call in a loop: each instance's shape, per variant
    text = await _hover(client, uri, _at(RESNET, "layer2 = seq", offset=1))
    assert "| resnet50 | 512 x 28 x 28 |" in text and "| resnet18 | 128 x 28 x 28 |" in text


@on_the_server
async def test_hover_on_blocks_and_ops(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    text = await _hover(client, uri, _at(RESNET, "variant resnet50 = ResNet(Bottleneck", offset=30))
    assert "block Bottleneck(planes, stride = 1, expansion = 4, groups = 1, base_width = 64, norm_layer = batchnorm, " \
        "dilation = 1)" in text
    text = await _hover(client, uri, _at(RESNET, "conv1 = conv(64, 7", offset=9))
    assert "conv(out_channels, kernel_size, stride = 1, padding = 0" in text and "2-D convolution" in text
    assert "| resnet50 | 64 x 112 x 112 |" in text  # the layer's shapes come with the op
    text = await _hover(client, uri, _at(RESNET, "variant resnet50", offset=9))
    assert "variant resnet50 = ResNet(Bottleneck, [3, 4, 6, 3])" in text and "25,557,032 parameters" in text


@on_the_server
async def test_definitions_and_references(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    result = await client.text_document_definition_async(t.DefinitionParams(
        _doc(uri), _at(RESNET, "variant resnet50 = ResNet(Bottleneck", offset=30)))
    assert result.uri == uri and result.range.start == _at(RESNET, "Bottleneck(planes")
    width = _at(RESNET, "conv(width, 1", offset=6)
    result = await client.text_document_definition_async(t.DefinitionParams(_doc(uri), width))
    assert result.range.start == _at(RESNET, "let width", offset=4)
    refs = await client.text_document_references_async(t.ReferenceParams(
        text_document=_doc(uri), position=width, context=t.ReferenceContext(include_declaration=True)))
    assert [r.range.start.line for r in refs] == [_at(RESNET, needle).line for needle in
                                                  ("let width", "conv1 = conv(width", "conv2 = conv(width")]
    # a block of a used file, and the use itself
    googlenet = (SPECS / "googlenet.arch").read_text()
    g = await _open(client, SPECS / "googlenet.arch")
    result = await client.text_document_definition_async(t.DefinitionParams(_doc(g), _at(googlenet, "use", offset=6)))
    assert result.uri == (SPECS / "common.arch").resolve().as_uri()
    call = googlenet.index("BasicConv2d(")
    result = await client.text_document_definition_async(t.DefinitionParams(_doc(g), _at(googlenet, "BasicConv2d(")))
    assert call >= 0 and result.uri == (SPECS / "common.arch").resolve().as_uri()
    common = (SPECS / "common.arch").read_text()
    assert result.range.start == _at(common, "BasicConv2d(")


@on_the_server
async def test_completion(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    result = await client.text_document_completion_async(t.CompletionParams(
        _doc(uri), _at(RESNET, "conv(width, 1")))
    items = {i.label: i for i in result.items}
    assert items["conv"].detail.startswith("conv(out_channels, kernel_size")
    assert items["Bottleneck"].kind == t.CompletionItemKind.Class
    assert items["residual"].kind == t.CompletionItemKind.Keyword
    assert {"planes", "width", "base_width"} <= set(items)  # the enclosing block's parameters and lets
    assert "zero_init_residual" not in items  # ResNet's, not Bottleneck's
    # a document that does not parse still completes, from its last version that did
    await _change(client, uri, RESNET.replace("block Bottleneck(", "block Bottleneck(("))
    result = await client.text_document_completion_async(t.CompletionParams(_doc(uri), t.Position(30, 8)))
    assert "Bottleneck" in {i.label for i in result.items}
    await _change(client, uri, RESNET)


@on_the_server
async def test_formatting(client: LanguageClient):
    messy = RESNET.replace("variant resnet18 = ResNet(BasicBlock, [2, 2, 2, 2])",
                           "variant   resnet18=ResNet(BasicBlock,[2,2,2,2])")
    uri = await _open(client, SPECS / "resnet.arch", messy)
    edits = await client.text_document_formatting_async(t.DocumentFormattingParams(
        _doc(uri), t.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert _apply(messy, edits) == format_source(messy) != messy
    assert "variant resnet18 = ResNet(BasicBlock, [2, 2, 2, 2])" in _apply(messy, edits)
    await _change(client, uri, format_source(RESNET))
    assert not await client.text_document_formatting_async(t.DocumentFormattingParams(
        _doc(uri), t.FormattingOptions(tab_size=4, insert_spaces=True)))
    await _change(client, uri, "block (")  # does not parse: no edits
    assert not await client.text_document_formatting_async(t.DocumentFormattingParams(
        _doc(uri), t.FormattingOptions(tab_size=4, insert_spaces=True)))
    await _change(client, uri, RESNET)


@on_the_server
async def test_inlay_hints(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    stem = _at(RESNET, "conv1 = conv(64, 7")
    hints = await client.text_document_inlay_hint_async(t.InlayHintParams(
        _doc(uri), t.Range(t.Position(stem.line, 0), t.Position(stem.line + 8, 0))))
    labels = [(h.position.line, h.label) for h in hints]
    assert labels[:4] == [(stem.line, ": 64 x 112 x 112")] * 3 + [(stem.line + 2, ": 64 x 56 x 56")]
    layer1 = _at(RESNET, "block(64, norm_layer = norm_layer)").line
    assert (layer1, ": 64..256 x 56 x 56") in labels  # layer1's blocks over every variant: a range


@on_the_server
async def test_rename(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")
    for needle, new, offset in [("block Bottleneck", "Bneck", 7), ("let width", "mid", 5),
                                ("bn3 = norm_layer", "norm3", 0)]:
        position = _at(RESNET, needle, offset=offset)
        prepared = await client.text_document_prepare_rename_async(t.PrepareRenameParams(_doc(uri), position))
        assert prepared is not None
        edit = await client.text_document_rename_async(t.RenameParams(_doc(uri), position, new))
        renamed = _apply(RESNET, edit.changes[uri])
        old = needle.split()[-1] if needle.startswith(("block", "let")) else needle.split()[0]
        analysis = analyse(SPECS / "resnet.arch", renamed)
        assert analysis.errors == [] and analysis.internal is None, (needle, analysis.errors)
        code = "\n".join(line.partition("#")[0] for line in renamed.splitlines()[:40])  # the blocks
        assert not re.search(rf"\b{old}\b", code) and re.search(rf"\b{new}\b", code)
        if old == "bn3":  # the init rule's path follows the layer
            assert "init Bottleneck.norm3.weight" in renamed
    ops = await client.text_document_prepare_rename_async(t.PrepareRenameParams(
        _doc(uri), _at(RESNET, "conv1 = conv(64", offset=9)))
    assert ops is None  # an op is not the file's to rename


# ------------------------------------------------------------ robustness


def _corpus() -> list[str]:
    """The robustness tests' inputs: the bad specs, byte mutations of the seeds, token soups."""
    from test_robustness import SEEDS, TOKENS

    rng = random.Random(0)
    texts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(BAD.glob("*.arch"))]
    for seed in SEEDS:
        for _ in range(6):
            data = bytearray(seed.encode())
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i:i + rng.randint(0, 4)] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))
            texts.append(data.decode("utf-8", "replace"))
        texts.append(seed[: rng.randrange(len(seed))])  # cut anywhere, as one types
    texts += [" ".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 60))) for _ in range(30)]
    texts += ["\x00", "\ufeff", "block B() {\n" * 300, "let x = " + "(" * 2000 + "1" + ")" * 2000,
              "network N() { input 3 x 8 x 8; " + "relu; " * 2000 + "}\nvariant n = N()\n", "é𝔘" * 50]
    return texts


@on_the_server
async def test_the_server_survives_the_robustness_corpus(client: LanguageClient):
    uri = await _open(client, SPECS / "experiments" / "bottleneck.arch")
    for text in _corpus():
        found = await _change(client, uri, text)
        assert not any("internal error" in d.message for d in found), (text[:200], found)
        lines = text.split("\n")
        middle = t.Position(len(lines) // 2, len(lines[len(lines) // 2]) // 2)
        await client.text_document_hover_async(t.HoverParams(_doc(uri), middle))
        await client.text_document_document_symbol_async(t.DocumentSymbolParams(_doc(uri)))
        await client.text_document_inlay_hint_async(t.InlayHintParams(
            _doc(uri), t.Range(t.Position(0, 0), t.Position(len(lines), 0))))
        await client.text_document_completion_async(t.CompletionParams(_doc(uri), middle))
        await client.text_document_definition_async(t.DefinitionParams(_doc(uri), middle))
    assert await _change(client, uri, RESNET) == []  # and it still answers, right
    assert "64 x 112 x 112" in await _hover(client, uri, _at(RESNET, "conv1 = conv(64, 7", offset=2))


GENERATOR_ONLY = """block B(print = 4) {
    conv1 = conv(print, 3)
}
network N() {
    input 3 x 8 x 8
    b = B()
}
variant n = N()
"""


@on_the_server
async def test_the_code_generators_errors_follow_the_checks(client: LanguageClient):
    """The check's errors are published at once; an error only the code generator finds (a parameter Python
    cannot take) follows in a second publication, as archc check reports it."""
    uri = await _open(client, SPECS / "experiments" / "bottleneck.arch", GENERATOR_ONLY)
    assert list(client.diagnostics[uri]) == []  # the check's: nothing
    await _second_publication(client)
    [d] = list(client.diagnostics[uri])
    assert "parameter name 'print' is reserved in the generated code" in d.message
    assert d.range.start == _at(GENERATOR_ONLY, "print = 4")
    fixed = GENERATOR_ONLY.replace("print", "width")
    assert await _change(client, uri, fixed) == []  # one publication: nothing for the generator to add
    assert "4 x 6 x 6" in await _hover(client, uri, _at(fixed, "conv1", offset=1))


@on_the_server
async def test_non_ascii_positions_are_utf16(client: LanguageClient):
    """Columns count UTF-16 units: an error after a character outside the BMP sits where the editor shows it."""
    text = 'let s = "𝔘"; let t = nope\n'
    uri = await _open(client, SPECS / "experiments" / "bottleneck.arch", text)
    [d] = list(client.diagnostics[uri])
    assert d.range.start == t.Position(0, text.index("nope") + 1)  # one extra unit for the surrogate pair


def test_the_server_module_does_not_import_torch():
    import subprocess

    code = ("import sys; import archc.lsp.server as s; from archc.lsp.analysis import analyse\n"
            f"a = analyse({str(SPECS / 'resnet.arch')!r}, open({str(SPECS / 'resnet.arch')!r}).read())\n"
            "assert not a.errors and a.graphs\n"
            "print('TORCH' if 'torch' in sys.modules else 'CLEAN')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "CLEAN" in result.stdout


@on_the_server
async def test_completion_knows_where_the_cursor_is(client: LanguageClient):
    uri = await _open(client, SPECS / "resnet.arch")

    async def labels(needle: str, offset: int = 0) -> list[str]:
        result = await client.text_document_completion_async(t.CompletionParams(
            _doc(uri), _at(RESNET, needle, offset=offset)))
        return [i.label for i in sorted(result.items, key=lambda i: i.sort_text or i.label)]

    # the arguments of an op: those not written yet (by position or by name) come first
    after = "conv1 = conv(64, 7, stride = 2, "
    found = await labels(after, len(after))
    assert found[:2] == ["padding = ", "dilation = "] or found[0] == "padding = "
    assert "stride = " not in found and "out_channels = " not in found and "kernel_size = " not in found
    assert "conv" not in found and "residual" not in found  # no statement in an argument
    # a block's parameters when calling it
    found = await labels("Bottleneck(planes", len("Bottleneck("))
    assert "planes = " in found and "stride = " in found
    # an expression: values, not ops
    found = await labels("let width = ", len("let width = "))
    assert "conv" not in found and "planes" in found and "true" in found
    # a statement: ops, blocks and keywords
    found = await labels("conv(width, 1")
    assert {"conv", "Bottleneck", "residual"} <= set(found)


def test_completion_contexts():
    from archc.lsp.completion import context_at

    def kind(prefix: str):
        c = context_at(prefix, 1, len(prefix) + 1)
        return c.kind, c.callee, c.given

    assert kind("    c = conv(64, 3, ") == ("arguments", "conv", {"#0", "#1"})
    assert kind("    c = conv(64, stride = 2, ") == ("arguments", "conv", {"#0", "stride"})
    assert kind("    c = conv(64, [1, ")[0] == "expression"
    assert kind("    c = conv(64, s")[0] == "arguments"  # a name begun where an argument begins
    assert kind("    c = conv(64 + ")[0] == "expression"
    assert kind("    x = in.")[0] == "tensor"
    assert kind('use "')[0] == "use"
    assert kind('    c = conv(8, 1)  # see f(')[0] == "comment"
    assert kind('    s = side Head("a(b", ')[:2] == ("arguments", "Head")  # brackets in strings do not count
    assert kind("    for i in ")[0] == "expression"
    assert kind("let a = ")[0] == "expression"
    assert kind("block B(c) {\n    conv(c, 1)\n    ")[0] == "statement"


@on_the_server
async def test_references_and_rename_reach_every_spec_that_uses_the_file(client: LanguageClient, tmp_path):
    lib = "block Unit(c) {\n    conv = conv(c, 3, padding = 1)\n    relu\n}\n"
    users = {name: f'use "lib.arch"\n\nnetwork {name.upper()}() {{\n    input 3 x 8 x 8\n    a = Unit(8)\n'
                   f"    b = Unit(16)\n}}\n\nvariant {name} = {name.upper()}()\n" for name in ("first", "second")}
    (tmp_path / "lib.arch").write_text(lib)
    for name, text in users.items():
        (tmp_path / f"{name}.arch").write_text(text)
    (tmp_path / "other.arch").write_text("block Unit(c) {\n    relu\n}\n")  # its own Unit: not the same block
    uri = await _open(client, tmp_path / "first.arch")
    position = _at(users["first"], "Unit(8)")
    refs = await client.text_document_references_async(t.ReferenceParams(
        context=t.ReferenceContext(include_declaration=True), text_document=_doc(uri), position=position))
    where = sorted((r.uri.rsplit("/", 1)[1], r.range.start.line) for r in refs)
    assert where == [("first.arch", 4), ("first.arch", 5), ("lib.arch", 0), ("second.arch", 4), ("second.arch", 5)]
    refs = await client.text_document_references_async(t.ReferenceParams(
        context=t.ReferenceContext(include_declaration=False), text_document=_doc(uri), position=position))
    assert "lib.arch" not in {r.uri.rsplit("/", 1)[1] for r in refs}
    edit = await client.text_document_rename_async(t.RenameParams(_doc(uri), position, "Stage"))
    files = {u.rsplit("/", 1)[1]: edits for u, edits in edit.changes.items()}
    assert set(files) == {"first.arch", "second.arch", "lib.arch"}
    renamed = {"lib.arch": _apply(lib, files["lib.arch"]), **{f"{k}.arch": _apply(v, files[f"{k}.arch"])
                                                               for k, v in users.items()}}
    assert renamed["lib.arch"].startswith("block Stage(c)") and "Unit" not in "".join(renamed.values())
    for name, text in renamed.items():
        (tmp_path / name).write_text(text)
    for name in users:
        analysis = analyse(tmp_path / f"{name}.arch", renamed[f"{name}.arch"])
        assert analysis.errors == [] and analysis.graphs, name


def test_a_tensor_let_shows_its_shapes_and_a_value_let_does_not():
    """In a block with named tensors each let that computes a tensor gets an inlay hint and a hover table."""
    from archc.lsp.analysis import analyse
    from archc.lsp.features import Document, hover, inlay_hints
    from archc.lsp.symbols import build_index

    path = SPECS / "pvt_v2.arch"
    text = path.read_text()
    analysis = analyse(path, text)
    doc = Document("file:///pvt_v2.arch", analysis, build_index([analysis.module], path))
    lines = text.splitlines()
    let = next(i for i, line in enumerate(lines) if "let keys =" in line) + 1
    hints = {h.position.line + 1: h.label for h in inlay_hints(doc, let, let)}
    assert hints[let] == ": 1..8 x 49 x 32..64 (tensor)"
    shown = hover(doc, let, lines[let - 1].index("keys") + 1).contents.value
    assert "| pvt_v2_b0 | 1 x 49 x 32 (tensor)" in shown
    size = next(i for i, line in enumerate(lines) if "let size =" in line) + 1
    value = hover(doc, size, lines[size - 1].index("size") + 1)
    assert value is None or "variant" not in value.contents.value


def test_references_reach_named_tensors_and_applied_modules():
    """In a block with named tensors: a declared module's references include where a let applies it, an input's
    where the lets read it, a parameter's where an input's sizes use it."""
    from archc.lsp.analysis import analyse
    from archc.lsp.symbols import build_index

    path = SPECS / "mlp_mixer.arch"
    text = path.read_text()
    index = build_index([analyse(path, text).module], path)
    lines = text.splitlines()

    def words(key):
        return [lines[s.line - 1][s.column - 1:s.end_column - 1] for s in index.references(key)]

    assert words(("layer", "MixerBlock", "mlp_tokens")) == ["mlp_tokens", "mlp_tokens"]  # declared, applied
    assert words(("local", "MixerBlock", "x")) == ["x"] * 3  # the input, and two lets reading it
    assert words(("local", "MixerBlock", "seq_len")) == ["seq_len"] * 3  # the parameter, x's sizes, Mlp's width
