"""The classic networks as backbones (issue 21): the taps of AlexNet, VGG, NIN, GoogLeNet, Inception-v4 and the
Inception-ResNets, SqueezeNet, ConvNeXt, the pre-activation ResNets and RepVGG. Where timm has the model, its
``features_only`` maps (channels, reductions, module names where our layout is timm's); elsewhere the paper's
stages, each the last map at a resolution, as timm takes them for VGG, Inception and ResNet. The fast checks
build on the meta device; the slow ones compare the maps with what the full model computes at those points.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from archtest import SPECS, randomize_batchnorm, spec
from torch import nn

import archc

# every variant of these specs that has taps: its spec, and whether the fast tier builds it (the rest in slow)
VARIANTS = {
    **{v: ("vgg", True) for v in ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn",
                                  "vgg19_bn", "vgg11_lrn", "vgg16_c"]},
    "alexnet": ("alexnet", True), "alexnet_paper": ("alexnet", True),
    "nin_cifar10": ("nin", True), "nin_cifar100": ("nin", True), "nin_imagenet": ("nin", True),
    "googlenet": ("googlenet", True), "googlenet_paper": ("googlenet", True),
    "inception_v4": ("inception_v4", True), "inception_resnet_v2": ("inception_v4", True),
    "inception_resnet_v1": ("inception_v4", True),
    "squeezenet1_0": ("squeezenet", True), "squeezenet1_1": ("squeezenet", True),
    "convnext_tiny": ("convnext", True),
    **{v: ("convnext", False) for v in ["convnext_small", "convnext_base", "convnext_large"]},
    "preact_resnet164": ("preact_resnet", True), "preact_resnet1001": ("preact_resnet", False),
    "preact_resnet200": ("preact_resnet", True),
    "repvgg_a0": ("repvgg", True), "repvgg_b1g4": ("repvgg", True),
    **{v: ("repvgg", False) for v in ["repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1", "repvgg_b2",
                                      "repvgg_b2g4", "repvgg_b3", "repvgg_b3g4"]},
}

# timm has these under the same name: their taps are timm's channels and reductions; the names are timm's but
# for ConvNeXt, whose layout (and so its module names, features.1 ... features.7) is torchvision's
IN_TIMM = {v for v in VARIANTS if v.startswith(("vgg1", "convnext", "repvgg")) and v not in ("vgg11_lrn", "vgg16_c")}
IN_TIMM |= {"inception_v4", "inception_resnet_v2"}
TIMM_NAMES = IN_TIMM - {v for v in IN_TIMM if v.startswith("convnext")}

# the others: the paper's stages, the map before each downsampling and at the end (names, channels, reductions)
PAPER = {
    # timm's VGG points in the columns timm lacks: the ReLU before each max pool, and the last pool
    "vgg11_lrn": ([f"features.{i}" for i in (2, 5, 10, 15, 20, 21)], [64, 128, 256, 512, 512, 512],
                  [1, 2, 4, 8, 16, 32]),
    "vgg16_c": ([f"features.{i}" for i in (3, 8, 15, 22, 29, 30)], [64, 128, 256, 512, 512, 512],
                [1, 2, 4, 8, 16, 32]),
    # the same points: conv1 (stride 4), conv2, conv5 and the last pool
    "alexnet": (["features.1", "features.4", "features.11", "features.12"], [64, 192, 256, 256], [4, 8, 16, 32]),
    "alexnet_paper": (["norm1", "norm2", "conv5", "pool5"], [96, 256, 256, 256], [4, 8, 16, 32]),
    # each mlpconv layer, the last one's maps the class maps
    "nin_cifar10": (["mlpconv1", "mlpconv2", "mlpconv3"], [96, 192, 10], [1, 2, 4]),
    "nin_cifar100": (["mlpconv1", "mlpconv2", "mlpconv3"], [96, 192, 100], [1, 2, 4]),
    "nin_imagenet": (["mlpconv1", "mlpconv2", "mlpconv3", "mlpconv4"], [96, 256, 384, 1000], [4, 8, 16, 32]),
    # before each max pool and at the end, as timm's Inception-v3
    "googlenet": (["conv1", "conv3", "inception3b", "inception4e", "inception5b"], [64, 192, 480, 832, 1024],
                  [2, 4, 8, 16, 32]),
    "googlenet_paper": (["conv1", "lrn2", "inception3b", "inception4e", "inception5b"], [64, 192, 480, 832, 1024],
                        [2, 4, 8, 16, 32]),
    # Inception-ResNet-v2's points in v1
    "inception_resnet_v1": (["conv2d_2b", "conv2d_4a", "repeat_1", "repeat_2", "block8"],
                            [64, 192, 256, 896, 1792], [2, 4, 8, 16, 32]),
    "squeezenet1_0": (["features.1", "features.5", "features.10", "features.12"], [96, 256, 512, 512],
                      [2, 4, 8, 16]),
    "squeezenet1_1": (["features.1", "features.4", "features.7", "features.12"], [64, 128, 256, 512], [2, 4, 8, 16]),
    # the stages, as the CIFAR and ImageNet ResNets' (timm's ResNetV2 also taps before the last BN-ReLU)
    "preact_resnet164": (["layer1", "layer2", "layer3"], [64, 128, 256], [1, 2, 4]),
    "preact_resnet1001": (["layer1", "layer2", "layer3"], [64, 128, 256], [1, 2, 4]),
    "preact_resnet200": (["act1", "layer1", "layer2", "layer3", "layer4"], [64, 256, 512, 1024, 2048],
                         [2, 4, 8, 16, 32]),
}


def tiered(variants):
    return [v if VARIANTS[v][1] else pytest.param(v, marks=pytest.mark.slow) for v in variants]


def features_info(variant: str):
    with torch.device("meta"):
        info = archc.create_model(variant, features_only=True).feature_info
    return info.module_name(), info.channels(), info.reduction()


def graph_taps(graph):
    taps = list(graph.taps.values())
    return [t.name for t in taps], [graph.node(t.node).shape[0] for t in taps], [t.reduction for t in taps]


def timm_info(variant: str):
    with torch.device("meta"):
        info = timm.create_model(variant, features_only=True, pretrained=False).feature_info
    return info.module_name(), info.channels(), info.reduction()


def assert_taps_are_timms(taps, variant: str) -> None:
    names, channels, reductions = timm_info(variant)
    assert (taps[1], taps[2]) == (channels, reductions)
    if variant in TIMM_NAMES:
        assert taps[0] == names


def test_every_variant_is_covered():
    """Every variant of these specs but the two ensembles (whose members are networks of their own) has taps."""
    specs = {s for s, _ in VARIANTS.values()}
    every = {v for s in specs for v in spec(s).variants}
    assert every - set(VARIANTS) == {"vgg16_vgg19_ensemble", "googlenet_ensemble"}
    assert set(VARIANTS) == IN_TIMM | set(PAPER)
    assert IN_TIMM <= set(timm.list_models()) and not set(PAPER) & set(timm.list_models())


@pytest.mark.parametrize("variant", tiered(sorted(IN_TIMM)))
def test_the_taps_are_timms(variant):
    """The model's feature_info, the elaborated graph's taps and timm's features_only model agree."""
    ours = features_info(variant)
    assert ours == graph_taps(spec(VARIANTS[variant][0]).graph(variant))
    assert_taps_are_timms(ours, variant)


