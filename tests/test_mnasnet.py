"""MnasNet (Tan et al. 2018): specs/mnasnet.arch against torchvision's MNASNet (_version 2)."""

import pytest
import torch
import torchvision
import zoo
from archtest import count_params, spec
from torchvision.models.mnasnet import _get_depths

VARIANTS = ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]
# torchvision's six stacks after the stem: (channels, side) at 224 x 224, and repeats
STAGES = [(24, 56), (40, 28), (80, 14), (96, 14), (192, 7), (320, 7)]
REPEATS = [3, 3, 3, 2, 4, 1]


def test_variants():
    assert set(spec("mnasnet").variants) == set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_match_torchvision_metadata(variant):
    zoo.assert_counts("mnasnet", variant)


@pytest.mark.parametrize("alpha", [0.1, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 2.0])
def test_depths_as_torchvision(alpha):
    # get_depths in the spec against torchvision's _get_depths, read off the graph: the stem conv, the separable
    # conv's projection and each stack's last projection; then every parameter
    graph = spec("mnasnet").graph("mnasnet1_0", alpha=alpha)
    modules = graph.modules()
    names = ["layers.0", "layers.6", *(f"layers.{8 + i}.{n - 1}.layers.6" for i, n in enumerate(REPEATS))]
    assert [modules[name].shape[0] for name in names] == _get_depths(alpha)
    with torch.device("meta"):
        reference = torchvision.models.MNASNet(alpha)
    assert graph.params == count_params(reference)


def test_stages():
    modules = spec("mnasnet").graph("mnasnet1_0").modules()
    for i, ((channels, side), repeats) in enumerate(zip(STAGES, REPEATS)):
        stack = sorted({name.split(".")[2] for name in modules if name.startswith(f"layers.{8 + i}.")})
        assert stack == [str(j) for j in range(repeats)]
        assert modules[f"layers.{8 + i}.{repeats - 1}.layers.7"].shape == (channels, side, side)


def test_shortcuts_where_torchvision_has_them():
    ours = spec("mnasnet").build("mnasnet1_0").layers[8:14]
    with torch.device("meta"):
        theirs = torchvision.models.mnasnet1_0().layers[8:14]
    assert [m.use_residual for stack in ours for m in stack] == [m.apply_residual for stack in theirs for m in stack]
    assert sum(m.use_residual for stack in ours for m in stack) == sum(REPEATS) - len(REPEATS)


def test_batch_norm_momentum():
    # TensorFlow's decay 0.9997 as PyTorch's momentum: 1 - 0.9997
    momenta = {m.momentum for m in spec("mnasnet").build("mnasnet0_5").modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {1 - 0.9997}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_torchvision(variant):
    zoo.assert_matches_torchvision("mnasnet", variant, calibrate=True)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_mode_matches_torchvision(variant):
    # dropout active: the same seed drops the same features; the batch norms' running statistics move alike
    s = spec("mnasnet")
    x, _ = zoo.small_input(s, variant)
    reference = zoo.reference_model(variant, calibrate_on=x)
    model = s.build(variant)
    model.load_state_dict(reference.state_dict(), strict=True)
    zoo.compare_training(model, reference, x)


# Mutations that compile but compute something else: the comparison must see each of them.
MUTATIONS = {
    "shortcut dropped": ("residual(when = in.channels == out_channels and stride == 1)", "residual(when = false)",
                         "max difference"),
    "linear projection given a ReLU": ("conv(out_channels, 1, bias = false); batchnorm(momentum = bn_momentum)",
                                       "conv(out_channels, 1, bias = false); batchnorm(momentum = bn_momentum); relu",
                                       "max difference"),
    "depths rounded down": ("make_divisible(depth * alpha, 8)", "int(depth * alpha)", "strict load failed"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_comparison_fails_for_a_mutant(mutation, tmp_path):
    old, new, why = MUTATIONS[mutation]
    assert why in zoo.assert_mutation_fails("mnasnet", "mnasnet0_5", old, new, tmp_path, calibrate=True)


@pytest.mark.slow
def test_training_comparison_fails_for_pytorchs_default_momentum(tmp_path):
    variant = "mnasnet0_5"
    x, _ = zoo.small_input(spec("mnasnet"), variant)
    reference = zoo.reference_model(variant, calibrate_on=x)
    model = zoo.mutated_spec("mnasnet", "let bn_momentum = 1 - 0.9997", "let bn_momentum = 0.1", tmp_path).build(variant)
    zoo.compare(model, reference, x)  # loads the weights; eval mode cannot tell
    with pytest.raises(AssertionError, match="layers.1.running_mean differs"):
        zoo.compare_training(model, reference, x)
