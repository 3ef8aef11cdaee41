"""RegNet (Radosavovic et al. 2020): specs/regnet.arch against torchvision's fifteen RegNetX and RegNetY models."""

import pytest
import torch
import torchvision.models.regnet as tv_regnet
import zoo
from archtest import spec
from torch import nn

from archc import SpecError

X = ["regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf", "regnet_x_16gf",
     "regnet_x_32gf"]
Y = ["regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf",
     "regnet_y_32gf", "regnet_y_128gf"]
VARIANTS = X + Y
# the flop regime each name gives, at 224 x 224 (GFLOPs counting multiply-adds)
REGIMES = {"400mf": 0.4, "800mf": 0.8, "1_6gf": 1.6, "3_2gf": 3.2, "8gf": 8, "16gf": 16, "32gf": 32, "128gf": 128}
# Graph breaks depend on the forward code, not on the numbers: every X model runs the same four classes
# (RegNet, ResBottleneckBlock, BottleneckTransform, Conv2dNormActivation) and every Y model those and
# SqueezeExcitation; widths, depths and groups are constructor arguments that change no forward path. Each
# 400MF model has blocks with and without a projection (stage depths 1, 2, 7, 12 and 1, 3, 6, 6), so it runs
# both sides of the forward's one branch: checking it checks its whole family.
BREAKS_CHECKED = {"regnet_x_400mf", "regnet_y_400mf"}


def torchvision_block_params(name: str, monkeypatch) -> tuple[dict, object]:
    """The arguments torchvision's factory gives BlockParams.from_init_params, and what that returns (torch's
    float32 arithmetic); no model is built."""
    called, block_params = {}, tv_regnet.BlockParams

    class Recorder:
        @staticmethod
        def from_init_params(**kwargs):
            called.update(kwargs)
            return block_params.from_init_params(**kwargs)

    monkeypatch.setattr(tv_regnet, "BlockParams", Recorder)
    monkeypatch.setattr(tv_regnet, "_regnet", lambda params, weights, progress, **kwargs: params)
    params = getattr(tv_regnet, name)()
    return called, params


