"""Initialisation: the references' rules, seed for seed; the papers' rules, by their statistics; one
training step, bit for bit; the rules' errors.

Seed for seed: ``torch.manual_seed(s)`` then our factory gives a state_dict equal, tensor for tensor and
exactly, to the reference's factory under the same seed. That needs the same rules drawn in the same
module order, and the same PyTorch defaults drawn before them in the same construction order.
"""

from __future__ import annotations

import re
import warnings

import pytest
import timm
import torch
import torchvision
from archtest import ROOT, spec
from zoo import mutated_spec

import archc

warnings.filterwarnings("ignore", message=".*init_weights.*")

# (spec, variant, reference name): every variant under 100 M parameters with a torchvision or timm counterpart
REFERENCES = [
    ("alexnet", "alexnet", "alexnet"), ("googlenet", "googlenet", "googlenet"),
    ("inception_v3", "inception_v3", "inception_v3"), ("densenet", "densenet121", "densenet121"),
    ("densenet", "densenet161", "densenet161"), ("densenet", "densenet169", "densenet169"),
    ("densenet", "densenet201", "densenet201"),
    *[("resnet", v, v) for v in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                                 "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2")],
    ("squeezenet", "squeezenet1_0", "squeezenet1_0"), ("squeezenet", "squeezenet1_1", "squeezenet1_1"),
    *[("mobilenet", v, v) for v in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")],
    *[("mnasnet", v, v) for v in ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")],
    *[("shufflenet", f"shufflenet_v2_{w}", f"shufflenet_v2_{w}") for w in ("x0_5", "x1_0", "x1_5", "x2_0")],
    *[("efficientnet", f"efficientnet_{v}", f"efficientnet_{v}") for v in ("b0", "b1", "b2", "b3", "b4", "b5", "b6",
                                                                          "b7", "v2_s", "v2_m")],
    *[("regnet", v, v) for v in ("regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf",
                                 "regnet_x_8gf", "regnet_x_16gf", "regnet_y_400mf", "regnet_y_800mf",
                                 "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf")],
    *[("convnext", f"convnext_{v}", f"convnext_{v}") for v in ("tiny", "small", "base")],
    ("inception_v4", "inception_v4", "timm:inception_v4"),
    ("inception_v4", "inception_resnet_v2", "timm:inception_resnet_v2"),
    # torchvision draws some of these while it constructs: the specs' rules drawn 'when made'
    *[("vit", v, v) for v in ("vit_b_16", "vit_b_32")],
    *[("swin", v, v) for v in ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b")],
    ("maxvit", "maxvit_t", "maxvit_t"),
    # timm draws the learned tensors first, then its pass: the specs' rules for them
    *[("deit", f"deit_{v}_patch16_224", f"timm:deit_{v}_patch16_224") for v in ("tiny", "small", "base")],
    ("cait", "cait_xxs24_224", "timm:cait_xxs24_224"), ("xcit", "xcit_nano_12_p16_224", "timm:xcit_nano_12_p16_224"),
]
QUICK = {"resnet18", "googlenet", "squeezenet1_1", "mobilenet_v3_small", "mnasnet0_5", "shufflenet_v2_x0_5",
         "efficientnet_b0", "regnet_y_400mf", "densenet121", "maxvit_t"}


def reference(name: str, **kwargs):
    if name.startswith("timm:"):
        return timm.create_model(name[5:], pretrained=False, **kwargs)
    return torchvision.models.get_model(name, weights=None, **kwargs)


def differing(ours: torch.nn.Module, theirs: torch.nn.Module) -> list[str]:
    a, b = ours.state_dict(), theirs.state_dict()
    assert set(a) == set(b)
    return [key for key in b if not torch.equal(a[key], b[key])]


def assert_same_initialisation(build, make_reference, seeds=(0, 1)) -> None:
    for seed in seeds:
        torch.manual_seed(seed)
        ours = build()
        torch.manual_seed(seed)
        theirs = make_reference()
        bad = differing(ours, theirs)
        assert not bad, f"seed {seed}: {len(bad)} tensors differ, first {bad[:3]}"


@pytest.mark.parametrize(("spec_name", "variant", "name"), [
    pytest.param(*case, marks=() if case[1] in QUICK else pytest.mark.slow) for case in REFERENCES
], ids=[case[1] for case in REFERENCES])
def test_seed_for_seed_the_references_initialisation(spec_name, variant, name):
    module = spec(spec_name).python_module()
    seeds = (0, 1) if variant in QUICK else (0,)
    assert_same_initialisation(lambda: getattr(module, variant)(), lambda: reference(name), seeds)


@pytest.mark.parametrize(("spec_name", "variant", "kwargs"), [
    pytest.param("resnet", "resnet50", {"zero_init_residual": True}, marks=pytest.mark.slow),
    ("resnet", "resnet18", {"zero_init_residual": True}),
    pytest.param("resnet", "resnext50_32x4d", {"zero_init_residual": True}, marks=pytest.mark.slow),
    ("googlenet", "googlenet", {"init_weights": False}), ("googlenet", "googlenet", {"aux_logits": False}),
    pytest.param("inception_v3", "inception_v3", {"init_weights": False}, marks=pytest.mark.slow),
])
def test_seed_for_seed_with_the_references_initialisation_arguments(spec_name, variant, kwargs):
    module = spec(spec_name).python_module()
    assert_same_initialisation(lambda: getattr(module, variant)(**kwargs), lambda: reference(variant, **kwargs))


@pytest.mark.slow
def test_vgg_and_the_large_models_on_the_meta_device_have_the_references_shapes():
    """Over 100 M parameters the values are not compared (the seed-for-seed check of VGG's rules is below, on a
    small VGG); the shapes are, on the meta device. (torchvision's RegNet cannot be built there: its BlockParams
    read tensor values; tests/test_regnet.py compares those shapes.)"""
    for spec_name, variant in [("vgg", "vgg16_bn"), ("convnext", "convnext_large"), ("efficientnet", "efficientnet_v2_l")]:
        with torch.device("meta"):
            ours = getattr(spec(spec_name).python_module(), variant)()
            theirs = reference(variant)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.slow  # two VGGs of 130 M parameters
@pytest.mark.parametrize("init_weights", [True, False])
def test_vgg_initialisation_seed_for_seed_on_a_narrow_head(init_weights):
    """VGG's models are all over 100 M parameters; its rules are the same with a 10-way classifier (which keeps
    the 4096-wide layers, so this compares 128 M parameters in a few seconds)."""
    module = spec("vgg").python_module()
    assert_same_initialisation(lambda: module.vgg11_bn(num_classes=10, init_weights=init_weights),
                               lambda: torchvision.models.vgg11_bn(num_classes=10, init_weights=init_weights),
                               seeds=(0,))


@pytest.mark.slow  # builds four ResNets
def test_the_comparison_can_fail(tmp_path):
    """A rule changed in the spec (fan out to fan in) no longer matches torchvision's draws."""
    text = (ROOT / "specs" / "resnet.arch").read_text()
    assert 'init conv.weight = kaiming_normal(mode = "fan_out"' in text
    s = mutated_spec("resnet", 'kaiming_normal(mode = "fan_out"', 'kaiming_normal(mode = "fan_in"', tmp_path)
    with pytest.raises(AssertionError, match="tensors differ"):
        assert_same_initialisation(lambda: s.build("resnet18"), lambda: reference("resnet18"), seeds=(0,))
    s = mutated_spec("resnet", "init Bottleneck.bn3.weight = 0 if zero_init_residual", "", tmp_path / "b")
    with pytest.raises(AssertionError, match="tensors differ"):
        assert_same_initialisation(lambda: s.build("resnet50", zero_init_residual=True),
                                   lambda: reference("resnet50", zero_init_residual=True), seeds=(0,))


# ------------------------------------------------------------------ the papers' rules


def _stats(tensor: torch.Tensor) -> tuple[float, float, int]:
    return tensor.mean().item(), tensor.std().item(), tensor.numel()


@pytest.mark.parametrize(("spec_name", "variant"), [("resnet", "resnet56"), ("preact_resnet", "preact_resnet164"),
                                                    ("densenet", "densenet40_k12")])
def test_he_et_al_rule_by_its_statistics(spec_name, variant):
    """Conv weights N(0, 2 / fan_in) (He et al., 2015): for every conv of 2,000 weights or more, the sample mean
    within 5 standard errors of 0 and the sample standard deviation within 5% of sqrt(2 / fan_in). With n weights
    the standard error of the mean is std / sqrt(n) and that of the std about std / sqrt(2n): 5% is at least three
    standard errors for n >= 2,000, so the test fails for the wrong fan (a factor of up to 3) or gain (sqrt 2)."""
    torch.manual_seed(0)
    model = spec(spec_name).build(variant)
    checked = 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= 2000:
            mean, std, n = _stats(m.weight)
            expected = (2.0 / m.weight[0].numel()) ** 0.5
            assert abs(mean) < 5 * expected / n ** 0.5, name
            assert abs(std / expected - 1) < 0.05, f"{name}: std {std:.4g}, He et al. {expected:.4g}"
            checked += 1
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))
    assert checked >= 10


