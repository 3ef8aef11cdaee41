"""archc draw: clusters, depth, folding, labels, block drawings, renderers, determinism, errors."""

import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
from archtest import ROOT, SPECS, spec

from archc.backends.diagram import draw
from archc.backends.diagram import render as drawrender
from archc.backends.diagram.calls import Signatures
from archc.backends.diagram.dot import layout_size
from archc.backends.diagram.view import View, terminals
from archc.cli import main
from archc.lang import files
from archc.ops import REGISTRY
from archc.sema.graph import Graph, OpNode

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(graph, depth=None, fold=True, block=None) -> ET.Element:
    return ET.fromstring(draw.render(draw.dot_source(graph, depth, fold, block), "svg"))


def groups(root: ET.Element, kind: str) -> list[str]:
    """The titles (DOT ids) of the SVG's ``<g class="node">`` or ``<g class="cluster">`` elements."""
    return [g.find(SVG + "title").text for g in root.iter(SVG + "g") if g.get("class") == kind]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()).strip() for t in root.iter(SVG + "text")]


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize(("name", "variant"), [("googlenet", "googlenet"), ("resnet", "resnet18"),
                                               ("inception_v3", "inception_v3")])
def test_full_depth_has_one_cluster_per_block_instance_and_named_seq(name, variant):
    graph = spec(name).graph(variant)
    root = svg_of(graph, fold=False)  # valid XML, or ET raises
    assert sorted(groups(root, "cluster")) == sorted(f"cluster_{path}" for path in graph.scopes)
    blocks = [p for p, s in graph.scopes.items() if s.kind == "block"]
    assert len(blocks) >= 8
    # every op is a node, plus the output node and one per side output
    assert len(groups(root, "node")) == len(graph) + 1 + len(graph.sides)


