"""ResNet-18 ... 152 against torchvision and the paper (He et al. 2015, Table 1); ResNeXt (Xie et al. 2016) and
Wide ResNet (Zagoruyko and Komodakis 2016) against torchvision and theirs."""

import pytest
import torchvision
import zoo
from archtest import count_params, rounds_to, spec

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


# torchvision's ResNeXt and Wide ResNet: (groups, width_per_group), the bottleneck's 3x3 conv has `groups` paths
# of width_per_group * planes / 64 channels.
GROUPED = {
    "resnext50_32x4d": (32, 4),
    "resnext101_32x8d": (32, 8),
    "resnext101_64x4d": (64, 4),
    "wide_resnet50_2": (1, 128),
    "wide_resnet101_2": (1, 128),
}
TORCHVISION = [*RESNETS, *GROUPED]
# torch.compile graph breaks (a dynamo trace, most of a whole-network test's time) for one variant per code path:
# the others pass other integers to the same generated classes (ResNet with BasicBlock or Bottleneck, ResNeXt).
TRACED = {"resnet18", "resnet50", "resnext50_32x4d"}


@pytest.mark.parametrize("variant", TORCHVISION)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("resnet", variant)


@pytest.mark.slow
@pytest.mark.parametrize("variant", TORCHVISION)
def test_matches_torchvision(variant):
    """Strict loading, equal outputs, static shapes (and no graph breaks), on one model at 33 x 33
    (wide_resnet101_2, 127 M parameters: parameter shapes on the meta device)."""
    zoo.assert_matches_torchvision("resnet", variant, breaks=variant in TRACED)


@pytest.mark.parametrize("variant", GROUPED)
def test_grouped_and_widened_bottlenecks(variant):
    groups, width_per_group = GROUPED[variant]
    modules = spec("resnet").graph(variant).modules()
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        width = int(planes * (width_per_group / 64)) * groups
        block = f"layer{stage}.0"
        assert modules[f"{block}.conv1"].shape[0] == modules[f"{block}.conv2"].shape[0] == width
        assert modules[f"{block}.conv2"].args["groups"] == groups
        assert modules[f"{block}.conv2"].args["stride"] == (1 if stage == 1 else 2)
        assert modules[f"{block}.conv3"].shape[0] == planes * 4


def test_resnext_and_wide_resnet_papers():
    graph = spec("resnet").graph
    # ResNeXt Table 1: ResNet-50 4.1 GFLOPs, ResNeXt-50 (32x4d) 25.0 M parameters and 4.2 GFLOPs, about the same
    # cost (the table's 25.5 M for ResNet-50 truncates its 25.56 M)
    assert rounds_to(graph("resnet50").macs, 4.1, unit=1e9)
    assert rounds_to(graph("resnext50_32x4d").params, 25.0) and rounds_to(graph("resnext50_32x4d").macs, 4.2, unit=1e9)
    # Wide ResNet's ImageNet results: WRN-50-2-bottleneck, 68.9 M parameters
    assert rounds_to(graph("wide_resnet50_2").params, 68.9)


def test_basic_block_takes_no_groups():
    """torchvision's BasicBlock raises for groups != 1 (and for dilation); ours has no such parameter, and ResNet
    passes them to its blocks only where they are not the defaults, so resnet18 refuses them and resnet50 takes
    them, as torchvision's do."""
    from archc.models.resnet import resnet18

    params = {b: [p.name for p in spec("resnet").program.blocks[b].params] for b in ("BasicBlock", "Bottleneck")}
    assert params == {"BasicBlock": ["planes", "stride", "norm_layer"],
                      "Bottleneck": ["planes", "stride", "expansion", "groups", "base_width", "norm_layer", "dilation"]}
    assert {"groups", "width_per_group"} <= {p.name for p in spec("resnet").program.networks["ResNet"].params}
    with pytest.raises(TypeError, match="BasicBlock.* unexpected keyword argument 'groups'"):
        resnet18(groups=2)


# Mutations of the grouped bottleneck that compile: the comparison must fail for each.
MUTATIONS = {
    "conv2 ungrouped": ("dilation = dilation, groups = groups, bias = false)", "dilation = dilation, bias = false)"),
    "layer3 not strided": ("Bottleneck(256, s3 if i == 0 else 1, groups", "Bottleneck(256, 1, groups"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    why = zoo.assert_mutation_fails("resnet", "resnext50_32x4d", *MUTATIONS[mutation], tmp_path)
    if mutation == "conv2 ungrouped":
        assert "strict load failed" in why and "layer1.0.conv2.weight" in why
    else:
        assert "output" in why or "max difference" in why


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


@pytest.mark.slow
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
