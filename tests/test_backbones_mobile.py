"""The mobile and scaled families as backbones: every variant of MobileNet V2/V3, MnasNet, EfficientNet (V1 and V2),
RegNet and ShuffleNet V2 has taps, and ``features_only=True`` gives timm's feature maps (the same channels and
reductions as timm's model of the same network, which timm names its own way) or, where timm has no such model,
the last map at each resolution of the paper's stages, as timm takes them from its nets. The maps are those the
full model computes at the tapped modules, and (slow tier) those torchvision's model computes there from the same
weights, exactly.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
import zoo
from archtest import randomize_batchnorm, spec
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import archc

SPECS = ["mobilenet", "mnasnet", "efficientnet", "regnet", "shufflenet"]

# variant: timm's model of the same network (timm's names differ; its *_tv RegNets are torchvision's widths, where
# timm's own differ)
TIMM = {
    "mobilenet_v2": "mobilenetv2_100",
    "mobilenet_v3_large": "mobilenetv3_large_100",
    "mobilenet_v3_small": "mobilenetv3_small_100",
    "mnasnet0_5": "mnasnet_050",
    "mnasnet0_75": "mnasnet_075",
    "mnasnet1_0": "mnasnet_100",
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
    **{f"efficientnet_v2_{s}": f"efficientnetv2_{s}" for s in "sml"},
    "regnet_x_400mf": "regnetx_004_tv",
    "regnet_x_800mf": "regnetx_008",
    "regnet_x_1_6gf": "regnetx_016",
    "regnet_x_3_2gf": "regnetx_032",
    "regnet_x_8gf": "regnetx_080",
    "regnet_x_16gf": "regnetx_160",
    "regnet_x_32gf": "regnetx_320",
    "regnet_y_400mf": "regnety_004",
    "regnet_y_800mf": "regnety_008_tv",
    "regnet_y_1_6gf": "regnety_016",
    "regnet_y_3_2gf": "regnety_032",
    "regnet_y_8gf": "regnety_080_tv",
    "regnet_y_16gf": "regnety_160",
    "regnet_y_32gf": "regnety_320",
    "regnet_y_128gf": "regnety_1280",
}
# variants timm has no model of: (channels, reductions) from the paper. MnasNet-1.3 (timm has alpha 1.4): the
# separable conv's and the stages' widths before each halving, as its other widths; ShuffleNet V2 (Table 5):
# conv1, the max pool and the three stages.
PAPER = {
    "mnasnet1_3": ([24, 32, 56, 128, 416], [2, 4, 8, 16, 32]),
    **{f"shufflenet_v2_{name}": ([24, 24, *widths], [2, 4, 8, 16, 32]) for name, widths in
       [("x0_5", [48, 96, 192]), ("x1_0", [116, 232, 464]), ("x1_5", [176, 352, 704]), ("x2_0", [244, 488, 976])]},
}
VARIANTS = [(name, v) for name in SPECS for v in spec(name).variants]
# the fast tier's: each network's smallest variants, the ones timm's *_tv RegNets stand for, and those without
# a timm model; the others (width and depth scaled) in the slow tier, where building them (ours and timm's, even
# on the meta device) adds 5 s
FAST = {"mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "mnasnet0_5", "mnasnet1_0", "mnasnet1_3",
        "efficientnet_b0", "efficientnet_v2_s", "regnet_x_400mf", "regnet_y_400mf", "regnet_y_800mf",
        *PAPER}
# one small variant per spec for the forward runs
SMALL = {"mobilenet": "mobilenet_v3_small", "mnasnet": "mnasnet0_5", "efficientnet": "efficientnet_b0",
         "regnet": "regnet_x_400mf", "shufflenet": "shufflenet_v2_x0_5"}
SIDE = 64


def graph_taps(s: archc.Spec, variant: str, **overrides) -> tuple[list[str], list[int], list[int]]:
    """The elaborated graph's taps: names, channels and reductions."""
    graph = s.graph(variant, **overrides)
    taps = list(graph.taps.values())
    return [t.name for t in taps], [graph.node(t.node).shape[0] for t in taps], [t.reduction for t in taps]


def expected(variant: str) -> tuple[list[int], list[int]]:
    """timm's channels and reductions for the variant (built on the meta device), or the paper's."""
    if variant in PAPER:
        return PAPER[variant]
    with torch.device("meta"):
        info = timm.create_model(TIMM[variant], features_only=True, pretrained=False).feature_info
    return info.channels(), info.reduction()


def test_every_variant_is_compared():
    assert {v for _, v in VARIANTS} == set(TIMM) | set(PAPER)
    assert not set(TIMM) & set(PAPER)
    models = set(timm.list_models())
    assert set(TIMM.values()) <= models and not set(PAPER) & models


