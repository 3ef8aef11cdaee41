"""Swin V2's attention, piece by piece, written with the language as it stands (issue 20, item 3), against
torchvision's ShiftedWindowAttentionV2: the log-spaced relative coordinates (``sign(t) * log2(abs(t) + 1) / 3`` of a
table of ``coordinates``) equal its ``relative_coords_table`` bit for bit; the continuous position bias
(``16 * sigmoid(cpb_mlp(...))``, cpb_mlp a seq with torchvision's keys cpb_mlp.0 and cpb_mlp.2) and the clamped
logit scale (a learned tensor, torchvision's logit_scale) equal its own after loading. What swin.arch's V2 still
lacks to be written whole (it uses window_attention) is a buffer made from such a formula, under torchvision's key
relative_coords_table, and qkv's weight and bias read as tensors (its key third zeroed in forward)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

import archc

SPEC = """
# The relative coordinates of a ws x ws window, (2 ws - 1) x (2 ws - 1) x 2, each scaled to [-8, 8] and
# log-spaced; only x's batch, dtype and device are read.
block Coords(ws) (x) -> y {
    let d = 2 * ws - 1
    let rows = (coordinates(x, (d, d, 2), 1) - (ws - 1)) / (ws - 1) * 8
    let cols = (coordinates(x, (d, d, 2), 2) - (ws - 1)) / (ws - 1) * 8
    let t = where(coordinates(x, (d, d, 2), 3) == 0, rows, cols)
    let y = sign(t) * log2(abs(t) + 1.0) / 3.0
}

# The continuous position bias from them (the table's lets again: a block's output is read as a tensor of
# unnamed axes, which linear does not take).
block Bias(heads, ws) (x) -> y {
    cpb_mlp = seq { linear(512); relu; linear(heads, bias = false) }
    let d = 2 * ws - 1
    let rows = (coordinates(x, (d, d, 2), 1) - (ws - 1)) / (ws - 1) * 8
    let cols = (coordinates(x, (d, d, 2), 2) - (ws - 1)) / (ws - 1) * 8
    let t = where(coordinates(x, (d, d, 2), 3) == 0, rows, cols)
    let y = 16 * sigmoid(cpb_mlp(sign(t) * log2(abs(t) + 1.0) / 3.0))
}

block Scale(heads) (x) -> y {
    logit_scale = learned((heads, 1, 1), init = log(10.0))
    let y = reshape(exp(clamp(logit_scale(x), max = log(100.0))), (heads,))
}

network Coordinates(ws) {
    input 1 x 4 x 4
    attn = Coords(ws)
}
network PositionBias(heads, ws) {
    input 1 x 4 x 4
    attn = Bias(heads, ws)
}
network LogitScale(heads) {
    input 1 x 4 x 4
    attn = Scale(heads)
}
variant coords = Coordinates(8)
variant bias = PositionBias(3, 8)
variant scale = LogitScale(3)
"""


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    path = tmp_path_factory.mktemp("v2") / "v2.arch"
    path.write_text(SPEC)
    return archc.load(path)


@pytest.fixture(scope="module")
def theirs():
    torch.manual_seed(0)
    return ShiftedWindowAttentionV2(96, [8, 8], [4, 4], 3).eval()


def test_log_spaced_coordinates_are_torchvisions_buffer(pieces, theirs):
    x = torch.zeros(2, 1, 4, 4)
    ours = pieces.build("coords")(x)
    assert ours.shape == (2, 15, 15, 2)
    assert torch.equal(ours[:1], theirs.relative_coords_table) and torch.equal(ours[1], ours[0])
    assert torch.allclose(pieces.interpret("coords")(x), ours, rtol=1e-6, atol=0)  # its log2 is log / log 2
    wrong = pieces.build("coords")(x)
    assert not torch.equal(wrong.flip(-1)[:1], theirs.relative_coords_table)  # rows and columns swapped


def test_position_bias_and_logit_scale_are_torchvisions(pieces, theirs):
    x = torch.zeros(1, 1, 4, 4)
    with torch.no_grad():
        theirs.cpb_mlp[2].weight.normal_()  # biases far from sigmoid's middle
        theirs.logit_scale.copy_(torch.tensor([1.0, math.log(100.0) + 0.5, 6.0]).view(3, 1, 1))
        want = 16 * torch.sigmoid(theirs.cpb_mlp(theirs.relative_coords_table))
        scale = torch.clamp(theirs.logit_scale, max=math.log(100.0)).exp()
    for build in (pieces.build, pieces.interpret):
        bias = build("bias").eval()
        assert list(bias.state_dict()) == ["attn.cpb_mlp.0.weight", "attn.cpb_mlp.0.bias", "attn.cpb_mlp.2.weight"]
        bias.load_state_dict({f"attn.{k}": v for k, v in theirs.state_dict().items() if k.startswith("cpb_mlp")})
        logit = build("scale").eval()
        assert torch.equal(logit.state_dict()["attn.logit_scale"], torch.full((3, 1, 1), math.log(10.0)))
        logit.load_state_dict({"attn.logit_scale": theirs.logit_scale})
        with torch.no_grad():
            same = torch.equal if build == pieces.build else lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6)
            assert same(bias(x), want)
            assert same(logit(x)[0], scale.flatten())
            assert not torch.equal(logit(x)[0], theirs.logit_scale.exp().flatten())  # without the clamp it differs
