"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3 (Howard et al. 2019): specs/mobilenet.arch against torchvision
and the papers' tables."""

import pytest
import torch
import torchvision
import zoo
from archtest import count_params, spec
from torch import nn

from archc.backends import stats

VARIANTS = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]

# The papers' "Input" column, shifted by one row: what features.0, features.1, ... give at 224 x 224, as
# (channels, side). V2 Table 2 (one entry per row of n repeats), V3 Tables 1 and 2 (one per layer).
V2_TABLE_2 = [(32, 112), (16, 112), (24, 56), (32, 28), (64, 14), (96, 14), (160, 7), (320, 7), (1280, 7)]
V2_REPEATS = [1, 1, 2, 3, 4, 3, 3, 1, 1]
V3_TABLE_1 = [(16, 112), (16, 112), (24, 56), (24, 56), *[(40, 28)] * 3, *[(80, 14)] * 4, *[(112, 14)] * 2,
              *[(160, 7)] * 3, (960, 7)]
V3_TABLE_2 = [(16, 112), (16, 56), (24, 28), (24, 28), *[(40, 14)] * 3, *[(48, 14)] * 2, *[(96, 7)] * 3, (576, 7)]


def feature_shapes(variant: str) -> list[tuple[int, int]]:
    rows = stats.rows(spec("mobilenet").graph(variant), depth=2)
    return [(row.shape[0], row.shape[1]) for row in rows if row.name.count(".") == 1 and row.name.startswith("features")]


def test_variants():
    assert set(spec("mobilenet").variants) == set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("mobilenet", variant)


def test_v2_follows_table_2():
    expected = [shape for shape, n in zip(V2_TABLE_2, V2_REPEATS) for _ in range(n)]
    assert feature_shapes("mobilenet_v2") == expected


@pytest.mark.parametrize(("variant", "table"), [("mobilenet_v3_large", V3_TABLE_1), ("mobilenet_v3_small", V3_TABLE_2)])
def test_v3_follows_tables_1_and_2(variant, table):
    assert feature_shapes(variant) == table
    # the pooled features go through a 1x1 conv without batch norm (a linear layer) to 1280 (1024 for Small)
    modules = spec("mobilenet").graph(variant).modules()
    assert modules["classifier.0"].shape == ((1280,) if variant.endswith("large") else (1024,))


def test_shortcuts_where_torchvision_has_them():
    # the shortcut only where stride is 1 and the widths agree: V2 skips the first block of each row of Table 2
    torch.manual_seed(0)
    for variant in VARIANTS:
        ours = spec("mobilenet").build(variant).features[1:-1]
        with torch.device("meta"):
            theirs = torchvision.models.get_model(variant).features[1:-1]
        assert [m.use_residual for m in ours] == [m.use_res_connect for m in theirs], variant
    assert sum(m.use_residual for m in spec("mobilenet").build("mobilenet_v2").features[1:-1]) == 10


@pytest.mark.parametrize("width_mult", [0.35, 0.75, 1.4])
@pytest.mark.parametrize("variant", VARIANTS)
def test_width_multipliers_count_as_torchvision(variant, width_mult):
    # make_divisible's rounding and V2's last conv, never narrower than 1280
    graph = spec("mobilenet").graph(variant, width_mult=width_mult)
    with torch.device("meta"):
        reference = torchvision.models.get_model(variant, width_mult=width_mult)
    assert graph.params == count_params(reference)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    zoo.assert_matches_torchvision("mobilenet", variant, calibrate=True)


@pytest.mark.slow
def test_the_comparison_needs_calibrated_batch_norms():
    # With zoo's fixed-range statistics every batch norm outputs about its own constant and the input is lost:
    # two inputs give the same output to 1e-7, so no difference upstream of the head could show. Calibrated on the
    # input, the output moves with it.
    variant = "mobilenet_v3_small"
    x, _ = zoo.small_input(spec("mobilenet"), variant)
    spreads = []
    for calibrate_on in (None, x):
        with torch.no_grad():
            out = zoo.reference_model(variant, calibrate_on).eval()(x)
        spreads.append((out[0] - out[1]).abs().max().item() / out.abs().max().item())
    assert spreads[0] < zoo.OUTPUT_RTOL < 0.1 < spreads[1]


