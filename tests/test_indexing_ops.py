"""roll, constant_pad, learned and lookup (archc/ops/indexing.py): each misuse a located error, lookup's table as
torchvision computes Swin's relative position index, and a block of all four agreeing with the interpreter."""


import pytest
import torch
from test_soundness import check_runs

import archc
from archc.errors import SpecError
from archc.ops.indexing import index_table

SPEC = """block B(c) (x) -> y {{
    table = learned((4, c), init = 0.5)
    index = lookup(1, (2, 2), (2, -1), 1, (2, 2))
    let y = {expr}
}}

network N() {{
    input 4 x 6 x 6
    b = B(4)
}}
variant n = N()
"""
WORKS = ("roll(x, (1, -2), (2, 3)) + narrow(constant_pad(x, (0, 0, 0, 0, 1, 2), value = 0.5), 1, 1, c) "
         "* sigmoid(unflatten(mean(transpose(index(table(x)), 1, 2), 2, keepdim = true), 2, (1, 1)))")


def test_a_block_of_the_four_runs_as_the_interpreter_says(tmp_path):
    assert check_runs(SPEC.format(expr=WORKS), tmp_path)


@pytest.mark.parametrize(("expr", "message"), [
    ("roll(x, (1, 2), 2) + index(table(x)) * 0", "2 shifts for 1 dims"),
    ("roll(x, 1, 0) + index(table(x)) * 0", "dims 0 is the batch"),
    ("roll(x, (1, 1), (2, 2)) + index(table(x)) * 0", "name a dimension twice"),
    ("constant_pad(x, (1, 2, 3)) + index(table(x)) * 0", "is no list of pairs"),
    ("constant_pad(x, (0, 0, 0, 0, 0, 0, 1, 1)) + index(table(x)) * 0", "pads 4 dimensions of a tensor of 3"),
])
def test_misuse_is_a_located_error(tmp_path, expr, message):
    path = tmp_path / "n.arch"
    path.write_text(SPEC.format(expr=expr))
    with pytest.raises(SpecError) as info:
        archc.load(path).graph("n")
    assert info.value.span is not None and info.value.span.line == 4 and message in info.value.message


@pytest.mark.parametrize(("index", "message"), [
    ("lookup(1, (2, 2), (2, -1), 0)", "entries run from -1 to 2, outside dim 1 of size 4"),  # off by one
    ("lookup(1, (2, 2), (2, -1), 1, (3, 2))", "cannot be held as (3, 2)"),
    ("lookup(1, (2, 2), (2,), 1)", "2 sizes and 1 steps"),
])
def test_a_table_that_does_not_fit_is_a_located_error(tmp_path, index, message):
    path = tmp_path / "n.arch"
    path.write_text(SPEC.format(expr="x * 0 + mean(index(table(x))) * 0").replace(
        "lookup(1, (2, 2), (2, -1), 1, (2, 2))", index))
    with pytest.raises(SpecError) as info:
        archc.load(path).graph("n")
    assert info.value.span is not None and info.value.span.line == 3 and message in info.value.message


def test_the_table_is_swins_relative_position_index():
    # (test_swin.py holds the spec's to torchvision's buffer): the row of the offset from token j to token i
    w = 7
    theirs = torch.tensor([(i // w - j // w + w - 1) * (2 * w - 1) + i % w - j % w + w - 1
                           for i in range(w * w) for j in range(w * w)])
    ours = index_table((w, w, w, w), (2 * w - 1, 1, 1 - 2 * w, -1), (w - 1) * 2 * w)
    assert torch.equal(ours, theirs) and not torch.equal(ours, index_table((w, w, w, w), (1, 2 * w - 1, -1, 1 - 2 * w),
                                                                             (w - 1) * 2 * w))


def test_the_generated_module_holds_the_index_as_a_buffer(tmp_path):
    path = tmp_path / "n.arch"
    path.write_text(SPEC.format(expr=WORKS))
    model = archc.load(path).build("n")
    assert dict(model.named_buffers())["b.index"].tolist() == [[1, 0], [3, 2]]
    assert dict(model.named_parameters())["b.table"].shape == (4, 4)
