"""ResNet-18 ... 152 against torchvision and the paper (He et al. 2015, Table 1)."""

import pytest
import torchvision
from archtest import (
    assert_same_as_reference,
    assert_static_shapes,
    count_params,
    graph_breaks,
    input_for,
    spec,
)

# variant: (torchvision params, torchvision GMACs, paper Table 1 GFLOPs)
RESNETS = {
    "resnet18": (11_689_512, 1.814, 1.8),
    "resnet34": (21_797_672, 3.664, 3.6),
    "resnet50": (25_557_032, 4.089, 3.8),
    "resnet101": (44_549_160, 7.801, 7.6),
    "resnet152": (60_192_808, 11.514, 11.3),
}


@pytest.mark.parametrize("variant", RESNETS)
def test_counts(variant):
    graph = spec("resnet").graph(variant)
    params, gmacs, _ = RESNETS[variant]
    assert graph.params == params
    assert round(graph.macs / 1e9, 3) == gmacs


@pytest.mark.parametrize("variant", RESNETS)
def test_matches_torchvision(variant):
    s = spec("resnet")
    model = s.build(variant)
    reference = getattr(torchvision.models, variant)(weights=None)
    assert count_params(model) == RESNETS[variant][0]
    assert_same_as_reference(model, reference, input_for(s, variant))


@pytest.mark.parametrize("variant", RESNETS)
def test_static_shapes_and_graph_breaks(variant):
    s = spec("resnet")
    model = s.build(variant)
    x = input_for(s, variant)
    assert_static_shapes(s, variant, model, x)
    assert graph_breaks(model.eval(), x) == 0


def test_num_classes_is_a_factory_argument():
    s = spec("resnet")
    model = s.build("resnet50", num_classes=10)
    assert model.fc.out_features == 10
    assert s.graph("resnet50", num_classes=10).params == count_params(model)


def test_v1_5_stride_sits_in_the_3x3_conv():
    graph = spec("resnet").graph("resnet50")
    modules = graph.modules()
    assert modules["layer2.0.conv1"].args["stride"] == 1
    assert modules["layer2.0.conv2"].args["stride"] == 2


@pytest.mark.parametrize("variant", ["resnet18", "resnet50"])
def test_training_step_matches_torchvision(variant):
    """The residual adds in place (``out += identity``) as torchvision does: autograd must accept it and
    give torchvision's gradients and batch-norm statistics."""
    import torch

    s = spec("resnet")
    torch.manual_seed(0)
    model = s.build(variant)
    reference = getattr(torchvision.models, variant)(weights=None)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    for m in (model, reference):
        m.train()(x).square().mean().backward()
    assert "out += identity" in s.source()
    for (name, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(ours, theirs, atol=1e-6), name  # running statistics updated alike
    for (name, ours), theirs in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-6, rtol=1e-4), name
