"""ConvNeXt V2 (Woo et al. 2023): specs/convnextv2.arch against timm's eight models: Global Response Normalization
written from tensor primitives (an L2 norm over the map, a mean over the channels, learned gamma and beta), in the
MLP of ConvNeXt's block, under timm's names; the four smallest with timm's 1x1-conv MLPs."""

from functools import cache

import pytest
import timm
import torch
import zoo
from archtest import assert_static_shapes, fast_tier, graph_breaks, spec
from timm.layers.grn import GlobalResponseNorm
from timm.models.convnext import ConvNeXt
from timmzoo import assert_counts_and_keys, image, reference, starts_as_timm

VARIANTS = ["convnextv2_atto", "convnextv2_femto", "convnextv2_pico", "convnextv2_nano", "convnextv2_tiny",
            "convnextv2_base", "convnextv2_large", "convnextv2_huge"]
PARAMS = {"convnextv2_atto": 3_708_400, "convnextv2_femto": 5_233_240, "convnextv2_pico": 9_066_280,
          "convnextv2_nano": 15_623_800, "convnextv2_tiny": 28_635_496, "convnextv2_base": 88_717_800,
          "convnextv2_large": 197_956_840, "convnextv2_huge": 660_289_640}
# A small ConvNeXt V2 of each kind (the MLP on a channels-last map of linear layers, or timm's conv_mlp of 1x1
# convs), built from the generated class and from timm's, for the checks that compare many models
SMALL = {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128]}


def draw(name, tensor, generator) -> None:
    """Every tensor at random: the LayerNorms' affine terms, the zero biases, and GRN's gamma and beta, which timm
    starts at zero (so that GRN starts as the identity and a wrong GRN would not show)."""
    if ".grn." in name:
        tensor.normal_(0, 0.5, generator=generator)
    elif name.endswith("weight") and tensor.dim() == 1:  # the LayerNorms: stem.1, downsample.0, norm, head.norm
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias"):
        tensor.normal_(0, 0.2, generator=generator)


def grn_without_fused_multiply_add(self, x):
    """timm's GRN with its addcmul written as a product, then a sum (as the spec's learned tensors apply)."""
    x_g = x.norm(p=2, dim=self.spatial_dim, keepdim=True)
    x_n = x_g / (x_g.mean(dim=self.channel_dim, keepdim=True) + self.eps)
    return x + ((x * x_n) * self.weight.view(self.wb_shape) + self.bias.view(self.wb_shape))


def small(conv_mlp: bool, s=None, seed: int = 0):
    """Our small model (from ``s``, the spec by default) and timm's, both after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    ours = (s or spec("convnextv2")).python_module().ConvNeXt(**SMALL, conv_mlp=conv_mlp)
    torch.manual_seed(seed)
    theirs = ConvNeXt(**SMALL, conv_mlp=conv_mlp, use_grn=True, ls_init_value=None)
    return ours, theirs


def drawn(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every tensor drawn at random (as timmzoo.reference draws them), in eval mode."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            draw(name, tensor, generator)
    return model.eval()


@cache
def small_reference(conv_mlp: bool) -> torch.nn.Module:
    """timm's small model, every tensor drawn at random (shared by the mutation tests)."""
    return drawn(small(conv_mlp)[1])


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"convnextv2_atto", "convnextv2_tiny", "convnextv2_huge"}))
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("convnextv2", variant, PARAMS[variant])


def test_atto_matches_timm(monkeypatch):
    """The same tensors as timm's for the same seed; then, every tensor drawn at random, the same outputs within
    the rounding of timm's fused multiply-add in GRN (an addcmul, whose last bit may differ from a product then a
    sum), and exactly with that written as a product then a sum."""
    s, variant = spec("convnextv2"), "convnextv2_atto"
    torch.manual_seed(0)
    model = s.build(variant)
    torch.manual_seed(0)
    ref = timm.create_model(variant)
    assert all(torch.equal(model.state_dict()[k], t) for k, t in ref.state_dict().items())
    ref, x = drawn(ref), image(size=64)
    diff, scale = zoo.compare(model, ref, x)
    assert diff <= 1e-6 * scale
    monkeypatch.setattr(GlobalResponseNorm, "forward", grn_without_fused_multiply_add)
    assert zoo.compare(model, ref, x)[0] == 0
    assert_static_shapes(s, variant, model, x, img_size=64)


@pytest.mark.parametrize("conv_mlp", [False, True])
def test_each_kind_of_mlp_matches_timm_exactly(conv_mlp, monkeypatch):
    monkeypatch.setattr(GlobalResponseNorm, "forward", grn_without_fused_multiply_add)
    model, x = small(conv_mlp)[0], image(size=64)
    assert zoo.compare(model, small_reference(conv_mlp), x)[0] == 0
    assert_static_shapes(spec("convnextv2"), "convnextv2_tiny", model, x, img_size=64, conv_mlp=conv_mlp, **SMALL)


