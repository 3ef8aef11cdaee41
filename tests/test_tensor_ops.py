"""The tensor primitives (``ops.tensor``): each one's meaning for the interpreter against torch's own function,
written differently (the interpreter's definitions do not call the functions the code generator writes), and
their shape rules. That generated code computes what the interpreter does is the soundness fuzzer's job
(specgen_flow writes every primitive); tests/bad/flow_*.arch hold their located errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from archc.ops import REGISTRY, ShapeError
from archc.sema.layout import TensorType


def run(kind: str, xs: list, training: bool = False, **args):
    op = REGISTRY[kind]
    values = op.args(**args).model_dump()
    return op.run(None, values, None, xs, training)


def test_reshapes_and_selections_match_torch():
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    assert torch.equal(run("reshape", [x], shape=(-1, 5)), x.reshape(2, 24, 5))
    assert torch.equal(run("unflatten", [x], dim=1, sizes=(2, -1)), x.unflatten(1, (2, 3)))
    assert torch.equal(run("unflatten", [x], dim=-1, sizes=(5, 1)), x.unflatten(-1, (5, 1)))
    assert torch.equal(run("flatten_dims", [x], start_dim=2), x.flatten(2))
    assert torch.equal(run("flatten_dims", [x], start_dim=1, end_dim=2), x.flatten(1, 2))
    assert torch.equal(run("transpose", [x], dim0=1, dim1=-1), x.transpose(1, 3))
    assert torch.equal(run("select", [x], dim=2, index=-1), x[:, :, 3])
    assert torch.equal(run("narrow", [x], dim=1, start=2, length=3), x[:, 2:5])


@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_match_torch(keepdim):
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    for dim in (1, 2, -1):
        assert torch.allclose(run("sum", [x], dim=dim, keepdim=keepdim), torch.sum(x, dim, keepdim))
        assert torch.allclose(run("mean", [x], dim=dim, keepdim=keepdim), torch.mean(x, dim, keepdim))
        assert torch.equal(run("amax", [x], dim=dim, keepdim=keepdim), torch.amax(x, dim, keepdim))


def test_products_and_joins_match_torch():
    a, b = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(2, 3, 5, 6, dtype=torch.float64)
    assert torch.allclose(run("matmul", [a, b]), torch.matmul(a, b))
    assert torch.equal(run("cat", [a, a, a], dim=2), torch.cat([a, a, a], 2))
    assert torch.equal(run("stack", [a, a], dim=-1), torch.stack([a, a], -1))


@pytest.mark.parametrize(("causal", "scale"), [(False, None), (True, None), (False, 0.3), (True, 2.0)])
def test_attention_matches_torch(causal, scale):
    q, k, v = (torch.randn(2, 3, 7, 4, dtype=torch.float64) for _ in range(3))
    ours = run("scaled_dot_product_attention", [q, k, v], is_causal=causal, scale=scale)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    assert torch.allclose(ours, theirs)
    if scale is None:  # and the comparison can fail: another scale is another result
        assert not torch.allclose(run("scaled_dot_product_attention", [q, k, v], is_causal=causal, scale=1.0),
                                  theirs)


def test_attention_with_an_additive_mask_matches_torch():
    """A fourth tensor is added to the scores before the softmax: torch's float attn_mask."""
    q, k, v = (torch.randn(2, 3, 7, 4, dtype=torch.float64) for _ in range(3))
    for mask in (torch.randn(2, 3, 7, 7, dtype=torch.float64), torch.randn(2, 1, 1, 7, dtype=torch.float64)):
        ours = run("scaled_dot_product_attention", [q, k, v, mask])
        assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        assert not torch.allclose(ours, F.scaled_dot_product_attention(q, k, v))
    t = TensorType((3, 7, 4), "...")
    assert shape("scaled_dot_product_attention", (t, t, t, TensorType((1, 7, 7), "..."))).shape == (3, 7, 4)
    with pytest.raises(ShapeError, match="does not broadcast to the scores, 3 x 7 x 7"):
        shape("scaled_dot_product_attention", (t, t, t, TensorType((7, 7), "..")))
    with pytest.raises(ShapeError, match="a mask or is_causal"):
        shape("scaled_dot_product_attention", (t, t, t, TensorType((3, 7, 7), "...")), is_causal=True)