def test_alexnet_paper_rule():
    """Section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, 0 elsewhere."""
    torch.manual_seed(0)
    model = spec("alexnet").build("alexnet_paper")
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        layer = getattr(model, name)
        mean, std, n = _stats(layer.weight)
        assert abs(mean) < 5 * 0.01 / n ** 0.5 and abs(std / 0.01 - 1) < 0.05, name
        expected = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.equal(layer.bias, torch.full_like(layer.bias, expected)), name


def test_nin_rule():
    torch.manual_seed(0)
    model = spec("nin").build("nin_cifar10")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for m in convs:
        if m.weight.numel() >= 2000:
            assert abs(m.weight.std().item() / 0.01 - 1) < 0.05
        assert torch.equal(m.bias, torch.zeros_like(m.bias))


# ------------------------------------------------------------------ one training step


@pytest.mark.parametrize(("spec_name", "variant", "size"), [
    ("resnet", "resnet18", 64), ("googlenet", "googlenet", 64), ("mobilenet", "mobilenet_v3_small", 64),
    ("efficientnet", "efficientnet_b0", 64), *(pytest.param(*case, marks=pytest.mark.slow) for case in [
        ("convnext", "convnext_tiny", 64), ("densenet", "densenet121", 64)]),
])
def test_one_training_step_leaves_the_references_weights(spec_name, variant, size):
    """From the same seed: the same initial weights, one SGD step on the same batch in training mode (dropout,
    stochastic depth and the auxiliary heads active, batch norms updating their statistics), and every parameter
    and buffer afterwards equal to the bit. torch's CPU kernels are deterministic here, so equality is exact."""
    torch.manual_seed(0)
    ours = spec(spec_name).build(variant)
    torch.manual_seed(0)
    theirs = reference(variant)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1, 7])
    for net in (ours, theirs):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(2)  # the same dropout masks and stochastic depth draws
        net.train()
        out = net(x)
        if isinstance(out, tuple) or hasattr(out, "logits"):
            main, *aux = (out if isinstance(out, tuple) else tuple(out))
            loss = torch.nn.functional.cross_entropy(main, target) + 0.3 * sum(
                torch.nn.functional.cross_entropy(a, target) for a in aux if a is not None)
        else:
            loss = torch.nn.functional.cross_entropy(out, target)
        loss.backward()
        optimizer.step()
    assert not differing(ours, theirs)


