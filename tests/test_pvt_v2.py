"""PVT v2 (Wang et al. 2022): specs/pvt_v2.arch against timm's six models: spatial-reduction attention written
from tensor primitives (queries from the map, keys and values from the map reduced by a strided conv), the MLP's
depthwise conv on the map, under timm's names."""

import pytest
import zoo
from archtest import assert_static_shapes, fast_tier, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference, starts_as_timm

VARIANTS = ["pvt_v2_b0", "pvt_v2_b1", "pvt_v2_b2", "pvt_v2_b3", "pvt_v2_b4", "pvt_v2_b5"]
PARAMS = {"pvt_v2_b0": 3_666_760, "pvt_v2_b1": 14_009_000, "pvt_v2_b2": 25_362_856, "pvt_v2_b3": 45_238_696,
          "pvt_v2_b4": 62_556_072, "pvt_v2_b5": 81_956_008}


def draw(name, tensor, generator) -> None:
    """Every tensor at random: the norms' affine terms and the zero biases show in the output."""
    if "norm" in name and name.endswith("weight"):
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias"):
        tensor.normal_(0, 0.2, generator=generator)


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"pvt_v2_b0"}))
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("pvt_v2", variant, PARAMS[variant])


def test_b0_matches_timm():
    s = spec("pvt_v2")
    model, x = s.build("pvt_v2_b0"), image()
    zoo.compare(model, reference("pvt_v2_b0", draw), x)
    assert_static_shapes(s, "pvt_v2_b0", model, x)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize("variant", ["pvt_v2_b0", "pvt_v2_b2"])
def test_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("pvt_v2"), variant)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("scaled_dot_product_attention(queries, keys, values)", "scaled_dot_product_attention(queries, values, keys)"),
    ("let keys = transpose(select(pairs, 2, 0), 1, 2)", "let keys = transpose(select(pairs, 2, 1), 1, 2)"),
])
def test_a_changed_attention_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("pvt_v2", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("pvt_v2_b0"), reference("pvt_v2_b0", draw), image())


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
def test_a_changed_initialisation_starts_elsewhere(tmp_path):
    s = zoo.mutated_spec("pvt_v2", "trunc_normal_timm(std = 0.02)", "trunc_normal(std = 0.02)", tmp_path)
    assert not starts_as_timm(s, "pvt_v2_b0")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pvt_v2_b1"])
def test_larger_models_match_timm(variant):
    zoo.compare(spec("pvt_v2").build(variant), reference(variant, draw), image())


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("pvt_v2").build("pvt_v2_b0").eval(), image(batch=1)) == 0
