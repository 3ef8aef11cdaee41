"""archc.deploy and archc build --deploy: the inference form of a spec, filled from a trained model.

Every comparison here is the test's own: the trained model (batch statistics and affine parameters moved off
their defaults, so that a fold has something to get wrong) against the deployed one, in eval, on the same input.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from archtest import spec as shipped
from torch import nn

import archc
from archc.deployment import convert
from archc.deployment.convert import DeployError

ROOT = Path(__file__).resolve().parent.parent
# one of each kind of fold and removal (the slow test deploys every shipped model)
SMALL = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "googlenet", "shufflenet_v2_x0_5", "mnasnet0_5",
         "squeezenet1_1"]


def trained(name: str, **kwargs) -> nn.Module:
    """A model as training leaves it: norms with statistics and affine parameters of their own."""
    torch.manual_seed(0)
    model = archc.create_model(name, **kwargs)
    randomise(model)
    return model.eval()


def randomise(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)


def assert_same(model: nn.Module, deployed: nn.Module, size: int = 224, tolerance: float = 1e-5) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    model.eval()
    with torch.no_grad():
        want, got = model(x), deployed(x)
    assert want.shape == got.shape
    scale = float(want.abs().max())
    assert float((want - got).abs().max()) <= tolerance * max(1.0, scale)


def norm_channels(model: nn.Module) -> int:
    return sum(m.num_features for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


@pytest.mark.parametrize("name", SMALL)
def test_deployed_models_compute_what_the_trained_ones_do(name):
    model = trained(name)
    deployed = archc.deploy(model, check=False)
    assert not deployed.training and model.training is False
    assert_same(model, deployed)
    assert not any(isinstance(m, nn.Dropout) for m in deployed.modules())


def test_resnet50_loses_every_norm_and_gains_their_biases():
    """Each of resnet50's 53 batch norms (26,560 channels) folds into the bias-free conv before it: 2 parameters
    a channel leave, 1 comes back as the conv's bias."""
    model = trained("resnet50")
    deployed = archc.deploy(model)
    params = sum(p.numel() for p in deployed.parameters())
    assert norm_channels(model) == 26_560 and norm_channels(deployed) == 0
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    assert params == 25_557_032 - 26_560 == 25_530_472
    assert all(m.bias is not None for m in deployed.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.slow
def test_a_conditional_norm_folds_only_where_it_is_on():
    """vgg's `batchnorm if batch_norm`: the _bn models fold it, the plain ones keep their convs as they are."""
    plain, with_bn = trained("vgg11"), trained("vgg11_bn")
    assert_same(plain, archc.deploy(plain))
    deployed = archc.deploy(with_bn)
    assert_same(with_bn, deployed)
    assert sum(p.numel() for p in deployed.parameters()) == sum(p.numel() for p in plain.parameters())
    # vgg's features name their layers by position: a folded norm leaves an identity, and the keys are the trained
    # model's without the norms' (the convs gain no key: they have their biases already); the classifier, numbered
    # as it goes, closes up where its dropouts and ReLUs (each now applied by the linear layer before it) were
    norms = {k.rsplit(".", 1)[0] for k in with_bn.state_dict() if k.endswith("running_var")}
    assert [k for k in deployed.state_dict() if k.startswith("features.")] == \
        [k for k in with_bn.state_dict() if k.startswith("features.") and k.rsplit(".", 1)[0] not in norms]
    assert [k for k in deployed.state_dict() if k.startswith("classifier.")] == \
        ["classifier.0.weight", "classifier.0.bias", "classifier.1.weight", "classifier.1.bias", "classifier.2.weight",
         "classifier.2.bias"]


def test_the_factory_arguments_are_kept():
    model = trained("resnet18", num_classes=10)
    deployed = archc.deploy(model)
    assert deployed.fc.out_features == 10
    assert_same(model, deployed)


def test_a_wrong_fold_is_caught():
    """The mutation the check exists for: folding with the wrong epsilon changes the outputs, and deploy says so."""
    model = trained("mobilenet_v3_small")
    right = convert.fold
    wrong = lambda weight, bias, norm, eps=None: right(weight, bias, norm, norm.eps + 1e-2)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convert, "fold", wrong)
        with pytest.raises(DeployError, match="differs from the trained model's"):
            archc.deploy(model)
        unchecked = archc.deploy(model, check=False)
    with pytest.raises(AssertionError):
        assert_same(model, unchecked)


def test_channels_last_and_a_model_left_in_training_mode():
    model = trained("resnet18").train()
    deployed = archc.deploy(model, channels_last=True)
    assert model.training and not deployed.training
    assert deployed.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert_same(model, deployed)