def test_attention_with_a_boolean_mask_matches_torch():
    """A boolean fourth tensor (a comparison in a let) keeps the scores where it holds, as torch's boolean attn_mask:
    added to the scores as 0 and 1 it would be another attention."""
    q, k, v = (torch.randn(2, 3, 7, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.randn(2, 1, 7, 7) > 0
    mask[..., 0] = True  # every query sees a key
    ours = run("scaled_dot_product_attention", [q, k, v, mask])
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert not torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask.double()))


def shape(kind: str, t, **args):
    op = REGISTRY[kind]
    return op.shape(op.args(**args), t)


def test_shapes_count_dimensions_as_torch_and_name_what_they_can():
    tokens = TensorType((16, 192), "LD")
    heads = shape("unflatten", tokens, dim=-1, sizes=(3, 4, -1))
    assert heads == TensorType((16, 3, 4, 16), "....")
    q = shape("transpose", shape("select", heads, dim=2, index=0), dim0=1, dim1=2)
    assert q == TensorType((4, 16, 16), "...")
    back = shape("flatten_dims", shape("transpose", q, dim0=1, dim1=2), start_dim=2)
    assert back == TensorType((16, 64), "LD")  # two axes: tokens again
    assert shape("reshape", tokens, shape=(-1,)) == TensorType((16 * 192,), "F")
    assert shape("matmul", (q, shape("transpose", q, dim0=-2, dim1=-1))) == TensorType((4, 16, 16), "...")
    assert shape("mean", TensorType((8, 5, 5)), dim=1, keepdim=True) == TensorType((1, 5, 5))  # keeps the layout
    assert shape("cat", (tokens, tokens), dim=1) == TensorType((32, 192), "LD")


@pytest.mark.parametrize(("kind", "t", "args", "message"), [
    ("reshape", TensorType((4, 6), "LD"), {"shape": (5, -1)}, "does not divide"),
    ("reshape", TensorType((4, 6), "LD"), {"shape": (-1, -1)}, "at most one"),
    ("reshape", TensorType((4, 6), "LD"), {"shape": (4, 5)}, "has 24 elements, (4, 5) would have 20"),
    ("transpose", TensorType((4, 6), "LD"), {"dim0": 0, "dim1": 1}, "is the batch"),
    ("select", TensorType((4, 6), "LD"), {"dim": 3, "index": 0}, "out of range"),
    ("select", TensorType((4, 6), "LD"), {"dim": 1, "index": 4}, "index 4 is out of range"),
    ("narrow", TensorType((4, 6), "LD"), {"dim": 2, "start": 4, "length": 3}, "runs past"),
    ("sum", TensorType((6,), "F"), {"dim": 1}, "keepdim"),
])
def test_bad_shapes_say_why(kind, t, args, message):
    with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        shape(kind, t, **args)


def test_bad_shapes_of_several_inputs_say_both():
    a, b = TensorType((3, 4, 5), "..."), TensorType((3, 4, 5), "...")
    with pytest.raises(ShapeError, match="5 columns against 4 rows"):
        shape("matmul", (a, b))
    with pytest.raises(ShapeError, match="do not fit"):
        shape("scaled_dot_product_attention", (a, b, TensorType((3, 6, 5), "...")))
    with pytest.raises(ShapeError, match="joining along dim 3, 3 x 4 x 5 .* and 3 x 5 x 5 .* differ elsewhere") as e:
        shape("cat", (a, TensorType((3, 5, 5), "...")), dim=3)
    assert e.value.hint == "every size but dim 3's must be equal (and the ranks)"
    with pytest.raises(ShapeError, match="stacked must have one shape, got 3 x 4 x 5 .*, 3 x 5 x 5") as e:
        shape("stack", (a, TensorType((3, 5, 5), "...")), dim=1)
    assert "use cat" in e.value.hint


def test_macs_of_attention_count_both_products():
    q = TensorType((4, 16, 8), "...")
    op = REGISTRY["scaled_dot_product_attention"]
    out = shape("scaled_dot_product_attention", (q, q, q))
    assert op.macs(op.args(), (q, q, q), out) == 2 * 4 * 16 * 16 * 8
    assert REGISTRY["matmul"].macs(None, (q, TensorType((4, 8, 16), "...")), TensorType((4, 16, 16), "...")) == \
        math.prod((4, 16, 16)) * 8
