"""DeiT (Touvron et al. 2021): specs/deit.arch against timm's three models, whose attention the spec writes from
tensor primitives under timm's names."""

import pytest
import zoo
from archtest import assert_static_shapes, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference

VARIANTS = ["deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224"]
PARAMS = {"deit_tiny_patch16_224": 5_717_416, "deit_small_patch16_224": 22_050_664,
          "deit_base_patch16_224": 86_567_656}  # timm's, and the paper's 5M, 22M and 86M


def draw(name, tensor, generator) -> None:
    """Every tensor at random: LayerNorm's affine terms, the zero biases, the tiny class token."""
    if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias") or name in ("cls_token", "pos_embed"):
        tensor.normal_(0, 0.5, generator=generator)


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_timm(variant):
    assert_counts_and_keys("deit", variant, PARAMS[variant])


def test_tiny_matches_timm():
    s = spec("deit")
    variant = "deit_tiny_patch16_224"
    model, ref, x = s.build(variant), reference(variant, draw), image()
    diff, _ = zoo.compare(model, ref, x)
    assert diff == 0  # the same operations, in the same order
    assert_static_shapes(s, variant, model, x)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS[1:2])  # (base's counts and keys are checked above)
def test_larger_models_match_timm(variant):
    zoo.compare(spec("deit").build(variant), reference(variant, draw), image())


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("select(t, 2, 1)", "select(t, 2, 2)"),  # keys from the values' slice
    ("scaled_dot_product_attention(q, k, v)", "scaled_dot_product_attention(k, q, v)"),  # queries for keys
    ("dim // num_heads))", "-1))"),  # a shape the code follows anyway: must still match
])
def test_a_changed_attention_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("deit", old, new, tmp_path)
    variant = "deit_tiny_patch16_224"
    model = s.build(variant)
    if new == "-1))":
        zoo.compare(model, reference(variant, draw), image())
        return
    with pytest.raises(AssertionError):
        zoo.compare(model, reference(variant, draw), image())


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("deit").build("deit_tiny_patch16_224").eval(), image(batch=1)) == 0
