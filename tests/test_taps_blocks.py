"""Taps in a block: a block whose body holds taps, called as a step of the network's main path, gives the network
its taps, named by the call's module path, with the reductions of the path before the call multiplied in (once a
call: twice called, twice tapped; under a condition, tapped where it runs); misuse is a located error."""

from __future__ import annotations

import pytest
import torch
from test_taps import assert_agrees, backbone, error, load, net

import archc

STAGES = """block Stage(c) {
    conv = conv(c, 3, stride = 2, padding = 1, bias = false); bn = batchnorm; relu
}

block Stages(widths) {
    for i, c in enumerate(widths) { stage{i} = Stage(c); tap }
    pool = conv(8, 1)
}

network Net(flag = true) {
    input 3 x 32 x 32
    stem = conv(8, 3, padding = 1)
    tap
    body = Stages([8, 16])
    extra = Stages([16]) if flag
    more = seq { deep = Stages([32]); tap }
    global_avgpool
    fc = linear(10)
}

variant on = Net()
variant off = Net(flag = false)
"""


def _hooked_maps(model, names: list[str], x: torch.Tensor) -> tuple[list, dict]:
    """The features model's maps, and the output of the module each name names, caught as forward_taps runs."""
    caught = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: caught.setdefault(name, o))
    return model(x), caught


def test_a_block_gives_its_taps_to_the_network(tmp_path):
    model, graph = backbone(tmp_path, STAGES)
    names = ["stem", "body.stage0", "body.stage1", "extra.stage0", "more.deep.stage0", "more.deep"]
    assert list(graph.taps) == names
    assert [t.reduction for t in graph.taps.values()] == [1, 2, 4, 8, 16, 16]
    assert_agrees(model.eval(), graph, 32)
    maps, caught = _hooked_maps(model, names[:-1], torch.randn(2, 3, 32, 32))
    for name, got in zip(names, maps[:-1]):
        assert got is caught[name]  # the map is the named module's output
    # (forward_taps runs a block with taps through its forward_taps, which calls no hook of the block's own)
    torch.testing.assert_close(maps[-1], model.more.deep.pool(caught["more.deep.stage0"]))


def test_a_call_under_a_condition_taps_where_it_runs(tmp_path):
    s = load(tmp_path, STAGES)
    module = s.python_module()
    graph = s.graph("off")
    assert "extra.stage0" not in graph.taps and len(graph.taps) == 5
    assert_agrees(module.off(features_only=True).eval(), graph, 32)


def test_the_generated_code_reads_the_blocks_taps(tmp_path):
    source = load(tmp_path, STAGES).source()
    stages = source[source.index("class Stages"):source.index("class Net")]
    assert "def forward_taps(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:" in stages
    assert 'self.feature_info.append(dict(num_chs=c, reduction=reduction, module=f"stage{i}"))' in stages
    assert "return x, features" in stages
    network = source[source.index("class Net("):]
    assert "for info in self.body.feature_info:" in network and 'module="body." + info["module"]' in network
    assert "reduction=reduction * info[\"reduction\"]" in network  # the path's stride before the call
    assert "x, taps = self.body.forward_taps(x)" in network and "x, taps = self.extra.forward_taps(x)" in network
    assert "x, taps = self.more.deep.forward_taps(x)" in network and "features.extend(taps)" in network


def test_blocks_with_taps_nest(tmp_path):
    text = """block Inner(c) {
    a = conv(c, 3, stride = 2, padding = 1); tap
    b = conv(c, 1)
}
block Outer(c) {
    inner = Inner(c); tap
    post = conv(2 * c, 3, stride = 2, padding = 1); tap
}
""" + net("stem = conv(4, 3, stride = 2, padding = 1)\nouter = Outer(8)\nglobal_avgpool\nfc = linear(3)")
    model, graph = backbone(tmp_path, text)
    assert list(graph.taps) == ["outer.inner.a", "outer.inner", "outer.post"]
    assert [t.reduction for t in graph.taps.values()] == [4, 4, 8]
    assert_agrees(model.eval(), graph, 32)