@pytest.mark.parametrize("conv_mlp", [False, True])
def test_the_interpreter_agrees(conv_mlp):
    """The graph interpreter (GRN's L2 norm computed from its definition, not by torch.linalg.vector_norm) holding the
    small model's drawn tensors gives its outputs, in float64."""
    s = spec("convnextv2")
    ours = s.python_module().ConvNeXt(**SMALL, conv_mlp=conv_mlp)
    ours.load_state_dict(small_reference(conv_mlp).state_dict())
    interp = s.interpret("convnextv2_tiny", img_size=64, conv_mlp=conv_mlp, **SMALL)
    interp.load_state_dict(ours.state_dict(), strict=True)
    x = image(size=64).double()
    with torch.no_grad():
        a, b = ours.double().eval()(x), interp.double().eval()(x)
    assert (a - b).abs().max() <= 1e-9 * a.abs().max()


def test_backbone_is_timms():
    """features_only: the stage outputs timm's feature_info names, with their channels and reductions."""
    module = spec("convnextv2").python_module()
    for variant in ("convnextv2_atto", "convnextv2_base"):
        with torch.device("meta"):
            ours = getattr(module, variant)(features_only=True).feature_info
            theirs = timm.create_model(variant, features_only=True).feature_info
        assert (ours.channels(), ours.reduction(), ours.module_name()) == \
            (theirs.channels(), theirs.reduction(), theirs.module_name())


GELU_THEN_GRN = "        act = gelu\n        permute([0, 2, 3, 1])\n        grn = GlobalResponseNorm(hidden)\n"
GRN_THEN_GELU = "        permute([0, 2, 3, 1])\n        grn = GlobalResponseNorm(hidden)\n        act = gelu\n"
NORM = "vector_norm(x, (1, 2), keepdim = true)"
SKIP = "let y = x + bias(weight(x * nx))"


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new", "conv_mlp"), [
    (NORM, "vector_norm(x, -1, keepdim = true)", False),  # over the channels, not the map
    ("mean(gx, -1, keepdim = true)", "mean(gx, 1, keepdim = true)", False),  # the mean over a spatial axis
    (SKIP, "let y = bias(weight(x * nx))", False),  # no skip around GRN
    (GELU_THEN_GRN, GRN_THEN_GELU, True),  # GRN before the GELU
    pytest.param(NORM, "vector_norm(x, (1, 2), ord = 1, keepdim = true)", False, marks=pytest.mark.slow),  # L1
    pytest.param("GlobalResponseNorm(dim, eps = 1e-6)", "GlobalResponseNorm(dim, eps = 1e-3)", True,
                 marks=pytest.mark.slow),  # Keras's eps
    pytest.param(SKIP, "let y = x + bias(weight(x)) * nx", True, marks=pytest.mark.slow),  # beta calibrated too
])
def test_a_changed_grn_no_longer_matches(old, new, conv_mlp, tmp_path):
    model = small(conv_mlp, zoo.mutated_spec("convnextv2", old, new, tmp_path))[0]
    with pytest.raises(AssertionError):
        zoo.compare(model, small_reference(conv_mlp), image(size=64))


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
def test_a_changed_initialisation_starts_elsewhere(tmp_path):
    mutated = zoo.mutated_spec("convnextv2", "init conv.weight = trunc_normal_timm(std = 0.02)",
                               "init conv.weight = trunc_normal(std = 0.02)", tmp_path)  # torch's, not timm's
    for s, same in ((spec("convnextv2"), True), (mutated, False)):
        ours, theirs = (m.state_dict() for m in small(True, s, seed=7))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs) == same


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["convnextv2_femto", "convnextv2_pico", "convnextv2_nano", "convnextv2_tiny"])
def test_larger_models_match_timm(variant, monkeypatch):
    s, x = spec("convnextv2"), image()
    model, ref = s.build(variant), reference(variant, draw)
    diff, scale = zoo.compare(model, ref, x)
    assert diff <= 1e-6 * scale
    monkeypatch.setattr(GlobalResponseNorm, "forward", grn_without_fused_multiply_add)
    assert zoo.compare(model, ref, x)[0] == 0
    assert_static_shapes(s, variant, model, x)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["convnextv2_base", "convnextv2_large"])
def test_wide_models_match_timm_on_a_small_image(variant, monkeypatch):
    monkeypatch.setattr(GlobalResponseNorm, "forward", grn_without_fused_multiply_add)
    diff, _ = zoo.compare(spec("convnextv2").build(variant), reference(variant, draw), image(size=64))
    assert diff == 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["convnextv2_nano", "convnextv2_tiny"])
def test_larger_models_start_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("convnextv2"), variant)


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", ["convnextv2_atto", "convnextv2_tiny"])
def test_no_graph_breaks(variant):
    assert graph_breaks(spec("convnextv2").build(variant).eval(), image(batch=1, size=64)) == 0
