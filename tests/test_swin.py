"""Swin Transformer V1 and V2 (Liu et al. 2021 and 2022): specs/swin.arch against torchvision's six models."""

import pytest
import torch
import torchvision
import zoo
from archtest import assert_static_shapes, count_params, graph_breaks, randomize_batchnorm, spec

VARIANTS = ["swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"]


@pytest.mark.parametrize(("variant", "weights"), zoo.weights_entries(VARIANTS))
def test_counts_match_torchvision_metadata(variant, weights):
    # V2's weights are for 256 x 256 images: its metadata counts at that size. Attention's two matrix products
    # per window are counted, and V2's bias MLP over the relative positions
    zoo.assert_counts_at_the_weights_size("swin", variant, weights, "size")


def reference(variant: str, **kwargs) -> torch.nn.Module:
    """torchvision's model with every parameter drawn at random (its zero biases, unit norms and initial logit
    scale would hide a misplaced bias or norm)."""
    torch.manual_seed(0)
    model = randomize_batchnorm(torchvision.models.get_model(variant, weights=None, **kwargs))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("logit_scale"):  # some heads above log 100, where V2 clamps the scale
                tensor.uniform_(1.0, 5.5, generator=generator)
            elif name.endswith("bias") and "norm" not in name:
                tensor.normal_(0, 0.5, generator=generator)
            elif name.endswith("relative_position_bias_table"):
                tensor.normal_(0, 1.0, generator=generator)
    return model


def image(size: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2


def compare(variant: str, size: int, model=None, **kwargs) -> None:
    s = spec("swin")
    model = model if model is not None else s.build(variant, **kwargs)
    ref, x = reference(variant, **kwargs), image(size)
    assert count_params(model) == count_params(ref)
    zoo.compare(model, ref, x)
    return model, x


@pytest.mark.parametrize("variant", ["swin_t", "swin_v2_t"])
def test_matches_torchvision_on_a_small_image(variant):
    # 96 x 96: stages of 24, 12, 6 and 3 positions, windows padded past the map from the third stage on, and
    # shifted only where a window does not cover the map
    model, x = compare(variant, 96)
    assert_static_shapes(spec("swin"), variant, model, x, size=96)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    size = 256 if "v2" in variant else 224
    model, x = compare(variant, size)
    assert_static_shapes(spec("swin"), variant, model, x, size=size)


@pytest.mark.slow  # a dynamo trace; the three of each version run the same classes
@pytest.mark.parametrize("variant", ["swin_t", "swin_v2_t"])
def test_no_graph_breaks(variant):
    assert graph_breaks(spec("swin").build(variant).eval(), image(96, batch=1)) == 0


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "size"), [("swin_t", 96), ("swin_v2_t", 64)])
def test_training_mode_drops_what_torchvision_drops(variant, size):
    # stochastic depth on both branches of every block, dropout after attention and in the MLP, and on the
    # attention weights: the same seed draws the same masks in the same order
    kwargs = dict(dropout=0.1, attention_dropout=0.1)
    model, x = compare(variant, size, **kwargs)
    assert zoo.compare_training(model, reference(variant, **kwargs), x) == 0.0


