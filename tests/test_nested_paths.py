"""Nested dotted names (``stages.{s}.blocks.{i}.conv = ...``): containers in containers, an ``nn.ModuleList`` or an
``nn.ModuleDict`` at each level by the rule of one level, held to a hand-written torch module of that structure
(no class per level) key for key and output for output; and the located errors of paths that clash."""

from __future__ import annotations

import pytest
import torch
from archtest import graph_breaks
from test_codegen_cases import build, net
from test_dotted_names import held_to
from test_soundness_cases import located_error, runs
from torch import nn

NESTED = """
network Nested(depths = [2, 3], widths = [8, 16], num_classes = 10) {
    input 3 x 16 x 16
    stem = conv(widths[0], 3, padding = 1)
    for s in range(len(depths)) {
        stages.{s}.down = conv(widths[s], 3, stride = 2, padding = 1) if s > 0
        for i in range(depths[s]) {
            stages.{s}.blocks.{i}.conv = conv(widths[s], 3, padding = 1, bias = false)
            stages.{s}.blocks.{i}.norm = batchnorm
            relu
        }
    }
    heads.pool.avg = adaptive_avgpool(1)
    flatten
    heads.fc = linear(num_classes)
}
variant n = Nested()
"""


class Reference(nn.Module):
    """As a torch author nests them: a list of stages, each a dict of its downsampling conv and its list of
    blocks, each block a dict of a conv and a norm; and a dict of heads."""

    def __init__(self, depths=(2, 3), widths=(8, 16), act=torch.relu):
        super().__init__()
        self.act = act
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1)
        self.stages = nn.ModuleList()
        c = widths[0]
        for s, (depth, width) in enumerate(zip(depths, widths)):
            stage = nn.ModuleDict()
            if s > 0:
                stage["down"] = nn.Conv2d(c, width, 3, stride=2, padding=1)
            stage["blocks"] = nn.ModuleList(nn.ModuleDict({
                "conv": nn.Conv2d(c if i == 0 and s == 0 else width, width, 3, padding=1, bias=False),
                "norm": nn.BatchNorm2d(width)}) for i in range(depth))
            self.stages.append(stage)
            c = width
        self.heads = nn.ModuleDict({"pool": nn.ModuleDict({"avg": nn.AdaptiveAvgPool2d(1)}),
                                    "fc": nn.Linear(c, 10)})

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            if "down" in stage:
                x = stage["down"](x)
            for block in stage["blocks"]:
                x = self.act(block["norm"](block["conv"](x)))
        return self.heads["fc"](torch.flatten(self.heads["pool"]["avg"](x), 1))


def test_nested_containers_equal_the_hand_written_module(tmp_path):
    spec, model = build(tmp_path, NESTED)
    source = spec.source()
    assert 'self.stages[s]["blocks"].append(nn.ModuleDict())' in source
    assert 'x = self.stages[s]["blocks"][i]["conv"](x)' in source
    assert isinstance(model.stages, nn.ModuleList) and isinstance(model.stages[1], nn.ModuleDict)
    assert isinstance(model.stages[1]["blocks"], nn.ModuleList) and isinstance(model.heads["pool"], nn.ModuleDict)
    held_to(spec, model, Reference(), Reference(act=torch.sigmoid), torch.randn(2, 3, 16, 16))
    other = spec.build("n", depths=[1, 4])  # the factory's depths: other lists
    assert len(other.stages[1]["blocks"]) == 4 and "stages.1.blocks.3.norm.running_var" in other.state_dict()


@pytest.mark.slow
def test_nested_containers_compile_without_graph_breaks(tmp_path):
    _, model = build(tmp_path, NESTED)
    assert graph_breaks(model.eval(), torch.randn(2, 3, 16, 16)) == 0


def test_keys_that_are_not_positions_make_dicts_at_their_level(tmp_path):
    spec, model = build(tmp_path, net("""
for s in range(2) {
    for i in range(2) { stages.{s + 1}.{i} = conv(4, 1) }
}
groups.a.{0} = conv(4, 1)
"""))
    assert isinstance(model.stages, nn.ModuleDict) and list(model.stages) == ["1", "2"]
    assert isinstance(model.stages["1"], nn.ModuleList)  # its keys are its loop's positions
    assert isinstance(model.groups["a"], nn.ModuleDict)  # outside loops
    assert list(model.state_dict())[:2] == ["stages.1.0.weight", "stages.1.0.bias"]
    model(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("body, fragment", [
    ("stages.0 = conv(4, 3)\nstages.0.blocks.0 = conv(4, 3)",
     "'stages.0' is a layer here, so 'stages.0.blocks.0' cannot make it a container"),
    ("stages.0.blocks.0 = conv(4, 3)\nstages.0.blocks = conv(4, 3)", "'stages.0.blocks' is a container of modules"),
    ("stages.0.blocks.0 = conv(4, 3)\nstages.0.blocks.0 = conv(4, 3)", "'stages.0.blocks.0' is already defined"),
    ("for s in range(1) { stages.{s}.a = conv(4, 3) }\nstages.0.b = conv(4, 3)",
     "the container 'stages.0' is written 'stages.0' here, but 'stages.{s}' where it was made"),
    ("for s in range(1) { stages.{s}.a = conv(4, 3) }\nfor s in range(1) { stages.{s}.b = conv(4, 3) }",
     "makes a container that another loop makes too"),
    ("heads.keys.0 = conv(4, 3)", "the key 'keys' is reserved"),
])
def test_clashing_nested_paths_are_located_errors(tmp_path, body, fragment):
    located_error(tmp_path, net(body), fragment)


def test_a_block_with_named_tensors_declares_members_of_one_key(tmp_path):
    located_error(tmp_path, net("b = B(3)", blocks="""
block B(c) (x) -> y {
    for i in range(2) { stages.{i}.conv = conv(c, 1) }
    let y = x
}
"""), "'stages.{...}.conv' is a path through containers, which a block with named tensors does not declare")


def test_a_tap_named_by_a_path_is_no_member(tmp_path):
    """``tap stages.{s}`` names a feature map: the list stays a list (it made it a dict, and at one level too)."""
    spec, model = build(tmp_path, net("""
for s in range(2) {
    for i in range(2) { stages.{s}.blocks.{i} = conv(4, 1) }
    tap stages.{s}
}
for i in range(2) { convs.{i} = conv(4, 1); tap convs.{i} }
"""))
    assert isinstance(model.stages, nn.ModuleList) and isinstance(model.convs, nn.ModuleList)


@pytest.mark.parametrize("body", [
    "concat {\n    for i in range(2) { heads.{i}.conv = conv(4, 1) }\n    identity\n}",  # a branch an iteration
    "dense {\n    for i in range(2) { layers.{i}.conv = conv(4, 1); layers.{i}.act = relu }\n}",
    "for a in range(2) {\n    let k = a * 2\n    t.{k}.x = conv(4, 1)\n}",  # made after the let its key reads
    "for s in range(2) {\n    if s == 0 { st.{s}.a = conv(4, 1) } else { st.{s}.b.c = conv(4, 1) }\n}",
])
def test_nested_paths_in_other_constructs_run_as_the_interpreter_does(tmp_path, body):
    runs(tmp_path, net(body))
