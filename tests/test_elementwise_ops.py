"""The elementwise math (``ops.elementwise``): abs, sign, exp, log, log2 and clamp, each one's meaning for the
interpreter against torch's own function (the interpreter's definitions do not call the functions the code
generator writes), clamp's mistakes, and generated code against the interpreter on Swin V2's forms. The soundness
fuzzer writes every one (specgen_flow)."""

from __future__ import annotations

import pytest
import torch

import archc
from archc.ops import REGISTRY, ShapeError
from archc.sema.layout import TensorType


def run(kind: str, xs: list, **args):
    op = REGISTRY[kind]
    return op.run(None, op.args(**args).model_dump(), None, xs, False)


@pytest.mark.parametrize("kind", ["abs", "sign", "exp", "log", "log2"])
def test_each_matches_torch(kind):
    x = torch.randn(2, 3, 4, dtype=torch.float64) * 3
    x[0, 0, :2] = 0  # sign and abs at 0
    if kind in ("log", "log2"):
        x = x.abs() + 0.01
    assert torch.allclose(run(kind, [x]), getattr(torch, kind)(x), rtol=1e-12, atol=0)
    assert not torch.allclose(run(kind, [x]), x)


@pytest.mark.parametrize(("low", "high"), [(-0.5, None), (None, 0.25), (-1.0, 1.0)])
def test_clamp_matches_torch(low, high):
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    assert torch.equal(run("clamp", [x], min=low, max=high), torch.clamp(x, min=low, max=high))


def test_clamp_needs_a_bound_in_order():
    kind, t = REGISTRY["clamp"], TensorType((8, 4, 4), "CHW")
    assert kind.shape(kind.args(max=1.0), t) == t
    with pytest.raises(ShapeError, match="needs min or max"):
        kind.shape(kind.args(), t)
    with pytest.raises(ShapeError, match="above its max"):
        kind.shape(kind.args(min=1.0, max=0.0), t)


SPEC = """
block V2(heads) (x) -> y {
    proj = linear(heads)
    let t = proj(x)
    let y = sign(t) * log2(abs(t) + 1.0) / 3.0 * exp(clamp(t, max = 0.5)) + log(exp(-abs(t)) + 1.0)
}
network N() {
    input 8 x 5 x 5
    permute([0, 2, 3, 1])
    v2 = V2(4)
}
variant n = N()
"""


def test_generated_code_and_interpreter_agree(tmp_path):
    path = tmp_path / "v2.arch"
    path.write_text(SPEC)
    s = archc.load(path)
    model, oracle = s.build("n").eval(), s.interpret("n").eval()
    oracle.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 8, 5, 5) * 4
    t = model.v2.proj(x.permute(0, 2, 3, 1))
    want = torch.sign(t) * torch.log2(t.abs() + 1) / 3 * torch.clamp(t, max=0.5).exp() + torch.log(torch.exp(-t.abs()) + 1)
    with torch.no_grad():
        assert torch.allclose(model(x), want, atol=1e-6) and torch.allclose(oracle(x), want, atol=1e-6)
        dropped = torch.sign(t) * torch.log2(t.abs() + 1) / 3 * t.exp() + torch.log(torch.exp(-t.abs()) + 1)
        assert not torch.allclose(model(x), dropped, atol=1e-3)  # the clamp matters
