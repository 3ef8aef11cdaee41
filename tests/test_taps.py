"""``tap``: where it may stand, how a tap is named, the reductions, and the generated backbone (every spec
here builds, and its features model runs with the channels, reductions and shapes the graph says)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

import archc
from archc.errors import SpecError


def load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "t.arch"
    path.write_text(text)
    return archc.load(path)


def error(tmp_path, text: str) -> str:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text).source()
    message = info.value.render()
    assert message.startswith(str(tmp_path / "t.arch") + ":"), message  # located
    return message


def net(body: str, side: int = 32, params: str = "") -> str:
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"network N({params}) {{\n    input 3 x {side} x {side}\n{lines}\n}}\nvariant n = N()\n"


def backbone(tmp_path, text: str, **kwargs):
    """The spec's first variant as a backbone, from the generated module, and its graph."""
    s = load(tmp_path, text)
    path = tmp_path / "t.py"
    path.write_text(s.source())
    module_spec = importlib.util.spec_from_file_location("tapped", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["tapped"] = module
    module_spec.loader.exec_module(module)
    variant = next(iter(s.variants))
    return getattr(module, variant)(features_only=True, **kwargs), s.graph(variant)


def assert_agrees(model, graph, side: int) -> list[torch.Tensor]:
    """feature_info is the graph's taps, and the maps have the graph's shapes (tokens: D x h x w, their grid's)."""
    taps = list(graph.taps.values())
    nodes = [graph.node(t.node) for t in taps]
    info = model.feature_info
    assert info.module_name() == [t.name for t in taps]
    assert info.reduction() == [t.reduction for t in taps]
    assert info.channels() == [node.shape[0] if node.layout == "CHW" else node.shape[-1] for node in nodes]
    maps = model(torch.randn(2, 3, side, side))
    shapes = [(node.shape[1], side // t.reduction, side // t.reduction) if node.layout == "LD" else node.shape
              for t, node in zip(taps, nodes)]
    assert [tuple(m.shape[1:]) for m in maps] == shapes
    return maps


def test_taps_in_seqs_loops_and_conditionals(tmp_path):
    text = net("""
stem = conv(8, 3, stride = 2, padding = 1); act = relu
tap
stages = seq {
    for i in range(3) {
        stage{i} = conv(8 * 2 ** i, 3, stride = 2, padding = 1)
        tap "stage_{i}"
        pool{i} = maxpool(2) if i == 1
    }
}
extra = conv(64, 1)
tap last
global_avgpool
fc = linear(10)""", side=64)
    model, graph = backbone(tmp_path, text)
    assert [t.name for t in graph.taps.values()] == ["act", "stages.stage_0", "stages.stage_1", "stages.stage_2",
                                                     "last"]
    assert [t.reduction for t in graph.taps.values()] == [2, 4, 8, 32, 32]
    assert_agrees(model, graph, 64)
    assert not hasattr(model, "fc")


def test_a_tap_is_named_after_the_layer_before_it(tmp_path):
    model, graph = backbone(tmp_path, net("a = conv(8, 1)\ntap\nb = seq { c = conv(8, 1); tap }\ntap"))
    assert list(graph.taps) == ["a", "b.c", "b"]
    assert_agrees(model, graph, 32)


def test_the_layer_after_a_tap_does_not_change_it_in_place(tmp_path):
    """relu right after a tap would overwrite the feature map forward_taps keeps."""
    model, graph = backbone(tmp_path, net("c = conv(8, 3, padding = 1)\ntap\nrelu\ns = seq { d = conv(8, 1); tap; r = relu }\ntap"))
    first, inner, last = model(torch.randn(1, 3, 32, 32))
    assert (first < 0).any() and (inner < 0).any() and (last >= 0).all()


def test_out_indices_and_negative_ones(tmp_path):
    model, _ = backbone(tmp_path, net("a = conv(8, 3, stride = 2, padding = 1)\ntap\nb = conv(16, 3, stride = 2, padding = 1)\ntap"),
                        out_indices=(-1,))
    assert model.feature_info.channels() == [16] and model.feature_info.out_indices == (1,)


@pytest.mark.parametrize(("text", "fragment"), [
    (net("residual { c = conv(3, 1); tap }"), "a tap cannot stand in a residual"),
    (net("concat { seq { c = conv(3, 1); tap }; identity }"), "a tap cannot stand in a concat"),
    (net("c = conv(8, 1); relu\ntap"), "this tap needs a name"),
    (net("tap"), "this tap needs a name"),
    (net("a = conv(8, 1)\ntap x\nb = conv(8, 1)\ntap x"), "tap 'x' is defined twice"),
    (net("a = conv(8, 1)\nflatten\ntap flat"), "a tap marks a feature map"),
    (net("for i in range(3) { s{i} = conv(8, 3, stride = 2 if i == 1 else 1, padding = 1); tap }"),
     "changes the stride by 1 or 2 in different runs"),
    (net("s = seq { conv(8, 1); tap t }"), "name this conv"),
    (net("a = conv(8, 1)\ntap \"a b\""), "holds ' '"),
    (net("s = seq { b = batchnorm; seq { tap t } }"), "a tap in an unnamed seq inside a named one"),
], ids=["in-a-residual", "in-a-concat", "after-an-unnamed-layer", "first", "twice", "flat",
        "varying-stride", "unnamed-layer-in-a-tapped-seq", "bad-name", "in-an-unnamed-inner-seq"])
def test_misplaced_taps_are_located_errors(tmp_path, text, fragment):
    assert fragment in error(tmp_path, text)


def test_features_only_is_taken(tmp_path):
    assert "'features_only' is a factory argument" in error(tmp_path, net("a = conv(8, 1)\ntap", params="features_only = 1"))


def test_an_ensemble_member_keeps_its_taps_to_itself(tmp_path):
    text = """network Small(num_classes = 10) {
    input 3 x 32 x 32
    c = conv(8, 3, padding = 1); tap
    global_avgpool
    fc = linear(num_classes)
}
network Two() {
    input 3 x 32 x 32
    ensemble { a = Small(); b = Small() }
}
variant two = Two()
"""
    s = load(tmp_path, text)
    assert s.graph("two").taps == {}
    compile(s.source(), "t.py", "exec")


def test_the_head_may_hold_layers_of_one_branch(tmp_path):
    """A module made in only one branch of an if after the last tap is left alone (deleting it would fail
    in the other branch); a side head is dropped (found by the random specs)."""
    text = net("""
a = conv(3, 5, padding = 2); tap
if flag { gate { adaptive_avgpool(1); f1 = conv(3, 1); sigmoid } } else { gate { adaptive_avgpool(1); f2 = conv(3, 1); sigmoid } }
global_avgpool
aux = side Head(10) from a
fc = linear(10)""", params="flag = true")
    model, graph = backbone(tmp_path, "block Head(n) {\n    global_avgpool\n    fc = linear(n)\n}\n" + text)
    assert_agrees(model, graph, 32)
    assert not hasattr(model, "aux") and not hasattr(model, "fc") and hasattr(model, "f1")


def test_an_unnamed_tap_in_a_branch_no_variant_takes_is_a_located_error(tmp_path):
    # found by the fuzzer: the elaborator checks only flag = true, the generated code holds both branches
    text = net("avgpool(2)\nif flag { tap first } else { tap }\nglobal_avgpool\nfc = linear(5)", params="flag = true")
    path = tmp_path / "net.arch"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        archc.load(path).source()
    assert "this tap needs a name: no named layer comes before it" in info.value.render()
    assert "net.arch:" in info.value.render()


def test_the_head_keeps_what_may_not_have_been_made(tmp_path):
    # found by the fuzzer: a shortcut of a residual that never adds (when = false) is never made, so deleting it
    # with the head failed; a conditional layer after the last tap stays too
    text = net("c1 = conv(4, 3, padding = 1)\ntap\nresidual(when = false) { c2 = conv(5, 1) } shortcut { p = conv(5, 1) }\n"
               "extra = conv(5, 1) if flag\nglobal_avgpool\nfc = linear(3)", side=8, params="flag = true")
    s = load(tmp_path, text)
    assert "del self.c2, self.fc" in s.source()
    model = s.python_module().n(features_only=True)
    assert [tuple(m.shape) for m in model(torch.randn(2, 3, 8, 8))] == [(2, 4, 8, 8)]


def test_forward_taps_names_no_loop_variable_it_does_not_read(tmp_path):
    """A loop variable read only by a let that forward_taps drops is written ``_`` there (ruff's B007)."""
    source = load(tmp_path, """
let rows = [[1, 8], [1, 16]]
network Net() {
    input 3 x 16 x 16
    features = seq {
        for i, (s, c) in enumerate(rows) {
            let w = c * 2
            "{i}" = conv(w, 3, s, padding = 1)
            tap
        }
    }
    global_avgpool
    fc = linear(3)
}
variant net = Net()
""").source()
    taps = source[source.index("def forward_taps"):]
    assert "for i, (s, c) in enumerate(rows):" in source and "for i, _ in enumerate(rows):" in taps


TOKENS = """network T(patch = 4) {
    input 3 x 32 x 32
    if patch == 4 { embed = conv(8, 4, stride = 4) } else { embed = conv(8, 8, stride = 8) }
    to_tokens
    cls = prepend_token
    norm = layernorm
    tap
    select_token(0)
    head = linear(10)
}
variant four = T()
variant eight = T(8)
"""


def test_a_tap_on_tokens_gives_their_map(tmp_path):
    """The class token dropped, the others as the patch grid's map, the grid following the input's size."""
    model, graph = backbone(tmp_path, TOKENS)
    assert model.feature_info.reduction() == [4] and graph.taps["norm"].reduction == 4
    model.eval()
    for side in (32, 48):
        x = torch.randn(2, 3, side, side)
        tokens = model.norm(torch.cat([model.cls.expand(2, -1, -1), model.embed(x).flatten(2).transpose(1, 2)], 1))
        (got,) = model(x)
        assert got.shape == (2, 8, side // 4, side // 4)
        torch.testing.assert_close(got, tokens[:, 1:].transpose(1, 2).reshape(2, 8, side // 4, side // 4))


def test_an_if_per_patch_size_keeps_each_reduction(tmp_path):
    s = load(tmp_path, TOKENS)
    assert [t.reduction for t in s.graph("eight").taps.values()] == [8]
    assert "reduction *= 8" in s.source() and "reduction *= 4" in s.source()


def test_a_loop_whose_runs_stride_differently_is_descended_into(tmp_path):
    """A stage seq in a loop whose first run keeps the size and the others halve it: the branches inside are the
    steps, each multiplying the reduction as the loop runs (NFNet's stages)."""
    text = net("""stages = seq {
    for i in range(3) {
        "{i}" = seq { if i == 0 { c = conv(8, 3, padding = 1) } else { c = conv(8, 3, stride = 2, padding = 1) } }
        tap
    }
}""")
    model, graph = backbone(tmp_path, text)
    assert model.feature_info.reduction() == [1, 2, 4] == [t.reduction for t in graph.taps.values()]
    assert_agrees(model, graph, 32)


def test_a_stride_that_follows_a_parameter_is_written_with_it(tmp_path):
    """A patch embedding of stride patch_size, one statement for every variant: the reductions of the taps
    after it are written with the parameter (not one branch per patch size), and agree in every variant."""
    text = """network N(patch_size) {
    input 3 x 32 x 32
    stem = conv(8, 3, stride = 2, padding = 1)
    embed = seq { proj = conv(16, patch_size, stride = patch_size) }
    tap
    c = conv(16, 3, stride = 2, padding = 1)
    tap
    global_avgpool
    fc = linear(10)
}
variant n2 = N(2)
variant n4 = N(4)
"""
    s = load(tmp_path, text)
    source = s.source()
    assert "reduction = 2 * patch_size" in source and "if patch_size" not in source
    module = s.python_module()
    for variant, first in (("n2", 4), ("n4", 8)):
        graph = s.graph(variant)
        assert [t.reduction for t in graph.taps.values()] == [first, first * 2]
        assert_agrees(getattr(module, variant)(features_only=True), graph, 32)


def test_a_varying_stride_no_number_follows_is_a_located_error(tmp_path):
    """The stride is twice s: no number the step reads is its stride in every run."""
    text = """network N(s) {
    input 3 x 32 x 32
    embed = conv(16, 2, stride = 2 * s)
    tap
    global_avgpool
    fc = linear(10)
}
variant a = N(1)
variant b = N(2)
"""
    message = error(tmp_path, text)
    assert "changes the stride by 2 or 4 in different runs, and no number it reads is its stride" in message
    assert "stride = patch_size" in message  # the hint
