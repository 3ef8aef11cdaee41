"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks", Table 4).

Reference: timm's ResNetV2 (pre-activation bottlenecks whose projection reads the pre-activated input)
with the stem each spec network documents; timm has no CIFAR stem and no BN in its ImageNet stem.
"""

import re
from collections import OrderedDict

import pytest
import torch
from archtest import (
    assert_static_shapes,
    count_params,
    graph_breaks,
    input_for,
    randomize_batchnorm,
    rounds_to,
    run_deep_network,
    spec,
)
from timm.layers import BatchNormAct2d, create_conv2d
from timm.models.resnetv2 import ResNetV2
from torch import nn

# variant: (exact params, layers a stage)
PREACT = {
    "preact_resnet164": (1_703_258, [18, 18, 18]),
    "preact_resnet1001": (10_327_706, [111, 111, 111]),
    "preact_resnet200": (64_666_280, [3, 24, 36, 3]),
}


@pytest.mark.parametrize("variant", PREACT)
def test_counts(variant):
    params, layers = PREACT[variant]
    graph = spec("preact_resnet").graph(variant)
    assert graph.params == params
    convs = [op for op in graph.ops() if op.op == "conv" and "downsample" not in op.name]
    assert len(convs) + 1 == int(variant.removeprefix("preact_resnet")) == 3 * sum(layers) + 2


@pytest.mark.parametrize(("variant", "paper"), [("preact_resnet164", 1.7), ("preact_resnet1001", 10.2)])
def test_paper_table_4(variant, paper):
    # Table 4's figures are the conv and fc weights: ResNet-1001's 10,327,706 parameters round to 10.3 M,
    # its 10,178,490 without batch norm's scales and shifts to the table's 10.2 M.
    graph = spec("preact_resnet").graph(variant)
    weights = sum(op.params for op in graph.ops() if op.op != "batchnorm")
    assert rounds_to(weights, paper)
    assert rounds_to(graph.params, paper) == (variant == "preact_resnet164")


def test_convention():
    s = spec("preact_resnet")
    cifar, imagenet = s.graph("preact_resnet164").modules(), s.graph("preact_resnet200").modules()
    # every unit pre-activates; the CIFAR conv has no BN of its own, the ImageNet stem has one (128 params)
    assert "bn1" not in cifar and cifar["layer1.0.bn1"].in_shapes[0] == (16, 32, 32)
    assert imagenet["bn1"].params == 128 and imagenet["layer1.0.bn1"].in_shapes[0] == (64, 56, 56)
    # projections are bare 1x1 convs (no bias, no BN), one a stage; the network ends with BN-ReLU
    for modules in (cifar, imagenet):
        projections = {name: op for name, op in modules.items() if "downsample" in name}
        assert all(op.op == "conv" and op.args["kernel_size"] == 1 for op in projections.values())
        assert not any(op.args["bias"] for op in projections.values())
        stages = {name.split(".")[0] for name in modules if name.startswith("layer")}
        assert sorted(name.split(".")[:2] for name in projections) == [[stage, "0"] for stage in sorted(stages)]
        assert modules["bn"].op == "batchnorm" and list(modules)[-2:] == ["avgpool", "fc"]


def timm_reference(variant: str) -> nn.Module:
    _, layers = PREACT[variant]
    norm = dict(conv_layer=create_conv2d, norm_layer=BatchNormAct2d)
    if len(layers) == 3:  # CIFAR: timm's stages and head on the paper's 3x3 conv
        model = ResNetV2(layers, channels=(64, 128, 256), num_classes=10, stem_chs=16, **norm)
        model.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 16, 3, padding=1, bias=False)))
    else:  # ImageNet: the stem gets the BN-ReLU of the MXNet ResNet-200 that the count comes from
        model = ResNetV2(layers, **norm)
        model.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            norm=BatchNormAct2d(64),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        ))
    return randomize_batchnorm(model, spread=0.2).eval()  # outputs depend on each batch norm


def from_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ResNetV2 keys -> the spec's torchvision-style keys."""
    ours = {}
    for key, value in state.items():
        key = key.replace("stem.conv.", "conv1.").replace("stem.norm.", "bn1.")
        if m := re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)", key):
            rest = re.sub(r"^norm(\d)\.", r"bn\1.", m[3]).replace("downsample.conv.", "downsample.0.")
            key = f"layer{int(m[1]) + 1}.{m[2]}.{rest}"
        key = re.sub(r"^norm\.", "bn.", key).replace("head.fc.", "fc.")
        ours[key] = value.flatten(1) if key == "fc.weight" else value
    return ours


@pytest.mark.parametrize(("variant", "size"), [("preact_resnet164", 32),
                                             pytest.param("preact_resnet200", 64, marks=pytest.mark.slow)])
def test_matches_timm_resnetv2(variant, size):
    # preact_resnet200 runs at 64 x 64: the classes take any size and the check stays cheap
    model = spec("preact_resnet").build(variant)
    reference = timm_reference(variant)
    assert count_params(model) == count_params(reference) == PREACT[variant][0]
    model.load_state_dict(from_timm(reference.state_dict()), strict=True)
    model.eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4 * theirs.abs().max().item()


def test_identity_shortcut_reads_the_raw_input():
    # a unit without projection adds its input before the pre-activation: zeroing conv3 makes it the identity
    unit = spec("preact_resnet").build("preact_resnet164").layer1[1].eval()
    with torch.no_grad():
        unit.conv3.weight.zero_()
        x = torch.randn(2, 64, 32, 32)
        assert torch.equal(unit(x), x)


@pytest.mark.parametrize(("variant", "batch"), [("preact_resnet164", 2),
                                              pytest.param("preact_resnet200", 1, marks=pytest.mark.slow)])
def test_static_shapes(variant, batch):
    s = spec("preact_resnet")
    assert_static_shapes(s, variant, s.build(variant), input_for(s, variant, batch=batch))


# One variant per code path: preact_resnet1001 runs the classes of preact_resnet164 with other loop counts
# (its trace took 70 s), preact_resnet200 the ImageNet stem and stages.
@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", ["preact_resnet164", "preact_resnet200"])
def test_no_graph_breaks(variant):
    s = spec("preact_resnet")
    assert graph_breaks(s.build(variant).eval(), input_for(s, variant, batch=1)) == 0


@pytest.mark.slow  # 1,001 layers
def test_preact_resnet1001_compiles_builds_explains_and_runs(tmp_path, capsys):
    # 1001 layers, 333 units: nothing may recurse per layer (~60 frames suffice, as for preact_resnet164)
    s, graph, model, stats, source = run_deep_network("preact_resnet", "preact_resnet1001", tmp_path, capsys)
    assert stats["totals"]["params"] == graph.params == count_params(model) == 10_327_706
    assert stats["totals"]["macs"] == graph.macs and len(stats["rows"]) == len(graph) - 1  # every op but the input
    assert "for i in range(n):" in source and source.count("\n") < 1000  # loops, not 333 copies
