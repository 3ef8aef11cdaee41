"""archc lift: PyTorch models into specs that compile back to them.

Every lift is proven here independently of the lifter's own check: the text is compiled, the original's
state_dict loads strictly into the built network, and the eval outputs are identical. The proof can fail: a
lifted spec with one activation swapped or one branch dropped is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import archc
from archc.lifting import LiftError, lift, lift_unchecked
from archc.lifting.roundtrip import verify

GOLDEN = Path(__file__).parent / "lift"
ROOT = Path(__file__).parent.parent


def rebuilt(text: str):
    spec = archc.load("lifted.arch", text=text)
    return spec.build(spec.default_variant())


def assert_round_trip(model: nn.Module, text: str, x: torch.Tensor):
    net = rebuilt(text)
    net.load_state_dict(model.state_dict(), strict=True)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in model.parameters())
    model.eval()
    net.eval()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def randomised(model: nn.Module) -> nn.Module:
    """Batch norm statistics away from 0 and 1, so that a wrong norm or a dropped one shows."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


# ---------------------------------------------------------------- small models of the constructs


class Unit(nn.Module):
    def __init__(self, c_in, c, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Split(nn.Module):
    """Uneven channel split, a branch on one part, concat, a residual with a scale, a mean over the map."""

    def __init__(self, c):
        super().__init__()
        self.branch = Unit(c // 4, c // 4)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        a, b = torch.split(x, [x.shape[1] - x.shape[1] // 4, x.shape[1] // 4], dim=1)
        y = torch.cat([a, self.branch(b)], dim=1)
        return x + 0.5 * self.proj(y) * torch.sigmoid(y.mean((2, 3), keepdim=True))


class Tiny(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = Unit(3, 16, 2)
        self.stages = nn.Sequential(Unit(16, 32, 2), Split(32), Split(32), Unit(32, 64, 2), Split(64))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def test_a_small_model_round_trips_with_a_block_per_class():
    torch.manual_seed(0)
    model, x = randomised(Tiny()), torch.randn(2, 3, 32, 32)
    text = lift(model, x, "tiny")
    assert_round_trip(model, text, x)
    assert text.count("block Unit(") == 1 and text.count("block Split(") == 1
    # what differs between the instances is a parameter; what does not is written out
    assert "block Unit(channels, stride)" in text
    assert "Unit(32, 2)" in text and "Unit(64, 2)" in text


def test_the_proof_fails_on_a_swapped_activation_or_a_dropped_branch():
    torch.manual_seed(0)
    model, x = randomised(Tiny()), torch.randn(2, 3, 32, 32)
    text = lift(model, x, "tiny")
    swapped = text.replace("relu", "silu")
    assert swapped != text
    with pytest.raises(LiftError, match="outputs differ"):
        verify(swapped, model, x)
    dropped = text.replace("x + ", "", 1)
    assert dropped != text
    with pytest.raises(LiftError):
        verify(dropped, model, x)


def test_resnet18_round_trips_and_its_stages_are_named_seqs():
    model, x = randomised(torchvision.models.resnet18(num_classes=10)), torch.randn(1, 3, 64, 64)
    text = lift(model, x, "resnet18")
    assert_round_trip(model, text, x)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert f"    {stage} = seq {{" in text
    assert "residual {" in text and "shortcut" in text


@pytest.mark.parametrize("name", ["resnet50", pytest.param("mobilenet_v3_small", marks=pytest.mark.slow),
                                  pytest.param("shufflenet_v2_x0_5", marks=pytest.mark.slow)])
def test_golden_lifted_specs(name):
    """The lifted text of three families, compared with the file kept here (ARCHC_UPDATE_GOLDEN=1 rewrites it);
    each is formatted as `archc fmt` writes it and proven."""
    model = randomised(torchvision.models.get_model(name))
    x = torch.randn(1, 3, 64, 64)  # small: the text differs from 224's only in the sizes it says
    text = lift(model, x, name, header=f"# Lifted from torchvision:{name} by archc lift.")
    path = GOLDEN / f"{name}.arch"
    if os.environ.get("ARCHC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    from archc.lang.format import format_source

    assert format_source(text, str(path)) == text


# ---------------------------------------------------------------- what cannot be lifted, said


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) if x.sum() > 0 else x


class _Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return _Twice.apply(self.conv(x))


class TrainingOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.aux = nn.Linear(3, 2)

    def forward(self, x):
        return self.conv(x)


class Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Unfold(2)  # ConvTranspose1d was the example until the language had transposed convs

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("model, message", [
    (Shared(), "child .conv. is called 2 times.*weight sharing"),
    (DataDependent(), "DataDependent.*a condition depends on the values of a tensor"),
    (Custom(), "Custom.*custom autograd function _Twice"),
    (TrainingOnly(), "'aux' holds weights but is never called"),
    (Unknown(), r"conv \(Unfold\): this torch.nn layer is not one the language has"),
])
def test_what_cannot_be_lifted_is_an_error_with_the_module_path(model, message):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(LiftError, match=message):
        lift_unchecked(model, x)


@pytest.mark.slow  # starts archc in subprocesses, each importing torch
def test_the_command_writes_a_proven_spec_and_reports_what_it_cannot(tmp_path):
    out = tmp_path / "net.arch"
    run = subprocess.run([sys.executable, "-m", "archc", "lift", "torchvision:squeezenet1_1", "--input-size", "64",
                          "--kwargs", '{"num_classes": 7}', "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert text.startswith("# Lifted from torchvision:squeezenet1_1") and "variant squeezenet1_1 = SqueezeNet()" in text
    assert "conv(7, 1)" in text  # the kwargs reached the constructor
    check = subprocess.run([sys.executable, "-m", "archc", "check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    bad = subprocess.run([sys.executable, "-m", "archc", "lift", "torchvision:no_such_model"], capture_output=True,
                         text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.startswith("archc lift: error: torchvision has no model")


@pytest.mark.parametrize("name", ["resnet10t", pytest.param("mobilenetv3_small_050", marks=pytest.mark.slow),
                                  pytest.param("deit_tiny_patch16_224", marks=pytest.mark.slow)])
def test_a_timm_sample_round_trips(name):
    """timm at its default configuration and input size (a sample; benchmarks/lift.py runs them all)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = randomised(timm.create_model(name))
    x = torch.randn(1, *model.pretrained_cfg["input_size"])
    assert_round_trip(model, lift(model, x, name), x)


@pytest.mark.parametrize("target, kwargs, message", [
    ("os:getcwd", None, "gave a str, not a torch.nn.Module"),
    ("no_such_module_here:x", None, "cannot import 'no_such_module_here'"),
    ("torchvision:resnet18", "[1]", "--kwargs must be a JSON object"),
    ("torchvision:resnet18", "{not json", "--kwargs is not JSON"),
    ("resnet18", None, "is no target"),
])
def test_a_target_that_is_no_model_is_an_error(target, kwargs, message):
    from archc.lifting.target import resolve

    with pytest.raises(LiftError, match=message):
        resolve(target, kwargs)


def test_an_mlp_in_a_sequential_round_trips_with_timms_methods():
    """Flat features, numbered layers: the spec quotes their names, and its reset classifier works."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4)).eval()
    x = torch.randn(2, 16)
    text = lift(model, x, "mlp")
    assert 'input 16' in text and '"3" = linear(4)' in text
    assert_round_trip(model, text, x)
    net = rebuilt(text)
    net.reset_classifier(7)
    assert net(x).shape == (2, 7)


# ---------------------------------------------------------------- timm's patterns, in small modules


class NormAct(nn.Module):
    """A conv and timm's batch norm with its activation after it; ``minus``: the output subtracted from the input
    (a forward with named tensors)."""

    def __init__(self, c, act, minus=False):
        super().__init__()
        timm_layers = pytest.importorskip("timm.layers")
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = timm_layers.BatchNormAct2d(c, act_layer=act)
        self.minus = minus

    def forward(self, x):
        return x - self.bn(self.conv(x)) if self.minus else self.bn(self.conv(x))


@pytest.mark.parametrize("minus", [False, True])
def test_an_activation_held_in_a_parameter_after_a_norm_is_a_named_layer(minus):
    """Instances that differ in the activation their norm applies after it: a parameter holds it, and an op held
    in a parameter is a module, declared by name."""
    torch.manual_seed(0)
    model = randomised(nn.Sequential(NormAct(4, nn.ReLU, minus), NormAct(4, nn.Hardswish, minus)))
    x = torch.randn(1, 4, 8, 8)
    text = lift(model, x)
    assert "bn_act = activation" in text
    assert_round_trip(model, text, x)


def test_a_library_module_that_calls_one_activation_is_that_activation():
    """timm's GELU (a module of its own that calls F.gelu) after a norm, and its tanh approximation, are the
    language's gelu."""
    activations = pytest.importorskip("timm.layers.activations")
    torch.manual_seed(0)
    model = randomised(nn.Sequential(NormAct(4, activations.GELU), NormAct(4, activations.GELUTanh)))
    x = torch.randn(1, 4, 8, 8)
    text = lift(model, x)
    assert "    gelu\n" in text and 'gelu(approximate = "tanh")' in text and "block GELU" not in text
    assert_round_trip(model, text, x)


class Fit(nn.Module):
    """Pools a map wider than 4 first: control flow on its shape, and int() of shape arithmetic."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        if x.shape[-1] > 4:
            x = nn.functional.max_pool2d(x, int(x.shape[-1] / 4))
        return self.conv(x)


class ValueFlow(nn.Module):
    def forward(self, x):
        return x * int(x.abs().sum())


def test_control_flow_on_shapes_takes_the_branch_the_example_takes():
    """The forward is traced specialised to the shapes it is called with (static in a spec, and proven on them):
    the first Fit pools its 8 x 8 map, the second gets 4 x 4 and does not; control flow on values stays refused."""
    torch.manual_seed(0)
    model, x = nn.Sequential(Fit(), Fit()).eval(), torch.randn(1, 4, 8, 8)
    text = lift(model, x)
    assert "maxpool(2)" in text and text.count("block Fit") == 2
    assert_round_trip(model, text, x)
    with pytest.raises(LiftError, match=r"the model \(ValueFlow\): int\(\) depends on the values of a tensor"):
        lift_unchecked(ValueFlow(), x)


class Casts(nn.Module):
    """Casts to the dtype a tensor has, an expand before arithmetic, a mean over a channels-last map's H and W."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.conv(x.float()).to(x.dtype)
        y = y * y.mean(1, keepdim=True).expand_as(y)
        return self.fc(y.permute(0, 2, 3, 1).mean((1, 2)))


def test_casts_to_the_same_dtype_expands_before_arithmetic_and_a_mean_over_neighbouring_dims():
    torch.manual_seed(0)
    model, x = nn.Sequential(Casts()).eval(), torch.randn(2, 4, 6, 6)
    text = lift(model, x)
    assert "flatten_dims" in text and "expand" not in text
    assert_round_trip(model, text, x)


def test_timms_scaled_weight_standardised_convs_are_ws_conv():
    """NF-ResNets' and NFNets' convs (their gamma read back from the scale they keep), the 'same' one with its
    padding for the input it gets before it."""
    std_conv = pytest.importorskip("timm.layers.std_conv")
    torch.manual_seed(0)
    model = nn.Sequential(std_conv.ScaledStdConv2d(3, 8, 3, gamma=1.7015043497085571),
                          std_conv.ScaledStdConv2dSame(8, 8, 3, stride=2, padding="same")).eval()
    with torch.no_grad():
        model[1].gain.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 8, 8)
    text = lift(model, x)
    assert "ws_conv(8, 3, padding = 1, gamma = 1.70150" in text and "zero_pad((0, 1, 0, 1))" in text
    assert_round_trip(model, text, x)


class InPlace(nn.Module):
    """Its input changed in place and read again: the caller's tensor changes too (a computed value changed in
    place and read again is lifted: tests/test_lift_patterns.py)."""

    def forward(self, x):
        y = x.mul_(2.0)
        return y + x


@pytest.mark.parametrize("model, message", [
    (InPlace(), r"the model \(InPlace\): changes a tensor in place \('mul_'\) and reads it again after"),
])
def test_what_the_lifter_would_get_wrong_is_refused(model, message):
    with pytest.raises(LiftError, match=message):
        lift_unchecked(model, torch.randn(1, 3, 8, 8))


# ---------------------------------------------------------------- timm's prefix tokens, scales and norms


class Prefixed(nn.Module):
    """A class token and register tokens put before the patches (``cat([cls, reg, x])``), the tokens after them
    averaged; ``cls`` False: register tokens alone."""

    def __init__(self, cls=True, regs=4, dim=16):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim)) if cls else None
        self.reg_token = nn.Parameter(torch.randn(1, regs, dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)
        self.prefix = regs + cls

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        tokens = [self.reg_token.expand(x.shape[0], -1, -1)]
        if self.cls_token is not None:
            tokens.insert(0, self.cls_token.expand(x.shape[0], -1, -1))
        x = self.norm(torch.cat(tokens + [x], dim=1))
        return self.head(x[:, self.prefix:].mean(1))


@pytest.mark.parametrize("cls", [True, False])
def test_register_tokens_are_prepend_token_with_a_count(cls):
    torch.manual_seed(0)
    model, x = Prefixed(cls).eval(), torch.randn(2, 3, 16, 16)
    text = lift(model, x)
    assert "reg_token = prepend_token(count = 4)" in text and ("cls_token = prepend_token" in text) == cls
    assert f"narrow(1, {4 + cls}, 16)" in text
    if cls:
        assert text.index("reg_token = ") < text.index("cls_token = ")  # the last in the cat is put first
    assert_round_trip(model, text, x)


class TimmParts(nn.Module):
    """timm's norms with their activation after them, a Scale viewed as its own shape, torch.square, a pad of 0."""

    def __init__(self):
        super().__init__()
        norm_act = pytest.importorskip("timm.layers.norm_act")
        self.conv = nn.Conv2d(3, 8, 3)
        self.ln = norm_act.LayerNormAct2d(8, act_layer=nn.GELU)
        self.gn = norm_act.GroupNormAct(8, 4, act_layer=nn.SiLU)
        self.scale = nn.Parameter(torch.rand(8) + 0.5)
        self.fc = nn.Linear(8, 4)
        self.norm = norm_act.LayerNormAct(4, act_layer=nn.ReLU)

    def forward(self, x):
        x = nn.functional.pad(self.gn(self.ln(self.conv(x))), (0, 0, 0, 0))
        x = x.permute(0, 2, 3, 1) * self.scale.view((8,))
        return self.norm(torch.square(self.fc(x)))


def test_timms_norms_with_an_activation_a_scale_of_its_own_shape_and_a_square():
    torch.manual_seed(0)
    model, x = nn.Sequential(TimmParts()).eval(), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)
    text = lift(model, x)
    assert "ln = layernorm\n" in text and "gn = groupnorm(4)\n" in text and "relu(norm(" in text
    assert "silu(gn(gelu(ln(conv(x)))))" in text  # each norm's activation after it, and no pad
    assert "scale = learned_scale((8,))" in text and ") ** 2" in text
    assert_round_trip(model, text, x)


class Last(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x)


class Grouped(nn.Module):
    """Tokens in groups, a tensor of three dimensions per sample (nest's T x N x C), given to a block that applies
    a linear layer to their last dimension: the language reads the block's input as a C x H x W map."""

    def __init__(self):
        super().__init__()
        self.inner = Last()

    def forward(self, x):
        return self.inner(x.reshape(x.shape[0], 2, 4, 8)).flatten(1)


def test_a_lifted_statement_that_does_not_compile_is_refused_with_the_module_path():
    with pytest.raises(LiftError, match=r"^0\.inner\.fc \(Linear\): cannot be written yet: its statement in the lifted "
                                        r"text does not compile: linear needs .*got 2 x 4 x 8 \(a tensor of three"):
        lift(nn.Sequential(Grouped()).eval(), torch.randn(1, 64))


class Mixed(nn.ModuleDict):
    """MixNet's grouped conv: the channels split, each part through its own kernel size, concatenated; children
    named by numbers, which a block with named tensors could not apply."""

    def __init__(self):
        super().__init__({"0": nn.Conv2d(4, 4, 3, padding=1), "1": nn.Conv2d(4, 4, 5, padding=2)})

    def forward(self, x):
        parts = torch.split(x, [4, 4], 1)
        return torch.cat([c(parts[i]) for i, c in enumerate(self.values())], 1)


def test_channel_groups_through_their_own_children_are_a_concat_of_narrows():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Conv2d(3, 8, 1), Mixed()).eval(), torch.randn(1, 3, 8, 8)
    text = lift(model, x)
    assert "concat {" in text and "narrow(1, 4, 4)" in text and '"1" = conv(4, 5, padding = 2)' in text
    assert_round_trip(model, text, x)
