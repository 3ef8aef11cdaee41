"""archc draw's labels: keyword arguments with rounded numbers, folds of runs that differ in a scalar, what an op
actually does (Swin's shift), and which instance --block draws."""

import re

import pytest
from archtest import spec
from zoo import mutated_spec

from archc.backends.diagram import draw
from archc.backends.diagram.calls import Signatures, masked, range_text, round_number, rounded, value_text
from archc.backends.diagram.labels import effective, op_summary
from archc.backends.diagram.size import label_lines
from archc.sema.graph import ScopeInfo

# Swin V2 with its attention one fixed module (window_attention, as archc lift writes torchvision's): its blocks
# differ only in numbers (specs/swin.arch writes the attention, its shifted blocks holding a mask the others lack)
V2_FIXED = ("attn = ShiftedWindowAttention(in.channels, window_size, shift_size, num_heads, attention_dropout, "
            "dropout,\n                                          version)",
            "attn = window_attention(window_size, num_heads, shift_size, 2, attention_dropout, dropout)")


@pytest.fixture(scope="module")
def swin_fixed(tmp_path_factory):
    return mutated_spec("swin", *V2_FIXED, tmp_path_factory.mktemp("swin"))


def node_labels(source: str) -> dict[str, str]:
    """Each node's label text, its lines joined by a space."""
    out = {}
    for line in source.splitlines():
        m = re.match(r'\s*"([^"]+)" \[label=', line)
        if m:
            out[m.group(1)] = " ".join(label_lines(line.strip()))
    return out


@pytest.mark.parametrize(("value", "short"), [(0.037500000000000006, "0.0375"), (0.15000000000000002, "0.15"),
                                              (4.0, "4.0"), (1e-05, "1e-5"), (0.07272727272727274, "0.0727"),
                                              (123456.0, "1.23e5")])
def test_numbers_are_rounded_to_three_significant_digits(value, short):
    assert round_number(value) == short
    assert value_text(value) == short


def test_rounding_leaves_ints_bools_and_strings_alone():
    value = [64, "conv1", 0.30000000000000004, "0.30000000000000004", (1, 2.50), True]
    assert rounded(value) == [64, "conv1", 0.3, "0.30000000000000004", (1, 2.5), True]
    assert value_text(value) == '[64, "conv1", 0.3, "0.30000000000000004", (1, 2.5), true]'
    assert value_text([0.0] * 18) == "[0.0]×18"
    assert value_text([1, 2, 3, 4, 5, 6, 7, 8]) == "[1, 2, 3, …, 8] (8)"
    assert masked([1, 0.5, True, "a"]) == ("list", "#", "#", True, "a")
    assert masked((1, 0.5), only_floats=True) == ("tuple", 1, "#") != masked([1, 0.5], only_floats=True)


def _scope(block: str, *args) -> ScopeInfo:
    return ScopeInfo(path="x", kind="block", block=block, call="", args=args)


def test_block_calls_name_their_arguments_and_leave_defaults_out():
    signatures = Signatures.of_spec(spec("efficientnet"))
    names = ("expand_ratio", "kernel", "stride", "out_channels", "p")
    call = _scope("MBConv", *zip(names, (6, 5, 2, 40, 0.037500000000000006)))
    assert signatures.label(call) == "MBConv(expand_ratio=6, kernel=5, stride=2, out_channels=40, p=0.0375)"
    call = _scope("MBConv", *zip(names, (1, 3, 1, 16, 0.0)))
    assert signatures.label(call) == "MBConv(expand_ratio=1, kernel=3, stride=1, out_channels=16)"
    # without the spec's defaults (a bare graph) every argument is written, rounded
    assert Signatures().label(_scope("MBConv", ("expand_ratio", 6), ("p", 0.037500000000000006), (None, 1e-05))) == \
        "MBConv(expand_ratio=6, p=0.0375, 1e-5)"
    googlenet = Signatures.of_spec(spec("googlenet"))
    googlenet_scope = next(s for s in spec("googlenet").graph("googlenet").scopes.values()
                                   if s.block == "Inception")
    assert googlenet.label(googlenet_scope) == \
        "Inception(c1x1=64, c3x3red=96, c3x3=128, c5x5red=16, c5x5=32, pool_proj=32, k5=3)"
    # a value of another type than the default's is written (1 is not 1.0 or true)
    assert "k5=3.0" in googlenet.label(_scope("Inception", ("k5", 3.0), ("bn", 1)))
    assert "bn=1" in googlenet.label(_scope("Inception", ("bn", 1)))


def test_the_drawn_efficientnet_has_keyword_labels_without_float_noise():
    s = spec("efficientnet")
    source = draw.dot_source(s.graph("efficientnet_b0"), 1, signatures=Signatures.of_spec(s))
    labels = node_labels(source)
    assert "MBConv(expand_ratio=6, kernel=5, stride=2, out_channels=40, p=0.0375)" in labels["block:features.3.0"]
    assert not re.search(r"\d\.\d*0000\d", source) and "1e-05" not in source


def test_a_run_that_differs_in_drop_rate_and_shift_folds_with_a_count_and_ranges(swin_fixed):
    # (these Swin V2 blocks differ only in their arguments; the shifted blocks of specs/swin.arch hold a mask the
    # others lack, so a stage's blocks are drawn one by one there)
    s = swin_fixed
    graph, signatures = s.graph("swin_v2_t"), Signatures.of_spec(s)
    labels = node_labels(draw.dot_source(graph, 1, signatures=signatures))
    fold = labels["block:features.5.0"]
    assert fold.startswith("5.0 … 5.5  ×6 SwinTransformerBlock(num_heads=12, window_size=8, version=2)")
    assert "shift_size = 0 or 4" in fold and "stochastic_depth_prob = 0.0727 … 0.164" in fold
    assert not any(k.startswith("block:features.5.") and k != "block:features.5.0" for k in labels)
    unfolded = node_labels(draw.dot_source(graph, 1, fold=False, signatures=signatures))
    assert [k for k in unfolded if k.startswith("block:features.5.")] == [f"block:features.5.{i}" for i in range(6)]
    # drawn open, the fold's box says the same
    full = draw.dot_source(graph, None, signatures=signatures)
    assert 'label="5.0 … 5.5 ×6: SwinTransformerBlock(num_heads=12, window_size=8, version=2), shift_size = 0 or 4, ' \
           'stochastic_depth_prob = 0.0727 … 0.164"' in full


