"""Which arguments a variant's factory takes (docs/language.md, "Networks and variants"): the parameters that
tell a network's variants apart are theirs, an ``option`` is always the caller's, and torchvision's factories'
arguments work where its factories take them."""

from __future__ import annotations

import inspect

import pytest

import archc
import archc.zoo.registry
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
    ("resnext50_32x4d", "groups", 1),  # ResNet-50, as torchvision's resnext50_32x4d refuses it
    ("wide_resnet50_2", "width_per_group", 64),
])
def test_an_argument_that_makes_another_variant_is_refused(name, argument, value):
    with pytest.raises(TypeError, match=f"fixes '{argument}'"):
        archc.create_model(name, **{argument: value})
    factory = archc.zoo.registry.model_entrypoint(name)
    assert argument not in inspect.signature(factory).parameters


# torchvision's factories' arguments (inspect.signature of the class, less what each factory fixes)
TORCHVISION = {
    "resnet50": ["num_classes", "zero_init_residual", "groups", "width_per_group", "replace_stride_with_dilation",
                 "norm_layer"],
    "efficientnet_b0": ["dropout", "stochastic_depth_prob", "num_classes", "norm_layer"],
    "efficientnet_b7": ["dropout", "norm_layer"],  # (torchvision's fixes its norm_layer: here an option)
    "mobilenet_v2": ["num_classes", "width_mult", "round_nearest", "dropout", "norm_layer"],
    "mobilenet_v3_large": ["num_classes", "dropout", "norm_layer"],
    "regnet_x_400mf": ["num_classes", "norm_layer", "activation"],
    "maxvit_t": ["num_classes", "norm_layer", "activation_layer"],
    "convnext_tiny": ["stochastic_depth_prob", "layer_scale", "num_classes", "norm_layer"],
    "swin_t": ["mlp_ratio", "dropout", "attention_dropout", "num_classes", "norm_layer"],
    "vit_b_16": ["image_size", "dropout", "attention_dropout", "num_classes", "norm_layer"],
    "densenet121": ["num_classes", "memory_efficient", "bn_size", "drop_rate"],
    "googlenet": ["num_classes", "aux_logits", "dropout", "init_weights", "dropout_aux", "transform_input"],
    "inception_v3": ["num_classes", "aux_logits", "dropout", "init_weights", "transform_input"],
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


HELD_WITH_ARGUMENTS = """
block Unit(c, norm_layer = batchnorm) {
    conv = conv(c, 3, padding = 1, bias = false); bn = norm_layer; relu
}
network Net(norm_layer = batchnorm(eps = 0.001, momentum = 0.01)) {
    input 3 x 8 x 8
    unit = Unit(4, norm_layer = norm_layer)
    other = Unit(4, norm_layer = batchnorm(eps = 0.01))
    global_avgpool
    fc = linear(2)
}
variant net = Net()
"""


def test_a_held_norm_takes_its_arguments_by_name(tmp_path):
    """``batchnorm(eps = 0.001)`` as a value: torchvision's ``partial(nn.BatchNorm2d, eps=0.001)``."""
    import torch

    path = tmp_path / "held.arch"
    path.write_text(HELD_WITH_ARGUMENTS)
    spec = archc.load(path)
    source = spec.source()
    assert "from functools import partial" in source
    assert "norm_layer: Callable[..., nn.Module] = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)" in source
    assert "Unit(4, 4, norm_layer=partial(nn.BatchNorm2d, eps=0.01))" in source
    model = spec.build("net").eval()
    assert (model.unit.bn.eps, model.unit.bn.momentum) == (0.001, 0.01)
    graph = spec.graph("net")
    assert graph.node("other.bn").args["eps"] == 0.01 and graph.node("other.bn").args["momentum"] == 0.1
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.001, 0.01)  # small variances: eps shows in the outputs
    interp = spec.interpret("net").eval()
    interp.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), interp(x))