@pytest.mark.parametrize(("name", "variant"), [
    (name, v) if v in FAST else pytest.param(name, v, marks=pytest.mark.slow) for name, v in VARIANTS])
def test_the_taps_are_timms(name, variant):
    """Channels and reductions as timm's features_only model (or the paper) has them, and the graph's too."""
    with torch.device("meta"):
        ours = archc.create_model(variant, features_only=True)
    info = ours.feature_info
    assert (info.channels(), info.reduction()) == expected(variant)
    assert (info.module_name(), info.channels(), info.reduction()) == graph_taps(spec(name), variant)


def test_a_moved_tap_is_caught(tmp_path):
    """The comparison above can fail: MnasNet's taps after each downsampling stage instead of before it."""
    before = '''                tap "{i + 7}"
                "{i + 8}" = seq {
                    for j in range(repeats) { InvertedResidual(width, kernel, 2 if j == 0 else 1, expansion) }
                }
'''
    after = '''                "{i + 8}" = seq {
                    for j in range(repeats) { InvertedResidual(width, kernel, 2 if j == 0 else 1, expansion) }
                }
                tap "{i + 8}"
'''
    mutant = zoo.mutated_spec("mnasnet", before, after, tmp_path)
    names, channels, reductions = graph_taps(mutant, "mnasnet1_0")
    assert names == ["layers.8", "layers.9", "layers.10", "layers.12", "layers.13"]
    assert (channels, reductions) != expected("mnasnet1_0")
    assert channels == [24, 40, 80, 192, 320] and reductions == [4, 8, 16, 32, 32]


def tapped_outputs(model: nn.Module, names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    """What the full model's forward computes at the tapped modules (copied: a later layer may work in place)."""
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(lambda m, i, out, n=n: seen.setdefault(n, out.clone()))
               for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return [seen[n] for n in names]


@pytest.mark.parametrize("name", SPECS)
def test_the_maps_are_the_full_models(name):
    """A backbone given the full model's weights returns what the full model computes at the tapped modules,
    with the graph's shapes at 64 x 64, and timm's model's."""
    variant = SMALL[name]
    torch.manual_seed(0)
    full = randomize_batchnorm(archc.create_model(variant)).eval()
    ours = archc.create_model(variant, features_only=True).eval()
    missing, unexpected = ours.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.split(".")[0] in ("fc", "classifier", "conv5") for k in unexpected)
    x = torch.randn(1, 3, SIDE, SIDE)
    with torch.no_grad():
        maps = ours(x)
    graph = spec(name).graph(variant, size=SIDE)
    names = list(graph.taps)
    shapes = [(1, *graph.node(t.node).shape) for t in graph.taps.values()]
    assert [tuple(m.shape) for m in maps] == shapes
    assert shapes == [(1, c, SIDE // r, SIDE // r) for c, r in zip(ours.feature_info.channels(),
                                                                     ours.feature_info.reduction())]
    if variant in TIMM:
        with torch.no_grad():
            theirs = timm.create_model(TIMM[variant], features_only=True, pretrained=False).eval()(x)
        assert [m.shape for m in maps] == [m.shape for m in theirs]
    for mine, theirs, tap in zip(maps, tapped_outputs(full, names, x), names):
        assert torch.equal(mine, theirs), tap


# variant: its spec (torchvision's model of the same name is the reference; at 64 x 64 the last tap is 2 x 2)
TORCHVISION = {"mobilenet_v2": "mobilenet", "mobilenet_v3_large": "mobilenet", "mobilenet_v3_small": "mobilenet",
               "mnasnet1_0": "mnasnet", "efficientnet_b0": "efficientnet", "efficientnet_v2_s": "efficientnet",
               "regnet_x_400mf": "regnet", "regnet_y_400mf": "regnet", "shufflenet_v2_x1_0": "shufflenet"}


@pytest.mark.slow  # nine backbones, each built twice and run at 64 x 64
@pytest.mark.parametrize("variant", TORCHVISION)
def test_the_feature_maps_are_torchvisions(variant):
    """Given torchvision's weights (random, the batch norms' statistics randomised), the feature maps equal those
    torchvision computes at the modules of the same names, exactly."""
    torch.manual_seed(0)
    reference = randomize_batchnorm(torchvision.models.get_model(variant)).eval()
    ours = archc.create_model(variant, features_only=True).eval()
    missing, unexpected = ours.load_state_dict(reference.state_dict(), strict=False)
    assert not missing and all(k.split(".")[0] in ("fc", "classifier", "conv5") for k in unexpected)
    names = ours.feature_info.module_name()
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        expected_maps = create_feature_extractor(reference, return_nodes=names)(x)
        got = ours(x)
    assert len(got) == len(expected_maps) == 5
    for mine, (node, theirs) in zip(got, expected_maps.items()):
        assert torch.equal(mine, theirs), node
