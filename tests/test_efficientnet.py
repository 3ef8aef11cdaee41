"""EfficientNet B0 ... B7 (Tan and Le 2019) and EfficientNetV2 S, M, L (Tan and Le 2021): specs/efficientnet.arch
against torchvision and the papers' Tables 1 and 4."""

import pytest
import torch
import torchvision
import zoo
from archtest import count_params, fast_tier, spec
from torchvision.models import efficientnet as tv_efficientnet

from archc.backends import stats

V1 = [f"efficientnet_b{i}" for i in range(8)]
V2 = ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]
VARIANTS = V1 + V2

# What features.0 ... features.8 give at 224 x 224 as (channels, side), and each stage's layers: EfficientNet
# Table 1 (B0), stages 1 to 9 (the stem, the seven MBConv stages, the 1x1 head).
TABLE_1 = [(32, 112), (16, 112), (24, 56), (40, 28), (80, 14), (112, 14), (192, 7), (320, 7), (1280, 7)]
TABLE_1_LAYERS = [1, 2, 2, 3, 3, 4, 1]
TABLE_1_KERNELS = [3, 3, 5, 3, 5, 5, 3]
# EfficientNetV2 Table 4 (V2-S), stages 0 to 7 at 384 x 384: the operator, channels, stride and layers.
TABLE_4 = [("Conv2dNormActivation", 24, 2, 1), ("FusedMBConv", 24, 1, 2), ("FusedMBConv", 48, 2, 4),
           ("FusedMBConv", 64, 2, 4), ("MBConv", 128, 2, 6), ("MBConv", 160, 1, 9), ("MBConv", 256, 2, 15),
           ("Conv2dNormActivation", 1280, 1, 1)]
TORCHVISION_BLOCKS = (tv_efficientnet.MBConv, tv_efficientnet.FusedMBConv)


def feature_rows(variant: str, depth: int = 2) -> dict:
    return {row.name: row for row in stats.rows(spec("efficientnet").graph(variant), depth=depth)
            if row.name.startswith("features.")}


def test_variants():
    assert list(spec("efficientnet").variants) == VARIANTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("efficientnet", variant)


def test_b0_follows_table_1():
    rows = feature_rows("efficientnet_b0")
    assert [(rows[f"features.{i}"].shape[0], rows[f"features.{i}"].shape[1]) for i in range(9)] == TABLE_1
    blocks = feature_rows("efficientnet_b0", depth=3)
    assert [sum(name.startswith(f"features.{i}.") for name in blocks) for i in range(1, 8)] == TABLE_1_LAYERS
    # MBConv1 in stage 2 (no expansion conv), MBConv6 after it; its depthwise kernel size
    modules = spec("efficientnet").graph("efficientnet_b0").modules()
    depthwise = [modules[f"features.{i}.0.block.{0 if i == 1 else 1}.0"] for i in range(1, 8)]
    assert [op.args["kernel_size"] for op in depthwise] == TABLE_1_KERNELS
    assert all(op.args["groups"] == op.shape[0] == op.in_shapes[0][0] for op in depthwise)
    assert not any(name.startswith("features.1.0.block.3.") for name in modules)
    assert any(name.startswith("features.2.0.block.3.") for name in modules)


def test_v2_s_follows_table_4():
    rows = feature_rows("efficientnet_v2_s")
    blocks = feature_rows("efficientnet_v2_s", depth=3)
    side = 384
    for i, (operator, channels, stride, layers) in enumerate(TABLE_4):
        side //= stride
        assert rows[f"features.{i}"].shape == (channels, side, side), i
        if operator == "Conv2dNormActivation":
            assert rows[f"features.{i}"].op.startswith(operator)
        else:
            stage = [row for name, row in blocks.items() if name.startswith(f"features.{i}.")]
            assert len(stage) == layers and all(row.op.startswith(f"{operator}(") for row in stage), i
    # squeeze-and-excitation in the MBConv stages only
    modules = spec("efficientnet").graph("efficientnet_v2_s").modules()
    with_se = {int(name.split(".")[1]) for name in modules if ".fc1" in name}
    assert with_se == {4, 5, 6}