# ------------------------------------------------------------------ the rules' errors and their code


def _error(tmp_path, body: str) -> str:
    path = tmp_path / "i.arch"
    path.write_text("network N(flag = false) {\n    input 3 x 8 x 8\n    c = conv(4, 3); flatten\n    fc = linear(4)\n"
                    + body + "\n}\nvariant n = N()\n")
    with pytest.raises(archc.SpecError) as info:
        archc.load(path).source()
    return info.value.render()


@pytest.mark.parametrize(("body", "message"), [
    ("    init conv.weight = gaussian(0, 1)", "an init rule is a number or an initialiser"),
    ("    init conv.weights = normal(0, 1)", "conv has no parameter 'weights'"),
    ("    init cc.weight = normal(0, 1)", "there is no layer 'cc' here to initialise"),
    ("    init conv.weight = normal(0, 1, 2)", "normal takes at most 2 arguments"),
    ("    init conv.weight = normal(sd = 1)", "normal has no argument 'sd'"),
    ("    init conv.weight = normal(std = -1)", "std must not be negative"),
    ('    init conv.weight = "zero"', "an init rule is a number or an initialiser"),
    ("    init weight = 1", "there is no learned tensor 'weight' here to initialise"),
    ("    init fc = 0", "'fc' is a linear layer: name its parameter"),
    ("    init fc.weight = 0 when built", "ends with its condition or 'when made', not 'when built'"),
    ("    init linear.weight = 0 when made", "a network's rules for a kind of layer are drawn when it is made"),
])
def test_init_rule_errors_are_located(tmp_path, body, message):
    text = _error(tmp_path, body)
    assert message in text and ":5:" in text, text


