"""Swin, MaxViT, ConvMixer, NFNet and the CIFAR DenseNets as backbones. Swin's four stages are channels-last maps, N x H x W x C, as timm's
Swin gives them (the channels and reductions of timm's model; the names torchvision's, whose layout the spec
keeps), and equal to timm's ``features_only`` model's maps from the same weights. MaxViT (torchvision's)
taps the stem and its four stages, the five maps of timm's MaxViT; ConvMixer, which timm gives no ``features_only``,
every layer (an isotropic network: one resolution, the patch size); NFNet timm's five maps (stem.conv3, three
stages, final_conv), equal to timm's from the same weights. Maps are checked against torchvision's models at the same
modules where torchvision has the network.
"""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision
from archtest import fast_tier
from torchvision.models.feature_extraction import create_feature_extractor

import archc

# Swin: ours (torchvision's) -> timm's model of the same network, where timm has one
SWIN_TIMM = {"swin_t": "swin_tiny_patch4_window7_224", "swin_s": "swin_small_patch4_window7_224",
             "swin_b": "swin_base_patch4_window7_224"}
SWIN = archc.list_models("swin*")


def info(name: str):
    with torch.device("meta"):
        return archc.create_model(name, features_only=True).feature_info


@pytest.mark.parametrize("variant", fast_tier(SWIN, {"swin_t", "swin_v2_t"}))
def test_swin_stages_are_timms(variant):
    width = {"t": 96, "s": 96, "b": 128}[variant[-1]]
    assert info(variant).get_dicts() == [
        dict(num_chs=width * 2 ** i, reduction=4 * 2 ** i, module=f"features.{2 * i + 1}") for i in range(4)]
    if variant in SWIN_TIMM:
        with torch.device("meta"):
            theirs = timm.create_model(SWIN_TIMM[variant], features_only=True).feature_info
        assert info(variant).channels() == theirs.channels() and info(variant).reduction() == theirs.reduction()


def _timm_swin_keys(state: dict) -> dict:
    """torchvision's Swin names -> timm's (a stage's blocks are timm's layers.i.blocks, a merging its next
    layer's downsample)."""
    out = {}
    for key, value in state.items():
        m = re.match(r"features\.(\d+)\.(.*)", key)
        if key.startswith("features.0."):
            key = key.replace("features.0.0.", "patch_embed.proj.").replace("features.0.2.", "patch_embed.norm.")
        elif m and int(m[1]) % 2:
            key = f"layers.{int(m[1]) // 2}.blocks.{m[2].replace('mlp.0.', 'mlp.fc1.').replace('mlp.3.', 'mlp.fc2.')}"
        elif m:
            key = f"layers.{int(m[1]) // 2}.downsample.{m[2]}"
        elif key.startswith("head."):
            key = "head.fc." + key[len("head."):]
        out[key] = value
    return out