def relu6_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each ReLU6 of torchvision's model receives (before it clamps in place)."""
    seen = {}
    handles = [m.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, args[0].clone()))
               for name, m in model.named_modules() if isinstance(m, nn.ReLU6)]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return seen


def clipping_v2_reference(x: torch.Tensor) -> nn.Module:
    """torchvision's MobileNetV2 with each batch norm before a ReLU6 scaling by 4 times as much, then calibrated
    on ``x``: a ReLU6 then sees about 4 standard deviations where it saw one, and its cap at 6 acts in every layer
    (with unit-variance inputs no layer reaches 6, and relu6 and relu compute the same)."""
    reference = zoo.reference_model("mobilenet_v2")
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torchvision.ops.Conv2dNormActivation) and isinstance(m[-1], nn.ReLU6):
                m[1].weight.mul_(4)
                m[1].bias.mul_(4)
    return zoo.calibrate_batchnorm(reference, x)


@pytest.mark.slow
def test_v2_clips_at_6_as_torchvision(tmp_path):
    x, _ = zoo.small_input(spec("mobilenet"), "mobilenet_v2")
    reference = clipping_v2_reference(x)
    inputs = relu6_inputs(reference, x)
    assert len(inputs) == 35 and all((t > 6).any() for t in inputs.values())
    zoo.compare(spec("mobilenet").build("mobilenet_v2"), reference, x)
    # every inverted residual's depthwise relu6 replaced by relu
    mutant = zoo.mutated_spec("mobilenet", "groups = hidden, activation = relu6", "groups = hidden, activation = relu",
                              tmp_path).build("mobilenet_v2")
    with pytest.raises(AssertionError, match="max difference"):
        zoo.compare(mutant, reference, x)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_mode_matches_torchvision(variant):
    # dropout active: the same seed drops the same features; the batch norms' running statistics move alike
    s = spec("mobilenet")
    x, _ = zoo.small_input(s, variant)
    reference = zoo.reference_model(variant, calibrate_on=x)
    model = s.build(variant)
    model.load_state_dict(reference.state_dict(), strict=True)
    zoo.compare_training(model, reference, x)


# Mutations that compile but compute something else: the eval comparison must see each of them (relu6 replaced
# by relu: test_v2_clips_at_6_as_torchvision).
MUTATIONS = {
    "V2's linear bottleneck given a relu6": (
        "mobilenet_v2", "conv(out_channels, 1, bias = false)\n            norm_layer\n",
        "conv(out_channels, 1, bias = false)\n            norm_layer; relu6\n", "max difference"),
    "V3's stem hardswish replaced by silu": (
        "mobilenet_v3_large", "stride = 2, activation = hardswish,", "stride = 2, activation = silu,",
        "max difference"),
    "V3's SE gate dropped": (
        "mobilenet_v3_large", "SqueezeExcitation(make_divisible(expanded // 4), scale_activation = hardsigmoid) if use_se",
        "", "strict load failed"),
    "V3's SE gated by sigmoid, not hardsigmoid": (
        "mobilenet_v3_small", "scale_activation = hardsigmoid", "scale_activation = sigmoid", "max difference"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    variant, old, new, why = MUTATIONS[mutation]
    assert why in zoo.assert_mutation_fails("mobilenet", variant, old, new, tmp_path, calibrate=True)


# Mutations only training mode shows: eval outputs still agree, the training comparison must not.
TRAINING_MUTATIONS = {
    "V3's batch-norm momentum 0.1": ("batchnorm(eps = 0.001, momentum = 0.01), size = 224",
                                     "batchnorm(eps = 0.001, momentum = 0.1), size = 224", "running_mean differs"),
    "V3's dropout before the hardswish": ("hardswish\n        dropout(dropout)", "dropout(dropout)\n        hardswish",
                                          "training mode: max difference"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", TRAINING_MUTATIONS)
def test_training_comparison_fails_for_a_mutant(mutation, tmp_path):
    old, new, why = TRAINING_MUTATIONS[mutation]
    variant = "mobilenet_v3_small"
    x, _ = zoo.small_input(spec("mobilenet"), variant)
    reference = zoo.reference_model(variant, calibrate_on=x)
    model = zoo.mutated_spec("mobilenet", old, new, tmp_path).build(variant)
    zoo.compare(model, reference, x)  # loads the weights; eval mode cannot tell
    with pytest.raises(AssertionError, match=why):
        zoo.compare_training(model, reference, x)
