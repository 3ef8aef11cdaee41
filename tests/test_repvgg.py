"""RepVGG (Ding et al. 2021): specs/repvgg.arch against timm's ten models, and its re-parameterisation, which
archc.deploy derives from the spec, against timm's own (``reparameterize_model``, a method written per block)."""

import pytest
import torch
import zoo
from archtest import assert_static_shapes, fast_tier, graph_breaks, spec
from timm.utils.model import reparameterize_model
from timmzoo import assert_counts_and_keys, image, reference

import archc

VARIANTS = ["repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1", "repvgg_b1g4", "repvgg_b2",
            "repvgg_b2g4", "repvgg_b3", "repvgg_b3g4"]
PARAMS = {"repvgg_a0": 9_108_968, "repvgg_a1": 14_092_264, "repvgg_a2": 28_210_600, "repvgg_b0": 15_817_960,
          "repvgg_b1": 57_415_016, "repvgg_b1g4": 39_966_056, "repvgg_b2": 89_022_376, "repvgg_b2g4": 61_758_376,
          "repvgg_b3": 123_085_288, "repvgg_b3g4": 83_825_128}
# one 3x3 conv (with a bias) a block once the branches are merged: timm's reparameterize_model gives the same
DEPLOYED = {"repvgg_a0": 8_309_384, "repvgg_b1g4": 36_125_416}


def draw(name, tensor, generator) -> None:
    """Every norm's affine parameters at random (timm draws them near 0.1, which hides little)."""
    if "identity" in name or ".bn." in name:
        tensor.uniform_(0.5, 1.5, generator=generator) if name.endswith("weight") else \
            tensor.uniform_(-0.5, 0.5, generator=generator)


def trained(variant: str):
    """timm's model with batch statistics of its own, as training leaves them."""
    model = reference(variant, draw)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"repvgg_a0", "repvgg_b1g4"}))
def test_counts_and_keys_match_timm(variant):
    # timm makes a block's identity norm before its convs; strict loading does not mind the order
    assert_counts_and_keys("repvgg", variant, PARAMS[variant], ordered=False)


def test_a0_matches_timm():
    s = spec("repvgg")
    model, x = s.build("repvgg_a0"), image()
    diff, scale = zoo.compare(model, trained("repvgg_a0"), x)
    assert diff <= 1e-6 * scale
    assert_static_shapes(s, "repvgg_a0", model, x)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("residual(when = stride == 1 and in.channels == c)", "residual(when = false)"),  # no identity branch
    ("stride, groups = groups, bias = false); bn = batchnorm }",
     "stride, groups = groups, bias = false); bn = batchnorm; relu }"),  # a nonlinear 1x1 branch
])
def test_a_changed_block_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("repvgg", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("repvgg_a0"), trained("repvgg_a0"), image())


@pytest.mark.parametrize("variant", ["repvgg_a0", pytest.param("repvgg_b1g4", marks=pytest.mark.slow)])
def test_deploy_is_timms_reparameterisation(variant):
    """archc.deploy merges each block's three branches into one 3x3 conv: the parameter count of timm's
    reparameterised model, and its outputs."""
    reference_model = trained(variant)
    model = spec("repvgg").build(variant)
    model.load_state_dict(reference_model.state_dict(), strict=True)
    deployed = archc.deploy(model.eval())
    theirs = reparameterize_model(reference_model)
    assert sum(p.numel() for p in deployed.parameters()) == sum(p.numel() for p in theirs.parameters()) \
        == DEPLOYED[variant]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert [m.kernel_size for m in deployed.modules() if isinstance(m, torch.nn.Conv2d)] == \
        [(3, 3)] * (1 + sum(len(stage) for stage in model.stages))
    x = image()
    with torch.no_grad():
        want, got, timms = model(x), deployed(x), theirs(x)
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= 1e-5 * scale
    assert float((got - timms).abs().max()) <= 1e-5 * scale


@pytest.mark.slow
def test_larger_models_match_timm():
    for variant in ("repvgg_b0", "repvgg_b1g4"):
        zoo.compare(spec("repvgg").build(variant), trained(variant), image())


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("repvgg").build("repvgg_a0").eval(), image(batch=1)) == 0
    assert graph_breaks(archc.deploy(spec("repvgg").build("repvgg_a0")), image(batch=1)) == 0
