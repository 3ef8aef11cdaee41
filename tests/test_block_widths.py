"""A block's output width, as its generated class works it out in ``__init__`` from its parameters alone, where the
spec gives it: a block that gives a learned tensor (its sizes are the table's, whatever the block's input), and a
block no variant makes (Swin's shift mask where no block shifts)."""

from __future__ import annotations

import pytest
import torch
from archtest import assert_static_shapes

import archc

TABLE = """\
block Table(n) (x) -> y {
    table = learned(SHAPE, init = 0.5)
    let y = table(x)
}

network N() {
    input 3 x 8 x 8
    c = conv(4, 3)
    t = Table(5)
    flatten
    fc = linear(3)
}
variant n = N()
"""


@pytest.mark.parametrize(("shape", "width"), [("(n, 1, 1)", "n"), ("(1, 1, n)", "1"), ("(2, n, 1)", "2"),
                                              ("(n, 8)", "8")])
def test_a_block_that_gives_a_learned_tensor_has_the_table_s_width(shape, width):
    """Three sizes leave the block as a C x H x W map (its input's layout), whose width is the first; two are
    tokens, whose width is the last. What follows is sized by them: the linear layer after the flatten."""
    s = archc.load("table.arch", TABLE.replace("SHAPE", shape))
    assert f"self.out_channels = {width}\n" in s.source()
    model = s.build("n")
    x = torch.randn(2, 3, 8, 8)
    assert_static_shapes(s, "n", model, x)
    graph = s.graph("n")
    assert model.fc.in_features == next(op.shape[0] for op in graph.ops() if op.op == "flatten")
    assert torch.equal(model(x)[0], model(x)[1])  # the table's, the same for every sample
