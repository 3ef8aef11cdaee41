"""Networks as backbones: the spec's taps, ``features_only=True`` and ``feature_info``, checked against timm
(channels, reductions and the maps themselves) and against torchvision (the same feature maps, bit for bit,
from the same weights), and torchvision's Faster R-CNN built on an archc ResNet-50 with an FPN over its taps.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from archtest import graph_breaks, randomize_batchnorm, spec
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import archc
from generated import densenet, inception_v3, resnet

# variant: (its spec, the input side timm and torchvision are run at, torchvision's nodes for the same taps)
BACKBONES = {
    "resnet18": ("resnet", 64, ["relu", "layer1", "layer2", "layer3", "layer4"]),
    "resnet50": ("resnet", 64, ["relu", "layer1", "layer2", "layer3", "layer4"]),
    "resnext50_32x4d": ("resnet", 64, ["relu", "layer1", "layer2", "layer3", "layer4"]),
    "wide_resnet50_2": ("resnet", 64, ["relu", "layer1", "layer2", "layer3", "layer4"]),
    "densenet121": ("densenet", 64, ["features.relu0", "features.denseblock1", "features.denseblock2",
                                     "features.denseblock3", "relu"]),
    "inception_v3": ("inception_v3", 160, ["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"]),
}
MODULES = {"resnet": resnet, "densenet": densenet, "inception_v3": inception_v3}


def features_model(variant: str, **kwargs) -> nn.Module:
    return getattr(MODULES[BACKBONES[variant][0]], variant)(features_only=True, **kwargs)


@pytest.mark.parametrize("variant", [v if v != "wide_resnet50_2" else pytest.param(v, marks=pytest.mark.slow)
                                     for v in BACKBONES])
def test_the_taps_are_timms(variant):
    """Channels and reductions as timm's features_only model has them, and the elaborated graph's too."""
    ours = features_model(variant)
    theirs = timm.create_model(variant, features_only=True, pretrained=False)
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    graph = spec(BACKBONES[variant][0]).graph(variant)
    taps = list(graph.taps.values())
    assert ours.feature_info.module_name() == [t.name for t in taps]
    assert ours.feature_info.channels() == [graph.node(t.node).shape[0] for t in taps]
    assert ours.feature_info.reduction() == [t.reduction for t in taps]


@pytest.mark.slow  # the six backbones run twice at 64 to 160 pixels
@pytest.mark.parametrize("variant", BACKBONES)
def test_the_feature_maps_are_torchvisions_and_have_timms_shapes(variant):
    """Given torchvision's weights (random, and the batch norms' statistics randomised), the feature maps
    equal those torchvision computes at the same places, exactly; and their shapes are timm's."""
    name, side, nodes = BACKBONES[variant]
    torch.manual_seed(0)
    reference = randomize_batchnorm(torchvision.models.get_model(variant, weights=None, init_weights=False)
                                    if variant == "inception_v3" else torchvision.models.get_model(variant)).eval()
    ours = features_model(variant).eval()
    missing, unexpected = ours.load_state_dict(reference.state_dict(), strict=False)
    assert not missing and all(k.split(".")[0] in ("fc", "classifier", "AuxLogits") for k in unexpected)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = create_feature_extractor(reference, return_nodes=nodes)(x)
        got = ours(x)
        timm_shapes = [f.shape for f in timm.create_model(variant, features_only=True, pretrained=False).eval()(x)]
    assert [f.shape for f in got] == timm_shapes
    for mine, (node, theirs) in zip(got, expected.items()):
        assert torch.equal(mine, theirs), node


def test_a_tap_at_the_wrong_place_is_caught():
    """The comparison above can fail: layer1's map taken before its last block is not torchvision's."""
    reference = torchvision.models.resnet18().eval()
    ours = features_model("resnet18").eval()
    ours.load_state_dict(reference.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        wrong = create_feature_extractor(reference, return_nodes=["layer1.0"])(x)["layer1.0"]
        assert ours(x)[1].shape == wrong.shape and not torch.equal(ours(x)[1], wrong)


def test_out_indices_pick_and_the_head_is_gone():
    model = resnet.resnet50(features_only=True, out_indices=(1, -1))
    assert model.feature_info.channels() == [256, 2048] and model.feature_info.reduction() == [4, 32]
    assert model.feature_info.module_name() == ["layer1", "layer4"] and len(model.feature_info) == 5
    assert model.feature_info.channels(0) == 64 and model.feature_info[2]["module"] == "layer2"
    assert not hasattr(model, "fc") and not hasattr(model, "avgpool")
    full = resnet.resnet50()
    assert set(model.state_dict()) == {k for k in full.state_dict() if not k.startswith("fc.")}
    maps = model(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 256, 16, 16), (1, 2048, 2, 2)]
    assert isinstance(model, resnet.ResNet) and isinstance(model, resnet.ResNetFeatures)


