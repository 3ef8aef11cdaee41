"""Init rules drawn 'when made': where the reference draws while it constructs (torchvision's ViT position
embedding, its MLPBlock's Xavier pass), the generated class draws there too, seed for seed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archc

SPEC = """
block Mlp(hidden) = seq {
    linear(hidden); gelu; linear(in.channels)
    init linear.weight = xavier_uniform() WHEN
    init linear.bias = normal(std = 1e-6) WHEN
}
block Encoder() {
    pos = learned_add((1, 5, in.channels))
    init pos = normal(std = 0.02) WHEN
    mlp = Mlp(16)
}
network Net() {
    input 4 x 8
    token = prepend_token
    encoder = Encoder()
    head = linear(3)
    init head.weight = trunc_normal(std = 0.02)
}
variant net = Net()
"""


class Reference(nn.Module):
    """As torchvision writes it: each draw as its module is made, the head's after everything."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, 8))
        self.encoder = nn.Module()
        self.encoder.pos = nn.Parameter(torch.empty(1, 5, 8).normal_(std=0.02))
        self.encoder.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        for m in self.encoder.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)
        self.head = nn.Linear(8, 3)
        nn.init.trunc_normal_(self.head.weight, std=0.02)


def _build(tmp_path, when: str):
    path = tmp_path / "made.arch"
    path.write_text(SPEC.replace("WHEN", when))
    spec = archc.load(path)
    return spec.python_module().net, spec.source()


@pytest.mark.parametrize("when", ["when made", ""])
def test_rules_drawn_when_made_are_the_references_draws_and_only_they(tmp_path, when):
    if not when:  # the block's learned tensor has no pass to be drawn in
        with pytest.raises(archc.SpecError, match="a block's learned tensor is initialised where it is made"):
            _build(tmp_path, when)
        return
    build, source = _build(tmp_path, when)
    assert "self.pos = nn.Parameter(torch.full((1, 5, in_channels), 0.0))\n" \
           "        nn.init.normal_(self.pos, std=0.02)\n        self.mlp = Mlp(in_channels, 16)" in source
    for seed in (0, 1):
        torch.manual_seed(seed)
        ours = build().state_dict()
        torch.manual_seed(seed)
        theirs = Reference().state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_the_same_rules_drawn_after_construction_differ(tmp_path):
    """The mutation: the Mlp's rules drawn in the network's pass (no 'when made') draw in another order."""
    text = SPEC.replace("init pos = normal(std = 0.02) WHEN", "init pos = normal(std = 0.02) when made")
    path = tmp_path / "after.arch"
    path.write_text(text.replace("WHEN", ""))
    torch.manual_seed(0)
    ours = archc.load(path).python_module().net().state_dict()
    torch.manual_seed(0)
    theirs = Reference().state_dict()
    assert not torch.equal(ours["encoder.mlp.0.weight"], theirs["encoder.mlp.0.weight"])


@pytest.mark.parametrize(("rule", "message"), [
    ("init B.fc.bias = 0 when made", "write the rule in block B itself: 'init fc.bias = ... when made'"),
    ("init b.scale = xavier_uniform()", "the learned_scale's learned tensor is 1-D"),
    ("init linear.weight = 0 when made", "a network's rules for a kind of layer are drawn when it is made already"),
])
def test_misuse_is_a_located_error(tmp_path, rule, message):
    path = tmp_path / "bad.arch"
    path.write_text("block B() {\n    fc = linear(8)\n    scale = learned_scale((8,))\n}\n"
                    f"network N() {{\n    input 4 x 8\n    b = B()\n    {rule}\n}}\nvariant n = N()\n")
    with pytest.raises(archc.SpecError) as info:
        archc.load(path).source()
    text = info.value.render()
    assert message in text and "bad.arch:8:" in text, text


@pytest.mark.parametrize("flag", [True, False])
def test_a_layer_made_under_a_condition_draws_in_the_branch_that_makes_it(tmp_path, flag):
    path = tmp_path / "cond.arch"
    path.write_text("block B(flag) {\n    fc = linear(8) if flag\n    init fc.bias = normal(std = 0.5) when made\n"
                    "    pos = learned_add((1, 4, 8))\n    init pos = normal(std = 0.02) when made\n}\n"
                    "network N(flag = true) {\n    input 4 x 8\n    b = B(flag)\n}\nvariant n = N()\n")
    build = archc.load(path).python_module().n
    torch.manual_seed(0)
    ours = build(flag=flag).state_dict()
    torch.manual_seed(0)
    fc = nn.Linear(8, 8) if flag else None
    bias = nn.init.normal_(fc.bias.detach().clone(), std=0.5) if flag else None
    pos = torch.empty(1, 4, 8).normal_(std=0.02)
    assert torch.equal(ours["b.pos"], pos)
    assert not flag or torch.equal(ours["b.fc.bias"], bias)
