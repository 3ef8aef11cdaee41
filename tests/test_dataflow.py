"""Blocks with named tensors (``block B(...) (a, b) -> y``): what they compute, checked against hand-written
PyTorch and against the graph interpreter, the code they generate, and the formatter on them. Their mistakes
are golden diagnostics in tests/bad/flow_*.arch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from test_soundness import check_runs
from torch import nn

import archc
from archc.lang.format import format_source

FUSE = """
block Fuse(c) (fine, coarse) -> y {
    proj = seq { conv(c, 1, bias = false); batchnorm }
    let up = upsample(proj(coarse), 2, mode = "bilinear")
    let y = relu(fine + up)
}

block Pyramid(c) (x) -> y {
    down = seq { conv(c, 3, stride = 2, padding = 1); batchnorm; relu }
    fuse = Fuse(c)
    let y = fuse(x, down(x)) + x * 0.5
}

network Net(num_classes = 10) {
    input 3 x 32 x 32
    stem = conv(16, 3, padding = 1)
    pyramid = Pyramid(16)
    pool = adaptive_avgpool(1)
    flatten
    fc = linear(num_classes)
}
variant net = Net()
"""


class HandFuse(nn.Module):
    """What a person writes for Fuse and Pyramid, with the spec's names."""

    def __init__(self, c: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, fine, coarse):
        up = F.interpolate(self.proj(coarse), scale_factor=2, mode="bilinear")
        return F.relu(fine + up)


class HandPyramid(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU())
        self.fuse = HandFuse(c)

    def forward(self, x):
        return self.fuse(x, self.down(x)) + x * 0.5


class HandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.pyramid = HandPyramid(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.pyramid(self.stem(x))), 1))