def test_a_model_not_made_by_a_factory_names_its_variant():
    from archc.models.resnet import BasicBlock, ResNet

    model = ResNet(block=BasicBlock, layers=[2, 2, 2, 2], num_classes=7)
    randomise(model)
    with pytest.raises(DeployError, match="name its variant"):
        archc.deploy(model)
    deployed = archc.deploy(model, "resnet18", num_classes=7)
    assert_same(model, deployed)


def test_a_users_spec_built_in_this_process(tmp_path):
    path = tmp_path / "net.arch"
    path.write_text("""
block ConvBN(c, p = 0.1) {
    conv = conv(c, 3, padding = 1, bias = false); bn = batchnorm; relu; dropout(p)
}
network Net(width = 8, norm = true) {
    input 3 x 32 x 32
    stem = ConvBN(width)
    body = seq {
        for i in range(2) { conv(width, 3, padding = 1); batchnorm if norm; relu }
    }
    residual(stochastic_depth = 0.2) { a = conv(width, 1); b = batchnorm }
    global_avgpool
    head = seq { dropout(0.5); linear(10) }
}
variant net = Net()
variant bare = Net(norm = false)
""")
    spec = archc.load(path)
    for variant in ("net", "bare"):
        model = spec.build(variant)
        randomise(model)
        deployed = archc.deploy(model)
        assert_same(model, deployed, size=32)
        assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in deployed.modules())
    code = archc.deployment.convert.deploy_spec(spec)[0].source().split('"""', 2)[2]  # after the docstring
    assert "BatchNorm" not in code and "dropout" not in code.lower() and "_stochastic_depth" not in code


def test_a_conv_read_by_name_keeps_its_norm(tmp_path):
    """A shortcut reading the conv's own output needs it unnormalised: that conv does not absorb the norm."""
    path = tmp_path / "net.arch"
    path.write_text("""
network Net() {
    input 3 x 16 x 16
    residual { a = conv(4, 1); bn = batchnorm; relu; c = conv(4, 1) } shortcut from a { identity }
    global_avgpool
    fc = linear(3)
}
variant net = Net()
""")
    spec = archc.load(path)
    model = spec.build("net")
    randomise(model)
    deployed = archc.deploy(model)
    assert isinstance(deployed.bn, nn.BatchNorm2d)
    assert_same(model, deployed, size=16)


def test_build_deploy_writes_the_inference_form(tmp_path):
    run = subprocess.run([sys.executable, "-m", "archc", "build", "--deploy", str(ROOT / "specs/resnet.arch"), "-o",
                          str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    source = (tmp_path / "resnet_deploy.py").read_text()
    # no batch norm is built (the blocks keep their norm_layer argument, now unread)
    assert "BatchNorm2d(" not in source and "norm_layer(" not in source and "The inference form" in source
    # the bias is on by default; the relu after the conv is applied by it
    assert 'self.conv1 = _ConvAct2d(in_channels, width, kernel_size=1, activation="relu")\n' in source
    # no activation after: the conv alone, its weights packed as the others'
    assert "self.conv3 = _ConvAct2d(width, planes * expansion, kernel_size=1)\n" in source
    assert "nn.Conv2d(" not in source
    compile(source, "resnet_deploy.py", "exec")


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(p.stem for p in (ROOT / "specs").glob("*.arch")))
def test_every_shipped_model_deploys(family):
    """Every shipped variant under 100 M parameters and 50 G multiply-adds: the deployed model computes what
    the trained one does, with no batch norm left after a conv or linear. One test a spec file, so that the
    suite's workers share the sweep."""
    failures = []
    models = set(archc.list_models())
    graphs = {name: graph for name, graph in shipped(family).check().items() if name in models}
    seen = set()
    for name, graph in graphs.items():
        # (XCiT with 8 x 8 patches, ConvMixer-1536: the smaller ones stand for them)
        if graph.params > 100e6 or graph.macs > 50e9:
            continue
        model = trained(name)
        # A variant whose modules and weights are another's at a larger input (XCiT's 384s) deploys as that one
        # does: the rewrite reads only the modules.
        key = (repr(model), tuple((k, tuple(v.shape)) for k, v in model.state_dict().items()))
        if key in seen:
            continue
        seen.add(key)
        try:
            deployed = archc.deploy(model, check=False)
            # one sample: eval computes each sample on its own, and the sweep is the suite's longest test
            x = torch.randn(1, *graph.node(graph.input).shape, generator=torch.Generator().manual_seed(2))
            with torch.no_grad():
                want, got = model(x), deployed(x)
            if not torch.isfinite(want).all():  # 1,000 residual blocks of random norms overflow
                assert name in ("resnet1202", "preact_resnet1001"), name
                continue
            diff, scale = float((want - got).abs().max()), max(1.0, float(want.abs().max()))
            if not diff <= 1e-5 * scale:
                failures.append(f"{name}: differs by {diff:.3g} (scale {scale:.3g})")
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"{name}: {exc}")
    assert not failures, failures


