"""Init rules reach every kind of layer whose module holds parameters, as the kind declares them (``OpKind``'s
``init_params``, ``init_has``, ``init_sizes``): a kind rule sets each parameter the kind's layers have, and its
arguments read the layer's sizes. A kind that holds parameters and declares none is named here, or this fails."""

from __future__ import annotations

import pytest
import torch

import archc
from archc.ops import REGISTRY
from archc.sema.initrules import PARAMETERS

# Each kind whose layers an init rule may reach: (its input, the layer as a spec writes it)
LAYERS = {
    "conv": ("4 x 8 x 8", "conv(6, 3)"),
    "ws_conv": ("4 x 8 x 8", "ws_conv(6, 3)"),
    "conv1d": ("4 x 16", "conv1d(6, 3)"),
    "conv3d": ("4 x 4 x 8 x 8", "conv3d(6, 3)"),
    "conv_transpose": ("4 x 8 x 8", "conv_transpose(6, 3, 2)"),
    "conv_transpose1d": ("4 x 16", "conv_transpose1d(6, 3)"),
    "conv_transpose3d": ("4 x 4 x 8 x 8", "conv_transpose3d(6, 3)"),
    "linear": ("12", "linear(6)"),
    "batchnorm": ("4 x 8 x 8", "batchnorm"),
    "layernorm": ("5 x 12", "layernorm"),
    "layernorm2d": ("4 x 8 x 8", "layernorm2d"),
    "rmsnorm": ("5 x 12", "rmsnorm"),
    "rmsnorm2d": ("4 x 8 x 8", "rmsnorm2d"),
    "groupnorm": ("4 x 8 x 8", "groupnorm(2)"),
    "instancenorm": ("4 x 8 x 8", "instancenorm(affine = true)"),
    "prelu": ("4 x 8 x 8", "prelu(4)"),
}
# Kinds holding parameters that no rule reaches by kind: attention modules of fixed layout (their parts have
# torch's own names) and the kinds that only archc.deploy writes (its weights come from the trained model).
NOT_BY_KIND = {"self_attention", "relative_attention", "window_attention", "conv_act", "linear_act"}


def test_every_kind_with_parameters_declares_them():
    holding = {name for name, kind in REGISTRY.items() if kind.has_params and not kind.learned}
    assert holding - NOT_BY_KIND == set(PARAMETERS), "declare init_params on the kind, or say here why not"
    assert set(LAYERS) == set(PARAMETERS), "every kind a rule may reach has a case below"


def _model(kind: str, rules: str):
    shape, layer = LAYERS[kind]
    text = f"network Net() {{\n    input {shape}\n    layer = {layer}\n{rules}}}\nvariant net = Net()\n"
    return archc.load(f"{kind}.arch", text).build("net")


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_kind_rule_sets_each_parameter_its_layers_have(kind):
    params = PARAMETERS[kind]
    rules = "".join(f"    init {kind}.{p} = {0.25 * (i + 1)}\n" for i, p in enumerate(params))
    model = _model(kind, rules)
    got = {name.split(".")[-1]: t for name, t in model.named_parameters() if name.startswith("layer.")}
    assert set(got) == set(params)
    for i, p in enumerate(params):
        assert torch.all(got[p] == 0.25 * (i + 1)), (kind, p)


@pytest.mark.parametrize("kind, size, expected", [
    ("conv", "fan_in", 1 / (4 * 9)), ("linear", "fan_in", 1 / 12), ("batchnorm", "num_features", 1 / 4),
    ("layernorm", "normalized_shape[0]", 1 / 12), ("rmsnorm2d", "normalized_shape[0]", 1 / 4),
])
def test_a_rule_reads_the_layers_sizes(kind, size, expected):
    """As the checker works them out, and as the generated pass reads them from the module (``m.num_features``)."""
    model = _model(kind, f"    init {kind}.weight = uniform(a = 1 / {size}, b = 1 / {size})\n")
    assert torch.allclose(model.layer.weight, torch.full_like(model.layer.weight, expected))


@pytest.mark.parametrize("kind, size", [("groupnorm", "num_features"), ("layernorm", "num_features"),
                                        ("batchnorm", "fan_in")])
def test_a_size_the_module_does_not_hold_is_refused(kind, size):
    """nn.GroupNorm and nn.LayerNorm hold no num_features: a rule reading it would fail as the model is made."""
    with pytest.raises(archc.SpecError, match=f"'{size}' is not a size of a {kind} layer"):
        _model(kind, f"    init {kind}.weight = uniform(a = 1 / {size}, b = 1 / {size})\n")


def test_a_rule_for_a_parameter_the_layer_lacks_is_refused():
    with pytest.raises(archc.SpecError, match="has no parameter 'bias'|no parameter 'bias'"):
        _model("rmsnorm", "    init rmsnorm.bias = 0\n")
