"""Deep Layer Aggregation (Yu et al. 2018): specs/dla.arch against timm's models (Res2Net's forms too). Its trees are recursive blocks
(a tree of depth n is two trees of depth n - 1 and a root), written as the paper's Figure 2(f) reads; under
timm's names, so timm's state_dict loads strictly, with timm's parameter counts, equal outputs (batch-norm
statistics drawn at random) and the same tensors for the same seed. As a backbone, timm's features_only maps."""

import pytest
import timm
import torch
import zoo
from archtest import assert_static_shapes, count_params, graph_breaks, randomize_batchnorm, spec
from timmzoo import assert_counts_and_keys, draw_batchnorms, image, reference, starts_as_timm
from timmzoo import generated_module as generated
from torch import nn

PARAMS = {"dla34": 15_742_104, "dla46_c": 1_301_400, "dla46x_c": 1_068_440, "dla60": 22_036_632,
          "dla60x_c": 1_319_832, "dla60x": 17_352_344, "dla102": 33_268_888, "dla102x": 26_309_272,
          "dla102x2": 41_282_200, "dla169": 53_389_720, "dla60_res2net": 20_848_072, "dla60_res2next": 17_032_984}
FAST = ["dla34", "dla46_c"]  # the basic block and the bottleneck; the others in the slow tier
# run in the slow tier: the bottleneck, grouped, a tree of depth 3 (its right subtree a tree with children), the
# root's residual, and a stage's tree of depth 2 without its input as a child (DLA-169's level2); the other
# variants differ from these in widths and groups only, which their counts, keys and seed-for-seed starts check
COMPARED = ["dla46_c", "dla60x_c", "dla60", "dla102", "dla169", "dla60_res2net"]  # (Res2NeXt: counts, keys, start)
SIZE = 64  # five stride-2 stages leave a 2 x 2 map: every tree and root still reads every position


def randomized(variant: str) -> nn.Module:
    return randomize_batchnorm(reference(variant, draw_batchnorms))


def generated_module():
    return generated("dla")


@pytest.mark.parametrize("variant", [v if v in FAST else pytest.param(v, marks=pytest.mark.slow) for v in PARAMS])
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("dla", variant, PARAMS[variant])  # in timm's order too


@pytest.mark.parametrize("variant", ["dla34", *(pytest.param(v, marks=pytest.mark.slow) for v in COMPARED)])
def test_outputs_match_timm(variant):
    s = spec("dla")
    model, x = s.build(variant), image(size=SIZE if variant == "dla34" else 32)  # (32: the last map is 1 x 1)
    diff, _ = zoo.compare(model, randomized(variant), x)
    assert diff == 0
    if variant == "dla34":
        assert_static_shapes(s, variant, model, x, size=SIZE)


def test_the_trees_recurse():
    """dla60's level4 is a tree of depth 3: a tree of depth 2 (two of depth 1) on each side."""
    model = generated_module().dla60()
    assert type(model.level4).__name__ == type(model.level4.tree1).__name__ == "DlaTree"
    assert type(model.level4.tree2).__name__ == "DlaTreeJoin"
    assert type(model.level4.tree1.tree1).__name__ == "DlaLeaf"
    assert type(model.level4.tree2.tree2).__name__ == "DlaLeafJoin"
    # the deepest root reads the two blocks, both trees' left outputs and the stage's downsampled input
    assert model.level4.tree2.tree2.root.conv.in_channels == 4 * 512 + 256
    assert model.level4.level_root and not model.level4.tree1.level_root and not model.level2.level_root


@pytest.mark.slow  # timm's order of modules and of its init loop is the spec's: the same seed, the same tensors
@pytest.mark.parametrize("variant", list(PARAMS))
def test_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("dla"), variant)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new", "occurrence"), [
    ("cat([x2, x1, bottom], 1) if level_root", "cat([x1, x2, bottom], 1) if level_root", 1),  # the root's inputs
    # the children passed down in another order: the stage's input after the left tree's output
    ("    let children = cat([downsample(x), x1], 1)", "    let children = cat([x1, downsample(x)], 1)", 1),
    # the root's residual where DLA-102 and DLA-169 have it, not where DLA-34 has none
    ("relu(h + first) if root_shortcut else relu(h)", "relu(h) if root_shortcut else relu(h + first)", 1),
    ("root(cat([x2, x1, children], 1), x2)", "root(cat([x2, children, x1], 1), x2)", 1),
    ("downsample = maxpool(stride, stride = stride)", "downsample = avgpool(stride, stride = stride)", 1),
    ("    bn2 = batchnorm\n", "    bn2 = batchnorm(eps = 0.001)\n", 1),  # another epsilon
])
def test_a_changed_layer_no_longer_matches(old, new, occurrence, tmp_path):
    s = zoo.mutated_spec("dla", old, new, tmp_path, occurrence=occurrence)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("dla34"), randomized("dla34"), image(size=SIZE))


@pytest.mark.slow
@pytest.mark.parametrize(("old", "new"), [
    ("        let sp = part if i == 0 or first else sp + part\n", "        let sp = part\n"),  # no hierarchy
    ("cat(spo + [pool(last)], 1)", "cat([pool(last)] + spo, 1)"),  # the unchanged subset first
])
def test_a_changed_res2net_block_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("dla", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("dla60_res2net"), randomized("dla60_res2net"), image(size=32))


def test_the_taps_are_timms():
    ours = generated_module().dla34(features_only=True)
    theirs = timm.create_model("dla34", features_only=True, pretrained=False)
    assert ours.feature_info.channels() == theirs.feature_info.channels() == [32, 64, 128, 256, 512]
    assert ours.feature_info.reduction() == theirs.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert ours.feature_info.module_name() == theirs.feature_info.module_name()


@pytest.mark.slow
def test_the_feature_maps_are_timms():
    ours = generated_module().dla34(features_only=True).eval()
    theirs = timm.create_model("dla34", features_only=True, pretrained=False).eval()
    randomize_batchnorm(theirs)
    ours.load_state_dict(theirs.state_dict())
    x = image(size=SIZE)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    model = spec("dla").build("dla34").eval()
    assert graph_breaks(model, image(batch=1, size=SIZE)) == 0
    assert count_params(model) == PARAMS["dla34"]
