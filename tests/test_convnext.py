"""ConvNeXt (Liu et al. 2022): specs/convnext.arch against torchvision's four models and the paper's Section 3."""

import pytest
import torch
import torchvision
import zoo
from archtest import spec
from torchvision.ops import StochasticDepth

VARIANTS = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]
# Section 3, "ConvNeXt variants": channels and blocks per stage
CONFIGS = {
    "convnext_tiny": ((96, 192, 384, 768), (3, 3, 9, 3)),
    "convnext_small": ((96, 192, 384, 768), (3, 3, 27, 3)),
    "convnext_base": ((128, 256, 512, 1024), (3, 3, 27, 3)),
    "convnext_large": ((192, 384, 768, 1536), (3, 3, 27, 3)),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("convnext", variant)


def test_linear_layers_count_every_position():
    # torchvision's _ops counts a linear layer on an H x W x C map as the 1x1 conv it is, H * W * in * out
    # multiply-adds; counted once per image, as on flat features, convnext_tiny would be 0.32 G, not 4.456 G
    graph = spec("convnext").graph("convnext_tiny")
    ops = graph.modules()
    assert ops["features.1.0.block.3"].macs == 56 * 56 * 96 * 384
    assert ops["features.7.2.block.5"].macs == 7 * 7 * 3072 * 768
    once = sum(op.macs // (op.shape[0] * op.shape[1]) if op.op == "linear" and op.layout == "HWC" else op.macs
               for op in graph.ops())
    assert round(once / 1e9, 2) == 0.32
    assert round(graph.macs / 1e9, 3) == zoo.torchvision_meta("convnext_tiny")["_ops"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_stages_and_stochastic_depth_schedule(variant):
    # the rate grows linearly over all blocks, from 0 at the first to stochastic_depth_prob at the last: the graph's,
    # the generated module's and torchvision's, block by block; both built on the meta device
    dims, depths = CONFIGS[variant]
    graph = spec("convnext").graph(variant)
    blocks = [op for op in graph.ops() if op.op == "add"]
    assert [op.shape[0] for op in blocks] == [d for d, n in zip(dims, depths) for _ in range(n)]
    with torch.device("meta"):
        ours = spec("convnext").build(variant)
        theirs = torchvision.models.get_model(variant, weights=None)
    expected = [m.p for m in theirs.modules() if isinstance(m, StochasticDepth)]
    assert expected[0] == 0.0 and expected[-1] == {"convnext_tiny": 0.1, "convnext_small": 0.4}.get(variant, 0.5)
    assert [op.args["stochastic_depth"] for op in blocks] == expected
    assert [m.stochastic_depth_prob for m in ours.modules() if hasattr(m, "stochastic_depth_prob")] == expected


def test_smallest_input():
    # a 4x4/4 stem and three 2x2/2 downsamplings, unpadded: 64 -> 16 -> 8 -> 4 -> 2
    assert zoo.smallest_size(spec("convnext"), "convnext_tiny") == 64


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    # convnext_large (198 M parameters) on the meta device: key by key, shape by shape. The four run the same
    # forward code (one block class, stages of any depth): one graph-break check covers them all
    zoo.assert_matches_torchvision("convnext", variant, breaks=variant == "convnext_tiny")


@pytest.mark.slow
def test_training_mode_draws_torchvisions_stochastic_depth():
    s = spec("convnext")
    x, _ = zoo.small_input(s, "convnext_tiny", batch=4)
    torch.manual_seed(0)
    model = s.build("convnext_tiny")
    reference = torchvision.models.convnext_tiny(weights=None)
    assert all(torch.equal(model.get_parameter(k), v) for k, v in reference.named_parameters() if "layer_scale" in k)
    reference = zoo.randomize_learned(zoo.randomize_batchnorm(reference))
    zoo.compare(model, reference, x)  # loads torchvision's state_dict; equal in eval
    # the same seed drops the same rows of the same blocks: equal to the bit
    assert zoo.compare_training(model, reference, x) == 0.0
    # eval: stochastic depth is the identity, draws nothing, and gives torchvision's output
    model.eval()
    with torch.no_grad():
        state = torch.get_rng_state()
        evaluated = model(x)
        assert torch.equal(torch.get_rng_state(), state)
        assert torch.equal(evaluated, reference.eval()(x))
        torch.manual_seed(0)
        trained = model.train()(x)
    assert not torch.allclose(trained, evaluated)  # layer norms have no batch statistics: only dropped rows differ


# Mutations that compile (same shapes) but compute something else: the comparison must see each of them.
MUTATIONS = {
    "GELU replaced by ReLU": ("gelu", "relu"),
    "layer scale dropped": ("layer_scale = learned_scale((dim, 1, 1), init = layer_scale)", ""),
    "depthwise conv unpadded, dilated": ("conv(dim, 7, padding = 3, groups = dim)",
                                         "conv(dim, 7, padding = 6, dilation = 2, groups = dim)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    old, new = MUTATIONS[mutation]
    why = zoo.assert_mutation_fails("convnext", "convnext_tiny", old, new, tmp_path)
    if "layer scale" in mutation:
        assert "strict load failed" in why and "features.1.0.layer_scale" in why
    else:
        assert "max difference" in why


@pytest.mark.slow
def test_training_comparison_fails_for_another_schedule(tmp_path):
    # the rate divided by the number of blocks, not one less: equal in eval, other rows dropped in training
    mutant = zoo.mutated_spec("convnext", "block_id / (total_blocks - 1)", "block_id / total_blocks", tmp_path)
    x, _ = zoo.small_input(spec("convnext"), "convnext_tiny", batch=4)
    model, reference = mutant.build("convnext_tiny"), zoo.reference_model("convnext_tiny")
    zoo.compare(model, reference, x)
    with pytest.raises(AssertionError, match="training mode: max difference"):
        zoo.compare_training(model, reference, x)
