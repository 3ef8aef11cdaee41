"""Which arguments a variant's factory takes (docs/language.md, "Networks and variants"): the parameters that
tell a network's variants apart are theirs, an ``option`` is always the caller's, and torchvision's factories'
arguments work where its factories take them."""

from __future__ import annotations

import inspect

import pytest

import archc
from archc.errors import SpecError

SPEC = """
network Net(widths, kind = 1, option dropout = 0.2, num_classes = 10) {
    input 3 x 16 x 16
    for i in range(len(widths)) { conv{i + 1} = conv(widths[i], 3, padding = 1); relu }
    global_avgpool
    drop = dropout(dropout)
    fc = linear(num_classes * kind)
}
variant small = Net([4])
variant large = Net([8, 8], dropout = 0.5)
variant other = Net([4], kind = 2)
"""


def _taken(factory) -> list[str]:
    extra = {"channels_last", "features_only", "out_indices"}
    return [p for p in inspect.signature(factory).parameters if p not in extra]


def test_variants_own_what_tells_them_apart_and_options_stay_the_callers(tmp_path):
    path = tmp_path / "net.arch"
    path.write_text(SPEC)
    module = archc.load(path).python_module()
    # kind: written by one variant, so fixed in all; dropout: an option, the variant's value its default
    assert _taken(module.small) == _taken(module.large) == _taken(module.other) == ["dropout", "num_classes"]
    assert inspect.signature(module.large).parameters["dropout"].default == 0.5
    assert module.large(dropout=0.1).drop.p == 0.1 and module.large().drop.p == 0.5
    with pytest.raises(TypeError, match="kind"):
        module.small(kind=2)
    with pytest.raises(TypeError, match="fixes 'kind'.*tell Net's variants apart"):
        archc.create_model(f"{path}:small", kind=2)


def test_only_a_network_has_options(tmp_path):
    path = tmp_path / "bad.arch"
    path.write_text("block B(option c) { conv = conv(c, 1) }\nnetwork N() { input 3 x 4 x 4; b = B(4) }\n")
    with pytest.raises(SpecError, match="'option' marks a network's parameter: a block has no factory"):
        archc.load(path)


def test_option_still_names_things(tmp_path):
    path = tmp_path / "names.arch"
    path.write_text("network N(option option = 4) {\n    input 3 x 4 x 4\n    option = conv(option, 1)\n}\n"
                    "variant n = N()\n")
    assert archc.load(path).python_module().n(option=2).option.out_channels == 2


def test_efficientnet_takes_torchvisions_dropout():
    from archc.models.efficientnet import efficientnet_b0, efficientnet_b4

    assert efficientnet_b0(dropout=0.3).classifier[0].p == 0.3
    assert inspect.signature(efficientnet_b4).parameters["dropout"].default == 0.4  # torchvision's b4
    assert "stem" not in _taken(efficientnet_b0) and "width_mult" not in _taken(archc.models.efficientnet.efficientnet_v2_s)


@pytest.mark.parametrize(("name", "argument", "value"), [
    ("regnet_x_400mf", "se_ratio", 0.25),  # RegNetY's squeeze-and-excitation
    ("swin_t", "version", 2),  # Swin V2
    ("vgg16", "batch_norm", True),  # vgg16_bn
    ("googlenet", "bn", False),  # the paper's GoogLeNet
])
def test_an_argument_that_makes_another_variant_is_refused(name, argument, value):
    with pytest.raises(TypeError, match=f"fixes '{argument}'"):
        archc.create_model(name, **{argument: value})
    factory = archc.zoo.registry.model_entrypoint(name)
    assert argument not in inspect.signature(factory).parameters


# torchvision's factories' arguments (inspect.signature of the class, less what each factory fixes)
TORCHVISION = {
    "resnet50": ["num_classes", "zero_init_residual"],
    "efficientnet_b0": ["dropout", "stochastic_depth_prob", "num_classes"],
    "mobilenet_v2": ["num_classes", "width_mult", "round_nearest", "dropout"],
    "mobilenet_v3_large": ["num_classes", "dropout"],
    "convnext_tiny": ["stochastic_depth_prob", "layer_scale", "num_classes"],
    "swin_t": ["mlp_ratio", "dropout", "attention_dropout", "num_classes"],
    "vit_b_16": ["image_size", "dropout", "attention_dropout", "num_classes"],
    "densenet121": ["num_classes", "memory_efficient"],
    "googlenet": ["num_classes", "aux_logits", "dropout", "init_weights"],
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_factories_take_torchvisions_arguments(name):
    taken = _taken(archc.zoo.registry.model_entrypoint(name))
    assert not set(TORCHVISION[name]) - set(taken), taken


NORMED = """
block Unit(c, norm_layer = batchnorm) {
    residual {
        conv = conv(c, 3, padding = 1, bias = false); bn = norm_layer
    } shortcut if in.channels != c {
        down = seq { conv(c, 1, bias = false); norm_layer }
    }
    relu
}
network Net(norm_layer = batchnorm) {
    input 3 x 8 x 8
    unit = Unit(4, norm_layer = norm_layer)
    global_avgpool
    fc = linear(2)
}
variant net = Net()
"""


def test_a_norm_a_parameter_holds_is_built_from_the_width(tmp_path):
    import torch
    from torch import nn

    path = tmp_path / "normed.arch"
    path.write_text(NORMED)
    spec = archc.load(path)
    assert "self.bn = norm_layer(c)" in spec.source() and "out += identity" in spec.source()
    model = spec.build("net", norm_layer=lambda c: nn.GroupNorm(2, c)).eval()
    assert isinstance(model.unit.bn, nn.GroupNorm) and isinstance(model.unit.down[1], nn.GroupNorm)
    default = spec.build("net").eval()
    assert isinstance(default.unit.bn, nn.BatchNorm2d)
    interp = spec.interpret("net")
    interp.load_state_dict(default.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(default(x), interp.eval()(x))


@pytest.mark.slow
def test_resnet_takes_torchvisions_norm_layer():
    """Detection builds its backbone with frozen batch norm: the norm a parameter holds is built from the width."""
    import torch
    import torchvision
    from archc.models.resnet import resnet50
    from torchvision.ops import FrozenBatchNorm2d

    theirs = torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d).eval()
    with torch.no_grad():
        for name, t in theirs.state_dict().items():  # frozen statistics that are not the identity
            if name.endswith(("running_mean", "bias")):
                t.normal_(0, 0.1)
            elif name.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")):
                t.uniform_(0.5, 1.5)
    ours = resnet50(norm_layer=FrozenBatchNorm2d).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert isinstance(ours.layer1[0].bn3, FrozenBatchNorm2d)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
