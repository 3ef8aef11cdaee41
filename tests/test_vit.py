"""The Vision Transformer (Dosovitskiy et al. 2020): specs/vit.arch against torchvision's five models."""

import pytest
import torch
import torchvision
import zoo
from archtest import assert_static_shapes, count_params, fast_tier, graph_breaks, randomize_batchnorm, spec

VARIANTS = ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"]
SMALL = ["vit_b_16", "vit_b_32"]  # under 100 M parameters: built for real; the others on the meta device


@pytest.mark.parametrize(("variant", "weights"), zoo.weights_entries(VARIANTS))
def test_counts_match_torchvision_metadata_at_each_weights_image_size(variant, weights):
    # the SWAG weights are for 384, 512 and 518: their metadata counts the longer position embedding and
    # sequences. Attention's two matrix products (scores, weighted values) are counted: 2 L^2 D per layer
    zoo.assert_counts_at_the_weights_size("vit", variant, weights, "image_size")


def reference(variant: str, **kwargs) -> torch.nn.Module:
    """torchvision's model, randomly initialised, then every tensor it starts at a constant (the head's zero
    weights, the attention biases, the class token, LayerNorm's affine terms) drawn at random, so that each one
    shows in the output; ``kwargs`` as torchvision's VisionTransformer takes them."""
    torch.manual_seed(0)
    model = randomize_batchnorm(torchvision.models.get_model(variant, weights=None, **kwargs))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or name in ("class_token", "heads.head.weight"):
                tensor.normal_(0, 0.5, generator=generator)
            elif name == "encoder.pos_embedding":
                tensor.uniform_(-1, 1, generator=generator)
    return model


def image(size: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2


@pytest.mark.slow
@pytest.mark.parametrize("variant", SMALL)
def test_matches_torchvision(variant):
    s = spec("vit")
    model, ref, x = s.build(variant), reference(variant), image(224)
    assert count_params(model) == count_params(ref) == zoo.torchvision_meta(variant)["num_params"]
    zoo.compare(model, ref, x)
    assert_static_shapes(s, variant, model, x)


@pytest.mark.slow  # a dynamo trace; the five share one forward (one block class, any depth and width)
def test_no_graph_breaks():
    assert graph_breaks(spec("vit").build("vit_b_32").eval(), image(224, batch=1)) == 0


@pytest.mark.parametrize("variant", fast_tier([v for v in VARIANTS if v not in SMALL], {"vit_l_32"}))
def test_large_variants_match_torchvision_on_the_meta_device(variant):
    s = spec("vit")
    with torch.device("meta"):
        model = s.build(variant)
        ref = torchvision.models.get_model(variant, weights=None)
    assert zoo.shapes(model.state_dict().items()) == zoo.shapes(ref.state_dict().items())
    assert count_params(model) == s.graph(variant).params
    assert_static_shapes(s, variant, model, image(224).to("meta"))


@pytest.mark.slow
def test_another_image_size_works_as_in_torchvision():
    # the position embedding is made for the image size, as torchvision's: 384 x 384 gives 145 tokens at 32 x 32
    s = spec("vit")
    model, ref, x = s.build("vit_b_32", image_size=384), reference("vit_b_32", image_size=384), image(384)
    assert s.graph("vit_b_32", image_size=384).modules()["encoder.ln"].shape == (145, 768)
    zoo.compare(model, ref, x)
    assert_static_shapes(s, "vit_b_32", model, x, image_size=384)


@pytest.mark.slow
def test_training_mode_drops_what_torchvision_drops():
    # dropout after the embedding, after attention, in the MLP, and on the attention weights: the same seed
    # draws the same masks in the same order
    kwargs = dict(dropout=0.1, attention_dropout=0.1)
    model, ref = spec("vit").build("vit_b_32", **kwargs), reference("vit_b_32", **kwargs)
    x = image(224)
    zoo.compare(model, ref, x)
    assert zoo.compare_training(model, ref, x) == 0.0


# Mutations that compile (same shapes) but compute something else: the comparison must see each of them.
# (old, new[, the file changed: the MLP block is common.arch's])
MUTATIONS = {
    "GELU replaced by ReLU": ("gelu; dropout(dropout); linear(in.channels); dropout(dropout)\n    init",
                              "relu; dropout(dropout); linear(in.channels); dropout(dropout)\n    init", "common.arch"),
    "the second token classified": ("select_token(0)", "select_token(1)"),
    "attention's residual dropped": ("    residual {\n        ln_1", "    seq {\n        ln_1"),
    "no position embedding": ("    pos_embedding = learned_add((1, seq_length, in.channels))\n"
                              "    init pos_embedding = normal(std = 0.02) when made", ""),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    old, new, *file = MUTATIONS[mutation]
    mutant = zoo.mutated_spec("vit", old, new, tmp_path, file=file[0] if file else None)
    with pytest.raises(AssertionError) as failure:
        zoo.compare(mutant.build("vit_b_32"), reference("vit_b_32"), image(224))
    expected = "strict load failed" if "position" in mutation else "max difference"
    assert expected in str(failure.value)