@pytest.mark.parametrize("variant", tiered(sorted(PAPER)))
def test_the_taps_are_the_papers_stages(variant):
    ours = features_info(variant)
    assert ours == graph_taps(spec(VARIANTS[variant][0]).graph(variant))
    assert ours == PAPER[variant]


def test_a_moved_tap_is_caught():
    """The comparison can fail: VGG's taps after each max pool instead of before it are not timm's."""
    text = (SPECS / "vgg.arch").read_text()
    old = 'tap "{index - 1}"\n                "{index}" = maxpool(2, stride = 2)'
    assert old in text
    moved = text.replace(old, '"{index}" = maxpool(2, stride = 2)\n                tap "pool{index}"')
    taps = graph_taps(archc.load(SPECS / "vgg.arch", text=moved).graph("vgg11"))
    assert taps[1] == timm_info("vgg11")[1]  # the same channels, but halved maps and other names
    with pytest.raises(AssertionError):
        assert_taps_are_timms(taps, "vgg11")


def materialized(model: nn.Module) -> nn.Module:
    """A model built on the meta device, given memory and (for shapes only) arbitrary weights on the CPU: faster
    than initialising the layers it drops (VGG's classifier alone has 120 M parameters)."""
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights that keep the activations' scale (tiny ones would run at denormal speed)
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0, (p[0].numel()) ** -0.5, generator=generator)
            else:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
        for b in model.buffers():
            b.zero_()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.reset_running_stats()
    return model.eval()


