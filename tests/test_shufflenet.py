"""ShuffleNet V2 (Ma et al. 2018): specs/shufflenet.arch against torchvision and the paper's Table 5."""

import pytest
import zoo
from archtest import rounds_to, spec

from archc.backends import stats

VARIANTS = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
# Table 5: output channels of stage2, stage3, stage4 and conv5, FLOPs (M, multiply-adds) and parameters (M)
TABLE_5 = {
    "shufflenet_v2_x0_5": ((48, 96, 192, 1024), 41, 1.4),
    "shufflenet_v2_x1_0": ((116, 232, 464, 1024), 146, 2.3),
    "shufflenet_v2_x1_5": ((176, 352, 704, 1024), 299, 3.5),
    "shufflenet_v2_x2_0": ((244, 488, 976, 2048), 591, 7.4),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("shufflenet", variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_table_5(variant):
    channels, mflops, mparams = TABLE_5[variant]
    graph = spec("shufflenet").graph(variant)
    by_name = {row.name: row for row in stats.rows(graph, depth=1)}
    assert by_name["conv1"].shape == (24, 112, 112) and by_name["maxpool"].shape == (24, 56, 56)
    sizes = [by_name[name].shape for name in ("stage2", "stage3", "stage4", "conv5")]
    assert sizes == [(c, s, s) for c, s in zip(channels, (28, 14, 7, 7))]
    assert rounds_to(graph.params, mparams)
    # the paper's FLOPs are 0.8% to 1.3% above what archc and torchvision count (its counter is not published)
    assert 0.985 < graph.macs / (mflops * 1e6) < 0.995


def test_only_the_downsampling_unit_has_two_branches():
    graph = spec("shufflenet").graph("shufflenet_v2_x1_0")
    branches = sorted({name.rsplit(".", 1)[0] for name in graph.modules() if ".branch1." in name})
    assert branches == ["stage2.0.branch1", "stage3.0.branch1", "stage4.0.branch1"]
    # a basic unit transforms half its channels at constant width: 1x1, depthwise 3x3, 1x1, each with a batch norm
    unit = {name.removeprefix("stage3.1."): op for name, op in graph.modules().items() if name.startswith("stage3.1.")}
    convs = [(op.in_shapes[0], op.shape, op.args["groups"]) for op in unit.values() if op.op == "conv"]
    assert convs == [((116, 14, 14), (116, 14, 14), 1), ((116, 14, 14), (116, 14, 14), 116),
                     ((116, 14, 14), (116, 14, 14), 1)]


def test_smallest_input():
    # a 3x3/2 conv, a 3x3/2 pool and three 3x3/2 units, all padded: 33 -> 17 -> 9 -> 5 -> 3 -> 2
    assert zoo.smallest_size(spec("shufflenet"), "shufflenet_v2_x1_0") == 33


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    # the four widths run the same forward code (two unit classes, both in every stage): one graph-break check
    # covers them all
    zoo.assert_matches_torchvision("shufflenet", variant, breaks=variant == "shufflenet_v2_x0_5")


# Mutations that compile (same shapes) but compute something else: the comparison must see each of them.
MUTATIONS = {
    "channel shuffle dropped": ("channel_shuffle(2)", ""),
    "the basic unit transforms the first half": ("chunk(2, 1) if stride == 1", "chunk(2, 0) if stride == 1"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    old, new = MUTATIONS[mutation]
    why = zoo.assert_mutation_fails("shufflenet", "shufflenet_v2_x0_5", old, new, tmp_path)
    assert "max difference" in why
