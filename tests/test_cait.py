"""CaiT (Touvron et al. 2021): specs/cait.arch against timm's ten models: talking-heads attention and class
attention written from tensor primitives, LayerScale, under timm's names."""

import pytest
import timm
import torch
import zoo
from archtest import assert_static_shapes, fast_tier, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference

PARAMS = {"cait_xxs24_224": 11_956_264, "cait_xxs24_384": 12_029_224, "cait_xxs36_224": 17_299_720,
          "cait_xxs36_384": 17_372_680, "cait_xs24_384": 26_670_088, "cait_s24_224": 46_916_200,
          "cait_s24_384": 47_062_120, "cait_s36_384": 68_366_632, "cait_m36_384": 271_221_352,
          "cait_m48_448": 356_460_520}


def draw(name, tensor, generator) -> None:
    """Every tensor at random: LayerScale at about 0.1 (timm starts it at 1e-5, under the comparison's tolerance;
    near 1, 24 random layers wash the image out of the output, and nothing could fail), the norms' affine terms,
    the zero biases and the zero-started embeddings."""
    if name.endswith(("gamma_1", "gamma_2")):
        tensor.uniform_(0.05, 0.15, generator=generator)
    elif "norm" in name and name.endswith("weight"):
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias") or name in ("cls_token", "pos_embed"):
        tensor.normal_(0, 0.2, generator=generator)
    elif name.endswith("weight") and tensor.dim() > 1:  # unit gain, so that the attention's logits matter
        tensor.normal_(0, tensor[0].numel() ** -0.5, generator=generator)


@pytest.mark.parametrize("variant", fast_tier(list(PARAMS), {"cait_xxs24_224"}))
def test_counts_and_keys_match_timm(variant):
    # (the class token is a parameter made where the spec appends it, after the position embedding; timm makes
    # it first: the same keys, in another order)
    assert_counts_and_keys("cait", variant, PARAMS[variant], ordered=False)


def test_xxs24_matches_timm():
    s = spec("cait")
    model, x = s.build("cait_xxs24_224"), image()
    diff, _ = zoo.compare(model, reference("cait_xxs24_224", draw), x)
    assert diff == 0
    assert_static_shapes(s, "cait_xxs24_224", model, x)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("let q = transpose(select(t, 2, 0), 1, 2) * (dim // num_heads) ** -0.5",
     "let q = transpose(select(t, 2, 0), 1, 2) * (dim // num_heads) ** -0.25"),  # another scale
    pytest.param("transpose(softmax(logits, dim = -1), 1, 3)", "transpose(softmax(logits, dim = -2), 1, 3)",
                 marks=pytest.mark.slow),
    pytest.param("q(narrow(x, 1, 0, 1))", "q(narrow(x, 1, 1, 1))",  # the first patch asks, not the class token
                 marks=pytest.mark.slow),
])
def test_a_changed_attention_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("cait", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("cait_xxs24_224"), reference("cait_xxs24_224", draw), image())


@pytest.mark.slow
def test_a_larger_model_at_384_matches_timm():
    zoo.compare(spec("cait").build("cait_xs24_384"), reference("cait_xs24_384", draw), image(size=384))


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("cait").build("cait_xxs24_224").eval(), image(batch=1)) == 0


@pytest.mark.slow  # two models made, twice
def test_starts_as_timm_seed_for_seed(tmp_path):
    """timm draws the position embedding, then the class token, then the linear layers: the spec's rules for the
    two learned tensors, drawn at the start of its pass, in that order. Without the first, both tensors differ."""
    def states(s):
        torch.manual_seed(7)
        ours = s.build("cait_xxs24_224").state_dict()
        torch.manual_seed(7)
        return ours, timm.create_model("cait_xxs24_224", pretrained=False).state_dict()

    ours, theirs = states(spec("cait"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    ours, theirs = states(zoo.mutated_spec("cait", "    init pos_embed = trunc_normal_timm(std = 0.02)\n", "", tmp_path))
    assert not torch.equal(ours["pos_embed"], theirs["pos_embed"])
    assert not torch.equal(ours["cls_token"], theirs["cls_token"])