# one variant per spec, run for real at a small input (about the smallest the network takes)
FORWARD = {"alexnet": 63, "vgg11_bn": 32, "nin_cifar10": 8, "googlenet": 32, "inception_v4": 75,
           "squeezenet1_1": 32, "convnext_tiny": 32, "preact_resnet164": 8, "repvgg_a0": 32}


@pytest.mark.parametrize("variant", FORWARD)
def test_the_maps_have_the_graphs_and_timms_shapes(variant):
    side = FORWARD[variant]
    with torch.device("meta"):
        model = archc.create_model(variant, features_only=True)
    with torch.no_grad():
        maps = materialized(model)(torch.randn(1, 3, side, side))
    shapes = [tuple(m.shape) for m in maps]
    graph = spec(VARIANTS[variant][0]).graph(variant, input_size=side)
    assert shapes == [(1, *graph.node(t.node).shape) for t in graph.taps.values()]
    assert [s[1] for s in shapes] == model.feature_info.channels()
    if variant in IN_TIMM:
        with torch.device("meta"):
            theirs = timm.create_model(variant, features_only=True, pretrained=False).eval()
            assert shapes == [tuple(m.shape) for m in theirs(torch.empty(1, 3, side, side))]


def test_out_indices_pick_the_maps():
    with torch.device("meta"):
        model = archc.create_model("repvgg_a0", features_only=True, out_indices=(1, -1))
        maps = model(torch.empty(1, 3, 64, 64))
    assert model.feature_info.module_name() == ["stages.0", "final_conv"]
    assert [tuple(m.shape) for m in maps] == [(1, 48, 16, 16), (1, 1280, 2, 2)]
    assert not hasattr(model, "head")


# ------------------------------------------------------------------ slow: the maps themselves

# variant: (input side, the reference model, the points in it whose output is each tap's map; "<name": the
# input of that module, where the map is no module's output). "torchvision" and "timm": their model of that
# name; "archc": the spec's own full network, its head kept, loaded with the same weights.
REFERENCES = {
    "vgg11": (32, "torchvision", [f"features.{i}" for i in (1, 4, 9, 14, 19, 20)]),
    "vgg16_bn": (32, "torchvision", [f"features.{i}" for i in (5, 12, 22, 32, 42, 43)]),
    "vgg11_lrn": (32, "archc", [f"features.{i}" for i in (2, 5, 10, 15, 20, 21)]),
    "vgg16_c": (32, "archc", [f"features.{i}" for i in (3, 8, 15, 22, 29, 30)]),
    "alexnet": (63, "torchvision", ["features.1", "features.4", "features.11", "features.12"]),
    "alexnet_paper": (67, "archc", ["norm1", "norm2", "<pool5", "pool5"]),
    "nin_cifar10": (32, "archc", ["mlpconv1", "mlpconv2", "mlpconv3"]),
    "nin_imagenet": (67, "archc", ["mlpconv1", "mlpconv2", "mlpconv3", "mlpconv4"]),
    "googlenet": (64, "torchvision", ["conv1", "conv3", "inception3b", "inception4e", "inception5b"]),
    "googlenet_paper": (64, "archc", ["conv1", "lrn2", "inception3b", "inception4e", "inception5b"]),
    "inception_v4": (75, "timm", ["features.2", "features.3", "features.9", "features.17", "features.21"]),
    "inception_resnet_v2": (75, "timm", ["conv2d_2b", "conv2d_4a", "repeat", "repeat_1", "conv2d_7b"]),
    "inception_resnet_v1": (75, "archc", ["conv2d_2b", "conv2d_4a", "repeat_1", "repeat_2", "block8"]),
    "squeezenet1_0": (64, "torchvision", ["features.1", "features.5", "features.10", "features.12"]),
    "squeezenet1_1": (64, "torchvision", ["features.1", "features.4", "features.7", "features.12"]),
    "convnext_tiny": (64, "torchvision", ["features.1", "features.3", "features.5", "features.7"]),
    "preact_resnet164": (16, "archc", ["layer1", "layer2", "layer3"]),
    "preact_resnet200": (64, "archc", ["<maxpool", "layer1", "layer2", "layer3", "layer4"]),
    "repvgg_a0": (64, "timm", ["stem", "stages.0", "stages.1", "stages.2", "final_conv"]),
    "repvgg_b1g4": (64, "timm", ["stem", "stages.0", "stages.1", "stages.2", "final_conv"]),
}


