"""DeiT (Touvron et al. 2021): specs/deit.arch against timm's three models, whose attention the spec writes from
tensor primitives under timm's names."""

import pytest
import timm
import torch
import zoo
from archtest import assert_static_shapes, count_params, graph_breaks, spec

VARIANTS = ["deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224"]
PARAMS = {"deit_tiny_patch16_224": 5_717_416, "deit_small_patch16_224": 22_050_664,
          "deit_base_patch16_224": 86_567_656}  # timm's, and the paper's 5M, 22M and 86M


def reference(variant: str) -> torch.nn.Module:
    """timm's model, randomly initialised, every tensor then drawn at random (LayerNorm's affine terms, the
    zero biases, the tiny class token), so that each one shows in the output."""
    torch.manual_seed(0)
    model = timm.create_model(variant, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif name.endswith("bias") or name in ("cls_token", "pos_embed"):
                tensor.normal_(0, 0.5, generator=generator)
    return model.eval()


def image(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_timm(variant):
    s = spec("deit")
    with torch.device("meta"):
        model, ref = s.build(variant), timm.create_model(variant, pretrained=False)
    assert count_params(model) == count_params(ref) == s.graph(variant).params == PARAMS[variant]
    assert [k for k in model.state_dict()] == [k for k in ref.state_dict()]  # timm's keys, in timm's order


def test_tiny_matches_timm():
    s = spec("deit")
    variant = "deit_tiny_patch16_224"
    model, ref, x = s.build(variant), reference(variant), image()
    diff, _ = zoo.compare(model, ref, x)
    assert diff == 0  # the same operations, in the same order
    assert_static_shapes(s, variant, model, x)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_larger_models_match_timm(variant):
    zoo.compare(spec("deit").build(variant), reference(variant), image())


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
        zoo.compare(model, reference(variant), image())
        return
    with pytest.raises(AssertionError):
        zoo.compare(model, reference(variant), image())


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("deit").build("deit_tiny_patch16_224").eval(), image(batch=1)) == 0