def _randomised(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith(("running_mean", "running_var", "weight", "bias")):
                t.copy_(torch.rand_like(t) + 0.5)
    return model.eval()


def _outputs(text: str, tmp_path) -> tuple[torch.Tensor, torch.Tensor]:
    path = tmp_path / "fuse.arch"
    path.write_text(text)
    spec = archc.load(path)
    torch.manual_seed(0)
    hand = _randomised(HandNet())
    model = spec.build("net").eval()
    model.load_state_dict(hand.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return model(x), hand(x)


def test_the_generated_model_is_the_hand_written_one(tmp_path):
    ours, theirs = _outputs(FUSE, tmp_path)
    assert torch.equal(ours, theirs)


def test_the_comparison_fails_for_another_computation(tmp_path):
    for before, after in [("fine + up", "fine - up"), ("x * 0.5", "x * 0.25"), ("relu(fine", "sigmoid(fine"),
                          ('mode = "bilinear"', 'mode = "nearest"')]:
        ours, theirs = _outputs(FUSE.replace(before, after), tmp_path)
        assert not torch.allclose(ours, theirs), before


def test_forward_names_the_tensors_and_init_orders_the_declarations(tmp_path):
    path = tmp_path / "fuse.arch"
    path.write_text(FUSE)
    source = archc.load(path).source()
    assert "def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:" in source
    assert "def __init__(self, fine_channels: int, coarse_channels: int, c: int) -> None:" in source
    assert "nn.Conv2d(coarse_channels, c, kernel_size=1, bias=False)" in source  # sized by what proj is applied to
    assert "self.fuse = Fuse(in_channels, c, c)" in source
    pyramid = source[source.index("class Pyramid"):source.index("class Net")]
    assert pyramid.index("self.down =") < pyramid.index("self.fuse =")  # the spec's order of declaration
    assert "y = fine + up  # N x 16 x 32 x 32" in source


def test_declarations_are_made_in_the_order_written_not_applied(tmp_path):
    text = FUSE.replace("    down = seq { conv(c, 3, stride = 2, padding = 1); batchnorm; relu }\n    fuse = Fuse(c)",
                        "    fuse = Fuse(c)\n    down = seq { conv(c, 3, stride = 2, padding = 1); batchnorm; relu }")
    path = tmp_path / "fuse.arch"
    path.write_text(text)
    spec = archc.load(path)
    pyramid = spec.source()[spec.source().index("class Pyramid"):]
    assert pyramid.index("self.fuse =") < pyramid.index("self.down =")
    model = spec.build("net")
    assert [k for k in model.state_dict() if k.startswith("pyramid.")][0].startswith("pyramid.fuse.")


def test_the_interpreter_agrees(tmp_path):
    assert check_runs(FUSE, tmp_path)


EVERYTHING = """
block Pair(c) (p, q) -> r {
    mq = conv(c, 3, padding = 1)
    mp = seq { conv(c, 1, bias = false); batchnorm }
    let r = mp(p) * sigmoid(mq(q))
}

block Plain(c) {
    conv = conv(c, 3, padding = 1); relu
}

block Flow(c, stride = 1, extra = true) (x) -> y {
    let half = 1 / 2
    m1 = conv(c, 3, stride, padding = 1)
    m2 = conv(c, 1, stride)
    gate = conv(c, 1)
    pair = Pair(c)
    plain = Plain(c)
    act = silu
    more = conv(c, 1) if extra
    let a = m1(x)
    let b = -m2(x) + 1
    let g = a * hardsigmoid(gate(adaptive_avgpool(a, 1)))
    let p = pair(g, plain(b))
    let y = act(more(p) / 4 - half * b) + 2 * g
}

network Net(extra = true) {
    input 3 x 12 x 12
    stem = conv(8, 3, padding = 1)
    f1 = Flow(8, extra = extra)
    f2 = Flow(6, 2, extra = extra)
    global_avgpool
    fc = linear(5)
}
variant net = Net()
variant lean = Net(extra = false)
"""


def test_every_form_runs_as_the_interpreter_says(tmp_path):
    assert check_runs(EVERYTHING, tmp_path)


def test_a_library_of_dataflow_blocks_generates_without_a_network(tmp_path):
    path = tmp_path / "lib.arch"
    path.write_text(EVERYTHING[:EVERYTHING.index("network")])
    spec = archc.load(path)
    namespace: dict = {}
    exec(compile(spec.source(), "lib.py", "exec"), namespace)
    flow = namespace["Flow"](3, 8)
    assert flow(torch.randn(1, 3, 6, 6)).shape == (1, 8, 6, 6)
    assert namespace["Pair"](3, 5, 8)(torch.randn(1, 3, 4, 4), torch.randn(1, 5, 4, 4)).shape == (1, 8, 4, 4)


def test_the_formatter_keeps_the_signature():
    text = "block Fuse(c)(fine,coarse)->y {\n  proj=conv(c,1)\n  let y=proj(coarse)+fine\n}\n"
    formatted = format_source(text)
    assert formatted == "block Fuse(c) (fine, coarse) -> y {\n    proj = conv(c, 1)\n    let y = proj(coarse) + fine\n}\n"
    assert format_source(formatted) == formatted
    assert format_source(EVERYTHING) == EVERYTHING.lstrip("\n")


def test_a_network_of_tokens_sizes_its_layers_by_their_features(tmp_path):
    """A network whose input is L x D tokens: its first layers take D features (once, L was taken)."""
    text = "network T() {\n    input 16 x 64\n    fc = linear(10)\n}\nvariant t = T()\n"
    assert check_runs(text, tmp_path)
    path = tmp_path / "t.arch"
    path.write_text(text)
    assert "nn.Linear(64, 10)" in archc.load(path).source()


PRIMITIVES = """
block Pair(c) (p, q) -> r {
    mp = conv(c, 1)
    mq = conv(c, 1)
    let r = mp(p) + mq(q)
}

block Swap(c) (x) -> y {
    m = conv(c, 3, padding = 1)
    pair = Pair(c)
    let t = m(x)
    let s = transpose(t, 2, 3)
    let y = pair(s, matmul(softmax(matmul(s, transpose(s, 2, 3)), dim = -1), s))
}

network Net() {
    input 3 x 6 x 9
    swap = Swap(4)
    norm = batchnorm
}
variant net = Net()
"""


def test_a_transposed_map_passed_to_a_block_is_read_as_a_map(tmp_path):
    """Unnamed axes (a transpose's result) given to a block are its input map: the block's class is sized by
    their first axis, as the block reads them, not by their last."""
    assert check_runs(PRIMITIVES, tmp_path)
    path = tmp_path / "p.arch"
    path.write_text(PRIMITIVES)
    source = archc.load(path).source()
    assert "self.pair = Pair(c, c, c)" in source
    assert "N x 4 x 9 x 6" in source  # the transposed map's shape, shown


def test_negative_dimensions_are_followed_in_init(tmp_path):
    """transpose(t, -1, -2): the width after it is known (dims written with a minus sign fold to a negation)."""
    text = (FUSE.split("network")[0] + """
block Flip(c) (x) -> y {
    m = conv(c, 3, padding = 1)
    m2 = conv(c, 1)
    let a = m(x)
    let y = m2(transpose(tanh(transpose(a, 2, 3)), -1, -2))
}

network Net() {
    input 3 x 6 x 9
    flip = Flip(4)
}
variant net = Net()
""")
    assert check_runs(text, tmp_path)
    path = tmp_path / "flip.arch"
    path.write_text(text)
    assert "self.m2 = nn.Conv2d(c, c, kernel_size=1)" in archc.load(path).source()


def test_a_module_declared_in_a_let_keeps_unnamed_axes_unnamed(tmp_path):
    """A transposed map (9 x 6 x c, unnamed axes, its last axis c) through a declared ReLU, then a conv: the conv
    reads 9 channels. The ReLU's result once took a map's name, and __init__ put the width c where the channels
    are: Conv2d(c, ...) for a tensor of 9 channels."""
    text = """
block Turn(c) (x: c x 6 x 9) -> y {
    act = relu
    conv = conv(c, 1)
    let y = conv(act(transpose(x, 1, 3)))
}

network Net() {
    input 3 x 6 x 9
    stem = conv(4, 1)
    turn = Turn(4)
}
variant net = Net()
"""
    assert check_runs(text, tmp_path)
    path = tmp_path / "turn.arch"
    path.write_text(text)
    assert "nn.Conv2d(9, c, kernel_size=1)" in archc.load(path).source()