def reference_model(variant: str, kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "torchvision":
        model = torchvision.models.get_model(variant, **({"init_weights": True} if variant == "googlenet" else {}))
    elif kind == "timm":
        model = timm.create_model(variant, pretrained=False)
    else:
        model = archc.create_model(variant)
    return randomize_batchnorm(model).eval()


class _Done(Exception):
    pass


def maps_at(model: nn.Module, x: torch.Tensor, points: list[str]) -> list[torch.Tensor]:
    """The tensors at those points of one forward pass, copied as they are made (a later in-place op would
    change them); the pass stops at the last (a head may need a larger input than the maps do)."""
    modules = dict(model.named_modules())
    found: dict[str, torch.Tensor] = {}

    def keep(point: str, tensor: torch.Tensor) -> None:
        found[point] = tensor.clone()
        if len(found) == len(points):
            raise _Done

    handles = [modules[p[1:]].register_forward_pre_hook(lambda m, inputs, p=p: keep(p, inputs[0]))
               if p.startswith("<") else
               modules[p].register_forward_hook(lambda m, inputs, output, p=p: keep(p, output))
               for p in points]
    try:
        with torch.no_grad(), pytest.raises(_Done):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return [found[p] for p in points]


@pytest.mark.slow  # twenty models built with their weights and run twice
@pytest.mark.parametrize("variant", REFERENCES)
def test_the_maps_are_the_full_models(variant):
    """Given the reference's weights (the norms' statistics randomised), the backbone's maps equal those the
    full model computes at the tap points; for torchvision's and timm's models, exactly."""
    side, kind, points = REFERENCES[variant]
    reference = reference_model(variant, kind)
    with torch.device("meta"):  # the weights all come from the reference
        ours = archc.create_model(variant, features_only=True)
        dropped = set(archc.create_model(variant).state_dict()) - set(ours.state_dict())
    ours = ours.to_empty(device="cpu").eval()
    assert {name for name, _ in ours.named_buffers()} <= set(ours.state_dict())  # loaded too
    missing, unexpected = ours.load_state_dict(reference.state_dict(), strict=False)
    assert not missing
    assert kind != "archc" or set(unexpected) == dropped  # only the head is left out
    torch.manual_seed(1)
    x = torch.randn(2, 3, side, side)
    torch.set_flush_denormal(True)  # small default weights make tiny activations: denormals would be slow
    try:
        expected = maps_at(reference, x, points)
        with torch.no_grad():
            got = ours(x)
    finally:
        torch.set_flush_denormal(False)
    assert len(got) == len(expected)
    for point, mine, theirs in zip(points, got, expected):
        assert mine.shape == theirs.shape, point
        assert torch.equal(mine, theirs), f"{point}: max difference {(mine - theirs).abs().max()}"
