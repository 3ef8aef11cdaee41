"""DenseNet (Huang et al. 2016): specs/densenet.arch against torchvision and the paper's figures."""

from functools import cache

import pytest
import torch
import torchvision
from archtest import (
    assert_same_as_reference,
    assert_static_shapes,
    count_params,
    fast_tier,
    graph_breaks,
    input_for,
    randomize_batchnorm,
    rounds_to,
    spec,
)

# reference-numbers.md: torchvision's counts for 121/169/201/161, the others derived layer by layer (rederived
# independently with the same conventions: bias-free convs, affine batch norms, a biased classifier, and plain
# DenseNet's transitions keeping their channels, theta = 1).
PARAMS = {
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet264": 33_337_704,
    "densenet161": 28_681_000,
    "densenet40_k12": 1_019_722,
    "densenet100_k12": 6_979_642,
    "densenet100_k24": 27_249_082,
    "densenet_bc100_k12": 769_162,
    "densenet_bc250_k24": 15_324_406,
    "densenet_bc190_k40": 25_624_430,
}

# The paper, in millions: "DenseNet-201 with 20M parameters" (Section 4.4) and Table 2 (CIFAR).
PAPER = {
    "densenet201": 20,
    "densenet40_k12": 1.0,
    "densenet100_k12": 7.0,
    "densenet100_k24": 27.2,
    "densenet_bc100_k12": 0.8,
    "densenet_bc250_k24": 15.3,
    "densenet_bc190_k40": 25.6,
}

# torchvision's GFLOPS metadata (multiply-accumulates of convs and linears, 224x224).
GMACS = {"densenet121": 2.834, "densenet169": 3.36, "densenet201": 4.291, "densenet161": 7.728}

# Weight layers (convs and the classifier) and growth rate k.
DEPTH_K = {
    "densenet121": (121, 32),
    "densenet169": (169, 32),
    "densenet201": (201, 32),
    "densenet264": (265, 32),  # Table 1's [6, 12, 64, 48] is 2 * 130 + 5 = 265 layers, not 264
    "densenet161": (161, 48),
    "densenet40_k12": (40, 12),
    "densenet100_k12": (100, 12),
    "densenet100_k24": (100, 24),
    "densenet_bc100_k12": (100, 12),
    "densenet_bc250_k24": (250, 24),
    "densenet_bc190_k40": (190, 40),
}
CIFAR = [v for v in PARAMS if "_k" in v]
TORCHVISION = ["densenet121", "densenet169", "densenet201", "densenet161"]
# The ImageNet networks take any input from 29x29 up; the shape checks run them at 64x64 (blocks at 16 to 2).
SMALL = {v: {} if v in CIFAR else {"size": 64} for v in PARAMS}


@cache
def graph(variant, **overrides):
    return spec("densenet").graph(variant, **overrides)


@pytest.fixture(scope="module")
def built(request):
    """One model per variant, with random batch-norm statistics (fresh ones, mean 0 and variance 1, would hide
    a wrong eps or a misplaced batch norm)."""
    variant = request.param
    torch.manual_seed(0)
    model = randomize_batchnorm(spec("densenet").build(variant))
    return variant, model


def test_variants():
    assert set(spec("densenet").variants) == set(PARAMS)


@pytest.mark.parametrize("variant", PARAMS)
def test_params(variant):
    assert graph(variant).params == PARAMS[variant]
    if variant in PAPER:
        assert rounds_to(graph(variant).params, PAPER[variant])


@pytest.mark.parametrize("variant", GMACS)
def test_macs(variant):
    assert rounds_to(graph(variant).macs, GMACS[variant], unit=1e9)