def test_smallest_input():
    # every stride-2 conv is padded: a side s gives ceil(s / 2), so 32 x 32 runs but ends in a 1 x 1 map, where
    # the global pool pools nothing; 33 is the smallest with a 2 x 2 one (torchvision's own min_size for V2)
    s = spec("efficientnet")
    assert [zoo.smallest_size(s, v) for v in ("efficientnet_b0", "efficientnet_v2_s")] == [33, 33]
    assert torchvision.models.get_model_weights("efficientnet_v2_s").DEFAULT.meta["min_size"] == (33, 33)
    assert s.graph("efficientnet_b0", size=32).modules()["features.8.0"].shape == (1280, 1, 1)


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"efficientnet_b0", "efficientnet_v2_s"}))
def test_built_model_has_torchvision_parameters_and_settings(variant):
    # on the meta device, so the largest cost nothing: the parameter count, and what the eval comparison cannot
    # see, block by block: stochastic depth's probability (0.2 * block index / blocks, over all stages), where
    # the shortcut is, batch norm's momentum (0.01 from B5 on) and eps, and the dropout before the classifier
    with torch.device("meta"):
        ours = spec("efficientnet").build(variant)
        theirs = torchvision.models.get_model(variant, weights=None)
    assert count_params(ours) == count_params(theirs) == zoo.torchvision_meta(variant)["num_params"]
    ours_modules = dict(ours.named_modules())
    blocks = [(name, m) for name, m in theirs.named_modules() if isinstance(m, TORCHVISION_BLOCKS)]
    assert len(blocks) == sum(type(m).__name__.endswith("MBConv") for m in ours_modules.values())
    for name, block in blocks:
        mine = ours_modules[name]
        assert type(mine).__name__ == type(block).__name__, name
        assert (mine.p, mine.use_residual) == (block.stochastic_depth.p, block.use_res_connect), name
    norms = [(name, m) for name, m in theirs.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [(name, m.eps, m.momentum) for name, m in norms] == \
        [(name, ours_modules[name].eps, ours_modules[name].momentum) for name, _ in norms]
    assert ours.classifier[0].p == theirs.classifier[0].p


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    # graph breaks for one variant per block structure: B1 ... B7 are B0's classes (MBConv, SqueezeExcitation,
    # Conv2dNormActivation, EfficientNet) with other widths, depths and batch-norm settings, V2-M and V2-L are
    # V2-S's (FusedMBConv too); forward branches only on attributes fixed at construction (use_residual, p).
    zoo.assert_matches_torchvision("efficientnet", variant, breaks=variant in ("efficientnet_b0", "efficientnet_v2_s"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["efficientnet_b0", "efficientnet_v2_s"])
def test_training_mode_matches_torchvision(variant):
    s = spec("efficientnet")
    x, _ = zoo.small_input(s, variant)
    reference = zoo.reference_model(variant)
    model = s.build(variant)
    without = s.build(variant, stochastic_depth_prob=0.0)
    for m in (model, without):
        m.load_state_dict(reference.state_dict(), strict=True)

    def features(net, seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            return net.features(x)

    # eval: stochastic depth is the identity, and nothing is random
    model.eval(), without.eval()
    assert torch.equal(features(model, 0), features(without, 1))
    # training: stochastic depth drops bodies (the features, before any dropout, depend on the seed; at batch 2
    # B0's seeds 0, 1 and 5 happen to drop none), and nothing else before the classifier is random
    model.train(), without.train()
    assert any(not torch.equal(features(model, 0), features(model, seed)) for seed in range(1, 5))
    assert all(torch.equal(features(without, 0), features(without, seed)) for seed in range(1, 5))
    # dropout too: without stochastic depth the output still depends on the seed
    torch.manual_seed(0)
    with torch.no_grad():
        first = without(x)
    torch.manual_seed(1)
    with torch.no_grad():
        assert not torch.equal(without(x), first)
    # and the same seed draws torchvision's numbers: the same output, to the bit, and the same running statistics
    model.load_state_dict(reference.state_dict(), strict=True)
    assert zoo.compare_training(model, reference, x) == 0.0


# Mutations that compile (same shapes) but compute something else: the eval comparison must see each of them.
MUTATIONS = {
    "depthwise SiLU replaced by ReLU": (
        "efficientnet_b0", "groups = expanded, activation = silu", "groups = expanded, activation = relu",
        "max difference"),
    "SE's SiLU replaced by ReLU": (
        "efficientnet_b0", "in.channels // 4), activation = silu", "in.channels // 4), activation = relu",
        "max difference"),
    "SE gate dropped": (
        "efficientnet_b0", "SqueezeExcitation(max(1, in.channels // 4), activation = silu)", "",
        "strict load failed"),
    "SE squeezes the expanded width, not the input's": (
        "efficientnet_b0", "max(1, in.channels // 4)", "max(1, expanded // 4)", "strict load failed"),
    "depths rounded down": ("efficientnet_b1", "ceil(n * depth_mult)", "int(n * depth_mult)", "strict load failed"),
    "Fused-MBConv's SiLU replaced by ReLU": (
        "efficientnet_v2_s", "kernel, stride, activation = silu", "kernel, stride, activation = relu",
        "max difference"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    variant, old, new, why = MUTATIONS[mutation]
    assert why in zoo.assert_mutation_fails("efficientnet", variant, old, new, tmp_path)


@pytest.mark.slow
def test_training_comparison_fails_for_a_stochastic_depth_mutant(tmp_path):
    # block i dropped with probability 0.2 * (i + 1) / blocks: eval cannot tell, training must
    variant = "efficientnet_b0"
    x, _ = zoo.small_input(spec("efficientnet"), variant)
    reference = zoo.reference_model(variant)
    mutant = zoo.mutated_spec("efficientnet", "stochastic_depth_prob * block_id / total",
                              "stochastic_depth_prob * (block_id + 1) / total", tmp_path)
    model = mutant.build(variant)
    zoo.compare(model, reference, x)  # loads the weights
    with pytest.raises(AssertionError, match="training mode: max difference"):
        zoo.compare_training(model, reference, x)