def test_googlenet_depth_1_is_stem_nine_inceptions_and_head():
    graph = spec("googlenet").graph("googlenet")
    nodes = groups(svg_of(graph, depth=1), "node")
    assert [n for n in nodes if n.startswith("block:inception")] == [
        f"block:inception{i}" for i in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
    # input; stem conv1, maxpool1, conv2, conv3, maxpool2; nine Inceptions; maxpool3, maxpool4;
    # aux1, aux2; avgpool, flatten, dropout, fc; output, aux1 and aux2 outputs
    assert len(nodes) == 1 + 5 + 9 + 2 + 2 + 4 + 3
    assert {"block:conv1", "maxpool1", "block:aux1", "block:aux2", "fc", "out:output", "out:aux1"} <= set(nodes)


def test_googlenet_depth_2_opens_the_inceptions():
    graph = spec("googlenet").graph("googlenet")
    root = svg_of(graph, depth=2)
    nodes = groups(root, "node")
    # each Inception: six BasicConv2d nodes, the pool branch's maxpool and the concat
    per_inception = 6 + 1 + 1
    stem = 3 * 3 + 2  # conv1..conv3 open (conv, bn, relu each), two maxpools
    aux = 1 + 6  # conv (a BasicConv2d node), pool, flatten, fc1, relu, dropout, fc2
    head = 2 + 4  # maxpool3, maxpool4, avgpool, flatten, dropout, fc
    assert len(nodes) == 1 + stem + 9 * per_inception + 2 * aux + head + 3
    assert "block:inception3a.branch2.0" in nodes and "inception3a.concat#1" in nodes
    assert "cluster_inception3a" in groups(root, "cluster")


def test_resnet_depth_1_counts_with_and_without_folding():
    graph = spec("resnet").graph("resnet50")
    folded = groups(svg_of(graph, depth=1), "node")
    # input; conv1, bn1, relu, maxpool; per stage its first block and one fold of the rest, but two alike
    # blocks stay two (layer1 and layer4: 3 blocks); avgpool, flatten, fc; output
    assert len(folded) == 1 + 4 + (3 + 2 + 2 + 3) + 3 + 1
    assert "block:layer1.2" in folded and "block:layer2.2" not in folded
    unfolded = groups(svg_of(graph, depth=1, fold=False), "node")
    assert len(unfolded) == 1 + 4 + (3 + 4 + 6 + 3) + 3 + 1


def test_labels_show_shapes_ops_arguments_and_parameters():
    graph = spec("googlenet").graph("googlenet")
    words = texts(svg_of(graph, depth=1))
    for shape in ("3×224×224", "192×28×28", "1024×7×7", "1000"):
        assert shape in words, shape
    assert "Inception(c1x1=64, c3x3red=96, c3x3=128, c5x5red=16, c5x5=32, pool_proj=32, k5=3, bn=true)" in " ".join(words)  # a bare graph: every argument, named
    assert "conv 7x7/2, 64 → batchnorm → relu" in words  # a short block lists its ops
    assert "155,872 params" in words  # inception3a
    full = texts(svg_of(graph))
    assert "conv 7x7/2, 64" in full and "maxpool 3x3/2" in full and "linear 1000" in full
    assert "conv · 9,408 params" in full  # conv1.conv inside the conv1 cluster
    assert "inception3a: Inception(c1x1=64, c3x3red=96, c3x3=128, c5x5red=16, c5x5=32, pool_proj=32, k5=3, bn=true)" in full  # a cluster's label


def test_concat_add_and_side_outputs_look_different():
    source = draw.dot_source(spec("googlenet").graph("googlenet"), depth=1)
    side_edges = [line for line in source.splitlines() if '-> "block:aux1"' in line or '-> "out:aux1"' in line]
    assert len(side_edges) == 2 and all("style=dashed" in e and draw.SIDE_COLOUR in e for e in side_edges)
    main_edge = next(line for line in source.splitlines() if '-> "block:inception4b"' in line)
    assert "dashed" not in main_edge
    aux = next(line for line in source.splitlines() if line.strip().startswith('"block:aux1" ['))
    assert "dashed" in aux and draw.SIDE_COLOUR in aux
    resnet = draw.dot_source(spec("resnet").graph("resnet18"))
    pool = next(line for line in source.splitlines() if line.strip().startswith('"maxpool1"'))
    assert draw.COLOURS["maxpool"] in pool and draw.COLOURS["maxpool"] != draw.COLOURS["conv"]
    inception = draw.dot_source(spec("googlenet").graph("googlenet"))
    concat = next(line for line in inception.splitlines() if line.strip().startswith('"inception3a.concat#1"'))
    add = next(line for line in resnet.splitlines() if line.strip().startswith('"layer1.0.add#1"'))
    assert "shape=invtrapezium" in concat and draw.COLOURS["concat"] in concat
    assert "shape=circle" in add and draw.COLOURS["add"] in add
    assert draw.COLOURS["concat"] != draw.COLOURS["add"]


# ------------------------------------------------------------------ folding


def test_resnet152_layer3_folds_to_one_node_of_35():
    graph = spec("resnet").graph("resnet152")
    root = svg_of(graph, depth=1)
    nodes = groups(root, "node")
    assert "block:layer3.0" in nodes and "block:layer3.1" in nodes and "block:layer3.2" not in nodes
    words = texts(root)
    assert "layer3.1 … layer3.35" in words and "×35" in words
    assert "39,101,440 params" in words  # 35 identical Bottleneck(256, 1)
    assert "1024×14×14" in words
    unfolded = groups(svg_of(graph, depth=1, fold=False), "node")
    assert sum(n.startswith("block:layer3.") for n in unfolded) == 36
    assert not any(w.startswith("×") for w in texts(svg_of(graph, depth=1, fold=False)))


def test_folding_at_full_depth_draws_the_first_instance_marked():
    graph = spec("resnet").graph("resnet152")
    root = svg_of(graph)
    clusters = groups(root, "cluster")
    assert "cluster_layer3.1" in clusters and "cluster_layer3.2" not in clusters
    assert "layer3.1 … layer3.35 ×35: Bottleneck(planes=256, stride=1, norm_layer=batchnorm)" in texts(root)


def test_what_folds_same_call_same_ops_input_channels_may_differ():
    # ResNet-50's layer1.0 is called like layer1.1 but has a projection shortcut: it does not fold
    nodes = groups(svg_of(spec("resnet").graph("resnet50"), depth=1), "node")
    assert "block:layer1.0" in nodes and "block:layer1.1" in nodes
    # DenseNet's dense layers each read 32 more channels, yet they are alike: the run folds with the dense's
    # concatenations between its members, drawn as the block's input into the run and both into the last concat
    root = svg_of(spec("densenet").graph("densenet121"), depth=2)
    words = texts(root)
    assert "denselayer1 … denselayer24" in words and "×24" in words
    assert "256×14×14" in words and "1024×14×14" in words  # into the run's first, out of the dense
    assert sum(w == "concat" for w in words) == 4  # one per dense block, the folded ones hidden
    unfolded = draw.dot_source(spec("densenet").graph("densenet121"), depth=2, fold=False)
    assert unfolded.count("<b>concat</b>") == 6 + 12 + 24 + 16
    # GoogLeNet's Inceptions all have different arguments: nothing folds
    assert not any(w.startswith("×") for w in texts(svg_of(spec("googlenet").graph("googlenet"), depth=1)))


def dot_edges(source: str) -> list[tuple[str, str, str]]:
    """(from, to, label) of every edge statement in DOT text written by archc."""
    return re.findall(r'^\s*"([^"]+)" -> "([^"]+)" \[label="  ([^"]*)"', source, re.MULTILINE)


def channels(label: str) -> int:
    """What an edge label says goes along it, in channels: ``64×56×56`` 64, ``6 × 32×56×56 = 192×56×56`` 192."""
    total = 0
    for part in label.split(", "):
        count, _, shape = part.split(" = ")[0].rpartition(" × ")
        total += int(count or 1) * int(shape.split("×")[0])
    return total


@pytest.mark.parametrize("depth", [2, None])
def test_a_folded_dense_shows_channels_that_add_up(depth):
    # The run of dense layers stands for all of them: its edge into the dense's last concatenation carries one
    # tensor per layer, so the block's input and the run add up to what the concatenation gives.
    graph = spec("densenet").graph("densenet121")
    source = draw.dot_source(graph, depth=depth)
    edges = dot_edges(source)
    concats = [op for op in graph.ops() if op.op == "concat" and f'"{op.id}" [' in source]
    assert len(concats) == 4  # the last of each dense block; the others are folded
    for op in concats:
        into = [label for _, v, label in edges if v == op.id]
        assert len(into) == 2 and sum(map(channels, into)) == op.shape[0], (op.id, into, op.shape)
    counted = {v for _, v, label in edges if " × " in label}  # only the run's edges into the concatenations:
    assert counted == {op.id for op in concats}  # inside a folded cluster, its first instance's own shapes
    into = {label for _, v, label in edges if v == "features.denseblock1.concat#6"}
    assert into == {"64×56×56", "6 × 32×56×56 = 192×56×56"}  # 64 + 192 = 256, what the concatenation gives
    assert ("features.denseblock1.concat#6", "features.transition1.norm", "256×56×56") in edges
    # unfolded, every concatenation reads its real inputs, one edge each
    unfolded = dot_edges(draw.dot_source(graph, depth=2, fold=False))
    for op in graph.ops():
        if op.op == "concat" and op.scope[-1].startswith("features.denseblock"):
            assert sum(channels(label) for _, v, label in unfolded if v == op.id) == op.shape[0], op.id


# ------------------------------------------------------------------ one block


def test_block_inception_is_drawn_alone_with_its_input():
    s = spec("googlenet")
    # the most common configuration: inception4e and inception5a share Inception(256, 160, 320, 32, 128, 128)
    assert draw.block_instance(s, "Inception")[1] == "inception4e"
    graph, path = draw.block_instance(s, "inception3a")
    assert path == "inception3a" and graph.variant == "googlenet"
    root = svg_of(graph, block=path)
    nodes = groups(root, "node")
    # 6 BasicConv2d (conv, bn, relu), the pool branch's maxpool, the concat; input and output
    assert len(nodes) == 6 * 3 + 1 + 1 + 2
    assert all(n.startswith("inception3a.") or n in ("in:maxpool2", "out:inception3a.concat#1") for n in nodes)
    assert sorted(groups(root, "cluster")) == sorted(f"cluster_{p}" for p in graph.scopes
                                                     if p == path or p.startswith(path + "."))
    words = texts(root)
    assert "input" in words and "192×28×28" in words and "256×28×28" in words
    one_level = groups(svg_of(graph, depth=1, block=path), "node")
    assert len(one_level) == 6 + 1 + 1 + 2  # the BasicConv2ds as nodes


def test_block_is_found_in_the_first_variant_that_uses_it(tmp_path, capsys):
    graph, path = draw.block_instance(spec("resnet"), "Bottleneck")
    assert (graph.variant, path) == ("resnet50", "layer3.1")  # its most common configuration
    graph, path = draw.block_instance(spec("resnet"), "layer2.0", "resnet20")  # a module path picks the instance
    assert (graph.variant, path) == ("resnet20", "layer2.0")
    source = draw.dot_source(graph, block=path)
    assert "subsample /2" in source and "pad_channels 8+8" in source  # option A's shortcut
    out = tmp_path / "b.dot"
    assert main(["draw", str(SPECS / "densenet.arch"), "--block", "DenseLayer", "-o", str(out)]) == 0
    text = out.read_text()
    assert "features.denseblock1.denselayer1" in text and "denselayer2" not in text
    assert '"in:features.pool0"' in text


# ------------------------------------------------------------------ files, renderers, determinism


def test_formats_and_default_file_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    googlenet = str(SPECS / "googlenet.arch")
    assert main(["draw", googlenet, "--depth", "1"]) == 0
    assert main(["draw", googlenet, "--variant", "googlenet_paper", "--depth", "1"]) == 0
    assert main(["draw", googlenet, "--block", "Inception"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "googlenet.svg", "googlenet_Inception.svg", "googlenet_googlenet_paper.svg"]
    ET.parse(tmp_path / "googlenet.svg")
    assert main(["draw", googlenet, "--depth", "1", "-o", "g.png"]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["draw", googlenet, "--depth", "1", "-o", "g.dot"]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph archc {")
    assert "wrote g.dot" in capsys.readouterr().out


def test_dot_output_is_deterministic(tmp_path):
    out = tmp_path / "g.dot"
    result = subprocess.run([sys.executable, "-m", "archc", "draw", str(SPECS / "googlenet.arch"), "--depth", "1",
                             "-o", str(out)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "12345"})  # another hash seed than this run's
    assert result.returncode == 0, result.stderr
    graph, signatures = spec("googlenet").graph("googlenet"), Signatures.of_spec(spec("googlenet"))
    source = draw.dot_source(graph, depth=1, signatures=signatures)
    assert source == draw.dot_source(spec("googlenet").graph("googlenet"), depth=1, signatures=signatures)
    assert out.read_bytes() == files.marked(source.encode(), "dot")  # the file: the text and archc's marker
    assert draw.render(source, "svg") == draw.render(source, "svg")


@pytest.mark.slow  # a fresh interpreter
def test_renders_with_an_empty_path_and_never_imports_torch(tmp_path):
    out = tmp_path / "g.png"
    code = ("import sys\nfrom archc.cli import main\n"
            f"assert main(['draw', {str(SPECS / 'googlenet.arch')!r}, '--depth', '1', '-o', {str(out)!r}]) == 0\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n"
            "from archc.backends.diagram.render import find_renderer\nprint(find_renderer()[0])\n")
    env = {k: v for k, v in os.environ.items() if k != "ARCHC_DOT"}
    env["PATH"] = ""  # no dot, no graphviz-pure on PATH: found next to the interpreter
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "graphviz-pure"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = subprocess.run([sys.executable, "-m", "archc", "draw", str(SPECS / "resnet.arch"), "--block",
                             "BasicBlock", "-o", str(tmp_path / "b.svg")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    ET.parse(tmp_path / "b.svg")


@pytest.mark.slow
def test_layout_lr_lays_the_picture_out_left_to_right(tmp_path, capsys):
    graph = spec("resnet").graph("resnet18")
    assert "graph [rankdir=TB," in draw.dot_source(graph, depth=1)
    lr = draw.dot_source(graph, depth=1, rankdir="LR")
    assert "graph [rankdir=LR," in lr and lr.replace("rankdir=LR", "rankdir=TB") == draw.dot_source(graph, depth=1)
    resnet = str(SPECS / "resnet.arch")
    assert main(["draw", resnet, "--variant", "resnet18", "--depth", "1", "--layout", "lr", "-o", str(tmp_path / "r.dot")]) == 0
    assert "rankdir=LR" in (tmp_path / "r.dot").read_text()
    sizes = {}
    for layout in ("tb", "lr"):
        assert main(["draw", resnet, "--variant", "resnet18", "--depth", "1", "--layout", layout,
                     "-o", str(tmp_path / f"{layout}.svg")]) == 0
        root = ET.parse(tmp_path / f"{layout}.svg").getroot()
        sizes[layout] = [float(v) for v in root.get("viewBox").split()[2:]]  # width, height
    assert sizes["tb"][1] > 2 * sizes["tb"][0] and sizes["lr"][0] > 2 * sizes["lr"][1]
    with pytest.raises(SystemExit):
        main(["draw", resnet, "--layout", "bt"])
    assert "invalid choice: 'bt'" in capsys.readouterr().err


def chain(n: int) -> Graph:
    """A network of ``n`` relus in a row, built directly (no spec)."""
    graph = Graph("chain", "chain")
    graph.input = "input"
    graph.add(OpNode("input", None, "input", {}, (), (8, 4, 4)), [])
    prev = "input"
    for i in range(n):
        prev = graph.add(OpNode(f"r{i}", None, "relu", {}, ((8, 4, 4),), (8, 4, 4)), [prev]).id
    graph.output = prev
    return graph


@pytest.mark.slow
def test_a_diagram_too_big_to_lay_out_never_reaches_the_renderer(tmp_path, monkeypatch, capsys):
    def no_renderer(*args, **kwargs):
        raise AssertionError("handed to the renderer")

    monkeypatch.setattr(drawrender.subprocess, "run", no_renderer)
    huge = chain(100_000)
    with pytest.raises(draw.DrawError, match="100,002 nodes and 100,001 edges") as raised:
        draw.draw(SimpleNamespace(variants={"chain": None}, graph=lambda variant=None: huge), "chain", "png")
    message = str(raised.value)
    assert f"at most {draw.MAX_LAYOUT_NODES:,} (draw.MAX_LAYOUT_NODES)" in message and "--depth N" in message
    long = SimpleNamespace(variants={"chain": None}, graph=lambda variant=None: chain(draw.MAX_LAYOUT_NODES))
    assert draw.draw(long, "chain", "dot").startswith(b"digraph archc {")  # text only: not laid out
    with pytest.raises(draw.DrawError, match=f"{draw.MAX_LAYOUT_NODES + 2:,} nodes"):
        draw.draw(long, "chain", "svg")  # the input and the output make two more than the limit
    # dense connectivity counts what dot lays out: 139 nodes, but 7,753 with the chains along long edges
    densenet = str(SPECS / "densenet.arch")
    target = tmp_path / "d.svg"
    assert main(["draw", densenet, "--depth", "2", "--no-fold", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archc: error: the diagram of densenet121 is too big to render: 139 nodes and 673 edges")
    assert "hint: draw less of it: --depth N" in err and not target.exists()
    small, laid_out = layout_size_of(spec("densenet").graph("densenet121"), 2, False)
    assert (small, laid_out) == (139, 7753) and laid_out > draw.MAX_LAYOUT_NODES
    assert layout_size_of(chain(10), None, True) == (12, 12)  # a chain: nothing crosses ranks


def layout_size_of(graph, depth, fold):
    view = View(graph, depth, fold, None)
    ends = terminals(view)
    return layout_size(view, ends["nodes"], ends["in_edges"] + view.edges() + ends["out_edges"])


def test_op_kinds_without_a_colour_of_their_own_get_one():
    assert draw.colour("conv") == draw.COLOURS["conv"]
    assert draw.colour("layernorm") == draw.COLOURS["batchnorm"] and draw.colour("relu6") == draw.COLOURS["relu"]
    assert draw.colour("gelu") == draw.COLOURS["relu"] and draw.colour("global_avgpool") == draw.COLOURS["maxpool"]
    odd = draw.colour("channel_shuffle")
    assert re.fullmatch(r"#[0-9a-f]{6}", odd) and odd != "#ffffff" and odd not in draw.COLOURS.values()
    assert odd == draw.colour("channel_shuffle") != draw.colour("permute")
    for kind in REGISTRY:  # every kind the registry knows is filled, white only where the table says so
        assert draw.colour(kind) != "#ffffff" or draw.COLOURS.get(kind) == "#ffffff", kind


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("name", "argv", "status", "message"), [
    ("googlenet", ["--block", "Inceptoin"], 2, "hint: did you mean 'Inception'?"),
    ("inception_v4", ["--block", "Block35", "--variant", "inception_v4"], 1,
     "hint: variants that use it: inception_resnet_v2, inception_resnet_v1"),
    ("googlenet", ["--variant", "googlenet_papr"], 2, "no variant 'googlenet_papr'"),
    ("googlenet", ["-o", "net.jpg"], 2, "use a .svg, .png, .pdf, .dot or .html file name"),
    ("googlenet", ["--depth", "0"], 2, "--depth must be at least 1"),
    ("googlenet", ["-o", "no/such/dir/net.svg"], 2, "cannot write"),
    ("common", ["--block", "BasicConv2d"], 2, "has no network to draw"),
])
def test_errors_exit_with_a_message(name, argv, status, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", str(SPECS / f"{name}.arch"), *argv]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_block_unused_by_the_variant_is_located_at_its_definition(capsys):
    assert main(["draw", str(SPECS / "inception_v4.arch"), "--block", "Mixed3a", "--variant",
                 "inception_resnet_v2", "-o", "x.dot"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{SPECS / 'inception_v4.arch'}:") and "block Mixed3a(" in err


def test_archc_dot_names_the_renderer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARCHC_DOT", str(tmp_path / "no-such-dot"))
    assert main(["draw", str(SPECS / "googlenet.arch"), "-o", str(tmp_path / "g.svg")]) == 2
    assert "ARCHC_DOT names" in capsys.readouterr().err
    monkeypatch.setenv("ARCHC_DOT", sys.executable)  # a program, but no dot: its failure is reported
    assert main(["draw", str(SPECS / "googlenet.arch"), "-o", str(tmp_path / "g.svg")]) == 2
    assert "could not write SVG" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()


def test_pdf_without_graphviz_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("ARCHC_DOT", raising=False)
    assert main(["draw", str(SPECS / "googlenet.arch"), "-o", str(tmp_path / "g.pdf")]) == 2
    err = capsys.readouterr().err
    assert "graphviz-pure" in err and "cannot write PDF" in err
    assert not (tmp_path / "g.pdf").exists()


# ------------------------------------------------------------------ the gallery


@pytest.mark.slow  # draws every spec
def test_gallery_is_generated_from_the_specs():
    path = ROOT / "docs" / "make_gallery.py"
    module_spec = importlib.util.spec_from_file_location("make_gallery", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["make_gallery"] = module  # its dataclasses look their module up
    module_spec.loader.exec_module(module)
    module.load = lambda path: spec(path.stem)  # the specs this test run has loaded already
    sections = module.plan()
    assert (ROOT / "docs" / "gallery.md").read_text() == module.render(sections), \
        "docs/gallery.md is stale: run python docs/make_gallery.py"
    stems = {s.spec for s in sections}
    assert {f"specs/{p.name}" for p in SPECS.glob("*.arch") if spec(p.stem).program.main.variants} == stems
    files = [p.file for s in sections for p in s.pictures]
    assert {"googlenet_googlenet.png", "googlenet_Inception.png", "resnet_Bottleneck.png"} <= set(files)
    for name in files + ["legend.png"]:
        picture = ROOT / "docs" / "gallery" / name
        assert picture.exists(), f"{name} missing: run python docs/make_gallery.py"
        assert picture.stat().st_size < 400_000, name
