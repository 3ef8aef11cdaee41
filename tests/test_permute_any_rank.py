"""``permute`` on a tensor of any rank (issue 20, item 2): its shape rule, and timm's Attention written with timm's own
``reshape(...).permute(...)`` (here ``unflatten``, sized from the parameters) of the packed q, k, v (the batch kept first), equal to a hand-written module of the
same weights; another order of the axes fails that comparison."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archc
from archc.backends.interpret import Interpreter
from archc.ops import REGISTRY, ShapeError
from archc.sema.layout import TensorType


def shape(t: TensorType, dims) -> TensorType:
    op = REGISTRY["permute"]
    return op.shape(op.args(dims=dims), t)


def test_the_shape_rule_orders_any_rank_and_keeps_a_map_s_names():
    assert shape(TensorType((16, 3, 2, 8), "...."), (0, 2, 3, 1, 4)) == TensorType((3, 2, 16, 8), "....")
    assert shape(TensorType((8, 5, 6)), (0, 2, 3, 1)) == TensorType((5, 6, 8), "HWC")  # channels-last, as before
    assert shape(TensorType((5, 6, 8), "HWC"), (0, 3, 1, 2)) == TensorType((8, 5, 6))
    assert shape(TensorType((8, 5, 6)), (0, 2, 1, 3)) == TensorType((5, 8, 6), "...")  # no named layout: unnamed axes
    assert shape(TensorType((16, 64), "LD"), (0, 2, 1)) == TensorType((64, 16), "LD")
    for dims in ((0, 1, 2), (1, 0, 2, 3), (0, 1, 2, 2)):
        with pytest.raises(ShapeError, match="must keep the batch first and order all of 1 to 3"):
            shape(TensorType((8, 5, 6)), dims)


SPEC = """\
block Attention(dim, num_heads) (x) -> y {
    qkv = linear(dim * 3)
    proj = linear(dim)
    let t = permute(unflatten(qkv(x), -1, (3, num_heads, dim // num_heads)), ORDER)
    let a = scaled_dot_product_attention(select(t, 1, 0), select(t, 1, 1), select(t, 1, 2))
    let y = proj(flatten_dims(transpose(a, 1, 2), 2))
}

network Net(dim = 24) {
    input 10 x 24
    attn = Attention(dim, 3)
}
variant net = Net()
"""


class Attention(nn.Module):  # timm's, with the batch kept first
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.qkv, self.proj = num_heads, nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


def build(tmp_path, order: str):
    path = tmp_path / "attn.arch"
    path.write_text(SPEC.replace("ORDER", order))
    return archc.load(path)


def test_timm_s_attention_with_its_permute_is_the_hand_written_module(tmp_path):
    s = build(tmp_path, "(0, 2, 3, 1, 4)")
    assert "torch.permute(t, (0, 2, 3, 1, 4))" in s.source()
    model = s.build("net").eval()
    reference = Attention(24, 3).eval()
    model.attn.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 10, 24)
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    interp = Interpreter(s.graph("net")).eval()
    interp.load_state_dict(model.state_dict(), strict=True)
    assert torch.allclose(interp(x), model(x), atol=1e-6)
    # and the comparison can fail: q, k and v taken across the heads (three of each) is another attention
    wrong = build(tmp_path, "(0, 3, 2, 1, 4)").build("net").eval()
    wrong.attn.load_state_dict(reference.state_dict(), strict=True)
    assert not torch.allclose(wrong(x), reference(x), atol=1e-3)
