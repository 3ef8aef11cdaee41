"""ResNet's CIFAR-10 networks and its v1 bottleneck (He et al. 2015, Section 4.2 and Tables 1 and 6).

resnet20 ... resnet1202 use option A shortcuts (subsample and zero-pad the channels, no parameters);
resnet50_v1 is the paper's bottleneck with the stride in the first 1x1 conv (torchvision has v1.5).
"""


import ast

import pytest
import torch
import torch.nn.functional as F
import torchvision
from archtest import (
    assert_same_as_reference,
    assert_static_shapes,
    count_params,
    graph_breaks,
    input_for,
    randomize_batchnorm,
    rounds_to,
    run_deep_network,
    spec,
)
from torch import nn

# variant: (n blocks a stage, exact params, paper Table 6 in millions)
CIFAR = {
    "resnet20": (3, 269_722, 0.27),
    "resnet32": (5, 464_154, 0.46),
    "resnet44": (7, 658_586, 0.66),
    "resnet56": (9, 853_018, 0.85),
    "resnet110": (18, 1_727_962, 1.7),
    "resnet1202": (200, 19_421_274, 19.4),
}
SMALL = [v for v in CIFAR if v != "resnet1202"]  # resnet1202 has its own test below


@pytest.mark.parametrize("variant", CIFAR)
def test_cifar_counts(variant):
    n, params, paper = CIFAR[variant]
    graph = spec("resnet").graph(variant)
    assert graph.params == params == 97_216 * n - 21_926
    assert rounds_to(graph.params, paper)
    assert len([op for op in graph.ops() if op.op == "conv"]) + 1 == 6 * n + 2  # weighted layers: convs + fc


def test_option_a_shortcuts_have_no_parameters():
    graph = spec("resnet").graph("resnet20")
    assert not [name for name in graph.modules() if "downsample" in name]
    # the two downsampling blocks subsample and pad 16 -> 32 and 32 -> 64 channels, 8 on each side
    pads = [op for op in graph.ops() if op.op == "pad_channels"]
    assert [(op.in_shapes[0], op.shape) for op in pads] == [((16, 16, 16), (32, 16, 16)), ((32, 8, 8), (64, 8, 8))]
    assert [(op.args["before"], op.args["after"]) for op in pads] == [(8, 8), (16, 16)]
    assert sum(op.params for op in graph.ops() if op.op in ("subsample", "pad_channels")) == 0


class OptionABlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10's BasicBlock with option A, the port whose counts match Table 6."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if stride != 1 or in_planes != planes else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class OptionAResNet(nn.Module):
    """The same port's ResNet (its `linear` renamed `fc`)."""

    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for i, planes in enumerate([16, 32, 64]):
            blocks = []
            for stride in [1 if i == 0 else 2] + [1] * (n - 1):
                blocks.append(OptionABlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.fc(out.view(out.size(0), -1))




@pytest.mark.parametrize("variant", SMALL)
def test_cifar_static_shapes(variant):
    s = spec("resnet")
    model = s.build(variant)
    assert_static_shapes(s, variant, model, input_for(s, variant))


# The numerical check runs on the shallowest and a deep CIFAR variant (they share their classes).
@pytest.mark.parametrize("variant", ["resnet20", "resnet110"])
def test_cifar_matches_option_a_reference(variant):
    s = spec("resnet")
    model = s.build(variant)
    reference = randomize_batchnorm(OptionAResNet(CIFAR[variant][0]))
    assert count_params(model) == count_params(reference) == CIFAR[variant][1]
    assert_same_as_reference(model, reference, input_for(s, variant))


# A graph break comes from the code a forward runs, not from how often it runs it: the CIFAR variants differ
# only in the loop counts given to the same generated classes, so resnet20 runs every code path resnet1202
# does (tracing resnet1202 took 90 s, a fifth of this suite's traces), and resnet50_v1 runs the rest.
@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", ["resnet20", "resnet50_v1"])
def test_no_graph_breaks(variant):
    s = spec("resnet")
    assert graph_breaks(s.build(variant).eval(), input_for(s, variant, batch=1)) == 0


def test_resnet50_v1_counts():
    s = spec("resnet")
    v1, v1_5 = s.graph("resnet50_v1"), s.graph("resnet50")
    assert v1.params == v1_5.params == 25_557_032
    assert round(v1.macs / 1e9, 3) == 3.858  # Table 1 writes 3.8 x 10^9 multiply-adds
    assert round(v1_5.macs / 1e9, 3) == 4.089  # torchvision's figure
    # the stride moves from each downsampling block's 3x3 conv to its first 1x1 conv
    modules = v1.modules()
    assert modules["layer2.0.conv1"].args["stride"] == 2
    assert modules["layer2.0.conv2"].args["stride"] == 1


def test_resnet50_v1_static_shapes():
    s = spec("resnet")
    assert_static_shapes(s, "resnet50_v1", s.build("resnet50_v1"), input_for(s, "resnet50_v1", batch=1))


def test_resnet50_v1_matches_torchvision_with_the_stride_moved():
    s = spec("resnet")
    model = s.build("resnet50_v1")
    reference = randomize_batchnorm(torchvision.models.resnet50(weights=None))
    x = torch.randn(1, 3, 64, 64)  # the classes take any input size; 64 x 64 keeps the check cheap
    model.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        v1_5_output = reference.eval()(x)
    for block in reference.modules():
        if isinstance(block, torchvision.models.resnet.Bottleneck) and block.stride != 1:
            block.conv1.stride, block.conv2.stride = block.conv2.stride, block.conv1.stride
    assert_same_as_reference(model, reference, x)
    with torch.no_grad():
        assert (model(x) - v1_5_output).abs().max().item() > 1e-3  # v1 and v1.5 really differ


@pytest.mark.slow  # 1,202 layers
def test_resnet1202_compiles_builds_explains_and_runs(tmp_path, capsys):
    # 1202 layers, 600 blocks: checking, building, explaining (archc stats) and elaborating must not
    # recurse per layer: 150 frames above the caller are enough for resnet20 as for resnet1202 (~60 used).
    s, graph, model, stats, source = run_deep_network("resnet", "resnet1202", tmp_path, capsys)
    assert stats["totals"]["params"] == graph.params == count_params(model) == 19_421_274
    assert stats["totals"]["macs"] == graph.macs and len(stats["rows"]) == len(graph) - 1  # every op but the input
    assert len(graph.modules()) == 2 * 1201 + 2  # a conv and a batch norm per conv layer, pool and fc
    cifar = next(c for c in ast.parse(source).body if isinstance(c, ast.ClassDef) and c.name == "CifarResNet")
    assert "for i in range(n):" in source and cifar.end_lineno - cifar.lineno < 100  # loops, not 600 copies
