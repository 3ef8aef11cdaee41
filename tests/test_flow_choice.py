"""A conditional tensor in a block with named tensors (``let v = a if flag else b``, docs/language.md, "Named
tensors"): the branch the condition picks is computed, in the interpreter (the oracle) and in the generated
``forward``; ``__init__`` sizes what follows from either branch; misuse is a located error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import archc
from archc.errors import SpecError

sys.path.insert(0, str(Path(__file__).parent))
from test_soundness import check_runs  # noqa: E402

UNITS = """
block Unit(c, stride, transition) (x) -> y {
    down = seq { avgpool(stride, ceil_mode = true); conv(c, 1) } if transition
    body = seq { conv(c, 3, stride, padding = 1); batchnorm; relu }
    let pre = relu(x) * 0.5
    let y = body(pre) + (down(pre) if transition else x)
}

# the width after a conditional tensor of two widths (c or the input's) sizes the next module
block Widths(c, wide) (x) -> y {
    proj = conv(c, 1) if wide
    after = conv(4, 1)
    let y = after(proj(x) if wide else x)
}

network Net(second = false) {
    input 8 x 16 x 16
    first = Unit(16, 2, true)
    other = Unit(16, 1, second)
    widths = Widths(12, second)
}
variant plain = Net()
variant both = Net(true)
"""


def load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "t.arch"
    path.write_text(text)
    return archc.load(path)


def test_each_variant_runs_its_branch_as_the_interpreter_does(tmp_path):
    assert check_runs(UNITS, tmp_path)  # counts, static shapes, the interpreter's outputs, gradients everywhere
    source = load(tmp_path, UNITS).source()
    assert "if self.transition:" in source and "if self.wide:" in source


def _unit_by_hand(unit, x: torch.Tensor, transition: bool) -> torch.Tensor:
    pre = x.relu() * 0.5
    return unit.body(pre) + (unit.down(pre) if transition else x)


def test_the_branch_is_the_one_the_condition_picks(tmp_path):
    model = load(tmp_path, UNITS).build("plain").eval()
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        first = model.first(x)
        assert torch.allclose(first, _unit_by_hand(model.first, x, True))
        assert torch.allclose(model.other(first), _unit_by_hand(model.other, first, False))
        assert not torch.allclose(model.other(first), model.other.body(first.relu() * 0.5))  # the skip counts
    assert model.other.down is None and model.first.down is not None


@pytest.mark.parametrize(("let", "fragment"), [
    ("let y = body(x) if transition else 0", "each branch of a conditional tensor gives a tensor"),
    ("let y = body(x) if x else x", "'x' is a tensor, which a condition cannot read"),
    ("let y = body(x) if transition else body(x)", None),  # one module, one branch each: allowed
    ("let y = body(x) + (body(x) if transition else x)", "applied twice"),
])
def test_misuse_is_a_located_error(tmp_path, let, fragment):
    text = UNITS.replace("    let pre = relu(x) * 0.5\n    let y = body(pre) + (down(pre) if transition else x)\n",
                         f"    {let}\n").replace("    down = seq", "    down = identity if false\n    unused = seq")
    text = text.replace("    unused = seq { avgpool(stride, ceil_mode = true); conv(c, 1) } if transition\n", "")
    text = text.replace("    down = identity if false\n", "")
    if fragment is None:
        load(tmp_path, text).source()
        return
    with pytest.raises(SpecError) as info:
        load(tmp_path, text).source()
    assert fragment in info.value.render() and "t.arch:" in info.value.render()


def test_a_module_only_the_other_branch_applies_is_an_error_where_it_is_made(tmp_path):
    with pytest.raises(SpecError) as info:
        load(tmp_path, UNITS.replace("    proj = conv(c, 1) if wide\n", "    proj = conv(c, 1)\n")).source()
    message = info.value.render()
    assert "module 'proj' is made here but this call applies it nowhere" in message and "t.arch:11:" in message


def test_a_tensor_only_the_other_branch_reads_is_an_error_at_its_let(tmp_path):
    text = UNITS.replace("    let y = body(pre) + (down(pre) if transition else x)\n",
                         "    let skip = down(pre)\n    let y = body(pre) + (skip if transition else x)\n")
    text = text.replace("    down = seq { avgpool(stride, ceil_mode = true); conv(c, 1) } if transition\n",
                        "    down = seq { avgpool(stride, ceil_mode = true); conv(c, 1) }\n")
    with pytest.raises(SpecError) as info:
        load(tmp_path, text).source()
    message = info.value.render()
    assert "'skip' is computed but not used here" in message and "t.arch:6:" in message


def test_a_module_applied_in_both_branches_to_different_widths_is_an_error_and_the_hint_works(tmp_path):
    """Found in review: __init__ made the module for one branch's width, and the other branch crashed at run time."""
    text = """block B(c, wide) (x) -> y {
    m = conv(c, 1)
    let y = m(cat([x, x], 1)) if wide else m(x)
}
network N(wide = true) {
    input 3 x 8 x 8
    b = B(4, wide)
}
variant a = N()
variant b = N(false)
"""
    with pytest.raises(SpecError) as info:
        load(tmp_path, text).source()
    assert "'m' is applied in both branches of a conditional tensor to tensors of different widths" in \
        info.value.render()
    assert check_runs(text.replace("m(cat([x, x], 1)) if wide else m(x)", "m(cat([x, x], 1) if wide else x)"),
                      tmp_path)
