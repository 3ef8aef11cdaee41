"""Init rules that draw in turn, ``init fc.weight = [xavier_uniform(), normal(0, 0.01)]``: a reference that
initialises a layer twice (timm's generic pass over every linear layer, then a module's own ``init_weights``)
moves the random stream with its first draws, which a spec must repeat to start seed for seed. A layer's
parameters draw in rounds, every parameter its first entry, then every parameter its second, as the two passes
do; only the last entry's values remain."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archc

SPEC = """
network Net(num_classes = 10) {
    input 3 x 8 x 8
    conv = conv(4, 3)
    flatten
    fc1 = linear(32)
    fc2 = linear(num_classes)
RULES
}
variant net = Net()
"""


def build(tmp_path, rules: str) -> nn.Module:
    path = tmp_path / "net.arch"
    path.write_text(SPEC.replace("RULES", rules))
    return archc.load(path).build("net")


def reference(draws) -> dict:
    """The same layers made in the same order, then ``draws(conv, fc1, fc2)`` in the order a reference makes
    them."""
    conv, fc1, fc2 = nn.Conv2d(3, 4, 3), nn.Linear(144, 32), nn.Linear(32, 10)
    draws(conv, fc1, fc2)
    return {"conv": conv, "fc1": fc1, "fc2": fc2}


def same(ours: nn.Module, theirs: dict) -> bool:
    state = ours.state_dict()
    return all(torch.equal(state[f"{name}.{p}"], t) for name, m in theirs.items() for p, t in m.state_dict().items())


def two_passes(conv, fc1, fc2) -> None:
    """A generic pass over every layer (Glorot weights, uniform biases), and the last layer's own second pass
    right after its first, before the next layer's: the weight, then the bias, then both again."""
    nn.init.kaiming_normal_(conv.weight)
    for fc in (fc1, fc2):
        nn.init.xavier_uniform_(fc.weight)
        nn.init.uniform_(fc.bias, -1, 1)
    nn.init.normal_(fc2.weight, 0, 0.01)
    nn.init.constant_(fc2.bias, 0.5)


def test_a_list_draws_in_rounds_as_a_second_pass_does(tmp_path):
    rules = """    init conv.weight = kaiming_normal()
    init linear.weight = xavier_uniform()
    init linear.bias = uniform(-1, 1)
    init fc2.weight = [xavier_uniform(), normal(0, 0.01)]
    init fc2.bias = [uniform(-1, 1), 0.5]"""
    torch.manual_seed(3)
    ours = build(tmp_path, rules)
    torch.manual_seed(3)
    assert same(ours, reference(two_passes))


def test_the_first_draws_matter(tmp_path):
    """Without its first entries, the last layer's tensors come from another point of the stream (the
    comparison above can fail); and a parameter's whole list, not each entry by itself, is drawn in turn."""
    torch.manual_seed(3)
    once = build(tmp_path, """    init conv.weight = kaiming_normal()
    init linear.weight = xavier_uniform()
    init linear.bias = uniform(-1, 1)
    init fc2.weight = normal(0, 0.01)
    init fc2.bias = 0.5""")
    torch.manual_seed(3)
    assert not same(once, reference(two_passes))


def test_a_more_specific_rule_with_fewer_entries_draws_once(tmp_path):
    """fc1's own rule (one entry) wins over the list every linear layer has: fc1 draws once, fc2 twice."""
    rules = """    init linear.weight = [xavier_uniform(), normal(0, 0.01)]
    init fc1.weight = kaiming_uniform()"""
    torch.manual_seed(5)
    ours = build(tmp_path, rules)

    def draws(conv, fc1, fc2):
        nn.init.kaiming_uniform_(fc1.weight)
        nn.init.xavier_uniform_(fc2.weight)
        nn.init.normal_(fc2.weight, 0, 0.01)

    torch.manual_seed(5)
    assert same(ours, reference(draws))
    source = archc.load(tmp_path / "net.arch").source()
    assert "pass" in source  # the second round: fc1 has nothing more to draw, and the list does not reach it


@pytest.mark.parametrize(("rule", "message"), [
    ("init fc1.weight = [normal(0, 1)]", "a list of initialisers draws each in turn: it needs two or more"),
    ("init fc1.weight = [0, normal(0, 1)]", "only the last initialiser of a list may be a constant"),
    ("init fc1.weight = [normal(0, 1), [normal(0, 1), 0]]", "an init rule is a number or an initialiser"),
    ("init linear.bias = [xavier_uniform(), 0]", "xavier_uniform needs a tensor of 2 or more dimensions"),
    ("init fc1.weight = [normal(0, 1), normal(0, -1)]", "normal's std must not be negative"),
])
def test_a_wrong_list_is_located(tmp_path, rule, message):
    path = tmp_path / "net.arch"
    path.write_text(SPEC.replace("RULES", "    " + rule))
    with pytest.raises(archc.SpecError) as info:
        archc.load(path)
    text = info.value.render()
    assert message in text and ":8:" in text, text
