"""GoogLeNet against torchvision and the paper (Szegedy et al. 2014, Table 1)."""

import pytest
import torch
import torchvision
from archtest import assert_same_as_reference, assert_static_shapes, count_params, graph_breaks, input_for, spec

VARIANTS = ["googlenet", "googlenet_paper"]


@pytest.mark.parametrize(
    ("variant", "with_aux", "without_aux", "gmacs"),
    [("googlenet", 13_004_888, 6_624_904, 1.498), ("googlenet_paper", 13_378_280, 6_998_552, 1.583)],
)
def test_counts(variant, with_aux, without_aux, gmacs):
    s = spec("googlenet")
    assert s.graph(variant).params == with_aux
    assert s.graph(variant).params_without_sides() == without_aux
    plain = s.graph(variant, aux_logits=False)
    assert plain.params == without_aux
    assert round(plain.macs / 1e9, 3) == gmacs
    # Table 1: "about 6.8 M" parameters (the table's own sum) and 1.5 G multiply-adds
    assert round(plain.macs / 1e9, 1) in (1.5, 1.6)


def test_paper_table_1_parameters():
    # Table 1 lists each layer's parameters rounded to thousands, summing to "about 6.8 M"; the exact
    # count of the same layers (biases and the 1024x1000 classifier included) is 6,998,552, within 3%.
    exact = spec("googlenet").graph("googlenet_paper", aux_logits=False).params
    assert abs(exact / 6.8e6 - 1) < 0.03


def test_matches_torchvision_eval():
    s = spec("googlenet")
    model = s.build("googlenet")
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    assert count_params(model) == count_params(reference) == 13_004_888
    assert_same_as_reference(model, reference, input_for(s, "googlenet"))


def test_aux_outputs_match_torchvision_in_training():
    s = spec("googlenet")
    model = s.build("googlenet")
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    model.load_state_dict(reference.state_dict(), strict=True)
    model.train()
    reference.train()
    x = input_for(s, "googlenet")
    torch.manual_seed(0)
    logits, aux1, aux2 = model(x)
    torch.manual_seed(0)
    expected = reference(x)
    for ours, theirs in [(logits, expected.logits), (aux1, expected.aux_logits1), (aux2, expected.aux_logits2)]:
        assert (ours - theirs).abs().max().item() < 1e-5


def test_without_aux_logits():
    s = spec("googlenet")
    model = s.build("googlenet", aux_logits=False)
    assert model.aux1 is None and model.aux2 is None
    assert count_params(model) == 6_624_904
    reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    assert_same_as_reference(model, reference, input_for(s, "googlenet"))
    model.train()
    assert model(input_for(s, "googlenet")).shape == (2, 1000)  # no side outputs to return


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", VARIANTS)
def test_static_shapes_and_graph_breaks(variant):
    s = spec("googlenet")
    model = s.build(variant)
    x = input_for(s, variant)
    assert_static_shapes(s, variant, model, x)
    assert graph_breaks(model.eval(), x) == 0
    assert graph_breaks(model.train(), x) == 0


def test_paper_layout_differences():
    graph = spec("googlenet").graph("googlenet_paper")
    ops = [op.op for op in graph.ops()]
    assert "batchnorm" not in ops and ops.count("lrn") == 2
    modules = graph.modules()
    assert modules["inception3a.branch3.1.conv"].args["kernel_size"] == 5
    assert modules["inception3a.branch3.1.conv"].args["bias"] is True
    assert spec("googlenet").graph("googlenet").modules()["inception3a.branch3.1.conv"].args["kernel_size"] == 3


SMALL = """
block Unit(width) {
    residual {
        conv1 = conv(width, 3, padding = 1, bias = false); bn1 = batchnorm; relu
        concat { a = conv(width // 2, 1); b = seq { maxpool(3, stride = 1, padding = 1); conv(width // 2, 1) } }
    }
    relu
}
block Head(num_classes) {
    adaptive_avgpool(1); flatten
    fc = linear(num_classes)
}
network Small(num_classes = 10, aux = true) {
    input 3 x 32 x 32
    stem = conv(16, 3, padding = 1)
    unit1 = Unit(16)
    head = side Head(num_classes) if aux
    unit2 = Unit(16)
    adaptive_avgpool(1); flatten
    fc = linear(num_classes)
}
variant small = Small()
"""


@pytest.mark.slow  # an inductor compile
def test_small_model_runs_compiled_with_inductor(tmp_path):
    (tmp_path / "small.arch").write_text(SMALL)
    import archc

    model = archc.load(tmp_path / "small.arch").build("small").eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert (compiled(x) - model(x)).abs().max().item() < 1e-4
