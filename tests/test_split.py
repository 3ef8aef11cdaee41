"""``split`` (archc/ops/split.py): uneven parts along any dimension, each a tensor of its own, named by a let in a
block with named tensors; the generated ``x.split(...)`` against torch's and the interpreter's slices, and every
misuse a located error that says the sizes."""

from __future__ import annotations

import pytest
import torch

import archc
from archc.errors import SpecError

SPEC = """
block Halves(c, k) (x) -> y {
    left = conv(c, 1)
    right = seq { conv(c, 3, padding = 1); relu }
    let a, b = split(x, [k, c - k], 1)
    let y = cat([right(b), left(a)], 1)
}
block Tokens(n) (x) -> y {
    proj = linear(8)
    let first, middle, rest = split(x, [1, 2, n - 3], dim = -2)
    let y = proj(cat([rest, first, middle], 1))
}
network N(k = 3) {
    input 8 x 6 x 6
    h = Halves(8, k)
    to_tokens
    t = Tokens(36)
}
variant n = N()
"""


def load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "t.arch"
    path.write_text(text)
    return archc.load(path)


def test_the_parts_are_torchs(tmp_path):
    spec = load(tmp_path, SPEC)
    source = spec.source()
    assert "a, b = x.split((self.k, self.c - self.k), 1)" in source
    assert "self.left = nn.Conv2d(k, c, kernel_size=1)" in source  # sized by its part
    torch.manual_seed(0)
    model = spec.build("n").eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        a, b = x[:, :3], x[:, 3:]
        h = torch.cat([model.h.right(b), model.h.left(a)], 1)
        t = h.flatten(2).transpose(1, 2)
        expected = model.t.proj(torch.cat([t[:, 3:], t[:, :1], t[:, 1:3]], 1))
        out = model(x)
        assert torch.allclose(out, expected, atol=1e-6)
        wrong = model.t.proj(torch.cat([t[:, 2:], t[:, :2]], 1)[:, :36])
        assert not torch.allclose(out, wrong, atol=1e-3)  # another cut is another result
        interpreter = spec.interpret("n")
        interpreter.load_state_dict(model.state_dict())
        assert torch.allclose(interpreter.eval()(x), out, atol=1e-6)


@pytest.mark.parametrize(("old", "new", "fragment"), [
    ("[k, c - k], 1)", "[k, c], 1)", "the sizes 3 + 8 = 11 do not add up to dimension 1's size, 8"),
    ("let a, b = split(x, [k, c - k], 1)", "let a, b = split(x, [1, 2, c - 3], 1)",
     "split gives 3 tensors here, but the let names 2"),
    ("let a, b = split(x, [k, c - k], 1)\n    let y = cat([right(b), left(a)], 1)",
     "let a = split(x, [k, c - k], 1)\n    let y = right(a)", "split gives several tensors: name each one"),
    ("[k, c - k], 1)", "[k, c - k], 0)", "dim 0 is the batch"),
    ("[k, c - k], 1)", "[k, c - k], 1, 1)", "each part is a tensor of its own"),
    ("    to_tokens\n", "    split([4, 4], 1)\n    to_tokens\n", "split gives several tensors: name them in a let"),
])
def test_misuse_is_a_located_error(tmp_path, old, new, fragment):
    assert old in SPEC
    with pytest.raises(SpecError) as info:
        load(tmp_path, SPEC.replace(old, new)).source()
    message = info.value.render()
    assert fragment in message and "t.arch:" in message