def test_the_inception_backbone_drops_its_auxiliary_head():
    model = inception_v3.inception_v3(features_only=True)
    assert not hasattr(model, "AuxLogits") and not hasattr(model, "fc")
    maps = model.train()(torch.randn(2, 3, 160, 160))  # no auxiliary output in training mode either
    assert isinstance(maps, list) and len(maps) == 5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"out_indices": (1,)}, "pass features_only=True too"),
    ({"features_only": True, "out_indices": (5,)}, "this network has 5 taps, 0 to 4"),
])
def test_bad_feature_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet.resnet18(**kwargs)


def test_a_cifar_resnet_has_its_three_stages():
    model = resnet.resnet20(features_only=True)
    assert model.feature_info.channels() == [16, 32, 64] and model.feature_info.reduction() == [1, 2, 4]


@pytest.mark.parametrize(("name", "members"), [("googlenet_ensemble", ["googlenet"]),
                                               ("vgg16_vgg19_ensemble", ["vgg16", "vgg19"])])
def test_an_ensemble_is_not_a_backbone_its_members_are(name, members):
    """An ensemble averages its members' class scores: it has no feature maps of its own. The line names the
    factories of its members (vgg16_bn makes a VGG D too, but not the ensemble's, which has no batch norm)."""
    for kwargs in ({"features_only": True}, {"out_indices": (1,)}):
        with pytest.raises(ValueError) as info:
            archc.create_model(name, **kwargs)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{name} is an ensemble, not a backbone")
        assert message.endswith(": " + ", ".join(f"create_model('{m}', features_only=True)" for m in members))
    assert name not in archc.list_models(features_only=True)
    with torch.device("meta"):
        assert all(archc.create_model(m, features_only=True).feature_info for m in members)


def test_a_network_without_taps_is_not_a_backbone(tmp_path):
    path = tmp_path / "plain.arch"
    path.write_text("network P() {\n    input 3 x 8 x 8\n    c = conv(4, 1)\n    global_avgpool\n}\nvariant p = P()\n")
    with pytest.raises(ValueError, match=r"^\S+:p is not a backbone: its network has no taps, so it has no feature"):
        archc.create_model(f"{path}:p", features_only=True)


def test_create_model_makes_backbones():
    model = archc.create_model("densenet121", features_only=True, out_indices=(1, 2, 3, 4))
    assert model.feature_info.channels() == [256, 512, 1024, 1024]
    assert [m.shape[1] for m in model(torch.randn(1, 3, 64, 64))] == [256, 512, 1024, 1024]


@pytest.mark.slow  # a dynamo trace
def test_a_backbone_compiles_without_graph_breaks():
    assert graph_breaks(resnet.resnet18(features_only=True).eval(), torch.randn(1, 3, 64, 64)) == 0


class FPNBackbone(nn.Module):
    """What torchvision's detection models need of a backbone: a dict of maps and ``out_channels``."""

    def __init__(self, body: nn.Module, out_channels: int = 64) -> None:
        super().__init__()
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        self.body = body
        self.fpn = FeaturePyramidNetwork(body.feature_info.channels(), out_channels, LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn({str(i): f for i, f in enumerate(self.body(x))})


@pytest.mark.slow  # a detector on two images, forward and backward
def test_faster_rcnn_on_an_archc_resnet50_with_an_fpn_over_its_taps():
    from torchvision.models.detection import FasterRCNN

    torch.manual_seed(0)
    backbone = FPNBackbone(resnet.resnet50(features_only=True, out_indices=(1, 2, 3, 4)))
    detector = FasterRCNN(backbone, num_classes=3, min_size=160, max_size=160)
    images = [torch.rand(3, 160, 160), torch.rand(3, 128, 160)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 90.0, 120.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[5.0, 5.0, 60.0, 50.0], [70.0, 40.0, 150.0, 120.0]]),
                "labels": torch.tensor([2, 1])}]
    losses = detector.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert backbone.body.layer1[0].conv1.weight.grad is not None
    detector.eval()
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2 and all(set(d) == {"boxes", "labels", "scores"} for d in detections)
    assert detections[0]["boxes"].shape[1] == 4
