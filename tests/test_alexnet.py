"""AlexNet against torchvision and the paper (Krizhevsky et al. 2012; Caffe's bvlc_alexnet)."""

import pytest
import torch
import torchvision
from archtest import (
    assert_same_as_reference,
    assert_static_shapes,
    count_params,
    graph_breaks,
    input_for,
    rounds_to,
    spec,
)

# variant: (params, MACs in millions rounded as reference-numbers.md gives them)
ALEXNETS = {
    "alexnet": (61_100_840, 714),  # torchvision: 0.714 G
    "alexnet_paper": (60_965_224, 724.4),  # bvlc_alexnet layers, 227x227, groups = 2
}


@pytest.mark.parametrize("variant", ALEXNETS)
def test_counts(variant):
    graph = spec("alexnet").graph(variant)
    params, mmacs = ALEXNETS[variant]
    assert graph.params == params
    assert rounds_to(graph.macs, mmacs)


def test_paper_says_60_million():
    # Abstract: "The neural network, which has 60 million parameters": one significant figure.
    params = spec("alexnet").graph("alexnet_paper").params
    assert rounds_to(params, 6, unit=1e7)
    assert not rounds_to(params, 60)  # 60.97 M: the paper's figure is rounded down, not to the nearest million


def test_paper_layers_on_one_gpu():
    # The same layers without the two-GPU split (groups = 1): 62,378,344 params, 1.135 G MACs.
    s = spec("alexnet")
    graph = s.graph("alexnet_paper", groups=1)
    assert graph.params == 62_378_344
    assert round(graph.macs / 1e9, 3) == 1.135
    with torch.device("meta"):
        model = s.build("alexnet_paper", groups=1)
    assert count_params(model) == 62_378_344
    assert model.conv2.groups == model.conv4.groups == model.conv5.groups == 1


def test_matches_torchvision():
    s = spec("alexnet")
    model = s.build("alexnet")
    reference = torchvision.models.alexnet(weights=None)
    assert count_params(model) == count_params(reference) == 61_100_840
    assert_same_as_reference(model, reference, input_for(s, "alexnet"))


def test_paper_layout():
    graph = spec("alexnet").graph("alexnet_paper")
    modules = graph.modules()
    # Figure 2: 96-256-384-384-256 kernels; conv2, conv4 and conv5 only see their own GPU's half
    widths = [modules[f"conv{i}"].args["out_channels"] for i in range(1, 6)]
    assert widths == [96, 256, 384, 384, 256]
    assert [modules[f"conv{i}"].args["groups"] for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert modules["conv2"].params == 256 * 48 * 5 * 5 + 256
    # 227x227 input gives the paper's 55x55x96 first layer and a 6x6x256 input to fc6
    assert modules["conv1"].shape == (96, 55, 55)
    assert modules["fc6"].in_shapes[0] == (256 * 6 * 6,)
    # Section 3.3: LRN after the ReLUs of conv1 and conv2, before pooling
    ops = [op.op for op in graph.ops()]
    assert ops[1:5] == ["conv", "relu", "lrn", "maxpool"]
    assert ops.count("lrn") == 2
    assert modules["norm1"].args == {"size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2}
    # Section 4.2: dropout after fc6 and fc7
    assert [op.name for op in graph.ops() if op.op == "dropout"] == ["drop6", "drop7"]


def test_torchvision_layout_has_no_lrn_or_groups():
    graph = spec("alexnet").graph("alexnet")
    ops = graph.ops()
    assert not any(op.op == "lrn" for op in ops)
    assert [op.args["out_channels"] for op in ops if op.op == "conv"] == [64, 192, 384, 256, 256]
    assert all(op.args["groups"] == 1 for op in ops if op.op == "conv")


def test_num_classes_is_a_factory_argument():
    s = spec("alexnet")
    for variant, head in [("alexnet", "classifier.6"), ("alexnet_paper", "fc8")]:
        with torch.device("meta"):  # no need to initialise 60 M parameters to read the head
            model = s.build(variant, num_classes=10)
        assert dict(model.named_modules())[head].out_features == 10
        assert s.graph(variant, num_classes=10).params == count_params(model)


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", ALEXNETS)
def test_static_shapes_and_graph_breaks(variant):
    s = spec("alexnet")
    model = s.build(variant)
    x = input_for(s, variant)
    assert_static_shapes(s, variant, model, x)
    assert graph_breaks(model.eval(), x) == 0
