"""``einsum`` (archc/ops/einsum.py): the interpreter's meaning (products and sums, written without einsum) against
torch.einsum, its shape rule and located errors, and a block of attention written with it, generated and run,
against the same attention written by hand from the model's weights."""

from __future__ import annotations

import pytest
import torch

import archc
from archc.ops import REGISTRY, ShapeError
from archc.sema.layout import TensorType

EQUATIONS = [("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
             ("bchw->bcwh", [(2, 3, 4, 5)]), ("bchw,bc->bhw", [(2, 3, 4, 5), (2, 3)]),
             ("bji", [(2, 3, 4)]), ("bi,bj->bij", [(2, 3), (2, 4)])]


def typed(shape: tuple) -> TensorType:
    """A type of these sizes (the batch excluded): features, tokens or a map by rank."""
    return TensorType(shape, {1: "F", 2: "LD", 3: "CHW"}[len(shape)])


def run(equation: str, xs: list):
    op = REGISTRY["einsum"]
    return op.run(None, op.args(equation=equation).model_dump(), None, xs, False)


@pytest.mark.parametrize(("equation", "shapes"), EQUATIONS)
def test_the_meaning_is_torchs_einsum(equation, shapes):
    xs = [torch.randn(*s, dtype=torch.float64) for s in shapes]
    ours, theirs = run(equation, xs), torch.einsum(equation, xs)
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs)
    kind = REGISTRY["einsum"]
    out = kind.shape(kind.args(equation=equation), tuple(typed(s[1:]) for s in shapes))
    assert out.shape == tuple(theirs.shape[1:])  # the shape rule, batch excluded


def test_a_size_one_axis_broadcasts():
    a, b = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 1, 4, dtype=torch.float64)
    assert torch.allclose(run("bij,bkj->bi", [a, b]), torch.einsum("bij,bkj->bi", a, b.expand(2, 1, 4)))


@pytest.mark.parametrize(("equation", "shapes", "fragment"), [
    ("bij,bjk->bik", [(3, 4)], "names 2 operands, given 1"),
    ("bi,bjk->bik", [(3, 4), (4, 5)], "'bi' names 2 axes of a tensor of 2"),
    ("bij,cjk->bik", [(3, 4), (4, 5)], "must lead every operand"),
    ("bij,bjk", [(3, 4), (4, 5)], "must lead every operand"),  # torch's implicit result sums the batch
    ("bij,bjk->bik", [(3, 4), (5, 6)], "the axis 'j' is 4 in one operand and 5"),
    ("bij,bjk->biz", [(3, 4), (4, 5)], "the result's 'z' names no operand's axis"),
    ("bii->bi", [(3, 3)], "repeats a subscript"),
])
def test_shape_mistakes_are_named(equation, shapes, fragment):
    kind = REGISTRY["einsum"]
    with pytest.raises(ShapeError, match=fragment):
        kind.shape(kind.args(equation=equation), tuple(typed(s) for s in shapes))


ATTENTION = """
block Attn(dim, heads) (x) -> y {
    qkv = linear(3 * dim)
    proj = linear(dim)
    let t = unflatten(qkv(x), -1, (3, heads, dim // heads))
    let q = transpose(select(t, 2, 0), 1, 2)
    let k = transpose(select(t, 2, 1), 1, 2)
    let v = transpose(select(t, 2, 2), 1, 2)
    let a = softmax(einsum([q, k], "bhqd,bhkd->bhqk") * 0.25, dim = -1)
    let y = proj(flatten_dims(transpose(einsum([a, v], "bhqk,bhkd->bhqd"), 1, 2), 2))
}
network N() {
    input 3 x 16 x 16
    stem = conv(32, 4, stride = 4)
    to_tokens
    a = Attn(32, 2)
}
variant n = N()
"""


def _by_hand(model, x: torch.Tensor, scores: str = "bhqd,bhkd->bhqk") -> torch.Tensor:
    t = model.stem(x).flatten(2).transpose(1, 2)
    attn = model.a
    q, k, v = attn.qkv(t).unflatten(-1, (3, 2, 16)).unbind(2)
    q, k, v = (u.transpose(1, 2) for u in (q, k, v))
    a = (torch.einsum(scores, q, k) * 0.25).softmax(-1) if scores != "bhqd,bhkd->bhqk" else \
        ((q @ k.transpose(-2, -1)) * 0.25).softmax(-1)
    return attn.proj((a @ v).transpose(1, 2).flatten(2))


def test_attention_written_with_einsum_is_attention(tmp_path):
    path = tmp_path / "attn.arch"
    path.write_text(ATTENTION)
    spec = archc.load(path)
    assert 'torch.einsum("bhqd,bhkd->bhqk", [q, k])' in spec.source()
    torch.manual_seed(0)
    model = spec.build("n").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        assert torch.allclose(out, _by_hand(model, x), atol=1e-6)
        assert not torch.allclose(out, _by_hand(model, x, "bhkd,bhqd->bhqk"), atol=1e-3)  # the comparison can fail
        interpreter = spec.interpret("n")
        interpreter.load_state_dict(model.state_dict())
        assert torch.allclose(interpreter.eval()(x), out, atol=1e-6)
    assert tuple(out.shape[1:]) == spec.graph("n").node(spec.graph("n").output).shape


def test_a_bad_equation_is_a_located_error(tmp_path):
    path = tmp_path / "bad.arch"
    path.write_text(ATTENTION.replace('"bhqk,bhkd->bhqd"', '"bhqk, bhkd -> bhqd"'))
    with pytest.raises(archc.SpecError) as info:
        archc.load(path)
    message = info.value.render()
    assert "bad.arch:10:" in message and "no spaces" in message
