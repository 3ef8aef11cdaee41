"""SqueezeNet (Iandola et al. 2016): specs/squeezenet.arch against torchvision and the paper's Table 1."""

import pytest
import zoo
from archtest import spec

from archc import SpecError
from archc.backends import stats

VARIANTS = ["squeezenet1_0", "squeezenet1_1"]

# Table 1 (SqueezeNet 1.0, 227 x 227 input): output size and parameters before pruning, per layer.
TABLE_1 = {
    "conv1": ((96, 111, 111), 14_208),
    "maxpool1": ((96, 55, 55), 0),
    "fire2": ((128, 55, 55), 11_920),
    "fire3": ((128, 55, 55), 12_432),
    "fire4": ((256, 55, 55), 45_344),
    "maxpool4": ((256, 27, 27), 0),
    "fire5": ((256, 27, 27), 49_440),
    "fire6": ((384, 27, 27), 104_880),
    "fire7": ((384, 27, 27), 111_024),
    "fire8": ((512, 27, 27), 188_992),
    "maxpool8": ((512, 13, 13), 0),
    "fire9": ((512, 13, 13), 197_184),
    "conv10": ((1000, 13, 13), 513_000),
}
# torchvision's module for each of Table 1's layers (features.1 and classifier.0 are the ReLU and the dropout)
MODULES = ["features.0", "features.2", *(f"features.{i}" for i in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12)),
           "classifier.1"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("squeezenet", variant)


def test_table_1_layer_by_layer():
    graph = spec("squeezenet").graph("squeezenet1_0", size=227)  # the paper's 224 does not give its 111 x 111
    by_name = {row.name: row for row in stats.rows(graph, depth=2)}
    for (layer, (shape, params)), module in zip(TABLE_1.items(), MODULES):
        row = by_name[module]
        assert (row.shape, row.params) == (shape, params), layer
    assert graph.params == sum(params for _, params in TABLE_1.values()) == 1_248_424
    assert by_name["features.3"].op == "Fire(16, 64, 64)"


def test_version_1_1_downsamples_earlier_for_fewer_macs():
    v10, v11 = (spec("squeezenet").graph(v) for v in VARIANTS)
    assert v10.params - v11.params == 12_928  # only conv1 differs: 96 7x7 filters against 64 3x3
    assert round(v10.macs / v11.macs, 2) == 2.35  # the authors' README says 2.4x less computation


def test_smallest_inputs():
    # 1.0: a 7x7/2 conv and three 3x3/2 pools, none padded; the last map must stay at least 2 x 2
    assert [zoo.smallest_size(spec("squeezenet"), v) for v in VARIANTS] == [37, 33]
    assert not zoo._accepts(spec("squeezenet"), "squeezenet1_0", 36)


def test_a_padding_mutation_is_caught_by_the_checker(tmp_path):
    # every Fire's expand3x3 unpadded: the two expand outputs no longer line up, so the spec does not compile
    with pytest.raises(SpecError, match="concat"):
        zoo.mutated_spec("squeezenet", "expand3x3_planes, 3, padding = 1)", "expand3x3_planes, 3)", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    zoo.assert_matches_torchvision("squeezenet", variant)


# Mutations that compile (same shapes) but compute something else: the comparison must see each of them.
MUTATIONS = {
    "squeeze ReLU dropped": ("; squeeze_activation = relu", ""),
    "expand3x3 ReLU replaced": ("expand3x3_activation = relu", "expand3x3_activation = identity"),
    "expand3x3 padding 2 and dilation 2": ("expand3x3_planes, 3, padding = 1)",
                                           "expand3x3_planes, 3, padding = 2, dilation = 2)"),
    "conv10's ReLU dropped": ("conv(num_classes, 1); relu", "conv(num_classes, 1)"),
    "fire4's expand split 64 + 192, not 128 + 128": ("Fire(     32,       128,       128); tap      # fire4",
                                                     "Fire(     32,        64,       192); tap      # fire4"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    old, new = MUTATIONS[mutation]
    why = zoo.assert_mutation_fails("squeezenet", "squeezenet1_0", old, new, tmp_path)
    if "split" in mutation:
        assert "strict load failed" in why and "features.5.expand1x1.weight" in why
    else:
        assert "max difference" in why
