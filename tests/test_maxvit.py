"""MaxViT (Tu et al. 2022): specs/maxvit.arch against torchvision's maxvit_t."""

import pytest
import torch
import torchvision
import zoo
from archtest import assert_static_shapes, count_params, graph_breaks, randomize_batchnorm, spec


def test_counts_match_torchvision_metadata():
    zoo.assert_counts("maxvit", "maxvit_t")


def test_every_stage_must_cut_into_partitions():
    # 7 x 7 partitions of each stage's map: 224 gives 56, 28, 14, 7; 448 works, 256 does not (64 is no multiple)
    s = spec("maxvit")
    assert s.graph("maxvit_t", size=448).params == s.graph("maxvit_t").params
    with pytest.raises(Exception, match="does not cut into 7 x 7 partitions"):
        s.graph("maxvit_t", size=256)


def reference(**kwargs) -> torch.nn.Module:
    """torchvision's maxvit_t, every parameter and batch-norm statistic drawn at random (its zero biases and
    zero-initialised head would hide a misplaced bias)."""
    torch.manual_seed(0)
    model = randomize_batchnorm(torchvision.models.maxvit_t(weights=None, **kwargs))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if tensor.dim() > 1:
                tensor.normal_(0, 0.05, generator=generator)
            elif "bn" not in name and "norm" not in name:
                tensor.normal_(0, 0.5, generator=generator)
    return model


def image(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2


@pytest.mark.slow
def test_matches_torchvision():
    s = spec("maxvit")
    model, ref, x = s.build("maxvit_t"), reference(), image()
    assert count_params(model) == count_params(ref) == zoo.torchvision_meta("maxvit_t")["num_params"]
    theirs = dict(ref.named_buffers())  # made, not loaded: the index is computed in the spec
    index = {name: b for name, b in model.named_buffers() if name.endswith("relative_position_index")}
    assert index.keys() == {name for name in theirs if name.endswith("relative_position_index")}
    assert all(torch.equal(b, theirs[name]) for name, b in index.items())
    zoo.compare(model, ref, x)
    assert_static_shapes(s, "maxvit_t", model, x)


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("maxvit").build("maxvit_t").eval(), image(batch=1)) == 0


@pytest.mark.slow
def test_training_mode_drops_what_torchvision_drops():
    # stochastic depth per layer (the MBConv and both attention branches), dropout on the MLPs and the
    # attention's output: the same seed draws the same masks in the same order
    kwargs = dict(mlp_dropout=0.1, attention_dropout=0.1)
    model, ref, x = spec("maxvit").build("maxvit_t", **kwargs), reference(**kwargs), image()
    zoo.compare(model, ref, x)
    assert zoo.compare_training(model, ref, x) == 0.0


SPEC_MUTATIONS = {
    "GELU replaced by ReLU in the MLP": ("linear(in.channels * mlp_ratio)\n            activation_layer",
                                         "linear(in.channels * mlp_ratio)\n            relu"),
    "block attention twice, no grid": ('"grid", mlp_ratio', '"window", mlp_ratio'),
    "no squeeze-excitation": ("squeeze_excitation = SqueezeExcitation(int(out_channels * squeeze_ratio), "
                              "activation = silu)", "squeeze_excitation = SqueezeExcitation(int(out_channels * "
                                                    "squeeze_ratio), activation = silu, scale_activation = "
                                                    "hardsigmoid)"),
    # the attention, written in the spec: its relative position bias, the keys' scale
    "no relative position bias": ('"bghid,bghjd->bghij") + bias', '"bghid,bghjd->bghij") + 0 * bias'),
    "keys not scaled": ("[q, k * dim ** -0.5]", "[q, k]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", SPEC_MUTATIONS)
def test_comparison_fails_for_a_mutant_spec(mutation, tmp_path):
    old, new = SPEC_MUTATIONS[mutation]
    mutant = zoo.mutated_spec("maxvit", old, new, tmp_path)
    with pytest.raises(AssertionError, match="max difference"):
        zoo.compare(mutant.build("maxvit_t"), reference(), image())