def test_deploy_keeps_the_arguments_of_a_held_norm_it_cannot_fold(tmp_path):
    """A held batch norm after an activation stays in the deployed form, with the eps its value was given (written
    out bare, it had the default's, and the outputs parted by about 1)."""
    import torch

    path = tmp_path / "unfolded.arch"
    path.write_text(HELD_WITH_ARGUMENTS.replace("bn = norm_layer; relu", "relu; bn = norm_layer")
                    .replace("batchnorm(eps = 0.001, momentum = 0.01)", "batchnorm(eps = 0.5)"))
    spec = archc.load(path)
    model = spec.build("net").eval()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.01, 0.02)
    deployed = archc.deploy(model, "net", spec=spec)  # checks the outputs itself
    assert (deployed.unit.bn.eps, deployed.other.bn.eps) == (0.5, 0.01)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(deployed(x), model(x))


@pytest.mark.parametrize(("text", "message"), [
    ("batchnorm(0.001)", "batchnorm as a value takes its arguments by name"),
    ("batchnorm(esp = 0.001)", "batchnorm has no argument 'esp'"),
    ("batchnorm(eps = 0.1, eps = 0.2)", "batchnorm\\(\\) got 'eps' twice"),
    ("norm_layer(eps = 0.01)", "'norm_layer' holds an op: its arguments are given where the op is written"),
])
def test_a_held_norms_arguments_are_checked_where_written(tmp_path, text, message):
    path = tmp_path / "bad.arch"
    path.write_text(HELD_WITH_ARGUMENTS.replace("batchnorm(eps = 0.01)", text))
    with pytest.raises(SpecError, match=message) as caught:
        archc.load(path).check()
    assert caught.value.errors[0].span.line == 8


def test_a_held_layernorm_on_a_map_points_to_layernorm2d(tmp_path):
    """A held op's class is one class: layernorm on a map is another (_LayerNorm2d), so holding it there is a
    located error whose hint names the kind of that class; holding layernorm2d builds it."""
    path = tmp_path / "held.arch"
    text = ("network N(norm_layer = layernorm) {\n    input 3 x 32 x 32\n"
            "    stem = seq { conv(16, 4, stride = 4); norm_layer }\n}\nvariant n = N()\n")
    path.write_text(text)
    with pytest.raises(SpecError, match="whose class is _LayerNorm2d on 16 x 8 x 8") as caught:
        archc.load(path).check()
    assert (caught.value.errors[0].span.line, caught.value.errors[0].hint) == \
        (3, "hold layernorm2d, whose class that is, or write layernorm itself here")
    path.write_text(text.replace("= layernorm)", "= layernorm2d(eps = 1e-6))"))
    assert "norm_layer: Callable[..., nn.Module] = partial(_LayerNorm2d, eps=1e-06)" in archc.load(path).source()


def _stats_that_show_eps(model):
    """Statistics that are not the identity's: the first norm's variances small enough that its eps shows in the
    outputs (all of them so small would overflow a deep network)."""
    import torch

    with torch.no_grad():
        first = True
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.001, 0.01) if first else t.uniform_(0.5, 1.5)
                first = False
            elif name.endswith("running_mean"):
                t.normal_(0, 0.1)
    return model


def _frozen(c):
    from torchvision.ops import FrozenBatchNorm2d

    return FrozenBatchNorm2d(c)


