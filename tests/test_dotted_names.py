"""Dotted names (``convs.{i} = conv(...)``): the containers the generated code builds (``nn.ModuleList`` for the keys
0, 1, 2, ... in order, ``nn.ModuleDict`` otherwise) against hand-written torch modules of that structure, and the
located errors of names that clash with them."""

from __future__ import annotations

import pytest
import torch
from archtest import assert_same_as_reference, assert_static_shapes, graph_breaks
from test_codegen_cases import build, net
from test_soundness_cases import located_error
from torch import nn

from archc.lang.format import format_text

INTERLEAVED = """
network Interleaved(n = 3, c = 8, act = true) {
    input 3 x 16 x 16
    stem = conv(c, 3, padding = 1)
    for i in range(n) {
        convs.{i} = conv(c, 3, padding = 1, bias = false)
        bns.{i} = batchnorm
        relu
    }
    heads.cls = conv(c, 1)
    heads.0 = relu if act
    adaptive_avgpool(1); flatten
    fc = linear(10)
}
variant n = Interleaved()
"""


class Reference(nn.Module):
    """The structure a torch author writes: two interleaved ModuleLists, and a ModuleDict of mixed keys."""

    def __init__(self, n: int = 3, c: int = 8, mutated: bool = False):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for _ in range(n):
            self.convs.append(nn.Conv2d(c, c, 3, padding=1, bias=False))
            self.bns.append(nn.BatchNorm2d(c))
        self.heads = nn.ModuleDict({"cls": nn.Conv2d(c, c, 1), "0": nn.ReLU()})
        self.fc = nn.Linear(c, 10)
        self.mutated = mutated

    def forward(self, x):
        x = self.stem(x)
        for conv, bn in zip(self.convs, self.bns):
            x = torch.relu(bn(conv(x))) if not self.mutated else torch.sigmoid(bn(conv(x)))
        x = self.heads["0"](self.heads["cls"](x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def randomized(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if key.endswith("running_var") else
                        torch.randn(t.shape, generator=g) * 0.5)
    return model


def held_to(spec, model: nn.Module, reference: nn.Module, mutated: nn.Module, x: torch.Tensor) -> None:
    """The reference's keys in its order, strict loads both ways, equal outputs, and a mutated reference (a wrong
    activation) that differs; static shapes, and the interpreter's outputs."""
    reference = randomized(reference)
    assert list(model.state_dict()) == list(reference.state_dict())
    assert_same_as_reference(model, reference, x)
    reference.load_state_dict(model.state_dict(), strict=True)  # both ways
    mutated.load_state_dict(reference.state_dict())
    with pytest.raises(AssertionError):  # the comparison can fail
        assert_same_as_reference(model, mutated, x)
    assert_static_shapes(spec, "n", model, x)
    interpreted = spec.interpret("n")
    interpreted.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(interpreted.eval()(x), model.eval()(x))


def test_interleaved_lists_equal_the_hand_written_module(tmp_path):
    spec, model = build(tmp_path, INTERLEAVED)
    source = spec.source()
    assert "self.convs = nn.ModuleList()" in source and "self.convs.append(" in source
    assert "self.heads = nn.ModuleDict()" in source and 'self.heads["cls"] = ' in source
    assert "x = self.convs[i](x)" in source
    assert isinstance(model.convs, nn.ModuleList) and isinstance(model.heads, nn.ModuleDict)
    held_to(spec, model, Reference(), Reference(mutated=True), torch.randn(2, 3, 16, 16))
    other = spec.build("n", n=5)  # the loop's count is the factory's: five of each
    assert len(other.convs) == 5 and "bns.4.running_var" in other.state_dict()


@pytest.mark.slow
def test_interleaved_lists_compile_without_graph_breaks(tmp_path):
    _, model = build(tmp_path, INTERLEAVED)
    assert graph_breaks(model.eval(), torch.randn(2, 3, 16, 16)) == 0


def test_keys_that_are_not_0_to_n_make_a_module_dict(tmp_path):
    spec, model = build(tmp_path, net("""
for i in range(2) { convs.{i + 1} = conv(4, 3, padding = 1); relu }
for i in range(2) { blocks.{i} = conv(4, 1) if i != 0 }
"""))
    source = spec.source()
    assert 'self.convs[f"{i + 1}"] = ' in source and "nn.ModuleDict()" in source
    assert isinstance(model.convs, nn.ModuleDict) and list(model.convs) == ["1", "2"]
    assert isinstance(model.blocks, nn.ModuleDict) and list(model.blocks) == ["1"]  # made under a condition
    assert "blocks.1.weight" in model.state_dict()
    model(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("body, fragment", [
    ("convs = conv(4, 3)\nconvs.0 = conv(4, 3)", "'convs' is a layer here, so 'convs.0' cannot make it a container"),
    ("convs.0 = conv(4, 3)\nconvs = conv(4, 3)", "'convs' is a container of modules here"),
    ("convs.0 = conv(4, 3)\nconvs.0 = conv(4, 3)", "'convs.0' is already defined"),
    ("for i in range(2) { conv{i}.x = conv(4, 3) }", "a container's name is written out"),
    ("convs.{-1} = conv(4, 3)", "the key '-1' is neither a name nor a whole number"),
    ("features = seq { convs.0 = conv(4, 3) }", "a dotted name in a named seq"),
    ("train.0 = conv(4, 3)", "'train' is reserved"),
    ("if = conv(4, 3)", "'if' is a reserved word of the language, so it cannot name a layer unquoted"),
    ("relu; seq = relu", 'write it quoted ("seq" = ...)'),
    ("class = conv(4, 3)", "'class' is not a valid Python identifier: a reserved word of Python"),
])
def test_clashing_paths_are_located_errors(tmp_path, body, fragment):
    located_error(tmp_path, net(body), fragment)


def test_a_reserved_word_names_a_layer_quoted(tmp_path):
    _, model = build(tmp_path, net('"if" = conv(4, 3)\n"seq" = relu'))
    assert [name for name, _ in model.named_children()] == ["if", "seq"]


def test_a_container_read_as_a_tensor_is_a_located_error(tmp_path):
    located_error(tmp_path, net("convs.0 = conv(4, 3)\naux = side Head() from convs", blocks="""
block Head() { flatten }
"""), "'convs' is a container of modules, not a layer with an output")


def test_the_formatter_keeps_dotted_names():
    text = "network N() {\n    input 3 x 8 x 8\n    for i in range(2) { convs.{i} = conv(4, 3); bns.0 = batchnorm }\n}\n"
    assert format_text(text) == text


def test_keys_that_arguments_decide_make_a_module_dict(tmp_path):
    """'for i in order' gives 0, 1 with the default order, but a factory's order=[1, 0] would append the modules
    in the other order: a ModuleDict keeps each key with its module."""
    spec, model = build(tmp_path, net("""
for i in order { convs.{i} = conv(4 + 4 * i, 1) }
for i in range(2) { lists.{i} = conv(4, 1) }
lists.2 = conv(4, 1)
""", "order = [0, 1]"))
    assert isinstance(model.convs, nn.ModuleDict) and isinstance(model.lists, nn.ModuleDict)
    other = spec.build("n", order=[1, 0])
    assert list(other.convs) == ["1", "0"] and other.convs["1"].out_channels == 8
    assert other(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 8)


ASPP = """
# torchvision's ASPP (DeepLabV3's head): five parallel branches under convs.0 to convs.4, concatenated, projected.
block AsppConv(c, dilation) = seq {
    conv(c, 3, padding = dilation, dilation = dilation, bias = false); batchnorm; relu
}

block AsppPooling(c, size) = seq {
    adaptive_avgpool(1); conv(c, 1, bias = false); batchnorm; relu
    upsample(size, mode = "bilinear")    # from 1 x 1 back to the input's size x size
}

block Aspp(rates, size, c = 256) {
    concat {
        convs.0 = seq { conv(c, 1, bias = false); batchnorm; relu }
        for i in range(len(rates)) { convs.{i + 1} = AsppConv(c, rates[i]) }
        convs.{len(rates) + 1} = AsppPooling(c, size)
    }
    project = seq { conv(c, 1, bias = false); batchnorm; relu; dropout(0.5) }
}

network Head(rates = [2, 3, 4], c = 8) {
    input 16 x 12 x 12
    aspp = Aspp(rates, 12, c)
}
variant n = Head()
"""


def test_torchvision_aspp(tmp_path):
    """DeepLabV3's ASPP, whose branches a concat cannot name without dotted names: torchvision's keys in its
    order, strict loads both ways and equal outputs; other rates (a mutation) give other outputs."""
    deeplab = pytest.importorskip("torchvision.models.segmentation.deeplabv3")
    spec, model = build(tmp_path, ASPP)
    reference = randomized(Holder(deeplab.ASPP(16, [2, 3, 4], 8)))
    assert list(model.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 16, 12, 12)
    assert_same_as_reference(model, reference, x)
    reference.load_state_dict(model.state_dict(), strict=True)
    mutated = Holder(deeplab.ASPP(16, [2, 3, 5], 8))
    mutated.load_state_dict(reference.state_dict())
    with pytest.raises(AssertionError):
        assert_same_as_reference(model, mutated, x)
    assert_static_shapes(spec, "n", model, x)


class Holder(nn.Module):
    """A network that applies its ``aspp``, as the spec's does."""

    def __init__(self, aspp: nn.Module):
        super().__init__()
        self.aspp = aspp

    def forward(self, x):
        return self.aspp(x)