def stages(modules: dict) -> list[tuple[int, int, int]]:
    """(width, depth, group width) of each stage, read off a model's modules or a graph's ops by name: each
    block's grouped 3x3 conv, ``trunk_output.block{i}.block{i}-{j}.f.b.0``."""
    blocks = {}
    for name, module in modules.items():
        if name.startswith("trunk_output.") and name.endswith(".f.b.0"):
            stage = int(name.split(".")[1].removeprefix("block"))
            width, groups = ((module.out_channels, module.groups) if isinstance(module, nn.Conv2d)
                             else (module.shape[0], module.args["groups"]))
            blocks.setdefault(stage, []).append((width, width // groups))
    assert sorted(blocks) == list(range(1, len(blocks) + 1))
    result = []
    for stage in sorted(blocks):
        assert len(set(blocks[stage])) == 1, f"stage {stage} mixes widths or groups: {blocks[stage]}"
        width, group_width = blocks[stage][0]
        result.append((width, len(blocks[stage]), group_width))
    return result


@pytest.mark.parametrize("variant", VARIANTS)
def test_widths_and_depths_are_torchvisions(variant, monkeypatch):
    # The spec computes them from the paper's parameters in float64 (archc at compile time, the generated
    # module's Python at run time), torchvision in float32 torch tensors: the same stages for all fifteen.
    called, expected = torchvision_block_params(variant, monkeypatch)
    fixed = spec("regnet").variants[variant].fixed
    assert {k: fixed.get(k) for k in called} == called  # depth, w_0, w_a, w_m, group_width, se_ratio
    expected = list(zip(expected.widths, expected.depths, expected.group_widths))
    assert stages(spec("regnet").graph(variant).modules()) == expected
    with torch.device("meta"):
        model = spec("regnet").build(variant)
    assert stages(dict(model.named_modules())) == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("regnet", variant)


def test_names_give_the_flop_regime():
    for variant in VARIANTS:
        gflops = spec("regnet").graph(variant, size=224).macs / 1e9
        regime = REGIMES[variant.split("_", 2)[2]]
        assert abs(gflops / regime - 1) < 0.06, (variant, gflops)


def test_quantization_rounds_half_to_even(tmp_path):
    # regnet_x_1_6gf's second stage is w_0 * w_m = 180 = 22.5 * 8: torch.round gives 22 (176, then 168 for
    # groups of 24); rounding half up would give 23 (184, then 192) and 1.1 M more parameters
    assert stages(spec("regnet").graph("regnet_x_1_6gf").modules())[1] == (168, 4, 24)
    half_up = zoo.mutated_spec("regnet", "int(round(w_0 * w_m ** s / quantum) * quantum)",
                               "int(floor(w_0 * w_m ** s / quantum + 0.5) * quantum)", tmp_path)
    assert stages(half_up.graph("regnet_x_1_6gf").modules())[1] == (192, 4, 24)
    assert half_up.graph("regnet_x_1_6gf").params != zoo.torchvision_meta("regnet_x_1_6gf")["num_params"]


def test_the_checker_needs_the_projection(tmp_path):
    # without the projection no stage's first block can add its input: it changes the width and halves the map
    with pytest.raises(SpecError, match="residual branch gives"):
        zoo.mutated_spec("regnet", "shortcut if in.channels != width_out or stride != 1", "shortcut if false",
                         tmp_path).graph("regnet_x_400mf")


@pytest.fixture
def block_params_on_cpu(monkeypatch):
    """torchvision's BlockParams computes the widths in torch tensors and reads them back (``tolist``): built on
    the meta device (over 100 M parameters) there is nothing to read, so that arithmetic runs on the CPU."""
    from_init_params = tv_regnet.BlockParams.from_init_params

    def on_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return from_init_params(*args, **kwargs)

    monkeypatch.setattr(tv_regnet.BlockParams, "from_init_params", staticmethod(on_cpu))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant, block_params_on_cpu):
    zoo.assert_matches_torchvision("regnet", variant, breaks=variant in BREAKS_CHECKED)


# Mutations that compile but build something else: the comparison must see each of them.
SE_THEN_C = """    se = SqueezeExcitation(int(round(se_ratio * in.channels)), activation = activation) if se_ratio != none
    c = Conv2dNormActivation(width_out, 1, activation = none, norm_layer = norm_layer)
"""
MUTATIONS = {
    "SE gate dropped": ("regnet_y_400mf", SE_THEN_C, SE_THEN_C.splitlines(keepends=True)[1]),
    "SE after the last 1x1": ("regnet_y_400mf", SE_THEN_C, "".join(reversed(SE_THEN_C.splitlines(keepends=True)))),
    "ReLU after the projection": ("regnet_x_400mf",
                                  "proj = Conv2dNormActivation(width_out, 1, stride, activation = none,",
                                  "proj = Conv2dNormActivation(width_out, 1, stride,"),
    "stride in the first 1x1": ("regnet_x_400mf",
                                "a = Conv2dNormActivation(width_out, 1, activation = activation, norm_layer = norm_layer)\n"
                                "    b = Conv2dNormActivation(width_out, 3, stride,",
                                "a = Conv2dNormActivation(width_out, 1, stride, activation = activation, "
                                "norm_layer = norm_layer)\n    b = Conv2dNormActivation(width_out, 3,"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    variant, old, new = MUTATIONS[mutation]
    why = zoo.assert_mutation_fails("regnet", variant, old, new, tmp_path)
    if mutation == "SE gate dropped":
        assert "strict load failed" in why and "trunk_output.block1.block1-0.f.se.fc1.weight" in why
    else:
        assert "max difference" in why