# Mutations that compile (same shapes) but compute something else: the comparison must see each of them.
SPEC_MUTATIONS = {
    "the shift's sign turned": ("roll(padded, (-sh, -sw), (1, 2))", "roll(padded, (sh, sw), (1, 2))"),
    "the shift's mask dropped": ("where(shift_mask(padded), scores - 100.0, scores)",
                                 "where(shift_mask(padded), scores, scores)"),
    "GELU replaced by ReLU": ("gelu; dropout(dropout); linear(in.channels); dropout(dropout)\n    init",
                              "relu; dropout(dropout); linear(in.channels); dropout(dropout)\n    init", "common.arch"),  # the MLP block
    # Swin V2's attention (Section 3.1 of its paper): the keys learn no bias, the logit scale is clamped at log 100,
    # the scores are cosines (the bias's 16 sigmoid: tests/test_swin_v2_pieces.py); and it normalises after attention
    "V2's keys given their bias": ("zero_bias = (dim, 2 * dim) if version == 2 else none", "zero_bias = none"),
    "V2's logit scale not clamped": ("exp(clamp(logit_scale(x), max = log(100.0)))", "exp(logit_scale(x))"),
    "V2's cosines replaced by dot products": ("matmul(normalize(q, dim = -1), transpose(normalize(k, dim = -1), -2, -1))",
                                              "matmul(q, transpose(k, -2, -1))"),
    "V2 normalising before attention": ("attn = ShiftedWindowAttention(in.channels, window_size, shift_size, num_heads, "
                                        "attention_dropout, dropout,\n                                          version)\n"
                                        "            norm1 = norm_layer",
                                        "norm1 = norm_layer\n            attn = ShiftedWindowAttention(in.channels, "
                                        "window_size, shift_size, num_heads, attention_dropout, dropout, version)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", SPEC_MUTATIONS)
def test_comparison_fails_for_a_mutant_spec(mutation, tmp_path):
    old, new, *file = SPEC_MUTATIONS[mutation]
    variant, size = ("swin_v2_t", 64) if "V2" in mutation else ("swin_t", 96)  # (64: V2's windows shift in stage 1)
    mutant = zoo.mutated_spec("swin", old, new, tmp_path, file=file[0] if file else None)
    with pytest.raises(AssertionError, match="max difference"):
        compare(variant, size, model=mutant.build(variant))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["swin_t", "swin_v2_t"])
def test_a_size_that_is_no_multiple_of_the_windows_works_as_in_torchvision(variant):
    # 100 x 100: 25 positions a side, windows of 7 (V2: 8) padded to 28 (32); odd sides padded before patch merging
    model, x = compare(variant, 100)
    assert_static_shapes(spec("swin"), variant, model, x, size=100)


@pytest.mark.slow
def test_one_model_takes_any_input_size_as_torchvisions_does():
    # the model made for 224 (the factory's default; 224 itself: test_matches_torchvision) run at 232: 58
    # positions a side, each map padded to whole windows as it runs and the shift's mask made for the padded
    # size (static shapes at a padded size: test_a_size_that_is_no_multiple_of_the_windows_works_as_in_torchvision);
    # and as a detection backbone, each stage's channels-last map as the full model computes it
    import archc

    model, x = compare("swin_t", 232)
    backbone = archc.create_model("swin_t", features_only=True).eval()
    backbone.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith("features.")})
    with torch.no_grad():
        maps, expected, y = backbone(x), [], x
        for i, layer in enumerate(model.features):
            y = layer(y)
            if i % 2 == 1:
                expected.append(y)
    assert [tuple(m.shape) for m in maps] == [(2, 58, 58, 96), (2, 29, 29, 192), (2, 15, 15, 384), (2, 8, 8, 768)]
    for ours, theirs in zip(maps, expected):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def _indices(model) -> dict:
    return {k: v for k, v in model.state_dict().items() if k.endswith("relative_position_index")}


@pytest.mark.slow
def test_the_index_buffers_are_torchvisions_before_loading(tmp_path):
    # (a strict load copies the buffers, so the outputs cannot see a wrong index: the buffers are compared as
    # made; an index off by one runs off the table, a located error, tests/test_indexing_ops.py)
    ours, theirs = _indices(spec("swin").build("swin_t")), _indices(torchvision.models.swin_t())
    assert ours.keys() == theirs.keys() and len(ours) == 12
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    mirrored = zoo.mutated_spec("swin", "(2 * ws - 1, 1, 1 - 2 * ws, -1), (ws - 1) * 2 * ws)",
                                "(2 * ws - 1, -1, 1 - 2 * ws, 1), (ws - 1) * 2 * ws)", tmp_path)
    assert not any(torch.equal(v, theirs[k]) for k, v in _indices(mirrored.build("swin_t")).items())


@pytest.mark.slow
def test_a_bfloat16_model_stays_in_bfloat16():
    # the shift's mask is boolean and the scores lose 100 where it holds: no float32 tensor joins the scores
    model = spec("swin").build("swin_t").eval().to(torch.bfloat16)
    with torch.no_grad():
        out = model(image(96, batch=1).to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
