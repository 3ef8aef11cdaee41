"""PoolFormer (Yu et al. 2022) and PoolFormerV2 (Yu et al., MetaFormer Baselines, 2022): specs/poolformer.arch
against timm's ten models (timm's MetaFormer): the token mixer an average pooling minus its input, GroupNorm of one
group, LayerScale on both branches (v1), or StarReLU, ResScale and no shifts (v2), under timm's names."""

from functools import cache

import pytest
import timm
import torch
import zoo
from archtest import assert_static_shapes, graph_breaks, rounds_to, spec
from timm.layers import GroupNorm1
from timm.models.metaformer import GroupNorm1NoBias, MetaFormer
from timmzoo import assert_counts_and_keys, image, starts_as_timm

V1 = ["poolformer_s12", "poolformer_s24", "poolformer_s36", "poolformer_m36", "poolformer_m48"]
V2 = ["poolformerv2_s12", "poolformerv2_s24", "poolformerv2_s36", "poolformerv2_m36", "poolformerv2_m48"]
VARIANTS = V1 + V2
PARAMS = {"poolformer_s12": 11_915_176, "poolformer_s24": 21_388_968, "poolformer_s36": 30_862_760,
          "poolformer_m36": 56_172_520, "poolformer_m48": 73_473_448,
          "poolformerv2_s12": 11_891_712, "poolformerv2_s24": 21_341_464, "poolformerv2_s36": 30_791_216,
          "poolformerv2_m36": 56_077_168, "poolformerv2_m48": 73_346_056}
FAST = ("poolformer_s12", "poolformerv2_s12")  # the rest in the slow tier
SIZE = 64  # the smallest side whose last map is 2 x 2: the pooling and the 3x3 convs still see neighbours


def draw(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every tensor at random, those timm starts at a constant too (the norms' affine terms, the zero biases, the
    layer scales, whose 1e-5 or 1e-6 would hide the branches they scale, the residual scales and StarReLU's scale and
    shift); in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if ("norm" in name and name.endswith("weight")) or name.endswith("scale"):
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif name.endswith("bias"):
                tensor.normal_(0, 0.2, generator=generator)
            else:
                tensor.normal_(0, 0.02, generator=generator)
    return model.eval()


def unmade(make, *args, **kwargs) -> torch.nn.Module:
    """A model made on the meta device and given memory, its tensors left unset: drawing or loading every one of
    them afterwards is much quicker than the initialisation it skips (12 M truncated normals for S12)."""
    with torch.device("meta"):
        model = make(*args, **kwargs)
    return model.to_empty(device="cpu")


@cache
def timm_drawn(variant: str) -> torch.nn.Module:
    """timm's model with every tensor drawn (made once a variant: the comparisons load it, and change nothing)."""
    return draw(unmade(timm.create_model, variant, pretrained=False))


def ours(variant: str, s=None, **kwargs) -> torch.nn.Module:
    """The spec's model, to be loaded with timm's tensors."""
    return unmade((s or spec("poolformer")).build, variant, **kwargs)


@pytest.mark.parametrize("variant", [v if v in FAST else pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS])
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("poolformer", variant, PARAMS[variant])


def test_sizes_are_table_1s():
    """Table 1 of the paper: parameters in millions and multiply-adds in G at 224 x 224, S12 to M36 (M48's 11.6 G
    counts something more than the convs and linear layers: 11.53 G here, and timm has no count)."""
    table = {"poolformer_s12": (12, 1.8), "poolformer_s24": (21, 3.4), "poolformer_s36": (31, 5.0),
             "poolformer_m36": (56, 8.8), "poolformer_m48": (73, None)}
    for variant, (params, macs) in table.items():
        graph = spec("poolformer").graph(variant)
        assert rounds_to(graph.params, params) and (macs is None or rounds_to(graph.macs, macs, 1e9)), variant


@pytest.mark.parametrize("variant", ["poolformer_s12", "poolformerv2_s12"])
def test_s12_matches_timm(variant):
    model, x = ours(variant), image(size=SIZE)
    diff, _ = zoo.compare(model, timm_drawn(variant), x)
    assert diff == 0
    assert_static_shapes(spec("poolformer"), variant, model, x, img_size=SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["poolformer_s12", "poolformerv2_s12"])
def test_feature_maps_are_timms(variant):
    """features_only: the four stages' maps, as timm's backbone gives them (channels, reductions and values)."""
    mine = ours(variant, features_only=True)
    theirs = draw(unmade(timm.create_model, variant, features_only=True, pretrained=False))
    mine.load_state_dict({k.replace("stages_", "stages.", 1): v for k, v in theirs.state_dict().items()})
    assert mine.feature_info.channels() == theirs.feature_info.channels() == [64, 128, 320, 512]
    assert mine.feature_info.reduction() == theirs.feature_info.reduction() == [4, 8, 16, 32]
    x = image(size=SIZE)
    with torch.no_grad():
        for a, b in zip(mine.eval()(x), theirs(x), strict=True):
            assert torch.equal(a, b)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize("version", [1, 2])
def test_starts_as_timm_does_seed_for_seed(version):
    """A narrow, shallow MetaFormer of the spec's and timm's, made after the same seed, hold the same tensors: the
    same modules made in the same order, then redrawn by the same rules in the same order. (The ten variants
    themselves: in the slow tier.)"""
    depths, dims = [1, 2, 1, 1], [8, 16, 24, 32]
    torch.manual_seed(3)
    mine = spec("poolformer").python_module().MetaFormer(depths, dims, 1e-5 if version == 1 else None, version)
    torch.manual_seed(3)
    if version == 1:  # poolformer_s12's settings
        theirs = MetaFormer(depths=depths, dims=dims, downsample_norm=None, mlp_act=torch.nn.GELU, mlp_bias=True,
                            norm_layers=GroupNorm1, layer_scale_init_values=1e-5, res_scale_init_values=None,
                            use_mlp_head=False)
    else:  # poolformerv2_s12's
        theirs = MetaFormer(depths=depths, dims=dims, norm_layers=GroupNorm1NoBias, use_mlp_head=False)
    mine, theirs = mine.state_dict(), theirs.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], v) for k, v in theirs.items())


