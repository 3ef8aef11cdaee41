"""gMLP (Liu et al. 2021): specs/gmlp.arch against timm's three models: the spatial gating unit written in a block
with named tensors (the channels split in halves, one normalised and mixed across the tokens on the transposed
table, then multiplied into the other), under timm's names (MlpMixer, SpatialGatingBlock, GatedMlp)."""

import pytest
import timm
import torch
import zoo
from archtest import assert_static_shapes, fast_tier, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, starts_as_timm

VARIANTS = ["gmlp_ti16_224", "gmlp_s16_224", "gmlp_b16_224"]
PARAMS = {"gmlp_ti16_224": 5_867_328, "gmlp_s16_224": 19_422_656, "gmlp_b16_224": 73_075_392}
# 64 x 64 images, 16 patches: the token projections are 16 x 16 and a model costs a tenth of what it does at 224
# (its variant's img_size, which timm's models also take, sets the projections' size)
SIZE = 64


def draw(name, tensor, generator) -> None:
    """Every tensor at random: the norms' affine terms, the biases (the gates' start at 1, the others near 0), the
    head (zero in timm) and the token projections, which timm starts at N(0, 1e-12), so that the gate is all
    bias: drawn at unit gain here, for the mixing across the tokens to show in the output."""
    if "norm" in name and name.endswith("weight"):
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias") or name.startswith("head"):
        tensor.normal_(0, 0.2, generator=generator)
    elif name.endswith("gate.proj.weight"):
        tensor.normal_(0, tensor.shape[1] ** -0.5, generator=generator)


def reference(variant: str, size: int = SIZE) -> torch.nn.Module:
    """timm's model for ``size`` x ``size`` images with every parameter drawn (timmzoo.reference at another size)."""
    torch.manual_seed(0)
    model = timm.create_model(variant, pretrained=False, img_size=size)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            draw(name, tensor, generator)
    return model.eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("gmlp", variant, PARAMS[variant])


def test_tiny_matches_timm():
    s = spec("gmlp")
    variant = "gmlp_ti16_224"
    model, x = s.build(variant, img_size=SIZE), image(size=SIZE)
    diff, _ = zoo.compare(model, reference(variant), x)
    assert diff == 0
    assert_static_shapes(s, variant, model, x, img_size=SIZE)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"gmlp_ti16_224"}))
def test_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("gmlp"), variant)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    # the token projection drawn once, as the paper says, not twice as timm draws it: the stream moves on
    # differently, so every later tensor differs
    ("init proj.weight = [xavier_uniform(), normal(0, 1e-6)]", "init proj.weight = normal(0, 1e-6)"),
    pytest.param("init proj.bias = [normal(0, 1e-6), 1]", "init proj.bias = [normal(0, 1e-6), 0]",  # b = 1
                 marks=pytest.mark.slow),
])
def test_the_initialisation_rules_are_what_make_it_seed_for_seed(old, new, tmp_path):
    assert not starts_as_timm(zoo.mutated_spec("gmlp", old, new, tmp_path), "gmlp_ti16_224")


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("let v = norm(narrow(x, 2, dim // 2, dim // 2))", "let v = norm(narrow(x, 2, 0, dim // 2))"),  # one half
    ("    norm = layernorm\n", "    norm = layernorm(eps = 1e-6)\n"),  # the gate's norm has torch's eps, not 1e-6
    ("    residual {\n", "    seq {\n"),  # no skip
    pytest.param("    mean(1)\n", "    amax(1)\n", marks=pytest.mark.slow),  # max instead of mean pooling
])
def test_a_changed_gate_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("gmlp", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("gmlp_ti16_224", img_size=SIZE), reference("gmlp_ti16_224"), image(size=SIZE))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["gmlp_s16_224", "gmlp_b16_224"])
def test_larger_models_match_timm(variant):
    s = spec("gmlp")
    model, x = s.build(variant, img_size=SIZE), image(size=SIZE)
    diff, _ = zoo.compare(model, reference(variant), x)
    assert diff == 0
    assert_static_shapes(s, variant, model, x, img_size=SIZE)


@pytest.mark.slow
def test_at_224_matches_timm():
    diff, _ = zoo.compare(spec("gmlp").build("gmlp_s16_224"), reference("gmlp_s16_224", 224), image())
    assert diff == 0


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("gmlp").build("gmlp_ti16_224").eval(), image(batch=1)) == 0
