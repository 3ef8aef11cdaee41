"""The token models as backbones: every variant of DeiT, CaiT, XCiT, MLP-Mixer, ResMLP and gMLP taps each block's
output, and ``features_only=True`` gives what timm's ``forward_intermediates`` gives: each block's tokens, the
class token dropped, as an N x D x h x w map of the patch grid, with timm's ``feature_info`` (channels,
reductions and module names ``blocks.0`` ...); PVT v2's four stages likewise; torchvision's ViT each encoder
layer's tokens, named by torchvision's module paths. Also: every shipped backbone builds with ``features_only``,
and which shipped models are not backbones.
"""

from __future__ import annotations

import pytest
import timm
import torch
from archtest import fast_tier

import archc

SPECS = ["deit", "cait", "xcit", "mlp_mixer", "resmlp", "gmlp", "pvt_v2"]
# every variant of these is timm's model of the same name
VARIANTS = [v for name in SPECS for v in archc.list_models(module=name)]
FAST = {"deit_tiny_patch16_224", "cait_xxs24_224", "xcit_nano_12_p16_224", "mixer_s16_224", "resmlp_12_224",
        "gmlp_ti16_224", "pvt_v2_b0"}
# and in the slow tier, the maps of a variant of each other patch size
MAPS_FAST = FAST - {"cait_xxs24_224", "gmlp_ti16_224"}  # (those two: 24 and 30 blocks, in the whole suite)
MAPS = [*sorted(FAST), "xcit_nano_12_p8_224", "mixer_s32_224", "resmlp_big_24_224"]
# the shipped models without taps: the two ensembles (whose members are backbones of their own)
NOT_BACKBONES = {"ensembles": 2}


def test_token_models_are_backbones():
    assert set(VARIANTS) <= set(archc.list_models(features_only=True))
    assert len(VARIANTS) == 3 + 10 + 28 + 6 + 4 + 3 + 6


def test_shipped_models_without_taps():
    """A model that gains (or loses) taps changes this count on purpose."""
    others = set(archc.list_models()) - set(archc.list_models(features_only=True))
    counted = {"ensembles": [m for m in others if m.endswith("_ensemble")]}
    assert {k: len(v) for k, v in counted.items()} == NOT_BACKBONES
    assert sum(NOT_BACKBONES.values()) == len(others)


# every backbone in the whole suite; the fast tier checks each family in its own tests
@pytest.mark.parametrize("name", fast_tier(archc.list_models(features_only=True), {"densenet40_k12"}))
def test_every_backbone_builds(name):
    with torch.device("meta"):
        model = archc.create_model(name, features_only=True)
    info = model.feature_info
    assert len(info) > 0 and len(info.channels()) == len(info)
    assert all(isinstance(c, int) and c > 0 for c in info.channels())
    assert all(isinstance(r, int) and r >= 1 for r in info.reduction())
    assert len(set(info.module_name())) == len(info)


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, FAST))
def test_feature_info_is_timms(variant):
    with torch.device("meta"):
        ours = archc.create_model(variant, features_only=True)
        theirs = timm.create_model(variant)
    assert ours.feature_info.get_dicts() == [dict(f) for f in theirs.feature_info]


def _random(model: torch.nn.Module) -> torch.nn.Module:
    """A model built on the meta device, given random weights and batch norm statistics (faster than its
    initialisation)."""
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else torch.randn_like(t) * 0.1)
            else:
                t.zero_()
    return model


@pytest.mark.parametrize("variant", fast_tier(MAPS, MAPS_FAST))
def test_maps_are_forward_intermediates(variant):
    torch.manual_seed(0)
    with torch.device("meta"):
        theirs, full = timm.create_model(variant), archc.create_model(variant)
        ours = archc.create_model(variant, features_only=True)
    theirs = _random(theirs)
    full.to_empty(device="cpu").load_state_dict(theirs.state_dict())  # strictly: the same weights
    ours = ours.to_empty(device="cpu").eval()
    dropped = ours.load_state_dict(full.state_dict(), strict=False)
    assert not dropped.missing_keys and dropped.unexpected_keys  # the head is gone
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = theirs.forward_intermediates(x, intermediates_only=True)
        got = ours(x)
    assert len(got) == len(expected) == len(ours.feature_info)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_last_three_are_timms_features_only():
    """timm's features_only model of a token model returns the last three blocks: out_indices=(-3, -2, -1)."""
    with torch.device("meta"):
        ours = archc.create_model("mixer_s16_224", features_only=True, out_indices=(-3, -2, -1))
        theirs = timm.create_model("mixer_s16_224", features_only=True)
    keys = ["module", "num_chs", "reduction"]
    assert ours.feature_info.get_dicts(keys) == theirs.feature_info.get_dicts(keys)


def test_out_indices_pick_blocks():
    with torch.device("meta"):
        model = archc.create_model("deit_tiny_patch16_224", features_only=True, out_indices=(-1,))
    model = _random(model)
    assert model.feature_info.module_name() == ["blocks.11"]
    assert [tuple(m.shape) for m in model(torch.randn(2, 3, 224, 224))] == [(2, 192, 14, 14)]


@pytest.mark.parametrize("variant", archc.list_models("vit_*"))
def test_vit_taps_every_encoder_layer(variant):
    """torchvision's ViT: the blocks sit in its Encoder block, whose taps become the network's."""
    with torch.device("meta"):
        model = archc.create_model(variant, features_only=True)
    depth, width = len(model.encoder.layers), model.conv_proj.out_channels
    info = model.feature_info
    assert info.module_name() == [f"encoder.layers.encoder_layer_{i}" for i in range(depth)]
    assert info.channels() == [width] * depth and info.reduction() == [model.conv_proj.stride[0]] * depth


@pytest.mark.slow
def test_vit_maps_are_torchvisions_encoder_layers():
    """torchvision's ViT taps each encoder layer (in its Encoder block) by torchvision's module path: the maps are
    the layers' outputs, class token dropped, as 768 x 7 x 7 maps of the patch grid (reduction 32), from the same
    weights; a layer's weights changed changes its map and those after it, not those before."""
    torchvision = pytest.importorskip("torchvision")
    from test_taps import assert_agrees

    torch.manual_seed(0)
    with torch.device("meta"):
        theirs = torchvision.models.vit_b_32()
        ours = archc.create_model("vit_b_32", features_only=True)
    theirs, ours = theirs.to_empty(device="cpu").eval(), ours.to_empty(device="cpu").eval()
    with torch.no_grad():
        for p in theirs.parameters():  # (uniform: four times as fast as _random's normal for 88 M weights)
            p.uniform_(-0.05, 0.05)
    dropped = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert not dropped.missing_keys and dropped.unexpected_keys == ["heads.head.weight", "heads.head.bias"]
    names = [f"encoder.layers.encoder_layer_{i}" for i in range(12)]
    assert ours.feature_info.module_name() == names
    assert ours.feature_info.channels() == [768] * 12 and ours.feature_info.reduction() == [32] * 12
    caught = {}
    for name in names:
        theirs.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: caught.setdefault(name, o))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        theirs(x)
        got = ours(x)
        expected = [caught[name][:, 1:].reshape(2, 7, 7, 768).permute(0, 3, 1, 2) for name in names]
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        ours.encoder.layers.encoder_layer_5.mlp[0].weight.add_(0.1)  # a mutation: layer 5 from here on
        changed = [not torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(ours(x), expected)]
    assert changed == [False] * 5 + [True] * 7
    assert_agrees(ours, archc.load("specs/vit.arch").graph("vit_b_32"), 224)