@pytest.mark.parametrize(("name", "norm"), [
    ("mobilenet_v3_small", "frozen"),  # a detection backbone's (torchvision's default: eps 0.001, momentum 0.01)
    pytest.param("mobilenet_v2", "frozen", marks=pytest.mark.slow),
    pytest.param("regnet_x_400mf", "eps", marks=pytest.mark.slow),
    pytest.param("efficientnet_b0", "eps", marks=pytest.mark.slow),
    ("mobilenet_v3_small", "eps"),
])
def test_conv_norm_activation_families_take_torchvisions_norm_layer(name, norm):
    """The families torchvision builds of Conv2dNormActivation take its norm_layer: FrozenBatchNorm2d (which takes
    no momentum) or a batch norm with other arguments, built as torchvision builds it (strict load, equal outputs);
    a wrong eps shows."""
    from functools import partial

    import torch
    import torchvision
    from torch import nn

    given = _frozen if norm == "frozen" else partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
    theirs = _stats_that_show_eps(getattr(torchvision.models, name)(norm_layer=given).eval())
    from archc.zoo.registry import model_entrypoint

    factory = model_entrypoint(name)
    ours = factory(norm_layer=given).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    if norm == "eps":  # the mutation: another eps, and the outputs part
        wrong = factory(norm_layer=partial(nn.BatchNorm2d, eps=1e-4, momentum=0.01)).eval()
        wrong.load_state_dict(theirs.state_dict(), strict=True)
        assert (wrong(x) - theirs(x)).abs().max() > 1e-5


def test_the_variants_own_norm_is_torchvisions():
    """MobileNetV3's and EfficientNet-B7's norm is their factory's default, with torchvision's eps and momentum."""
    from functools import partial

    from archc.models.efficientnet import efficientnet_b7, efficientnet_v2_s
    from archc.models.mobilenet import mobilenet_v3_small

    for factory, eps, momentum in [(mobilenet_v3_small, 0.001, 0.01), (efficientnet_b7, 0.001, 0.01),
                                   (efficientnet_v2_s, 0.001, 0.1)]:
        default = inspect.signature(factory).parameters["norm_layer"].default
        assert isinstance(default, partial) and default.keywords.get("eps") == eps
        assert default(8).momentum == momentum


def test_convnexts_norm_layer_is_torchvisions_layernorm2d():
    """ConvNeXt's norm_layer (the stem's, the downsampling layers' and the head's norms, not the blocks') is held as
    layernorm2d, torchvision's LayerNorm2d with eps 1e-6, so its factory's default is what torchvision builds."""
    from archc.models.convnext import _LayerNorm2d, convnext_tiny

    default = inspect.signature(convnext_tiny).parameters["norm_layer"].default
    assert default.func is _LayerNorm2d and default.keywords == {"eps": 1e-6}
    assert "features_only" in inspect.signature(convnext_tiny).parameters  # the backbone takes it too
    assert "norm_layer" in inspect.signature(archc.models.convnext.ConvNeXtFeatures).parameters


@pytest.mark.slow
def test_convnext_takes_torchvisions_norm_layer():
    """convnext_tiny(norm_layer=partial(LayerNorm2d, eps=1e-6)), as torchvision's factory takes it: the same model
    (strict load, equal outputs), the given class in the three places torchvision puts it; another eps shows."""
    from functools import partial

    import torch
    import torchvision
    from archc.models.convnext import convnext_tiny
    from torchvision.models.convnext import LayerNorm2d

    given = partial(LayerNorm2d, eps=1e-6)
    theirs = torchvision.models.convnext_tiny(norm_layer=given).eval()
    with torch.no_grad():  # norms that are not the identity, so a wrong one shows
        for name, t in theirs.state_dict().items():
            if "features.0.1" in name or "classifier.0" in name or name.startswith("features.2.0"):
                t.uniform_(0.5, 1.5) if name.endswith("weight") else t.normal_(0, 0.5)
    x = torch.randn(1, 3, 64, 64)
    for ours in (convnext_tiny(norm_layer=given), convnext_tiny()):  # given, and the default
        ours.eval().load_state_dict(theirs.state_dict(), strict=True)
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    given_model = convnext_tiny(norm_layer=given)
    assert all(isinstance(m, LayerNorm2d) for m in (given_model.features[0][1], given_model.features[2][0],
                                                    given_model.classifier[0]))
    wrong = convnext_tiny(norm_layer=partial(LayerNorm2d, eps=0.5)).eval()  # the mutation: another eps
    wrong.load_state_dict(theirs.state_dict(), strict=True)
    assert (wrong(x) - theirs(x)).abs().max() > 1e-4