def test_swin_maps_are_timms():
    torch.manual_seed(0)
    full = archc.create_model("swin_t").eval()
    theirs = timm.create_model(SWIN_TIMM["swin_t"]).eval()
    loaded = theirs.load_state_dict(_timm_swin_keys(full.state_dict()), strict=False)
    assert not loaded.missing_keys  # (ours keeps each relative_position_index in the state_dict, as torchvision)
    assert all(k.endswith("relative_position_index") for k in loaded.unexpected_keys)
    ours = archc.create_model("swin_t", features_only=True).eval()
    ours.load_state_dict(full.state_dict(), strict=False)
    backbone = timm.create_model(SWIN_TIMM["swin_t"], features_only=True).eval()  # its stages named layers_0 ...
    kept = {re.sub(r"^layers\.(\d)", r"layers_\1", k): v for k, v in theirs.state_dict().items()
            if not k.startswith(("norm.", "head."))}
    backbone.load_state_dict(kept)  # strictly
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = backbone(x)
        got = ours(x)
    assert [tuple(m.shape) for m in got] == [(1, 56, 56, 96), (1, 28, 28, 192), (1, 14, 14, 384), (1, 7, 7, 768)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _as_torchvision(name: str, tv: torch.nn.Module, side: int) -> None:
    """The backbone's maps are torchvision's model's at the tapped modules, from the same weights."""
    torch.manual_seed(0)
    ours = archc.create_model(name, features_only=True).eval()
    tv = tv.eval()
    ours.load_state_dict(tv.state_dict(), strict=False)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        expected = list(create_feature_extractor(tv, ours.feature_info.module_name())(x).values())
        got = ours(x)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_swin_v2_maps_are_torchvisions():
    _as_torchvision("swin_v2_t", torchvision.models.swin_v2_t(), 256)


def test_maxvit_taps_the_stem_and_its_stages():
    assert info("maxvit_t").get_dicts() == [
        dict(num_chs=c, reduction=r, module=m) for c, r, m in
        zip([64, 64, 128, 256, 512], [2, 4, 8, 16, 32], ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3"])]
    with torch.device("meta"):
        theirs = timm.create_model("maxvit_tiny_tf_224", features_only=True).feature_info
    assert info("maxvit_t").channels() == theirs.channels() and info("maxvit_t").reduction() == theirs.reduction()


@pytest.mark.slow
def test_maxvit_maps_are_torchvisions():
    _as_torchvision("maxvit_t", torchvision.models.maxvit_t(), 224)


CONVMIXER = {"convmixer_768_32": (768, 32, 7), "convmixer_1024_20_ks9_p14": (1024, 20, 14),
             "convmixer_1536_20": (1536, 20, 7)}  # width, depth, patch size


@pytest.mark.parametrize("variant", fast_tier(list(CONVMIXER), {"convmixer_768_32"}))
def test_convmixer_taps_every_layer(variant):
    dim, depth, patch = CONVMIXER[variant]
    assert info(variant).get_dicts() == [dict(num_chs=dim, reduction=patch, module=f"blocks.{i}")
                                         for i in range(depth)]


def test_convmixer_maps_are_its_layers():
    torch.manual_seed(0)
    full = archc.create_model("convmixer_768_32").eval()
    ours = archc.create_model("convmixer_768_32", features_only=True, out_indices=(0, -1)).eval()
    ours.load_state_dict(full.state_dict(), strict=False)
    x = torch.randn(1, 3, 70, 70)
    with torch.no_grad():
        first = full.blocks[0](full.stem(x))
        got = ours(x)
        assert torch.equal(got[0], first)
        assert torch.equal(got[1], full.blocks(full.stem(x)))


# the CIFAR DenseNets (no timm or torchvision model): the paper's three dense blocks, on 32, 16 and 8 x 8 maps;
# (depth, k, bc) -> each block's output channels: the stem's, plus k per layer, BC's transitions halving them
CIFAR_DENSENETS = {"densenet40_k12": (40, 12, False), "densenet100_k12": (100, 12, False),
                   "densenet100_k24": (100, 24, False), "densenet_bc100_k12": (100, 12, True),
                   "densenet_bc250_k24": (250, 24, True), "densenet_bc190_k40": (190, 40, True)}


@pytest.mark.parametrize("variant", fast_tier(list(CIFAR_DENSENETS), {"densenet40_k12", "densenet_bc100_k12"}))
def test_cifar_densenets_tap_their_dense_blocks(variant):
    depth, k, bc = CIFAR_DENSENETS[variant]
    layers = (depth - 4) // (6 if bc else 3)
    channels, width = [], 2 * k if bc else 16
    for _ in range(3):
        width += layers * k
        channels.append(width)
        width = width // 2 if bc else width
    assert info(variant).get_dicts() == [
        dict(num_chs=c, reduction=r, module=m) for c, r, m in
        zip(channels, [1, 2, 4], ["features.denseblock1", "features.denseblock2", "features.norm5"])]


def test_cifar_densenet_maps_are_its_blocks():
    torch.manual_seed(0)
    full = archc.create_model("densenet40_k12").eval()
    ours = archc.create_model("densenet40_k12", features_only=True).eval()
    dropped = ours.load_state_dict(full.state_dict(), strict=False)
    assert not dropped.missing_keys and dropped.unexpected_keys == ["classifier.weight", "classifier.bias"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = full.features
        first = f.denseblock1(f.conv0(x))
        got = ours(x)
        torch.testing.assert_close(got[0], first)
        torch.testing.assert_close(got[2], torch.relu(f(x)))


@pytest.mark.parametrize("variant", fast_tier([f"nfnet_f{i}" for i in range(8)], {"nfnet_f0"}))
def test_nfnet_feature_info_is_timms(variant):
    with torch.device("meta"):
        theirs = timm.create_model(variant, features_only=True).feature_info
    keys = ["module", "num_chs", "reduction"]
    assert info(variant).get_dicts(keys) == theirs.get_dicts(keys)


def test_nfnet_maps_are_timms():
    """On test_nfnet's narrow, shallow nfnet_f0 (every kind of block), from timm's weights."""
    import test_nfnet
    from archc.models import nfnet

    theirs = test_nfnet.tiny_reference()
    ours = nfnet.NormFreeNetFeatures(**test_nfnet.TINY).eval()
    dropped = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert not dropped.missing_keys and dropped.unexpected_keys == ["head.fc.weight", "head.fc.bias"]
    x = torch.randn(1, 3, test_nfnet.SIZE, test_nfnet.SIZE)
    with torch.no_grad():
        expected = theirs.forward_intermediates(x, intermediates_only=True)
        got = ours(x)
    assert len(got) == len(expected) == 5
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
