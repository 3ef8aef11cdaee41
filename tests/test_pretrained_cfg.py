"""``pretrained_cfg``: each shipped model's reference data configuration (input size, mean, std, crop,
interpolation), derived here again from torchvision's weights and timm's configurations and compared with the
table archc ships (``ARCHC_UPDATE_GOLDEN=1`` rewrites the table from them)."""

from __future__ import annotations

import json
import os
from importlib import resources

import pytest
import timm
import torch
import torchvision
from archtest import spec
from timm.data import resolve_data_config

import archc
from archc.zoo import pretrained
from archc.zoo.registry import model_entrypoint

TORCHVISION = set(torchvision.models.list_models(module=torchvision.models))


def input_side(name: str) -> int:
    stem = model_entrypoint(name).__module__.rsplit(".", 1)[-1]
    graph = spec(stem).graph(name)
    return graph.node(graph.input).shape[-1]


def reference_cfg(name: str) -> dict | None:
    """torchvision's weights whose crop is the model's input (the first such; else its default weights), else
    timm's default for the name, else none; as timm writes a configuration."""
    if name in TORCHVISION:
        options = torchvision.models.get_model_weights(name)
        weights = next((w for w in options if w.transforms().crop_size[0] == input_side(name)),
                       torchvision.models.get_weight(f"{options.__name__}.DEFAULT"))
        t = weights.transforms()
        return {"input_size": [3, t.crop_size[0], t.crop_size[0]], "interpolation": t.interpolation.value,
                "crop_pct": round(t.crop_size[0] / t.resize_size[0], 4), "crop_mode": "center",
                "mean": list(t.mean), "std": list(t.std), "num_classes": len(weights.meta["categories"]),
                "source": f"torchvision: {weights}"}
    cfg = timm.get_pretrained_cfg(name) if name in timm.list_models() else None
    if cfg is None:
        return None
    return {"input_size": list(cfg.input_size), "interpolation": cfg.interpolation, "crop_pct": cfg.crop_pct,
            "crop_mode": cfg.crop_mode, "mean": list(cfg.mean), "std": list(cfg.std), "num_classes": cfg.num_classes,
            "source": f"timm: {name}.{cfg.tag}" if cfg.tag else f"timm: {name}"}


def test_the_table_is_the_references():
    expected = {name: cfg for name in archc.list_models() if (cfg := reference_cfg(name)) is not None}
    path = resources.files("archc.zoo").joinpath(pretrained.FILE)
    if os.environ.get("ARCHC_UPDATE_GOLDEN"):
        path.write_text(json.dumps(expected, indent=1) + "\n")
    assert json.loads(path.read_text()) == expected
    # every torchvision model has one, and every timm architecture shipped under timm's names
    assert TORCHVISION <= set(expected) and {"deit_tiny_patch16_224", "xcit_nano_12_p16_384", "nfnet_f0"} <= \
        set(expected)


def test_a_model_carries_its_reference_data_config():
    model = archc.create_model("swin_t")
    assert model.pretrained_cfg["input_size"] == (3, 224, 224) and model.pretrained_cfg["crop_pct"] == 0.9655
    assert model.pretrained_cfg["interpolation"] == "bicubic" and model.default_cfg is model.pretrained_cfg
    assert archc.create_model("resnet18", num_classes=10).pretrained_cfg["num_classes"] == 10
    assert not hasattr(archc.create_model("resnet20"), "pretrained_cfg")  # a paper's CIFAR network


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "convnextv2_atto", "xcit_nano_12_p16_384"])
def test_timms_data_pipeline_resolves_what_it_does_for_timms_model(name):
    with torch.device("meta"):
        ours, theirs = archc.create_model(name), timm.create_model(name, pretrained=False)
    assert resolve_data_config({}, model=ours) == resolve_data_config({}, model=theirs)