def test_closed_boxes_of_calls_alike_but_for_numbers_fold_though_their_ops_differ():
    # Swin V1's shifted block holds a mask and rolls that the unshifted one lacks: drawn closed, each is
    # SwinTransformerBlock(...) with its own shift_size and the same parameters and output, and the stage folds;
    # drawn open, the ops differ and each block is drawn
    s = spec("swin")
    graph, signatures = s.graph("swin_t"), Signatures.of_spec(s)
    labels = node_labels(draw.dot_source(graph, 1, signatures=signatures))
    fold = labels["block:features.5.0"]
    assert fold.startswith("5.0 … 5.5  ×6 SwinTransformerBlock(num_heads=12, window_size=7)")
    assert "shift_size = 0 or 3" in fold
    full = draw.dot_source(graph, None, signatures=signatures)
    assert "5.0 … 5.5" not in full and 'label="5.1: SwinTransformerBlock(num_heads=12, window_size=7, shift_size=3' in full
    # a box with more parameters than its neighbours (ResNet's first Bottleneck, a projection shortcut) stays apart
    labels = node_labels(draw.dot_source(spec("resnet").graph("resnet50"), 1))
    assert "block:layer1.0" in labels and "block:layer1.1" in labels


def test_ranges_read_as_growth_or_alternatives():
    assert range_text("p", [0.0, 0.05, 0.1]) == "p = 0.0 … 0.1"
    assert range_text("shift_size", [0, 3, 0, 3]) == "shift_size = 0 or 3"
    assert range_text("mode", ["a", "b"]) == 'mode = "a" or "b"'


def test_what_does_not_fold_still_does_not():
    # other strides or widths change the ops' sizes: a ResNet stage's first block stays apart
    graph = spec("resnet").graph("resnet50")
    labels = node_labels(draw.dot_source(graph, 1))
    assert "block:layer3.0" in labels and "block:layer3.1" in labels and "block:layer3.2" not in labels


def test_swin_shift_is_labelled_as_the_model_applies_it(swin_fixed):
    graph = swin_fixed.graph("swin_v2_t")  # (specs/swin.arch writes its attention in the spec, the shift a let)
    attn = {op.id: op for op in graph.ops() if op.op == "window_attention"}
    assert op_summary(attn["features.5.1.attn"]) == "window_attention 12 heads, window 8x8, shift 4x4, cosine"
    # on the last stage's 7x7 map one window covers it: torchvision turns the shift off
    assert attn["features.7.1.attn"].args["shift_size"] in (4, [4, 4], (4, 4))
    assert op_summary(attn["features.7.1.attn"]) == "window_attention 24 heads, window 8x8, cosine"
    assert effective(attn["features.7.1.attn"])[1] == "shift 4x4 off: the 8x8 window covers the 7×7 map"
    assert effective(attn["features.5.1.attn"])[1] is None
    source = draw.dot_source(graph)
    assert "shift 4x4" not in next(line for line in source.splitlines() if line.strip().startswith('"features.7.1.attn"'))
    depth1 = node_labels(draw.dot_source(graph, 1))
    assert "shift 4x4 off: the 8x8 window covers the 7×7 map" in depth1["block:features.7.1"]


@pytest.mark.parametrize(("name", "block", "variant", "path"), [
    ("resnet", "Bottleneck", "resnet50", "layer3.1"),  # Bottleneck(256, 1): 5 of 16, no projection
    ("efficientnet", "MBConv", "efficientnet_b0", "features.6.1"),  # drop rates aside, 3 of 16
    ("swin", "SwinTransformerBlock", "swin_t", "features.5.0"),
])
def test_block_draws_the_most_common_configuration(name, block, variant, path):
    graph, found = draw.block_instance(spec(name), block, variant)
    assert (graph.variant, found) == (variant, path)
    # the module path still picks one instance
    assert draw.block_instance(spec(name), "layer1.0" if name == "resnet" else path, variant)[1] == \
        ("layer1.0" if name == "resnet" else path)


def test_what_an_op_does_on_its_input_is_its_kinds_registry_entry(monkeypatch, swin_fixed):
    """The shift rule is window_attention's ``effective`` (no table of kinds in the diagrams): without it the
    label says the shift the call gives, and a kind may bring a rule of its own."""
    import dataclasses

    from archc.ops import REGISTRY

    attn = next(op for op in swin_fixed.graph("swin_v2_t").ops() if op.id == "features.7.1.attn")
    assert REGISTRY["window_attention"].effective is not None
    with monkeypatch.context() as m:
        m.setitem(REGISTRY, "window_attention", dataclasses.replace(REGISTRY["window_attention"], effective=None))
        assert effective(attn) == (attn.args, None) and ", shift 4x4," in op_summary(attn)
    relu = next(op for op in spec("resnet").graph("resnet18").ops() if op.op == "relu")
    monkeypatch.setitem(REGISTRY, "relu", dataclasses.replace(REGISTRY["relu"], effective=lambda a, ins: (a, "off")))
    assert effective(relu) == (relu.args, "off")