def test_googlenet_takes_torchvisions_dropout_aux():
    """The auxiliary classifiers' dropout, torchvision's dropout_aux (0.7 unless given), in both of them."""
    from archc.models.googlenet import googlenet

    assert inspect.signature(googlenet).parameters["dropout_aux"].default == 0.7  # torchvision's
    model = googlenet(dropout_aux=0.5, init_weights=False)
    assert [model.aux1.dropout.p, model.aux2.dropout.p, model.dropout.p] == [0.5, 0.5, 0.2]


@pytest.mark.slow
def test_vit_takes_torchvisions_norm_layer():
    """vit_b_16(norm_layer=...), every LayerNorm built from the width by it as torchvision's are (default
    partial(nn.LayerNorm, eps=1e-6)): torchvision's model, strictly, with equal outputs; another eps shows."""
    from functools import partial

    import torch
    import torchvision
    from archc.models.vit import vit_b_16
    from torch import nn

    default = inspect.signature(vit_b_16).parameters["norm_layer"].default
    assert default.func is nn.LayerNorm and default.keywords == {"eps": 1e-6}
    given = partial(nn.LayerNorm, eps=1e-3)
    theirs = torchvision.models.vit_b_16(image_size=32, norm_layer=given).eval()
    with torch.no_grad():
        theirs.heads.head.weight.normal_()  # (a zero head, as torchvision starts it, hides every difference)
    ours = vit_b_16(image_size=32, norm_layer=given).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.encoder.ln.eps == ours.encoder.layers.encoder_layer_11.ln_2.eps == 1e-3
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    wrong = vit_b_16(image_size=32).eval()  # the mutation: the default eps
    wrong.load_state_dict(theirs.state_dict(), strict=True)
    assert (wrong(x) - theirs(x)).abs().max() > 1e-5


@pytest.mark.slow
def test_swin_takes_torchvisions_norm_layer():
    """swin_t(norm_layer=...), every LayerNorm (the stem's, the blocks', the patch mergings', the last) built from
    the width by it, as torchvision's are: torchvision's model, strictly, with equal outputs; the default eps shows."""
    from functools import partial

    import torch
    import torchvision
    from archc.models.swin import swin_t
    from torch import nn

    given = partial(nn.LayerNorm, eps=0.5)
    torch.manual_seed(0)
    theirs = torchvision.models.swin_t(norm_layer=given).eval()
    ours = swin_t(norm_layer=given).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert {m.eps for m in ours.modules() if isinstance(m, nn.LayerNorm)} == {0.5}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
        wrong = swin_t().eval()  # the mutation: the default eps
        wrong.load_state_dict(theirs.state_dict(), strict=True)
        assert (wrong(x) - theirs(x)).abs().max() > 1e-4


@pytest.mark.slow
def test_regnet_takes_torchvisions_activation():
    """regnet_y_400mf(activation=nn.SiLU): the stem's, every block's (its convs', its SE's, the one after the sum)
    activation made by it, as torchvision's are: torchvision's model, strictly, with equal outputs; ReLU shows."""
    import torch
    import torchvision
    from archc.models.regnet import regnet_y_400mf
    from torch import nn

    torch.manual_seed(0)
    theirs = torchvision.models.regnet_y_400mf(activation=nn.SiLU).eval()
    ours = regnet_y_400mf(activation=nn.SiLU).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    kinds = {type(m) for m in ours.modules() if isinstance(m, (nn.ReLU, nn.SiLU))}
    assert kinds == {nn.SiLU}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
        wrong = regnet_y_400mf().eval()  # the mutation: ReLU
        wrong.load_state_dict(theirs.state_dict(), strict=True)
        assert (wrong(x) - theirs(x)).abs().max() > 1e-4