@pytest.mark.parametrize(("old", "new"), [
    ("let y = pool(x) - x", "let y = pool(x)"),  # the pooling without its input taken off (Equation 4)
    ("norm1 = groupnorm(1, ", "norm1 = groupnorm(in.channels, "),  # each channel normalised on its own
    pytest.param("count_include_pad = false", "count_include_pad = true", marks=pytest.mark.slow),  # zeros averaged
    pytest.param("padding = 2", "padding = 3", marks=pytest.mark.slow),  # the stem's patches a pixel off (56 x 56)
    pytest.param("act = gelu", 'act = gelu(approximate = "tanh")', marks=pytest.mark.slow),  # GELU approximated
])
def test_a_changed_poolformer_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("poolformer", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(ours("poolformer_s12", s), timm_drawn("poolformer_s12"), image(size=SIZE))


@pytest.mark.parametrize(("old", "new"), [
    ("let y = bias(scale(r * r))", "let y = scale(bias(r * r))"),  # StarReLU's shift before its scale
    pytest.param("let y = bias(scale(r * r))", "let y = bias(scale(r))", marks=pytest.mark.slow),  # unsquared
    pytest.param("    norm = layernorm(eps = 1e-6, bias = false) if v2\n}", "    norm = groupnorm(1, bias = false) if v2\n}",
                 marks=pytest.mark.slow),  # the stem's norm over the positions too
    pytest.param("[none, none, 1.0, 1.0] if v2", "[none, none, 1.0, 1.0] if not v2",
                 marks=pytest.mark.slow),  # ResScale in v1 and not in v2: the keys differ, strict loading fails
])
def test_a_changed_poolformerv2_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("poolformer", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(ours("poolformerv2_s12", s), timm_drawn("poolformerv2_s12"), image(size=SIZE))


def drop_paths(variant: str, s=None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """timm's model with stochastic depth (rates growing to 0.3) and dropout before the classifier, every tensor
    drawn, and the spec's holding its tensors."""
    theirs = draw(unmade(timm.create_model, variant, pretrained=False, drop_path_rate=0.3, drop_rate=0.2))
    mine = ours(variant, s, drop_path_rate=0.3, drop_rate=0.2)
    mine.load_state_dict(theirs.state_dict())
    return mine, theirs


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["poolformer_s12", "poolformerv2_s12"])
def test_training_drops_the_paths_timm_drops(variant):
    """Stochastic depth draws the same numbers as timm's DropPath, block by block; the outputs agree to rounding
    (timm scales before the layer scale, and its rates are float32's)."""
    assert zoo.compare_training(*drop_paths(variant), image(size=SIZE)) < 1e-5


@pytest.mark.slow
def test_a_changed_stochastic_depth_schedule_no_longer_matches(tmp_path):
    s = zoo.mutated_spec("poolformer", "drop_path_rate * j / max(sum(depths) - 1, 1)",
                         "drop_path_rate * (j + 1) / sum(depths)", tmp_path)  # the first block dropped too
    with pytest.raises(AssertionError):
        zoo.compare_training(*drop_paths("poolformer_s12", s), image(size=SIZE))


@pytest.mark.slow
def test_a_changed_initialisation_starts_elsewhere(tmp_path):
    s = zoo.mutated_spec("poolformer", "init conv.weight = trunc_normal_timm", "init conv.weight = trunc_normal",
                         tmp_path)
    assert not starts_as_timm(s, "poolformer_s12")


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_models_match_timm_at_224(variant):
    diff, _ = zoo.compare(ours(variant), timm_drawn(variant), image())
    assert diff == 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_models_start_as_timm_does(variant):
    assert starts_as_timm(spec("poolformer"), variant)


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", ["poolformer_s12", "poolformerv2_s12"])
def test_no_graph_breaks(variant):
    assert graph_breaks(spec("poolformer").build(variant).eval(), image(batch=1, size=SIZE)) == 0
