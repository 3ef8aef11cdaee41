"""MLP-Mixer (Tolstikhin et al. 2021): specs/mlp_mixer.arch against timm's six models: token mixing on the
transposed table of patches, written in a block with named tensors under timm's names."""

import pytest
import zoo
from archtest import assert_static_shapes, fast_tier, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference, starts_as_timm

VARIANTS = ["mixer_s32_224", "mixer_s16_224", "mixer_b32_224", "mixer_b16_224", "mixer_l32_224", "mixer_l16_224"]
PARAMS = {"mixer_s32_224": 19_104_624, "mixer_s16_224": 18_528_264, "mixer_b32_224": 60_293_428,
          "mixer_b16_224": 59_880_472, "mixer_l32_224": 206_939_264, "mixer_l16_224": 208_196_168}


def draw(name, tensor, generator) -> None:
    """Every tensor at random (timm's head starts at zero, its biases nearly so)."""
    if "norm" in name and name.endswith("weight"):
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias") or name.startswith("head"):
        tensor.normal_(0, 0.2, generator=generator)


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"mixer_s32_224"}))
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("mlp_mixer", variant, PARAMS[variant])


def test_small_matches_timm():
    s = spec("mlp_mixer")
    variant = "mixer_s32_224"
    model, x = s.build(variant), image()
    diff, _ = zoo.compare(model, reference(variant, draw), x)
    assert diff == 0
    assert_static_shapes(s, variant, model, x)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize("variant", fast_tier(["mixer_s32_224", "mixer_b16_224"], {"mixer_s32_224"}))
def test_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("mlp_mixer"), variant)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("transpose(mlp_tokens(transpose(norm1(x), 1, 2)), 1, 2)", "norm1(transpose(mlp_tokens(transpose(x, 1, 2)), 1, 2))"),
    ("let y = t + mlp_channels(norm2(t))", "let y = x + mlp_channels(norm2(t))"),  # the wrong skip
    pytest.param("    mean(1)\n", "    amax(1)\n", marks=pytest.mark.slow),  # max instead of mean pooling
])
def test_a_changed_mixer_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("mlp_mixer", old, new, tmp_path)
    model = s.build("mixer_s32_224")
    with pytest.raises(AssertionError):
        zoo.compare(model, reference("mixer_s32_224", draw), image())


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
def test_the_initialisation_rule_is_what_makes_it_seed_for_seed(tmp_path):
    s = zoo.mutated_spec("mlp_mixer", "init linear.weight = xavier_uniform()", "init linear.weight = xavier_normal()",
                         tmp_path)
    assert not starts_as_timm(s, "mixer_s32_224")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["mixer_s16_224", "mixer_b32_224"])
def test_larger_models_match_timm(variant):
    zoo.compare(spec("mlp_mixer").build(variant), reference(variant, draw), image())


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("mlp_mixer").build("mixer_s32_224").eval(), image(batch=1)) == 0
