"""Sizes read as forward runs (``let h, w, c = x.shape``), comparisons of tensors and ``where``: the generated
forward computes the sizes from the tensor, so a model made for one input size runs at another exactly as the
interpreter of the graph checked at that size; each misuse is a located error."""

import pytest
import torch
from test_soundness import check_runs

import archc
from archc.errors import SpecError

SPEC = """block Windows(dim, ws) (x) -> y {{
    proj = linear(dim)
    let h, w, c = x.shape
    let ph = h + (ws - h % ws) % ws
    let pw = w + (ws - w % ws) % ws
    let sh = ws // 2 if ws < ph else 0
    let padded = roll(constant_pad(x, (0, 0, 0, pw - w, 0, ph - h)), (-sh, -sh), (1, 2))
    let rows = coordinates(x, (ph, pw, 1), 1)
    let last = where(rows >= ph - ws, where(rows >= ph - sh, 2, 1), 0)
    let z = reshape(transpose(reshape(padded, (ph // ws, ws, pw // ws, ws, dim)), 2, 3), (ph * pw // (ws * ws), ws * ws, dim))
    let back = reshape(transpose(reshape(proj(z), (ph // ws, pw // ws, ws, ws, dim)), 2, 3), (ph, pw, dim))
    let y = narrow(narrow(where(back > last, back, 0.5 * back) + {extra}, 1, 0, h), 2, 0, w)
}}

network Net(size = 30) {{
    input 3 x size x size
    embed = seq {{ conv(8, 2, stride = 2); permute([0, 2, 3, 1]) }}
    windows = Windows(8, 4)
    norm = layernorm
}}
variant net = Net()
"""


def _load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "sizes.arch"
    path.write_text(text)
    return archc.load(path)


def test_a_block_of_sizes_comparisons_and_where_runs_as_the_interpreter_says(tmp_path):
    assert check_runs(SPEC.format(extra="0"), tmp_path)


@pytest.mark.parametrize("size", [26, 16, 8])
def test_a_model_made_for_one_size_runs_at_another_as_checked_there(tmp_path, size):
    s = _load(tmp_path, SPEC.format(extra="0"))
    assert "_, h, w, c = x.shape" in s.source()
    torch.manual_seed(0)
    model = s.build("net").eval()  # made for 30 x 30
    interp = s.interpret("net", size=size).eval()  # the graph checked at this size
    interp.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ours, theirs = model(x), interp(x)
    assert ours.shape == theirs.shape == (2, size // 2, size // 2, 8)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_the_comparison_sees_a_condition_on_a_size_read_wrong(tmp_path):
    # at 8 x 8 the map is one window, so there is no shift; the mutant shifts whatever the size
    s = _load(tmp_path, SPEC.format(extra="0"))
    mutant = _load(tmp_path, SPEC.format(extra="0").replace("ws // 2 if ws < ph else 0", "ws // 2"))
    torch.manual_seed(0)
    model = mutant.build("net").eval()
    interp = s.interpret("net", size=8).eval()
    interp.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (model(x) - interp(x)).abs().max() > 1e-3


@pytest.mark.parametrize(("text", "message"), [
    (SPEC.format(extra="0").replace("let h, w, c = x.shape", "let h, w = x.shape"),
     "2 names for the sizes of"),
    (SPEC.format(extra="where(1.0, back, 0.5)"), "takes a tensor as its first operand"),
    (SPEC.format(extra="where(back > 0, back)"), "takes 3 operands"),
    (SPEC.format(extra="where(back > 0, reshape(back, (c, pw, ph)), 0.5)"), "do not broadcast"),
])
def test_misuse_is_a_located_error(tmp_path, text, message):
    with pytest.raises(SpecError, match=message) as info:
        _load(tmp_path, text).source()
    assert info.value.span is not None


def test_a_module_sized_by_a_size_read_at_run_time_is_a_located_error(tmp_path):
    text = """block B(dim) (x) -> y {
    let h, w, c = x.shape
    proj = linear(h)
    let y = proj(x)
}

network Net() {
    input 3 x 8 x 8
    embed = seq { conv(8, 2, stride = 2); permute([0, 2, 3, 1]) }
    b = B(8)
}
variant net = Net()
"""
    with pytest.raises(SpecError, match="'h' is a size of a tensor, read as forward runs") as info:
        _load(tmp_path, text).source()
    assert info.value.span.line == 2