@pytest.mark.slow
def test_maxvit_takes_torchvisions_norm_and_activation_layers():
    """maxvit_t(norm_layer=..., activation_layer=...): the convs' norms (the MBConvs' and the stem's) and every
    activation but the squeeze-excitation's (the stem's, the MBConvs', the MLPs') made by them, as torchvision's
    are: torchvision's model, strictly, with equal outputs; the defaults show."""
    from functools import partial

    import torch
    import torchvision
    from archc.models.maxvit import maxvit_t
    from torch import nn

    norm, act = partial(nn.BatchNorm2d, eps=0.5, momentum=0.01), nn.SiLU
    torch.manual_seed(0)
    theirs = torchvision.models.maxvit_t(norm_layer=norm, activation_layer=act).eval()
    ours = maxvit_t(norm_layer=norm, activation_layer=act).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert not any(isinstance(m, nn.GELU) for m in ours.modules())
    assert {m.eps for m in ours.modules() if isinstance(m, nn.BatchNorm2d)} == {0.5}
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)
        for wrong in (maxvit_t(norm_layer=norm), maxvit_t(activation_layer=act)):  # the mutations: a default
            wrong.eval().load_state_dict(theirs.state_dict(), strict=True)
            assert (wrong(x) - theirs(x)).abs().max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), [("googlenet", 224), ("inception_v3", 299)])
def test_inception_family_takes_torchvisions_transform_input(name, size):
    """googlenet(transform_input=True), inception_v3(...): the image renormalised from ImageNet's mean and std to
    0.5 and 0.5 first, as torchvision's: its model, strictly, with equal outputs; without it they differ."""
    import importlib

    import torch
    import torchvision

    factory = getattr(importlib.import_module(f"archc.models.{name}"), name)
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(transform_input=True, aux_logits=False, init_weights=False).eval()
    ours = factory(transform_input=True, aux_logits=False).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, size, size)
    first = "conv1" if name == "googlenet" else "Conv2d_1a_3x3"  # what the first conv reads: the image renormalised

    def run(model):
        seen = []
        handle = model.get_submodule(first).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        out = model(x)
        handle.remove()
        return out, seen[0]

    with torch.no_grad():
        (out, image), (out_ref, image_ref) = run(ours), run(theirs)
        torch.testing.assert_close(out, out_ref, rtol=0, atol=0)
        torch.testing.assert_close(image, image_ref, rtol=0, atol=0)
        wrong = factory(aux_logits=False).eval()  # the mutation: no transform
        wrong.load_state_dict(theirs.state_dict(), strict=True)
        assert (run(wrong)[1] - image_ref).abs().max() > 0.1


@pytest.mark.slow
def test_densenet_takes_torchvisions_bn_size():
    """densenet121(bn_size=2), torchvision's narrower bottleneck: its model, strictly, with equal outputs; another
    bn_size does not load."""
    import torch
    import torchvision
    from archc.models.densenet import densenet121

    theirs = _stats_that_show_eps(torchvision.models.densenet121(bn_size=2).eval())
    ours = densenet121(bn_size=2).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.features.denseblock1.denselayer1.conv1.out_channels == 64  # 2 x the growth rate, 32
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="size mismatch"):
        densenet121(bn_size=3).load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.slow
def test_densenet_takes_torchvisions_drop_rate():
    """densenet121(drop_rate=0.2): each dense layer's new maps dropped out in training as torchvision's are (the
    same draws after the same seed); another rate gives other outputs; none by default, in eval or at 0."""
    import torch
    import torchvision
    import zoo
    from archc.models.densenet import densenet121

    theirs = _stats_that_show_eps(torchvision.models.densenet121(drop_rate=0.2))
    ours = densenet121(drop_rate=0.2)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    zoo.compare_training(ours, theirs, x)
    other = densenet121(drop_rate=0.3)
    other.load_state_dict(theirs.state_dict(), strict=True)
    with pytest.raises(AssertionError, match="training mode: max difference"):
        zoo.compare_training(other, theirs, x)
    assert ours.features.denseblock1.denselayer1.drop_rate == 0.2
    assert densenet121().features.denseblock1.denselayer1.drop_rate == 0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "arguments"), [
    ("resnet50", {"groups": 32, "width_per_group": 4}),  # resnext50_32x4d, built as torchvision lets one build it
    ("resnext50_32x4d", {"replace_stride_with_dilation": [False, False, True]}),
])
def test_resnets_take_torchvisions_architecture_arguments(name, arguments):
    import torch
    import torchvision

    theirs = _stats_that_show_eps(getattr(torchvision.models, name)(**arguments).eval())
    from archc.zoo.registry import model_entrypoint

    ours = model_entrypoint(name)(**arguments).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.slow
