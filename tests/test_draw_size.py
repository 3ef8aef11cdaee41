"""archc draw's default depth: the deepest level whose picture is at most a few thousand pixels, chosen from the
graph's size (``size.estimate``), and the estimate held to Graphviz's own layout."""

import re

import pytest
from archtest import SPECS, spec

from archc.backends.diagram import draw
from archc.backends.diagram.calls import Signatures
from archc.backends.diagram.size import MAX_PICTURE_PX, estimate


def rendered_px(source: str) -> tuple[float, float]:
    svg = draw.render(source, "svg").decode()
    w, h = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    return float(w) * 4 / 3, float(h) * 4 / 3


def test_efficientnet_b0_is_drawn_at_its_blocks_a_few_thousand_pixels_tall():
    # before: every block open, 1004 x 24340 px
    graph = spec("efficientnet").graph("efficientnet_b0")
    assert draw.default_depth(graph) == 1
    svg = draw.draw(spec("efficientnet"), "efficientnet_b0", "svg").decode()  # as archc draw SPEC -o x.svg
    w, h = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    assert max(float(w), float(h)) * 4 / 3 <= MAX_PICTURE_PX
    assert "block:features.3.0" in svg and "features.3.0.block.0.0" not in svg


@pytest.mark.parametrize(("name", "variant", "depth"), [
    ("googlenet", "googlenet", 1),  # open, the Inceptions' branches make it 9,472 px tall
    ("resnet", "resnet50", 1),  # open, 9,452 px
    ("densenet", "densenet121", 2),  # the dense layers as nodes, folded
    ("densenet", "densenet40_k12", None),  # drawn whole: each dense block one fold of 12 open layers
])
def test_the_default_depth_follows_the_graphs_size(name, variant, depth):
    graph = spec(name).graph(variant)
    found, size = draw.fitting_depth(graph)
    assert found == depth
    assert max(size) <= MAX_PICTURE_PX
    if depth is not None:  # one level deeper would not fit
        assert max(estimate(draw.dot_source(graph, (depth + 1) if depth < draw.max_depth(graph) else None))) \
            > MAX_PICTURE_PX


def test_a_block_drawn_alone_gets_a_default_depth_of_its_own():
    graph, path = draw.block_instance(spec("googlenet"), "Inception", "googlenet")
    assert draw.default_depth(graph, block=path) is None  # one Inception fits whole


@pytest.mark.parametrize(("name", "variant", "depth"), [
    ("googlenet", "googlenet", 2), ("efficientnet", "efficientnet_b0", 1), ("swin", "swin_t", 2),
    ("densenet", "densenet121", 1), ("vgg", "vgg19", 1), ("inception_v3", "inception_v3", 2),
])
def test_the_estimate_is_close_to_graphvizs_layout(name, variant, depth):
    s = spec(name)
    source = draw.dot_source(s.graph(variant), depth, signatures=Signatures.of_spec(s))
    guess, real = max(estimate(source)), max(rendered_px(source))
    assert 0.85 < guess / real < 1.2, (guess, real)


def shipped_variants():
    """(variant, graph, the spec's signatures) of every variant of every shipped spec."""
    for path in sorted(SPECS.glob("*.arch")):
        s = spec(path.stem)
        if s.variants:
            signatures = Signatures.of_spec(s)
            for variant, graph in s.check().items():
                yield variant, graph, signatures


@pytest.mark.slow  # every shipped variant, several depths each
def test_every_shipped_variant_defaults_to_a_picture_of_a_few_thousand_pixels():
    over = {}
    for variant, graph, signatures in shipped_variants():
        depth, size = draw.fitting_depth(graph, signatures=signatures)
        if max(size) > MAX_PICTURE_PX:
            # only where even the network's own blocks do not fit, or it has none
            assert depth == 1 or draw.max_depth(graph) == 0, variant
            over[variant] = round(max(size))
    # VGG's layers all sit in one seq, `features`, which is no level: its runs of alike convs fold instead
    # (opruns). VGG-13-BN's pairs do not, and the estimate puts it a tenth over; Graphviz lays it out within
    assert set(over) <= {"vgg13_bn"}, over
    for variant in over:
        source = draw.dot_source(spec("vgg").graph(variant), signatures=Signatures.of_spec(spec("vgg")))
        assert max(rendered_px(source)) <= MAX_PICTURE_PX, variant


def test_vggs_runs_of_alike_convs_fold_and_its_stages_stay():
    """VGG-19-BN has no blocks: its stages' four conv, batch norm, ReLU groups fold into one node each (×4), the
    stages' max pools stay, and the picture is a few thousand pixels tall (5,133 px unfolded)."""
    s = spec("vgg")
    graph = s.graph("vgg19_bn")
    source = draw.dot_source(graph, signatures=Signatures.of_spec(s))
    runs = re.findall(r'"ops:(features\.\d+)" \[label=<<b>[^<]*</b>  <font color="#b00000"><b>×(\d)</b></font><br/>'
                      r"([^<]*)<br/>", source)
    assert runs == [("features.14", "4", "conv 3x3, 256 → batchnorm → relu"),
                    ("features.27", "4", "conv 3x3, 512 → batchnorm → relu"),
                    ("features.40", "4", "conv 3x3, 512 → batchnorm → relu")]
    assert source.count("<b>maxpool 2x2/2</b>") == 5  # every stage ends where it did
    assert '"ops:features.14" -> "features.26" [label="  256×56×56"' in source  # the run's output, into the pool
    assert "2,067,456 params" in source  # the run's total: 128 -> 256 channels, then three of 256 -> 256
    assert max(rendered_px(source)) <= MAX_PICTURE_PX
    unfolded = draw.dot_source(graph, fold=False, signatures=Signatures.of_spec(s))
    assert "ops:" not in unfolded and max(estimate(unfolded)) > MAX_PICTURE_PX
    assert "ops:" not in draw.dot_source(s.graph("vgg11"))  # pairs stay: two convs a stage