def test_every_shipped_model_comes_from_a_spec_file():
    """The sweep above goes by spec file: every model archc ships is a variant of one."""
    variants = {name for p in (ROOT / "specs").glob("*.arch") for name in shipped(p.stem).variants}
    assert set(archc.list_models()) <= variants


BRANCHES = """
block Rep(c, k = 1) {
    residual(when = in.channels == c) {
        residual {
            a = seq { conv = conv(c, 3, padding = 1, bias = false); bn = batchnorm }
        } shortcut {
            b = seq { conv = conv(c, (1, 3), padding = (0, 1), bias = false); bn = batchnorm }
        }
    } shortcut {
        SHORTCUT
    }
    relu
}
network Net(k = 1, width = 6) {
    input 3 x 12 x 12
    stem = Rep(width)
    blocks = seq { for i in range(2) { Rep(width, k) } }
    residual(stochastic_depth = 0.1) { last = conv(width, 3, padding = 1) }
    global_avgpool
    fc = linear(4)
}
variant net = Net()
"""


def merge_spec(tmp_path, shortcut: str):
    path = tmp_path / "rep.arch"
    path.write_text(BRANCHES.replace("SHORTCUT", shortcut))
    return archc.load(path)


@pytest.mark.parametrize("shortcut", [
    "c = seq { conv = conv(c, (3, 1), padding = (1, 0), bias = false); bn = batchnorm }",  # ACNet's three kernels
    "identity = batchnorm",  # RepVGG's
    "c = conv(c, k, padding = k // 2)",  # a 1x1 with a bias of its own
])
def test_linear_branches_merge_into_one_conv(tmp_path, shortcut):
    """Each Rep becomes one 3x3 conv; so does the last residual (a conv plus its input: an identity kernel)."""
    spec = merge_spec(tmp_path, shortcut)
    model = spec.build("net")
    randomise(model)
    deployed = archc.deploy(model)
    assert_same(model, deployed, size=12)
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(m.kernel_size == (3, 3) and m.bias is not None for m in convs)
    # Rep's two residuals and the last one (its stochastic depth the identity in eval) are merged
    assert len(archc.deployment.convert.deploy_spec(spec)[1].merged) == 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())


def test_linear_layers_merge_as_convs_do(tmp_path):
    """A residual of linear layers on flat features: a linear with its norm plus another linear, and a linear
    plus its input (an identity matrix), each becomes one nn.Linear."""
    path = tmp_path / "fc.arch"
    path.write_text("""
network Net() {
    input 3 x 8 x 8
    conv1 = conv(4, 3, padding = 1)
    global_avgpool
    fc1 = linear(16)
    residual { fc2 = linear(16); bn = batchnorm } shortcut { fc3 = linear(16) }
    relu
    residual { fc4 = linear(16) }
    fc = linear(10)
}
variant net = Net()
""")
    spec = archc.load(path)
    model = spec.build("net")
    randomise(model)
    deployed = archc.deploy(model)
    assert_same(model, deployed, size=8)
    assert len(archc.deployment.convert.deploy_spec(spec)[1].merged) == 2
    assert sum(isinstance(m, nn.Linear) for m in deployed.modules()) == 4  # fc1, the two merged, fc
    assert not any(isinstance(m, nn.BatchNorm1d) for m in deployed.modules())


def test_a_branch_that_does_not_fit_stays(tmp_path):
    """A 5x5 shortcut does not fit in the body's 3x3: those residuals stay (their norms still fold), and so do
    those of a model made with arguments under which a branch does not fit, though the variant's would merge."""
    spec = merge_spec(tmp_path, "c = conv(c, k, padding = k // 2)")
    for k, convs in ((5, 6), (1, 4)):  # k = 5: a block's inner pair still merges, its 5x5 branch stays
        model = spec.build("net", k=k)
        randomise(model)
        deployed = archc.deploy(model)
        assert_same(model, deployed, size=12)
        assert sum(isinstance(m, nn.Conv2d) for m in deployed.modules()) == convs