def test_resnet_takes_torchvisions_replace_stride_with_dilation():
    """A segmentation backbone's ResNet-50 (DeepLabV3's output stride 8): torchvision's, strictly, with equal
    outputs; another dilation gives other outputs; a basic block refuses to dilate, as torchvision's does."""
    import torch
    import torchvision
    from archc.models.resnet import resnet18, resnet50

    dilate = [False, True, True]
    theirs = _stats_that_show_eps(torchvision.models.resnet50(replace_stride_with_dilation=dilate).eval())
    ours = resnet50(replace_stride_with_dilation=dilate).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    assert ours.layer4[1].conv2.dilation == (4, 4) and ours.layer3[0].conv2.stride == (1, 1)
    features = resnet50(replace_stride_with_dilation=dilate, features_only=True)
    features.load_state_dict(theirs.state_dict(), strict=False)
    assert [f.shape[-1] for f in features(x)] == [32, 16, 8, 8, 8]  # output stride 8
    other = resnet50(replace_stride_with_dilation=[False, False, True]).eval()
    other.load_state_dict(theirs.state_dict(), strict=True)
    assert not torch.allclose(other(x), theirs(x))
    with pytest.raises(TypeError, match="BasicBlock"):
        resnet18(replace_stride_with_dilation=dilate)


@pytest.mark.parametrize("factory", ["resnet50", "resnext50_32x4d"])
def test_the_taps_reductions_follow_replace_stride_with_dilation(factory):
    """A stage that dilates instead of striding keeps its map's size, and feature_info says so: its reduction is
    written with the stage's stride, a let of the option (not the 32 every variant has)."""
    import torch
    from archc.models import resnet

    build = getattr(resnet, factory)
    x = torch.randn(1, 3, 64, 64)
    for dilate in ([False, False, False], [False, True, True], [True, True, True], [False, False, True]):
        model = build(replace_stride_with_dilation=dilate, features_only=True).eval()
        with torch.no_grad():
            measured = [64 // f.shape[-1] for f in model(x)]
        assert model.feature_info.reduction() == measured, dilate
    assert build(replace_stride_with_dilation=[False, True, True], features_only=True).feature_info.reduction() == \
        [2, 4, 8, 8, 8]


SWITCHED = """
block T() (x) -> y {
    let r = narrow(x, 1, 0, 1) * 2
    let y = cat([r, narrow(x, 1, 1, 2)], 1)
}
network Net(option flag = false) {
    input 3 x 8 x 8
    t = T() if flag
    conv = conv(4, 3)
    global_avgpool
    fc = linear(2)
}
variant net = Net()
"""


def test_an_option_switched_by_the_caller_is_checked_and_sized(tmp_path):
    """A step only an option adds: the check elaborates the variant with the option switched too, so the code
    generator knows the step's widths, and the factory called with the option builds and computes what the graph
    means (the interpreter of the switched graph, holding the same weights); the default still leaves it out."""
    import torch

    from archc.backends.interpret import Interpreter

    path = tmp_path / "switched.arch"
    path.write_text(SWITCHED)
    s = archc.load(path)
    s.check()
    model = s.build("net", flag=True).eval()
    interp = Interpreter(s.graph("net", flag=True)).eval()
    interp.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), interp(x), rtol=0, atol=0)
        plain = s.build("net").eval()
        plain.load_state_dict(model.state_dict(), strict=True)
        assert (plain(x) - model(x)).abs().max() > 1e-4  # the switched step computes something
