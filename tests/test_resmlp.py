"""ResMLP (Touvron et al. 2021): specs/resmlp.arch against timm's four models: an affine map per channel for a
norm, token mixing by one linear layer on the transposed patches, LayerScale, under timm's names."""

import pytest
import zoo
from archtest import assert_static_shapes, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference, starts_as_timm

VARIANTS = ["resmlp_12_224", "resmlp_24_224", "resmlp_36_224", "resmlp_big_24_224"]
PARAMS = {"resmlp_12_224": 15_350_872, "resmlp_24_224": 30_020_680, "resmlp_36_224": 44_690_488,
          "resmlp_big_24_224": 129_138_280}


def draw(name, tensor, generator) -> None:
    """Every tensor at random, the LayerScales and affine maps near where training takes them (small scales, so
    that 12 blocks keep the output's scale)."""
    if name.endswith(("ls1", "ls2")):
        tensor.uniform_(0.05, 0.15, generator=generator)
    elif name.endswith("alpha"):
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith(("beta", "bias")) or name.startswith("head"):
        tensor.normal_(0, 0.2, generator=generator)


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("resmlp", variant, PARAMS[variant])


def test_small_matches_timm():
    s = spec("resmlp")
    model, x = s.build("resmlp_12_224"), image()
    zoo.compare(model, reference("resmlp_12_224", draw), x)  # (timm's affine map is one fused addcmul)
    assert_static_shapes(s, "resmlp_12_224", model, x)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize("variant", ["resmlp_12_224", "resmlp_24_224"])
def test_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("resmlp"), variant)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("let t = x + ls1(", "let t = ls1(x) + ls1("),  # not a reason to fail compiling: applied twice is an error
    ("alpha = learned_scale((1, 1, dim), init = 1)", "alpha = learned_scale((1, 1, dim), init = 1.5)"),
    ("let y = t + ls2(mlp_channels(norm2(t)))", "let y = t + ls2(mlp_channels(norm2(x)))"),  # the first skip
])
def test_a_changed_block_no_longer_matches_or_starts_elsewhere(old, new, tmp_path):
    if old.startswith("let t"):
        with pytest.raises(zoo.SpecError, match="applied twice"):
            zoo.mutated_spec("resmlp", old, new, tmp_path).source()
        return
    s = zoo.mutated_spec("resmlp", old, new, tmp_path)
    if "init = 1.5" in new:  # the comparison loads timm's tensors: a changed start shows in the seed test
        assert not starts_as_timm(s, "resmlp_12_224")
        return
    with pytest.raises(AssertionError):
        zoo.compare(s.build("resmlp_12_224"), reference("resmlp_12_224", draw), image())


@pytest.mark.slow  # (the big model's 784 tokens and 129 M parameters cost a minute: its counts are checked above)
def test_a_deeper_model_matches_timm():
    zoo.compare(spec("resmlp").build("resmlp_24_224"), reference("resmlp_24_224", draw), image())


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("resmlp").build("resmlp_12_224").eval(), image(batch=1)) == 0
