"""Inception-v4 and Inception-ResNet-v1/v2 against timm and the reference counts (Szegedy et al. 2016).

The paper states no parameter counts; the references are timm's models and, for Inception-ResNet-v1
(which timm lacks), the widely used facenet-pytorch port (see reference-numbers.md).
"""

import pytest
import timm
from archtest import (
    assert_same_as_reference,
    assert_static_shapes,
    count_params,
    graph_breaks,
    input_for,
    randomize_batchnorm,
    spec,
)

COUNTS = {"inception_v4": 42_679_816, "inception_resnet_v2": 55_843_464, "inception_resnet_v1": 23_995_624}
VARIANTS = list(COUNTS)


@pytest.fixture(scope="module")
def built():
    """One generated model per variant for the whole module: these networks are large."""
    models = {}

    def get(variant):
        if variant not in models:
            models[variant] = spec("inception_v4").build(variant)
        return models[variant]

    return get


def block_output(graph, path):
    """The output shape of the block instance or named seq at ``path``."""
    return [op for op in graph.ops() if path in op.scope][-1].shape




@pytest.mark.parametrize("variant", VARIANTS)
def test_counts(variant, built):
    assert spec("inception_v4").graph(variant).params == COUNTS[variant]
    assert count_params(built(variant)) == COUNTS[variant]


@pytest.mark.parametrize("variant", ["inception_v4", pytest.param("inception_resnet_v2", marks=pytest.mark.slow)])
def test_matches_timm_eval(variant, built):
    reference = timm.create_model(variant, pretrained=False)
    assert count_params(reference) == COUNTS[variant]
    randomize_batchnorm(reference)
    assert_same_as_reference(built(variant), reference, input_for(spec("inception_v4"), variant, batch=1))


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", VARIANTS)
def test_static_shapes_and_graph_breaks(variant, built):
    s = spec("inception_v4")
    model = built(variant)
    # batch 2 for v1: in training mode its last batch norm sees one value per channel and sample
    x = input_for(s, variant, batch=2 if variant == "inception_resnet_v1" else 1)
    assert_static_shapes(s, variant, model, x)
    assert graph_breaks(model.eval(), x) == 0


def test_inception_v4_grids():
    # Figure 9: the stem gives 35x35x384, Reduction-A 17x17x1024, Reduction-B 8x8x1536
    g = spec("inception_v4").graph("inception_v4")
    assert block_output(g, "features.5") == (384, 35, 35)
    assert [block_output(g, f"features.{i}") for i in (6, 9)] == [(384, 35, 35)] * 2
    assert block_output(g, "features.10") == (1024, 17, 17)
    assert block_output(g, "features.17") == (1024, 17, 17)
    assert block_output(g, "features.18") == (1536, 8, 8)
    assert block_output(g, "features.21") == (1536, 8, 8)
    assert len([op for op in g.ops() if op.op == "add"]) == 0  # no residuals in Inception-v4


def test_inception_resnet_v1_follows_figures_10_to_14():
    g = spec("inception_v4").graph("inception_resnet_v1")
    modules = g.modules()
    # Figure 14: the stem ends in a stride-2 3x3 conv with 256 filters at 35x35
    assert modules["conv2d_4b.conv"].shape == (256, 35, 35)
    # Figures 10, 11, 13: the residual 1x1 convs go from the concatenated branches back to the input width
    assert modules["repeat_1.0.conv2d"].in_shapes[0][0] == 3 * 32
    assert modules["repeat_1.0.conv2d"].shape == (256, 35, 35)
    assert modules["repeat_2.0.conv2d"].in_shapes[0][0] == 2 * 128
    assert modules["repeat_2.0.conv2d"].shape == (896, 17, 17)
    assert modules["repeat_3.0.conv2d"].in_shapes[0][0] == 2 * 192
    assert modules["repeat_3.0.conv2d"].shape == (1792, 8, 8)
    assert all(modules[f"repeat_{i}.0.conv2d"].args["bias"] for i in (1, 2, 3))
    # Figure 7 with Table 1's k, l, m, n = 192, 192, 256, 384; Figure 12
    assert block_output(g, "mixed_6a") == (896, 17, 17)
    assert block_output(g, "mixed_7a") == (1792, 8, 8)
    # 5 / 10 / 5 modules, residuals scaled by 0.17 / 0.10 / 0.20, then the port's unscaled, ReLU-less Block8
    scales = [op.args["scale"] for op in g.ops() if op.op == "add"]
    assert scales == [0.17] * 5 + [0.10] * 10 + [0.20] * 5 + [1.0]
    assert [op.op for op in g.ops() if op.scope == ("block8",)][-1] == "add"
    assert [op.op for op in g.ops() if op.scope == ("repeat_3", "repeat_3.4")][-1] == "relu"


def test_inception_resnet_v1_port_names(built):
    # facenet-pytorch's attribute names, in its order, so its state_dict keys line up
    model = built("inception_resnet_v1")
    names = [name for name, _ in model.named_children()]
    assert names == [
        "conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
        "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
        "avgpool_1a", "dropout", "last_linear", "last_bn", "logits",
    ]  # fmt: skip
    keys = model.state_dict()
    assert keys["last_bn.running_var"].shape == (512,)
    assert keys["logits.weight"].shape == (1000, 512)
    assert "last_linear.bias" not in keys
    assert keys["last_linear.weight"].shape == (512, 1792)  # a linear layer, as the port's
    assert type(model.last_bn).__name__ == "BatchNorm1d"


def test_inception_resnet_v2_scales_and_tail():
    g = spec("inception_v4").graph("inception_resnet_v2")
    scales = [op.args["scale"] for op in g.ops() if op.op == "add"]
    assert scales == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    assert [op.op for op in g.ops() if op.scope == ("block8",)][-1] == "add"
    assert g.modules()["conv2d_7b.conv"].shape == (1536, 8, 8)


@pytest.mark.parametrize("variant", VARIANTS)
def test_num_classes(variant):
    g = spec("inception_v4").graph(variant, num_classes=10)
    assert g.params == COUNTS[variant] - 990 * (g.node(g.output).in_shapes[0][0] + 1)
    assert g.node(g.output).shape == (10,)
