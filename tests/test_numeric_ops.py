"""The numeric primitives (``ops.numeric``): sin and cos, ``normalize`` and ``coordinates``, each one's meaning for
the interpreter against torch's own function (the interpreter's definitions do not call the functions the code
generator writes), and their shape rules; and ``**`` between tensors and numbers in the lets. That generated code
computes what the interpreter does is the soundness fuzzer's job (specgen_flow writes every one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archc
from archc.ops import REGISTRY, ShapeError
from archc.sema.layout import TensorType


def run(kind: str, xs: list, **args):
    op = REGISTRY[kind]
    return op.run(None, op.args(**args).model_dump(), None, xs, False)


def test_sin_and_cos_match_torch():
    x = torch.randn(2, 3, 4, dtype=torch.float64) * 10
    assert torch.equal(run("sin", [x]), torch.sin(x))
    assert torch.allclose(run("cos", [x]), torch.cos(x))


@pytest.mark.parametrize(("p", "dim", "eps"), [(2.0, 1, 1e-12), (2.0, -1, 1e-12), (1.0, 2, 1e-12), (3.0, -2, 0.5)])
def test_normalize_matches_torch(p, dim, eps):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    x[0, :, 0] = 0  # vectors of length 0 (and, along dim 1, some shorter than eps)
    ours = run("normalize", [x], p=p, dim=dim, eps=eps)
    assert torch.allclose(ours, F.normalize(x, p, dim, eps))
    assert not torch.allclose(ours, F.normalize(x, p, 2 if dim == 1 else 1, eps))  # the axis matters


def test_coordinates_count_along_one_axis_for_every_sample():
    x = torch.randn(3, 7, dtype=torch.float64)
    table = run("coordinates", [x], shape=(2, 3, 4), dim=2)
    assert table.shape == (3, 2, 3, 4) and table.dtype == torch.float64
    assert torch.equal(table, torch.arange(3.0, dtype=torch.float64).view(1, 1, 3, 1).expand(3, 2, 3, 4))
    assert torch.equal(run("coordinates", [x], shape=(2, 3, 4), dim=-1)[1, 1, 2], torch.arange(4.0,
                                                                                                dtype=torch.float64))


def test_shapes_and_their_mistakes():
    t = TensorType((8, 4, 4), "CHW")
    assert REGISTRY["sin"].shape(REGISTRY["sin"].args(), t) == t
    kind = REGISTRY["coordinates"]
    assert kind.shape(kind.args(shape=(16, 1, 1), dim=1), t).shape == (16, 1, 1)
    with pytest.raises(ShapeError, match="out of range"):
        kind.shape(kind.args(shape=(16, 1, 1), dim=4), t)
    with pytest.raises(ShapeError, match="the batch"):
        kind.shape(kind.args(shape=(16,), dim=0), t)
    norm = REGISTRY["normalize"]
    with pytest.raises(ShapeError, match="out of range"):
        norm.shape(norm.args(dim=5), t)


SPEC = """
block Encoding(dim, h, w) (x) -> y {
    proj = conv(dim, 1)
    let rows = (coordinates(x, (1, h, w), 2) + 1) / h
    let waves = rows / 100 ** (coordinates(x, (4, 1, 1), 1) / 4)
    let y = x + proj(cat([sin(waves), cos(waves)], 1)) + normalize(x, dim = -1) ** 2
}
network N() {
    input 8 x 3 x 5
    encoding = Encoding(8, 3, 5)
}
variant n = N()
"""


def test_generated_code_and_interpreter_agree(tmp_path):
    path = tmp_path / "encoding.arch"
    path.write_text(SPEC)
    s = archc.load(path)
    model, oracle = s.build("n").eval(), s.interpret("n").eval()
    oracle.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 8, 3, 5)
    with torch.no_grad():
        assert torch.allclose(model(x), oracle(x), atol=1e-6)
    source = s.source()
    assert "_coordinates(x, (1, self.h, self.w), 2)" in source and "100 ** " in source
    assert "F.normalize(x, dim=-1)" in source and "torch.sin(" in source
