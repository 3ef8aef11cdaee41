"""VGG configurations A-E against torchvision and the paper (Simonyan and Zisserman 2014, Tables 1 and 2).

The models are large (133-144 M parameters): each is built once per module (the `built` fixture is
module-scoped, so pytest runs all tests of one variant together), the shape and graph-break checks run
on one 32x32 image (the spec's `size`; the adaptive 7x7 pool takes any size), and the reference comparison
on one image at the paper's 224x224.
"""

import pytest
import torch
import torchvision
from archtest import (
    assert_same_as_reference,
    assert_static_shapes,
    count_params,
    fast_tier,
    graph_breaks,
    input_for,
    randomize_batchnorm,
    rounds_to,
    spec,
)

# variant: (exact params, GMACs, paper Table 2 millions or None, weight layers in Table 1)
VGGS = {
    "vgg11": (132_863_336, 7.609, 133, 11),
    "vgg13": (133_047_848, 11.308, 133, 13),
    "vgg16": (138_357_544, 15.470, 138, 16),
    "vgg19": (143_667_240, 19.632, 144, 19),
    "vgg11_bn": (132_868_840, 7.609, None, 11),
    "vgg13_bn": (133_053_736, 11.308, None, 13),
    "vgg16_bn": (138_365_992, 15.470, None, 16),
    "vgg19_bn": (143_678_248, 19.632, None, 19),
    "vgg11_lrn": (132_863_336, 7.609, 133, 11),  # A-LRN: LRN has no parameters
    "vgg16_c": (133_638_952, 11.771, 134, 16),
}
TORCHVISION = [v for v in VGGS if v not in ("vgg11_lrn", "vgg16_c")]
SMALL = 32  # input side for the shape and graph-break checks


@pytest.fixture(scope="module")
def built(request):
    """One model per variant, shared by the tests of that variant, with random batch-norm statistics
    (fresh ones, mean 0 and variance 1, would hide a wrong eps or a missing batch norm)."""
    variant = request.param
    model = randomize_batchnorm(spec("vgg").build(variant))
    return variant, model


@pytest.mark.parametrize("variant", VGGS)
def test_counts(variant):
    graph = spec("vgg").graph(variant)
    params, gmacs, paper, weight_layers = VGGS[variant]
    assert graph.params == params
    assert round(graph.macs / 1e9, 3) == gmacs
    if paper is not None:
        assert rounds_to(graph.params, paper)
    assert sum(op.op in ("conv", "linear") for op in graph.ops()) == weight_layers


def test_input_size_changes_no_parameters():
    s = spec("vgg")
    assert s.graph("vgg16", size=SMALL).params == s.graph("vgg16").params
    assert s.graph("vgg16", size=SMALL).modules()["features.30"].shape == (512, 1, 1)
    assert s.graph("vgg16").modules()["features.30"].shape == (512, 7, 7)


@pytest.mark.parametrize("built", fast_tier(TORCHVISION, {"vgg11"}), indirect=True)
def test_matches_torchvision(built):
    variant, model = built
    # Building the reference on the meta device skips its 138 M-parameter initialisation; strict loading
    # of our tensors (assign=True) gives it real ones, and assert_same_as_reference loads them back.
    with torch.device("meta"):
        reference = getattr(torchvision.models, variant)(weights=None)
    reference.load_state_dict(model.state_dict(), strict=True, assign=True)
    assert count_params(model) == count_params(reference) == VGGS[variant][0]
    assert_same_as_reference(model, reference, input_for(spec("vgg"), variant, batch=1))


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("built", VGGS, indirect=True)
def test_static_shapes_and_graph_breaks(built):
    variant, model = built
    s = spec("vgg")
    x = input_for(s, variant, batch=1, size=SMALL)
    assert_static_shapes(s, variant, model, x, size=SMALL)
    assert graph_breaks(model.eval(), x) == 0


def test_configuration_c_has_1x1_convs_in_stages_3_to_5():
    modules = spec("vgg").graph("vgg16_c").modules()
    kernels = [(op.args["kernel_size"], op.args["out_channels"]) for op in modules.values() if op.op == "conv"]
    # Table 1, column C: conv1-256, conv1-512, conv1-512 as the third conv of stages 3, 4 and 5
    assert kernels == [(3, 64), (3, 64), (3, 128), (3, 128), (3, 256), (3, 256), (1, 256),
                       (3, 512), (3, 512), (1, 512), (3, 512), (3, 512), (1, 512)]  # fmt: skip
    # D has the same layers with 3x3 kernels: each 1x1 saves 8 of 9 weights per filter
    d = spec("vgg").graph("vgg16").params
    assert d - spec("vgg").graph("vgg16_c").params == 8 * (256 * 256 + 512 * 512 + 512 * 512)


@pytest.mark.slow  # another VGG of 133 M parameters
@pytest.mark.parametrize("built", ["vgg11_lrn"], indirect=True)
def test_configuration_a_lrn(built):
    _, model = built
    graph = spec("vgg").graph("vgg11_lrn")
    modules = graph.modules()
    assert [modules[f"features.{i}"].op for i in range(4)] == ["conv", "relu", "lrn", "maxpool"]
    assert sum(op.op == "lrn" for op in graph.ops()) == 1
    # Section 2.2 / Krizhevsky et al.: n = 5, alpha = 1e-4, beta = 0.75, k = 2
    lrn = model.features[2]
    assert isinstance(lrn, torch.nn.LocalResponseNorm)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2)


def test_torchvision_numbering_of_features():
    # The state_dict keys torchvision's weights use: conv i at features.N, with BN after each conv for _bn.
    modules = spec("vgg").graph("vgg16_bn").modules()
    assert modules["features.0"].op == "conv" and modules["features.1"].op == "batchnorm"
    assert modules["features.40"].op == "conv" and modules["features.43"].op == "maxpool"
    assert len([m for m in modules if m.startswith("features.")]) == 44


def test_num_classes_is_a_factory_argument():
    s = spec("vgg")
    with torch.device("meta"):  # no need to initialise 129 M parameters to read the head
        model = s.build("vgg11", num_classes=10)
    assert model.classifier[6].out_features == 10
    assert s.graph("vgg11", num_classes=10).params == count_params(model)
