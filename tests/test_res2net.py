"""Res2Net (Gao et al., TPAMI 2021): specs/res2net.arch against timm's models. Its bottleneck's hierarchy of 3x3
convs is a loop in a block with named tensors (each subset added to the output before it, convolved, the outputs
kept in a list), its convs and norms two interleaved module lists (convs.0, bns.0, ...); under timm's names, so
timm's state_dict loads strictly, with timm's parameter counts, equal outputs (batch-norm statistics drawn at
random) and the same tensors for the same seed. As a backbone, timm's features_only maps."""

import pytest
import timm
import torch
import zoo
from archtest import ROOT, assert_static_shapes, count_params, graph_breaks, randomize_batchnorm, spec
from timmzoo import assert_counts_and_keys, draw_batchnorms, image, reference, starts_as_timm
from timmzoo import generated_module as generated
from torch import nn

PARAMS = {"res2net50_26w_4s": 25_699_120, "res2net50_26w_6s": 37_051_448, "res2net50_26w_8s": 48_403_776,
          "res2net50_48w_2s": 25_287_304, "res2net50_14w_8s": 25_059_816, "res2net101_26w_4s": 45_206_688,
          "res2next50": 24_671_464}
FAST = "res2net50_26w_4s"
# in the slow tier: eight scales, two (one conv a block), the grouped Res2NeXt and the deeper network
COMPARED = ["res2net50_14w_8s", "res2net50_48w_2s", "res2next50", "res2net101_26w_4s"]
SIZE = 64  # five stride-2 steps leave a 2 x 2 map


def randomized(variant: str) -> nn.Module:
    return randomize_batchnorm(reference(variant, draw_batchnorms))


def generated_module():
    return generated("res2net")


@pytest.mark.parametrize("variant", [v if v == FAST else pytest.param(v, marks=pytest.mark.slow) for v in PARAMS])
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("res2net", variant, PARAMS[variant])  # in timm's order too


@pytest.mark.parametrize("variant", [FAST, *(pytest.param(v, marks=pytest.mark.slow) for v in COMPARED)])
def test_outputs_match_timm(variant):
    s = spec("res2net")
    model, x = s.build(variant), image(size=32)  # (the last map 1 x 1: the fast tier's cheapest exact check)
    diff, _ = zoo.compare(model, randomized(variant), x)
    assert diff == 0


@pytest.mark.slow  # every module's shapes, hooked
def test_static_shapes_are_the_runtime_shapes():
    s = spec("res2net")
    assert_static_shapes(s, FAST, s.build(FAST), image(size=SIZE), size=SIZE)


def test_the_hierarchy_is_a_loop_over_the_module_lists():
    """The generated bottleneck reads like timm's: a Python loop over range(scale - 1), self.convs[i]."""
    source = (ROOT / "generated" / "res2net.py").read_text()
    assert "for i in range(max(1, self.scale - 1)):" in source
    assert "sp = self.convs[i](sp)" in source and "spo = spo + [sp]" in source
    with torch.device("meta"):
        stage = generated_module().res2net50_14w_8s().layer2
    assert len(stage[0].convs) == len(stage[0].bns) == 7 and stage[0].pool is not None and stage[1].pool is None


@pytest.mark.slow  # timm's order of modules and of its init loop is the spec's: the same seed, the same tensors
@pytest.mark.parametrize("variant", list(PARAMS))
def test_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("res2net"), variant)


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), [
    ("part if i == 0 or first else sp + part", "part if i < 2 or first else sp + part"),  # the hierarchy later
    ("part if i == 0 or first else sp + part", "part if i == 0 or first else part"),  # no hierarchy at all
    ("cat(spo + [pool(last)], 1)", "cat([pool(last)] + spo, 1)"),  # the unchanged subset first
    ("let last = narrow(spx, 1, (scale - 1) * width, width)", "let last = narrow(spx, 1, 0, width)"),
    ("pool = avgpool(3, stride, padding = 1)", "pool = maxpool(3, stride, padding = 1)"),
    ("let sp = relu(bns[i](convs[i](sp)))", "let sp = bns[i](convs[i](sp))"),  # no activation after each K_i
])
def test_a_changed_layer_no_longer_matches(old, new, tmp_path):
    s = zoo.mutated_spec("res2net", old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build(FAST), randomized(FAST), image(size=SIZE))


def test_the_taps_are_timms():
    ours = generated_module().res2net50_26w_4s(features_only=True)
    with torch.device("meta"):
        theirs = timm.create_model(FAST, features_only=True, pretrained=False)
    assert ours.feature_info.channels() == theirs.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert ours.feature_info.reduction() == theirs.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert ours.feature_info.module_name() == theirs.feature_info.module_name()


@pytest.mark.slow
def test_the_feature_maps_are_timms():
    ours = generated_module().res2net50_26w_4s(features_only=True).eval()
    theirs = timm.create_model(FAST, features_only=True, pretrained=False).eval()
    randomize_batchnorm(theirs)
    ours.load_state_dict(theirs.state_dict())
    x = image(size=SIZE)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    model = spec("res2net").build(FAST).eval()
    assert graph_breaks(model, image(batch=1, size=SIZE)) == 0
    assert count_params(model) == PARAMS[FAST]
