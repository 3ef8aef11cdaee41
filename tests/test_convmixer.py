"""ConvMixer (Trockman and Kolter 2022): specs/convmixer.arch against timm's three models: a patch embedding,
then layers of a depthwise conv in a skip connection and a pointwise conv, each followed by the activation and a
BatchNorm, under timm's names (its Residual's ``fn``, the numbered children of its nn.Sequentials)."""

import pytest
import torch
import zoo
from archtest import assert_static_shapes, graph_breaks, randomize_batchnorm, spec
from timm.models.convmixer import ConvMixer
from timmzoo import assert_counts_and_keys, image, reference, starts_as_timm
from torch import nn

VARIANTS = ["convmixer_1536_20", "convmixer_768_32", "convmixer_1024_20_ks9_p14"]
PARAMS = {"convmixer_1536_20": 51_625_960, "convmixer_768_32": 21_110_248, "convmixer_1024_20_ks9_p14": 24_383_464}
# Inputs that leave a 4 x 4 map after the patch embedding, where each position's 7x7 or 9x9 depthwise kernel
# reads every other position and the padding: 32 layers at 224 x 224 would cost seconds (test_at_224 is slow)
SIZE = {"convmixer_1536_20": 28, "convmixer_768_32": 28, "convmixer_1024_20_ks9_p14": 56}


def draw(name, tensor, generator) -> None:
    """The BatchNorms' affine terms away from 1 and 0 (the convs' and the head's tensors are random already)."""
    if tensor.dim() == 1 and not name.startswith("head"):
        tensor.uniform_(0.5, 1.5, generator=generator) if name.endswith("weight") else \
            tensor.normal_(0, 0.2, generator=generator)


def randomized(variant: str) -> nn.Module:
    """timm's model with every parameter drawn, and its BatchNorms' running statistics too (a wrong eps shows)."""
    return randomize_batchnorm(reference(variant, draw))


def small_pair(s, kernel_size: int = 7, patch_size: int = 7, activation=nn.ReLU):
    """The generated ConvMixer class and timm's at width 64 and depth 2, timm's randomized: cheap enough for the
    mutations, whose changes are in the blocks every variant shares."""
    torch.manual_seed(0)
    ours = s.python_module().ConvMixer(64, 2, kernel_size, patch_size, activation, num_classes=10)
    theirs = ConvMixer(64, 2, kernel_size, patch_size, num_classes=10, act_layer=activation)
    return ours, randomize_batchnorm(theirs).eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("convmixer", variant, PARAMS[variant])


def test_768_32_matches_timm():
    s = spec("convmixer")
    variant = "convmixer_768_32"
    model, x = s.build(variant), image(size=SIZE[variant])
    diff, _ = zoo.compare(model, randomized(variant), x)
    assert diff == 0
    assert_static_shapes(s, variant, model, x, size=SIZE[variant])


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
def test_starts_as_timm_does_seed_for_seed():
    # timm leaves every layer at PyTorch's default: the same modules made in the same order draw the same tensors
    assert starts_as_timm(spec("convmixer"), "convmixer_768_32")


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("    residual {\n", "    seq {\n"),  # no skip around the depthwise conv
    ("    conv(dim, 1)\n    activation\n    batchnorm\n",
     "    conv(dim, 1)\n    activation\n    batchnorm(eps = 1e-3)\n"),  # another epsilon
    ("    conv(dim, 1)\n    activation\n", "    conv(dim, 1)\n    gelu\n"),  # the paper's GELU written in, not ReLU
    ("    adaptive_avgpool(1)\n", "    adaptive_maxpool(1)\n"),  # max instead of mean pooling
])
def test_a_changed_layer_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("convmixer", old, new, tmp_path)
    ours, theirs = small_pair(s)
    with pytest.raises(AssertionError):
        zoo.compare(ours, theirs, image(size=28))


def test_the_small_pair_matches():
    ours, theirs = small_pair(spec("convmixer"), 9, 14, nn.GELU)
    diff, _ = zoo.compare(ours, theirs, image(size=56))
    assert diff == 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["convmixer_1536_20", "convmixer_1024_20_ks9_p14"])
def test_larger_models_match_timm(variant):
    s = spec("convmixer")
    model, x = s.build(variant), image(size=SIZE[variant])
    diff, _ = zoo.compare(model, randomized(variant), x)
    assert diff == 0
    assert_static_shapes(s, variant, model, x, size=SIZE[variant])


@pytest.mark.slow
def test_at_224_matches_timm():
    diff, _ = zoo.compare(spec("convmixer").build("convmixer_1024_20_ks9_p14"),
                          randomized("convmixer_1024_20_ks9_p14"), image())
    assert diff == 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["convmixer_1536_20", "convmixer_1024_20_ks9_p14"])
def test_larger_models_start_as_timm_does(variant):
    assert starts_as_timm(spec("convmixer"), variant)


@pytest.mark.slow
def test_the_variant_says_relu(tmp_path):
    s = zoo.mutated_spec("convmixer", ", activation = relu)", ")", tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("convmixer_768_32"), randomized("convmixer_768_32"), image(size=28))


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("convmixer").build("convmixer_768_32").eval(), image(batch=1, size=28)) == 0
