"""archc lift on timm's relative position biases, each in a tiny module made here: a bias table (a parameter) read
through an index timm keeps out of its state_dict is the language's ``learned`` table picked by
``lookup(..., persistent = false)``, with timm's keys; the proof loads the original's weights strictly and gets
identical outputs, and the same text with a wrong index is refused by it."""

from __future__ import annotations

import pytest
import torch
from test_lift_patterns import _proven_and_refused_when
from timm.layers import RelPosBias
from timm.models.swin_transformer import get_relative_position_index
from torch import nn

from archc.lifting import LiftError, lift
from archc.lifting.relpos import index_formula
from archc.ops.indexing import index_table


class Attention(nn.Module):
    """Attention over 3 x 3 tokens with a bias: timm's RelPosBias called on the scores (GC ViT's), read through
    its ``get_bias()`` (CoAtNet's), or the module's own table and (N x N) index, Swin's, or LeViT's distances."""

    def __init__(self, how: str, dim: int = 16, heads: int = 2, ws: int = 3):
        super().__init__()
        self.how, self.heads, self.n = how, heads, ws * ws
        self.qkv = nn.Linear(dim, dim * 3)
        if how in ("called", "get_bias"):
            self.rel_pos = RelPosBias((ws, ws), heads)
        elif how == "own":
            self.relative_position_bias_table = nn.Parameter(torch.empty((2 * ws - 1) ** 2, heads))
            self.register_buffer("relative_position_index", get_relative_position_index(ws, ws), persistent=False)
        else:  # LeViT's: |dy| * ws + |dx|, columns of a heads x N table
            self.attention_biases = nn.Parameter(torch.empty(heads, self.n))
            pos = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
            rel = (pos[..., :, None] - pos[..., None, :]).abs()
            self.register_buffer("attention_bias_idxs", rel[0] * ws + rel[1], persistent=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if self.how == "called":
            attn = self.rel_pos(q @ k.transpose(-2, -1))
            x = attn.softmax(-1) @ v
        else:
            if self.how == "get_bias":
                bias = self.rel_pos.get_bias()
            elif self.how == "own":
                bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(self.n, self.n, -1)
                bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
            else:
                bias = self.attention_biases[:, self.attention_bias_idxs]
            x = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(x.transpose(1, 2).reshape(B, N, -1))


def _net(how: str) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), Attention(how), nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()  # (every table entry its own number: a wrong index picks other numbers)
    return net.eval()


SWIN = "lookup(1, (3, 3, 3, 3), (5, 1, -5, -1), offset = 12"


@pytest.mark.parametrize(("how", "right", "wrong"), [
    ("called", SWIN, "lookup(1, (3, 3, 3, 3), (5, -1, -5, 1), offset = 12"),
    ("get_bias", SWIN, "lookup(1, (3, 3, 3, 3), (1, 5, -1, -5), offset = 12"),
    ("own", SWIN + ", shape = (9, 9)", "lookup(1, (3, 3, 3, 3), (1, 5, -1, -5), offset = 12, shape = (9, 9)"),
    ("levit", "absolute = ((3, 0, -3, 0), (0, 1, 0, -1))", "absolute = ((1, 0, -1, 0), (0, 3, 0, -3))"),
])
def test_a_bias_table_read_through_an_index_out_of_the_state_dict(how, right, wrong):
    text = _proven_and_refused_when(_net(how), torch.randn(1, 9, 8), right, wrong)
    assert "persistent = false" in text and "learned(" in text
    if how == "get_bias":  # the child the parent reads through a method: a block of its table and index
        assert "rel_pos = RelPosBias()" in text and "relative_position_bias_table = learned((25, 2))" in text


def test_index_formulas_read_back():
    for ws in (2, 3, 7):  # Swin's, of any window
        index = get_relative_position_index(ws, ws)
        f = index_formula(index)
        assert torch.equal(index_table(f["sizes"], f["steps"], f["offset"]).view(index.shape), index)
    f = index_formula(torch.tensor([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))  # |i - j|, LeViT's on a 1 x 3 grid
    assert torch.equal(index_table(**f).view(3, 3), torch.tensor([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))
    assert index_formula(torch.tensor([3, 1, 4, 1, 5])) is None  # no formula: the lift is refused


def test_an_index_no_formula_gives_is_refused_with_the_module_path():
    net = _net("own")
    net[1].relative_position_index[0, 0] = 7
    with pytest.raises(LiftError, match=r"1 \(Attention\): its index 'relative_position_index' is no table"):
        lift(net, torch.randn(1, 9, 8))
