"""archc lift over every torchvision classification model (slow tier): lifted, compiled, proven, and no longer
than twice the hand-written spec of its family.

Under 100 M parameters the proof is outputs: the original's weights load strictly into the rebuilt network and
its eval outputs are identical, on a small input (the input size the lifted spec says). Above, the models are
lifted on the meta device, and every state_dict key and shape must agree. What cannot be lifted yet is listed
with its reason: a model that starts to lift, or one that stops, fails the test."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torchvision.models import get_model, list_models

from archc.lifting import LiftError, lift, lift_unchecked

# the models that cannot be lifted yet, and why (README, docs/lift.md)
NOT_YET: dict[str, str] = {}
MODELS = list_models(module=torchvision.models)
BIG = 100e6


def _size(name: str) -> int:
    if "inception" in name:
        return 299
    return 224 if name.startswith(("vit", "maxvit")) else 64  # fixed-size position tables, else small


def test_the_list_is_torchvisions_80():
    assert len(MODELS) == 80 and set(NOT_YET) <= set(MODELS) and set(FAMILIES) <= set(MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_round_trips(name):
    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        with torch.device("meta"):
            model = get_model(name)
    except Exception:  # a constructor that computes with tensors (RegNet's widths)
        model = get_model(name).to("meta")
    meta = sum(p.numel() for p in model.parameters()) > BIG
    if not meta:
        torch.manual_seed(0)
        model = get_model(name)
    size = _size(name)
    example = torch.randn(1, 3, size, size, device="meta" if meta else "cpu")
    if name in NOT_YET:
        with pytest.raises(LiftError, match=NOT_YET[name]):
            lift(model.eval(), example, name)
        return
    text = lift_unchecked(model.eval(), example, name)  # the lifter's own proof is this one, done here
    if name in FAMILIES:
        assert_readable(name, text)
    import archc

    spec = archc.load("lifted.arch", text=text)
    with torch.device("meta" if meta else "cpu"):
        net = spec.build(name)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == want
    if not meta:
        net.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            assert torch.equal(model.eval()(example), net.eval()(example))


# the hand-written spec of each family, against which a lifted spec's length is measured
FAMILIES = {"resnet50": "resnet", "vgg16": "vgg", "alexnet": "alexnet", "densenet121": "densenet",
            "mobilenet_v2": "mobilenet", "mobilenet_v3_large": "mobilenet", "efficientnet_b0": "efficientnet",
            "efficientnet_v2_s": "efficientnet", "regnet_y_400mf": "regnet", "shufflenet_v2_x1_0": "shufflenet",
            "squeezenet1_0": "squeezenet", "mnasnet1_0": "mnasnet", "convnext_tiny": "convnext", "vit_b_16": "vit",
            "maxvit_t": "maxvit"}


def _statements(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def assert_readable(name: str, text: str):
    """A lifted spec is formatted as `archc fmt` writes it and at most twice as long as the family's hand-written
    spec in specs/ (lines that are not blank or comments, against the whole file)."""
    from archtest import ROOT

    from archc.lang.format import format_source

    assert format_source(text, "lifted.arch") == text
    hand = (ROOT / "specs" / f"{FAMILIES[name]}.arch").read_text()
    assert _statements(text) <= 2 * _statements(hand), (_statements(text), _statements(hand))


@pytest.mark.slow
def test_googlenets_auxiliary_heads_are_side_outputs_with_its_training_outputs():
    """Heads used in training only are `side` outputs, in the order the original returns them; in training the
    rebuilt network returns the same three tensors, seed for seed."""
    import archc

    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    model = get_model("googlenet", init_weights=False)
    x = torch.randn(2, 3, 96, 96)
    text = lift(model.eval(), x[:1], "googlenet")
    assert "aux2 = side InceptionAux(528) from inception4d" in text
    assert "aux1 = side InceptionAux(512) from inception4a" in text
    net = archc.load("lifted.arch", text=text).build("googlenet")
    net.load_state_dict(model.state_dict(), strict=True)
    model.train()
    net.train()
    torch.manual_seed(1)
    want = model(x)
    torch.manual_seed(1)
    got = net(x)
    assert len(want) == len(got) == 3 and all(torch.equal(a, b) for a, b in zip(want, got))
