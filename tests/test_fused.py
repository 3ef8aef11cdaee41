"""conv_act and linear_act: a layer and its activation as one op, which archc.deploy writes for the CPU.

The fused path (oneDNN, in inference: float32, no gradients) is held to the graph interpreter, whose meaning of
each op is written from its definition, and to the same module run where gradients are on (the two calls in
turn); a wrong entry in the table of oneDNN post-ops must make the comparison fail.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import archc
from archc.cli import main
from archc.ops.fused import FUSABLE

SPEC = """
network Net(act = "relu") {
    input 3 x 10 x 10
    c = conv_act(6, 3, padding = 1, activation = act)
    d = conv_act(6, 3, stride = 2, padding = 2, dilation = 2, groups = 3, bias = false, activation = act)
    p = conv_act(5, 1)
    flatten
    fc = linear_act(7, activation = act)
    q = linear_act(3)
}
""" + "".join(f'variant net_{a} = Net("{a}")\n' for a in FUSABLE)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("fused") / "fused.arch"
    path.write_text(SPEC)
    return archc.load(path)


def _run(spec, act: str):
    """The built model, the interpreter with its weights, and an input."""
    torch.manual_seed(0)
    model = spec.build(f"net_{act}").eval()
    oracle = spec.interpret(f"net_{act}").eval()
    oracle.load_state_dict(model.state_dict())
    return model, oracle, torch.randn(4, 3, 10, 10, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("act", FUSABLE)
def test_the_fused_layers_compute_the_layer_then_the_activation(spec, act):
    model, oracle, x = _run(spec, act)
    assert type(model.c).__name__ == "_ConvAct2d" and isinstance(model.c, nn.Conv2d)
    assert type(model.fc).__name__ == "_LinearAct" and isinstance(model.fc, nn.Linear)
    with torch.no_grad():
        fused, want = model(x), oracle(x)
    unfused = model(x).detach()  # gradients on: the layer, then the activation
    assert torch.allclose(unfused, want, atol=1e-5)
    assert torch.allclose(fused, want, atol=1e-5)


def test_a_wrong_post_op_is_caught(spec, monkeypatch):
    """The mutation the comparison exists for: silu's post-op said to be relu's."""
    model, oracle, x = _run(spec, "silu")
    for cls in (type(model.c), type(model.fc)):
        monkeypatch.setitem(cls.POST_OPS, "silu", cls.POST_OPS["relu"])
    with torch.no_grad():
        assert not torch.allclose(model(x), oracle(x), atol=1e-5)


def test_the_weights_are_packed_once_per_input_size_and_again_when_they_change(spec):
    model, oracle, x = _run(spec, "relu")
    with torch.no_grad():
        assert torch.allclose(model(x), oracle(x), atol=1e-5)
        packed = model.c.packed
        assert packed is not None and packed[1].is_mkldnn  # the oneDNN path ran, with its own copy of the weights
        model(x)
        assert model.c.packed is packed  # made once for this size
        for m in (model, oracle):
            m.c.weight.mul_(-0.5)  # in place: a packed copy kept from before would give the old output
        assert torch.allclose(model(x), oracle(x), atol=1e-5)
        model.load_state_dict({k: v * 2 for k, v in model.state_dict().items()})
        oracle.load_state_dict(model.state_dict())
        assert torch.allclose(model(x), oracle(x), atol=1e-5)
        one = x[:1]  # another size: packed again for it
        assert torch.allclose(model(one), oracle(one), atol=1e-5)
        assert model.c.packed[0][0] == tuple(one.shape)
    assert "packed" not in " ".join(model.state_dict())
    copied = copy.deepcopy(model)  # the oneDNN copy cannot be copied or saved: it is left behind
    assert copied.c.packed is None
    buffer = io.BytesIO()
    torch.save(model, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    with torch.no_grad():
        assert torch.allclose(copied(x), oracle(x), atol=1e-5)
        assert torch.allclose(loaded(x), oracle(x), atol=1e-5)


BLOCK = """
block B() {
    a = conv(4, 3, padding = 1, bias = false); bn = batchnorm; relu
    b = conv(4, 3, padding = 1); named = relu
    c = conv(4, 3, padding = 1); relu if in.channels > 0
    d = conv(4, 3, padding = 1); leaky_relu(0.2)
    e = conv(4, 3, padding = 1); relu6
    f = seq { conv = conv(4, 1) }
    relu
}
network Net() {
    input 4 x 8 x 8
    b = B()
    g = seq { conv = conv(4, 1) }
    h = side relu from g
    relu
    global_avgpool
    fc = linear(8); gelu
    head = linear(2)
}
variant net = Net()
"""


def test_deploy_fuses_only_an_unnamed_unconditional_activation_without_arguments(tmp_path):
    path = tmp_path / "fuse.arch"
    path.write_text(BLOCK)
    assert main(["build", "--deploy", str(path), "-o", str(tmp_path / "out")]) == 0
    source = (tmp_path / "out" / "fuse_deploy.py").read_text()
    assert 'self.a = _ConvAct2d(in_channels, 4, kernel_size=3, padding=1, activation="relu")' in source
    assert 'self.e = _ConvAct2d(4, 4, kernel_size=3, padding=1, activation="relu6")' in source
    assert 'self.fc = _LinearAct(4, 8, activation="gelu")' in source
    for kept in ("b", "c", "d"):  # named, conditional, with an argument: the conv alone (its weights packed)
        assert f"self.{kept} = _ConvAct2d(4, 4, kernel_size=3, padding=1)\n" in source
    assert 'f.add_module("conv", _ConvAct2d(4, 4, kernel_size=1, activation="relu"))' in source  # a seq's last layer
    assert 'g.add_module("conv", _ConvAct2d(4, 4, kernel_size=1))' in source  # a side output reads the seq
    assert "nn.Conv2d(" not in source
    spec = archc.load(path)
    torch.manual_seed(0)
    model = spec.build("net").eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    deployed = archc.deploy(model, "net", spec=spec)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(deployed(x), model(x), atol=1e-5)


@pytest.mark.slow
def test_a_deployed_model_compiles_without_graph_breaks():
    model = archc.create_model("resnet18").eval()
    deployed = archc.deploy(model)
    assert any(type(m).__name__ == "_ConvAct2d" for m in deployed.modules())
    with torch.no_grad():
        explained = torch._dynamo.explain(deployed)(torch.randn(1, 3, 64, 64))
    assert explained.graph_break_count == 0