def test_a_layer_absorbs_one_norm(tmp_path):
    """A second norm after a conv (found by the fuzzer) stays: the conv took the first."""
    path = tmp_path / "net.arch"
    path.write_text("""
network Net() {
    input 3 x 8 x 8
    conv1 = conv(4, 3, padding = 1); bn2 = batchnorm; bn3 = batchnorm
    global_avgpool
    fc = linear(8); bn4 = batchnorm; bn5 = batchnorm
}
variant net = Net()
""")
    model = archc.load(path).build("net")
    randomise(model)
    deployed = archc.deploy(model)
    assert [name for name, m in deployed.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == \
        ["bn3", "bn5"]
    assert_same(model, deployed, size=8)


def test_what_the_fuzzer_found(tmp_path):
    """A norm after a dropout after a linear folds (the dropout is the identity in eval); an empty residual
    (2x) stays empty; a residual around a lone norm (no conv to merge into) stays."""
    path = tmp_path / "net.arch"
    path.write_text("""
network Net() {
    input 3 x 8 x 8
    residual { }
    residual { residual { a = seq { conv(3, 3, padding = 1, bias = false); batchnorm } } shortcut { b = batchnorm } }
    residual { bn = batchnorm }
    flatten
    fc1 = linear(4); dropout(0.3); bn2 = batchnorm; dropout(0.3)
    fc = linear(5)
}
variant net = Net()
""")
    model = archc.load(path).build("net")
    randomise(model)
    deployed = archc.deploy(model)
    assert_same(model, deployed, size=8)
    assert [name for name, m in deployed.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == ["bn"]


def test_init_rules_inside_branches_are_left_out(tmp_path):
    """A deployed model takes its weights from the trained one, so its spec has no init rules at any depth: a rule
    among a concat's branches named the weight of a conv that deploy had made a conv_act ("'a' (conv_act) has no
    parameter 'weight'"), and only a sequence's own rules were left out."""
    path = tmp_path / "net.arch"
    path.write_text("""
network Net() {
    input 3 x 8 x 8
    concat {
        a = conv(4, 1)
        init a.weight = 0
        if true { init a.bias = 0 }
        b = conv(4, 3, padding = 1)
    }
    relu
}
variant net = Net()
""")
    model = archc.load(path).build("net")
    assert not model.a.weight.any()
    randomise(model)
    assert_same(model, archc.deploy(model), size=8)


def test_a_backbone_deploys():
    """features_only: the deployed backbone gives the trained one's feature maps (no head on either side)."""
    model = trained("resnet18", features_only=True)
    deployed = archc.deploy(model)
    assert type(deployed).__name__ == "ResNetFeatures" and not hasattr(deployed, "fc")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for want, got in zip(model(x), deployed(x), strict=True):
            assert float((want - got).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


def test_a_seq_that_names_layers_by_position_keeps_them(tmp_path):
    """Where a seq names its layers by number, a norm that folds leaves an identity in its place: the unnamed
    layers after it keep their numbers (renumbered, the relu would take the number of the next conv)."""
    path = tmp_path / "net.arch"
    path.write_text("""
network Net() {
    input 3 x 8 x 8
    layers = seq {
        "0" = conv(4, 3, padding = 1, bias = false); "1" = batchnorm; relu
        "3" = conv(4, 3, padding = 1, bias = false); "4" = batchnorm; relu; dropout(0.1)
        "7" = conv(4, 1)
    }
    global_avgpool
    fc = linear(3)
}
variant net = Net()
""")
    model = archc.load(path).build("net")
    randomise(model)
    deployed = archc.deploy(model)
    assert [type(m).__name__ for m in deployed.layers] == ["_ConvAct2d", "Identity", "ReLU", "_ConvAct2d", "Identity",
                                                          "ReLU", "Identity", "_ConvAct2d"]
    assert_same(model, deployed, size=8)


def test_a_model_made_with_an_op_or_a_block_argument_deploys(tmp_path):
    """The factory records `act=nn.GELU` and `block=Unit` as torch and generated classes: deploy reads them
    back as the op and the block (convmixer_1024_20_ks9_p14, whose factory takes its activation, failed)."""
    path = tmp_path / "args.arch"
    path.write_text("""
block Unit(c) = seq { conv = conv(c, 3, padding = 1); bn = batchnorm }
block Other(c) = seq { conv = conv(c, 1) }
network Net(option act = relu, option block = Other) {
    input 3 x 8 x 8
    unit = block(4)
    a = act
    global_avgpool
    fc = linear(2)
}
variant net = Net()
variant units = Net(block = Unit)
""")
    spec = archc.load(path)
    model = spec.build("net", act=nn.GELU, block=spec.python_module().Unit)
    assert model.archc_arguments["act"] is nn.GELU and model.archc_arguments["block"].__name__ == "Unit"
    randomise(model)
    deployed = archc.deploy(model)
    assert_same(model, deployed, size=8)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
