"""Token sequences (the N x L x D layout): the ops that make, change and end them, checked while elaborating and
run in the generated code."""

import pytest
import torch

import archc
from archc import SpecError


def net(body: str, size: int = 32) -> str:
    return f"network N() {{\n    input 3 x {size} x {size}\n{body}\n}}\n"


def load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "n.arch"
    path.write_text(text)
    return archc.load(path)


PATCHES = "    c = conv(96, 8, stride = 8)\n    to_tokens\n"  # 16 tokens of 96 features


@pytest.mark.parametrize(("body", "message"), [
    (PATCHES + "    a = self_attention(5)", "96 features do not split into 5 heads"),
    (PATCHES + "    c2 = conv(8, 1)", "conv needs a C x H x W feature map, got 16 x 96 (tokens)"),
    (PATCHES + "    select_token(16)", "token 16 of a sequence of 16"),
    ("    t = prepend_token", "prepend_token needs an L x D token sequence"),
    (PATCHES + "    self_attention(4)", "needs a name"),
    (PATCHES + "    p = learned_add((2, 16, 96))", "does not broadcast"),
    (PATCHES + "    p = learned_add((1, 17, 96))", "does not broadcast"),
    (PATCHES + "    to_map(3, 5)", "16 tokens are not a 3 x 5 map"),
    (PATCHES + "    s = seq { self_attention(4) }", "needs a name"),
])
def test_token_mistakes_are_located_errors(tmp_path, body, message):
    with pytest.raises(SpecError) as error:
        load(tmp_path, net(body)).graph("n")
    assert message in str(error.value) and "n.arch:" in str(error.value), str(error.value)


def test_a_conv_on_tokens_hints_the_way_back(tmp_path):
    with pytest.raises(SpecError) as error:
        load(tmp_path, net(PATCHES + "    c2 = conv(8, 1)")).graph("n")
    assert "to_map(height, width)" in error.value.render()


def test_tokens_and_back_are_the_map_itself(tmp_path):
    s = load(tmp_path, net("    to_tokens\n    to_map(32, 32)"))
    model = s.build("n")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), x)
    assert "x.flatten(2).transpose(1, 2)" in s.source()


def test_sizes_lengths_and_channels(tmp_path):
    # the class token adds one to L; `out.channels` is D; the position embedding and the class token are
    # parameters of the network, counted as such
    s = load(tmp_path, net(PATCHES + "    cls = prepend_token\n"
                           "    pos = learned_add((1, 17, out.channels))\n    select_token(0)\n    fc = linear(10)"))
    graph = s.graph("n")
    assert graph.learned()["pos"].shape == (17, 96) and graph.learned()["pos"].params == 17 * 96
    assert graph.learned()["cls"].params == 96
    model = s.build("n")
    assert tuple(model.pos.shape) == (1, 17, 96) and tuple(model.cls.shape) == (1, 1, 96)
    assert sum(p.numel() for p in model.parameters()) == graph.params
    assert tuple(model(torch.randn(2, 3, 32, 32)).shape) == (2, 10)


def test_attention_mixes_the_tokens(tmp_path):
    # self-attention: changing one token changes every token's output (a per-token op would change one)
    s = load(tmp_path, net(PATCHES + "    a = self_attention(4)"))
    model = s.build("n").eval()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[..., :8, :8] += 1  # the first patch only
    with torch.no_grad():
        changed = (model(x) - model(y)).abs().amax(-1)[0]
    assert (changed > 0).all()
    assert "nn.MultiheadAttention(96, num_heads=4, batch_first=True)" in s.source()


def test_the_length_is_known_while_checking_only(tmp_path):
    # like a map's height: generated code tracks channels alone, so a layer argument cannot read it
    with pytest.raises(SpecError) as error:
        load(tmp_path, net(PATCHES + "    pos = learned_add((1, out.length, 96))")).source()
    assert "'out.length' is known only while elaborating" in str(error.value)


@pytest.mark.parametrize("kind", ["window", "grid"])
def test_partitions_and_back_are_the_map_itself(tmp_path, kind):
    s = load(tmp_path, net(f'    c = conv(8, 1)\n    partition(4, "{kind}")\n    departition(4, "{kind}")'))
    graph = s.graph("n")
    assert [op.shape for op in graph.ops()][-2:] == [(64, 16, 8), (8, 32, 32)]  # 64 groups of 4 x 4 positions
    model = s.build("n")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model.c(x))


def test_a_window_holds_neighbours_and_a_grid_cell_spread_positions(tmp_path):
    # on a map whose value is its position's row: a window's 2 x 2 tokens come from 2 neighbouring rows, a grid
    # cell's from rows 8 apart (16 / 2)
    rows = torch.arange(16.0).view(1, 1, 16, 1).expand(1, 1, 16, 16)
    from archc.backends.python.helpers import HELPERS

    scope: dict = {}
    exec("import torch\nfrom torch import Tensor\n" + HELPERS["_partition"], scope)
    window, grid = scope["_partition"](rows, 2, "window"), scope["_partition"](rows, 2, "grid")
    assert window.shape == grid.shape == (1, 64, 4, 1)
    assert window[0, 0, :, 0].tolist() == [0, 0, 1, 1] and grid[0, 0, :, 0].tolist() == [0, 0, 8, 8]


@pytest.mark.parametrize(("body", "message"), [
    ('    partition(5, "window")', "a 32 x 32 map does not cut into 5 x 5 partitions"),
    ('    partition(4)\n    departition(2)', "are not window partitions of size 2"),
    ('    c = conv(8, 1)\n    partition(4)\n    a = relative_attention(3, 4)', "8 features do not split into heads of 3"),
    ('    c = conv(8, 1)\n    partition(4)\n    a = relative_attention(2, 2)', "groups of 16 tokens are not 2 x 2"),
    ('    c = conv(8, 1)\n    a = window_attention(4, 2)', "window_attention needs a channels-last"),
    ('    c = conv(8, 1)\n    permute([0, 2, 3, 1])\n    a = window_attention(4, 3)', "8 channels do not split into 3 heads"),
    ('    c = conv(8, 1)\n    permute([0, 2, 3, 1])\n    a = window_attention(4, 2, 4)', "a shift of 4 is not within"),
])
def test_partition_and_window_mistakes_are_located_errors(tmp_path, body, message):
    with pytest.raises(SpecError) as error:
        load(tmp_path, net(body)).graph("n")
    assert message in str(error.value) and "n.arch:" in str(error.value), str(error.value)