def test_an_ensemble_members_block_keeps_its_taps_to_the_member(tmp_path):
    text = STAGES.split("network Net")[0] + """network Small() {
    input 3 x 32 x 32
    body = Stages([8]); global_avgpool; fc = linear(10)
}
network Two() {
    input 3 x 32 x 32
    ensemble { for i in range(2) { m{i} = Small() } }
}
variant two = Two()
"""
    s = load(tmp_path, text)
    assert s.graph("two").taps == {}
    assert s.python_module().Small().forward_taps(torch.randn(1, 3, 32, 32))[0].shape == (1, 8, 16, 16)


TINY_VIT = """block Encoder(depth) {
    pos = learned_add((1, 17, in.channels))
    layers = seq { for i in range(depth) { "{i}" = seq { n = layernorm; l = linear(in.channels) }; tap } }
    ln = layernorm
}
network V() {
    input 3 x 16 x 16
    proj = conv(8, 4, stride = 4)
    to_tokens
    cls = prepend_token
    encoder = Encoder(2)
    select_token(0)
    head = linear(5)
}
variant v = V()
"""


def test_a_blocks_taps_on_tokens_are_maps_in_the_network(tmp_path):
    model, graph = backbone(tmp_path, TINY_VIT)
    assert list(graph.taps) == ["encoder.layers.0", "encoder.layers.1"]
    assert model.feature_info.reduction() == [4, 4] and model.feature_info.channels() == [8, 8]
    x = torch.randn(2, 3, 16, 16)
    maps, caught = _hooked_maps(model.eval(), list(graph.taps), x)
    for name, got in zip(graph.taps, maps):
        tokens = caught[name]  # N x 17 x 8: the class token first
        torch.testing.assert_close(got, tokens[:, 1:].transpose(1, 2).reshape(2, 8, 4, 4))
        assert not torch.equal(got, tokens[:, :-1].transpose(1, 2).reshape(2, 8, 4, 4))  # the class token dropped


TAPPED = "block B() {\n    c = conv(8, 1)\n    tap\n}\n"


@pytest.mark.parametrize(("text", "fragment"), [
    (TAPPED + net("residual { b = B() }"), "B has taps, so it is called as a step of the main path, not in a residual"),
    (TAPPED + net("a = conv(8, 1)\naux = side B() from a\nc = conv(8, 1)\ntap"), "not in a side output"),
    (TAPPED + net("ensemble { b = B() }"), "not in an ensemble"),
    (TAPPED + "block C() {\n    b = B()\n}\n" + net("concat { c = C(); identity }"),
     "C has the taps of B, so it is called as a step of the main path, not in a concat"),
    (TAPPED + "block C(inner) {\n    i = inner()\n}\n" + net("c = C(B)"),
     "inner holds B, a block with taps: it is called by its own name"),
    (TAPPED + "block G() (x) -> y {\n    m = B()\n    let y = m(x)\n}\n" + net("g = G()"),
     "not in a block with named tensors (G)"),
    ("block S() = seq {\n    c = conv(8, 1)\n    tap\n}\n" + net("s = S()"),
     "a tap cannot stand in a block with an nn.Sequential (S)"),
    ("block M() {\n    c = conv(8, 4, stride = 4); tap\n    to_tokens; tap t\n}\n" + net("m = M()"),
     "the taps of M mark both tokens and maps"),
], ids=["in-a-residual", "as-a-side-output", "as-an-ensemble-member", "through-a-block-off-the-path",
        "through-a-parameter", "in-a-flow-block",
        "tap-in-a-sequential-block", "tokens-and-maps"])
def test_misplaced_blocks_with_taps_are_located_errors(tmp_path, text, fragment):
    assert fragment in error(tmp_path, text)


def test_a_users_spec_with_taps_in_a_block_is_a_backbone(tmp_path, monkeypatch):
    (tmp_path / "mine.arch").write_text(TINY_VIT.replace("variant v ", "variant my_vit "))
    monkeypatch.setenv("ARCHC_SPEC_PATH", str(tmp_path))
    assert archc.list_models("my_*", features_only=True) == ["my_vit"]