@pytest.mark.parametrize("variant", PARAMS)
def test_depth_and_growth_rate(variant):
    depth, k = DEPTH_K[variant]
    g = graph(variant)
    modules = g.modules()
    assert sum(op.op in ("conv", "linear") for op in g.ops()) == depth
    new_features = [op for name, op in modules.items() if name.endswith(".conv2")]
    assert new_features and all(op.shape[0] == k for op in new_features)
    if variant in CIFAR:
        sizes = [
            {op.shape[1:] for name, op in modules.items() if name.startswith(f"features.denseblock{i}.")}
            for i in (1, 2, 3)
        ]
        assert sizes == [{(32, 32)}, {(16, 16)}, {(8, 8)}]
        bc = "_bc" in variant
        assert modules["features.conv0"].shape[0] == (2 * k if bc else 16)
        assert any(name.endswith(".conv1") for name in modules) == bc  # the 4k bottleneck
        transition = modules["features.transition1.conv"]
        assert transition.shape[0] == (transition.in_shapes[0][0] // 2 if bc else transition.in_shapes[0][0])


def test_compression_floors_like_torchvision():
    # 63 initial channels make the first transition's input odd: 63 + 6 * 32 = 255 -> 127.
    g = graph("densenet121", num_init_features=63)
    assert g.modules()["features.transition1.conv"].shape[0] == 127
    with torch.device("meta"):
        reference = torchvision.models.DenseNet(32, (6, 12, 24, 16), 63)
    assert g.params == count_params(reference)


@pytest.mark.parametrize("built", fast_tier(TORCHVISION, {"densenet121"}), indirect=True)
def test_same_as_torchvision(built):
    variant, model = built
    # Building the reference on the meta device skips its initialisation; strict loading of our tensors
    # (assign=True) gives it real ones, and assert_same_as_reference loads them back strictly.
    with torch.device("meta"):
        reference = getattr(torchvision.models, variant)(weights=None)
    reference.load_state_dict(model.state_dict(), strict=True, assign=True)
    assert count_params(model) == count_params(reference) == PARAMS[variant]
    assert_same_as_reference(model, reference, input_for(spec("densenet"), variant))


@pytest.mark.parametrize("built", fast_tier(PARAMS, {"densenet121", "densenet40_k12"}), indirect=True)
def test_static_shapes(built):
    variant, model = built
    s = spec("densenet")
    assert_static_shapes(s, variant, model, input_for(s, variant, **SMALL[variant]), **SMALL[variant])


# The variants differ only in integers passed to the same generated classes: densenet121, densenet40_k12 and
# densenet_bc100_k12 run every code path (DenseNet, CifarDenseNet, DenseLayer with and without bottleneck,
# Transition) in a fifth of the time every variant took (two and a half minutes, dynamo tracing 100 to 265
# layers each).
@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("built", ["densenet121", "densenet40_k12", "densenet_bc100_k12"], indirect=True)
def test_graph_breaks(built):
    variant, model = built
    assert graph_breaks(model.eval(), input_for(spec("densenet"), variant, **SMALL[variant])) == 0


def saved_for_backward(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the activations a training forward keeps for backward (each storage once, parameters not
    counted): the memory that checkpointing trades for recomputation."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(x)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for ptr, size in storages.items() if ptr not in params)


@pytest.mark.slow  # backward through two DenseNets
def test_memory_efficient_mode_computes_the_same_with_less_memory():
    torch.manual_seed(0)
    plain = spec("densenet").build("densenet121")
    efficient = spec("densenet").build("densenet121", memory_efficient=True)
    efficient.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)  # the smallest size the ImageNet layout takes, for speed
    outputs = []
    for model in (plain, efficient):
        out = model.train()(x)
        out.square().sum().backward()
        outputs.append(out)
    assert (outputs[0] - outputs[1]).abs().max().item() < 1e-5
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name

    # torchvision's memory_efficient checkpoints concat + BN + ReLU + 1x1 conv; ours checkpoints the whole layer
    with torch.device("meta"):
        references = [torchvision.models.densenet121(memory_efficient=flag) for flag in (False, True)]
    for reference in references:
        reference.load_state_dict(plain.state_dict(), strict=True, assign=True)
    ours = [saved_for_backward(m, x) for m in (plain, efficient)]
    theirs = [saved_for_backward(m, x) for m in references]
    assert ours[0] == theirs[0]  # the same activations kept without checkpointing
    assert ours[1] <= theirs[1] < ours[0]  # and at most torchvision's with it
    assert ours[1] < 0.3 * ours[0]


@pytest.mark.slow  # a dynamo trace
def test_memory_efficient_mode_has_no_graph_breaks_in_training():
    model = spec("densenet").build("densenet_bc100_k12", memory_efficient=True).train()
    assert graph_breaks(model, torch.randn(2, 3, 32, 32)) == 0
