"""``for`` in a block with named tensors (docs/language.md, "Loops over named tensors"): unrolled where the block is
made, a let in it rebinding tensors, members of containers declared ``convs.{i}`` and applied ``convs[i](x)``, lists
of tensors built with ``[]`` and ``+``; the generated ``forward`` is a Python loop over the ModuleList. The
interpreter (the oracle) and the generated code agree; misuse is a located error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import archc
from archc.errors import SpecError

sys.path.insert(0, str(Path(__file__).parent))
from test_soundness import check_runs  # noqa: E402

# A Res2Net-like hierarchy: each part added to the previous output, convolved; the outputs side by side; a list
# indexed from its end; a tensor carried from before the loop whose width the loop changes.
HIERARCHY = """
block Hier(w, scale, hier) (x) -> y {
    let parts = []
    for i in range(scale) {
        let parts = parts + [narrow(x, 1, i * w, w)]
    }
    let outs = []
    for i in range(scale - 1) {
        convs.{i} = conv(w, 3, padding = 1)
        bns.{i} = batchnorm
        let sp = parts[i] if i == 0 or not hier else sp + parts[i]
        let sp = relu(bns[i](convs[i](sp)))
        let outs = outs + [sp]
    }
    let y = cat(outs + [parts[-1]], 1)
}

block Grow(c, n) (x) -> y {
    let h = x
    for i in range(n) {
        steps.{i} = conv(c * (i + 1), 1)
        let h = relu(steps[i](h))
    }
    head = conv(c, 1)
    let y = head(h)
}

network Net(hier = true, n = 2) {
    input 12 x 8 x 8
    first = Hier(3, 4, hier)
    grow = Grow(4, n)
}
variant net = Net()
variant flat = Net(false, 3)
variant empty = Net(n = 0)
"""


def load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "t.arch"
    path.write_text(text)
    return archc.load(path)


def test_the_loops_run_as_the_interpreter_does(tmp_path):
    assert check_runs(HIERARCHY, tmp_path)  # counts, static shapes, the interpreter's outputs, gradients everywhere


def test_forward_is_a_python_loop_over_the_module_lists(tmp_path):
    source = load(tmp_path, HIERARCHY).source()
    assert "for i in range(self.scale - 1):" in source
    assert "sp = self.convs[i](sp)" in source and "sp = self.bns[i](sp)" in source
    assert "outs = outs + [sp]" in source and "torch.cat(outs + [y_1], 1)" in source
    assert "self.convs = nn.ModuleList()" in source
    # a width the loop changes, followed in __init__ as a hand-written module would
    assert "h_channels = in_channels" in source and "h_channels = c * (i + 1)" in source


def _hier_by_hand(m, x: torch.Tensor, hier: bool) -> torch.Tensor:
    parts, outs = x.split(3, 1), []
    for i, (conv, bn) in enumerate(zip(m.convs, m.bns)):
        sp = parts[i] if i == 0 or not hier else sp + parts[i]  # noqa: F821  (bound in the iteration before)
        sp = bn(conv(sp)).relu()
        outs.append(sp)
    return torch.cat(outs + [parts[-1]], 1)


@pytest.mark.parametrize("variant", ["net", "flat"])
def test_the_hierarchy_is_res2nets(tmp_path, variant):
    model = load(tmp_path, HIERARCHY).build(variant).eval()
    assert list(model.first.state_dict())[:4] == ["convs.0.weight", "convs.0.bias", "convs.1.weight", "convs.1.bias"]
    x = torch.randn(2, 12, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.first(x), _hier_by_hand(model.first, x, variant == "net"), rtol=0, atol=0)
        # the comparison can fail: the other hierarchy gives another output
        assert not torch.equal(model.first(x), _hier_by_hand(model.first, x, variant != "net"))


@pytest.mark.parametrize(("body", "message"), [
    ("    for i in range(2) {\n        c = conv(4, 1)\n        let x = c(x)\n    }\n    let y = x",
     "module 'c' is declared in a loop, which makes one an iteration"),
    ("    for i in range(2) {\n        cs.{i} = conv(4, 1)\n    }\n    let y = cs[0](x)",
     "module 'cs.0' is declared"),  # (no member 'cs.0' is declared as such: the loop's are cs.{i})
    ("    c = conv(4, 1)\n    for i in range(2) {\n        let x = c(x)\n    }\n    let y = x",
     "module 'c' would be applied in every iteration of a loop"),
    ("    for i in range(2) {\n        cs.{i} = conv(4, 1)\n    }\n    for j in range(2) {\n"
     "        let x = cs[j](x)\n    }\n    let y = x", "no module 'cs.{j}' is declared"),
    ("    for i in range(2) {\n        let h = relu(h) if i == 0 else x\n    }\n    let y = h",
     "'h' is read before any let gives it a value"),
    ("    for i in range(0) {\n        let h = relu(x)\n    }\n    let y = relu(h)", "'h' is read before any let"),
    ("    for i in range(0) {\n        let h = relu(x)\n    }\n    let y = h",
     "the output 'y' is computed only in a loop, which runs no iteration here"),
    ("    let xs = [x, relu(x)]\n    let y = xs[2]", "index 2 is out of range: the list holds 2 tensors here"),
    ("    let y = x[0]", "only a list of tensors is indexed here"),
    ("    let y = [x]", "the output 'y' is a list of tensors"),
    ("    let xs = [x] + relu(x)\n    let y = cat(xs, 1)", "a list of tensors is joined to another list only"),
])
def test_misuse_is_a_located_error(tmp_path, body, message):
    text = f"block B() (x) -> y {{\n{body}\n}}\n\nnetwork N() {{\n    input 4 x 8 x 8\n    b = B()\n}}\nvariant n = N()\n"
    with pytest.raises(SpecError) as err:
        load(tmp_path, text).check()
    assert message in str(err.value)
    assert err.value.span is not None and err.value.span.line > 1


def test_a_name_for_a_tensor_that_a_loop_rebinds_keeps_the_value_before_the_loop(tmp_path):
    """``let b = a`` names a's value: the loop that doubles a twice leaves b as it was, so y = a + 4a."""
    text = """
block B(c) (x) -> y {
    m = conv(c, 1)
    let a = m(x)
    let b = a
    for i in range(2) {
        let a = a * 2
    }
    let y = b + a
}

network N() {
    input 4 x 8 x 8
    b = B(4)
}
variant n = N()
"""
    model = load(tmp_path, text).build("n").eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), 5 * model.b.m(x))


STACKED = """
block Mix(c) (x) -> y {
    let outs = []
    for i in range(3) {
        projs.{i} = linear(c)
        let outs = outs + [projs[i](x)]
    }
    let y = sum(stack(outs, 1), 1)
}
network Net() {
    input 5 x 8
    mix = Mix(6)
    head = linear(2)
}
variant net = Net()
"""


def test_a_list_built_in_a_loop_may_be_stacked(tmp_path):
    # stack of a whole list is sized by stack's rule for as many tensors as the loop made (it was sized as a cat,
    # an IndexError); summed over the new axis, the tokens' features are the linear layers'
    assert check_runs(STACKED, tmp_path)
    # maps: stacked and summed, a tensor of unnamed axes (nothing after it needs its width)
    on_maps = STACKED.replace("input 5 x 8", "input 3 x 8 x 8").replace("linear(c)", "conv(c, 3, padding = 1)")
    assert check_runs(on_maps.replace("    head = linear(2)\n", ""), tmp_path)