def test_the_documented_initialisation_is_what_archc_writes(tmp_path):
    doc = (ROOT / "docs" / "language.md").read_text()
    section = doc[doc.index("## Initialisation"):doc.index("## Networks and variants")]
    code = re.search(r"```arch\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "net.arch"
    path.write_text(code)
    assert shown.strip() in archc.load(path).source()


# ------------------------------------------------------------------ ensembles


def test_an_ensemble_averages_its_members_softmax_and_each_member_loads_its_weights():
    """GoogLeNet's Section 7 ensemble, with two members: each member takes torchvision's googlenet weights strictly
    under its own prefix, and the output is the mean of the members' softmax outputs computed separately."""
    model = spec("googlenet").build("googlenet_ensemble", members=2).eval()
    for i, seed in ((1, 0), (2, 1)):
        torch.manual_seed(seed)
        weights = reference("googlenet", aux_logits=False, init_weights=True).state_dict()
        getattr(model, f"member{i}").load_state_dict(weights, strict=True)
        assert all(k.startswith(f"member{i}.") for k in model.state_dict() if k.endswith(f"{i}.fc.weight"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        separately = (model.member1(x).softmax(1) + model.member2(x).softmax(1)) / 2
        assert torch.allclose(model(x), separately, atol=1e-7, rtol=0)
        assert not torch.allclose(model.member1(x).softmax(1), separately)  # the members differ: a real average


def test_the_vgg_ensemble_holds_vgg16_and_vgg19_under_their_names():
    with torch.device("meta"):
        model = spec("vgg").build("vgg16_vgg19_ensemble")
        expected = {f"vgg16.{k}": v.shape for k, v in torchvision.models.vgg16().state_dict().items()}
        expected.update({f"vgg19.{k}": v.shape for k, v in torchvision.models.vgg19().state_dict().items()})
    assert {k: v.shape for k, v in model.state_dict().items()} == expected


def test_stats_and_draw_show_the_members(capsys):
    from archc.backends import stats
    from archc.backends.diagram import draw

    graph = spec("vgg").graph("vgg16_vgg19_ensemble")
    rows = {r.name: r for r in stats.rows(graph, 1)}
    assert rows["vgg16"].params == 138_357_544 and rows["vgg19"].params == 143_667_240
    assert graph.params == 138_357_544 + 143_667_240
    dot = draw.draw(spec("vgg"), "vgg16_vgg19_ensemble", "dot", 1, True, None).decode()
    assert '"block:vgg16"' in dot and '"block:vgg19"' in dot and '"ensemble#1"' in dot


def test_an_ensemble_member_must_give_class_scores(tmp_path):
    path = tmp_path / "e.arch"
    path.write_text("block B(c) { conv = conv(c, 1) }\nnetwork E() {\n    input 3 x 8 x 8\n"
                    "    ensemble {\n        a = B(4)\n        b = B(4)\n    }\n}\nvariant e = E()\n")
    with pytest.raises(archc.SpecError, match="its members must give the same flat features"):
        archc.load(path)
