"""Swin V2's attention, piece by piece (issue 20, item 3), against torchvision's ShiftedWindowAttentionV2: the
log-spaced relative coordinates written in lets (``sign(t) * log2(abs(t) + 1) / 3`` of a table of ``coordinates``)
and the ``relative_coords`` buffer both equal its ``relative_coords_table`` bit for bit; the continuous position bias
(``16 * sigmoid(cpb_mlp(relative_coords_table(x)))``, cpb_mlp a seq with torchvision's keys cpb_mlp.0 and cpb_mlp.2)
and the clamped logit scale (a learned tensor, torchvision's logit_scale) equal its own after loading; and its qkv,
``linear(3 * dim, zero_bias = (dim, 2 * dim))``, equals ``F.linear`` with the bias's key third zeroed, learning
nothing there. specs/swin.arch's V2 is these pieces (tests/test_swin.py compares the whole models)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

import archc
from archc.errors import SpecError

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

# The continuous position bias from the same coordinates, held as torchvision holds them: a buffer.
block Bias(heads, ws) (x) -> y {
    relative_coords_table = relative_coords(ws)
    cpb_mlp = seq { linear(512); relu; linear(heads, bias = false) }
    let y = 16 * sigmoid(cpb_mlp(relative_coords_table(x)))
}

block Scale(heads) (x) -> y {
    logit_scale = learned((heads, 1, 1), init = log(10.0))
    let y = reshape(exp(clamp(logit_scale(x), max = log(100.0))), (heads,))
}

block Qkv(dim, zeroed) (x) -> y {
    qkv = linear(dim * 3, zero_bias = (dim, 2 * dim) if zeroed else none)
    let y = qkv(x)
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
network Projection(dim, zeroed = true) {
    input 64 x dim
    attn = Qkv(dim, zeroed)
}
variant coords = Coordinates(8)
variant bias = PositionBias(3, 8)
variant scale = LogitScale(3)
variant qkv = Projection(96)
variant qkv_unzeroed = Projection(96, false)
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


@pytest.mark.parametrize("ws", [8, 7, (3, 5)])
def test_the_relative_coords_buffer_is_torchvisions_as_made(pieces, ws):
    # the buffer made with the module, by the generated helper and by the interpreter's own formula
    wh, ww = (ws, ws) if isinstance(ws, int) else ws
    theirs = ShiftedWindowAttentionV2(12, [wh, ww], [0, 0], 3).relative_coords_table
    from archc.backends.python.helperswindow import WINDOW_HELPERS
    from archc.ops.windows import _coords_table

    space = {"torch": torch, "math": math, "Tensor": torch.Tensor}
    exec(WINDOW_HELPERS["_relative_coords_table"], space)
    assert torch.equal(space["_relative_coords_table"](ws), theirs)
    assert torch.equal(_coords_table(wh, ww), theirs)
    assert not torch.equal(space["_relative_coords_table"](ws, 4.0), theirs)  # another scale: other coordinates


def test_position_bias_and_logit_scale_are_torchvisions(pieces, theirs):
    x = torch.zeros(2, 1, 4, 4)
    with torch.no_grad():
        theirs.cpb_mlp[2].weight.normal_()  # biases far from sigmoid's middle
        theirs.logit_scale.copy_(torch.tensor([1.0, math.log(100.0) + 0.5, 6.0]).view(3, 1, 1))
        want = 16 * torch.sigmoid(theirs.cpb_mlp(theirs.relative_coords_table))
        scale = torch.clamp(theirs.logit_scale, max=math.log(100.0)).exp()
    keys = ["attn.relative_coords_table", "attn.cpb_mlp.0.weight", "attn.cpb_mlp.0.bias", "attn.cpb_mlp.2.weight"]
    for build in (pieces.build, pieces.interpret):
        bias = build("bias").eval()
        assert list(bias.state_dict()) == keys
        assert torch.equal(bias.state_dict()["attn.relative_coords_table"], theirs.relative_coords_table)
        bias.load_state_dict({f"attn.{k}": v for k, v in theirs.state_dict().items() if f"attn.{k}" in keys})
        logit = build("scale").eval()
        assert torch.equal(logit.state_dict()["attn.logit_scale"], torch.full((3, 1, 1), math.log(10.0)))
        logit.load_state_dict({"attn.logit_scale": theirs.logit_scale})
        with torch.no_grad():
            same = torch.equal if build == pieces.build else lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6)
            assert same(bias(x)[:1], want) and same(bias(x)[1:], want)
            assert same(logit(x)[0], scale.flatten())
            assert not torch.equal(logit(x)[0], theirs.logit_scale.exp().flatten())  # without the clamp it differs


def test_qkv_with_its_key_bias_zeroed_is_torchvisions(pieces, theirs):
    x = torch.randn(2, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs.qkv.bias.normal_()  # a key third that is not zero, which forward must not read
        bias = theirs.qkv.bias.clone()
        bias[96:192] = 0
        want = F.linear(x, theirs.qkv.weight, bias)
    for build in (pieces.build, pieces.interpret):
        model = build("qkv")
        assert torch.equal(model.state_dict()["attn.qkv.bias"][96:192], torch.zeros(96))  # zeroed as made
        model.load_state_dict({f"attn.{k}": v for k, v in theirs.state_dict().items() if k.startswith("qkv.")})
        out = model(x)
        torch.testing.assert_close(out, want, rtol=0, atol=0 if build == pieces.build else 1e-5)
        out.sum().backward()
        grad = model.state_dict(keep_vars=True)["attn.qkv.bias"].grad
        assert torch.equal(grad[96:192], torch.zeros(96)) and bool((grad[:96] != 0).all())  # the keys learn nothing
    plain = pieces.build("qkv_unzeroed")
    plain.load_state_dict({f"attn.{k}": v for k, v in theirs.state_dict().items() if k.startswith("qkv.")})
    with torch.no_grad():
        assert not torch.allclose(plain(x), want)  # with the keys' bias: another projection


@pytest.mark.parametrize(("line", "message"), [
    ("qkv = linear(24, bias = false, zero_bias = (8, 16))", "zero_bias zeroes part of a bias, but this layer has none"),
    ("qkv = linear(24, zero_bias = (8, 25))", "zero_bias (8, 25) is no part of 24 bias entries"),
    ("qkv = linear(24, zero_bias = (16, 8))", "zero_bias (16, 8) is no part of 24 bias entries"),
])
def test_a_bad_zero_bias_is_a_located_error(tmp_path, line, message):
    path = tmp_path / "bad.arch"
    path.write_text(f"network Net() {{\n    input 16 x 8\n    {line}\n}}\nvariant net = Net()\n")
    with pytest.raises(SpecError, match=re.escape(message)) as info:
        archc.load(path).check()
    assert ":3:5:" in str(info.value)


def test_relative_coords_of_a_window_one_position_wide_is_a_located_error(tmp_path):
    path = tmp_path / "bad.arch"
    path.write_text("block B() (x) -> y {\n    t = relative_coords((1, 4))\n    let y = t(x)\n}\n"
                    "network Net() {\n    input 16 x 8\n    b = B()\n}\nvariant net = Net()\n")
    with pytest.raises(SpecError, match="at least 2 positions on each side") as info:
        archc.load(path).check()
    assert ":2:5:" in str(info.value)
