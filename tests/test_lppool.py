"""Power-average pooling (``ops.lppool``): ``lppool``, ``lppool1d`` and ``lppool3d`` compute what torch's
``nn.LPPool2d/1d/3d`` do, the interpreter agrees, the static shapes are the run's, mistakes are located errors."""

from __future__ import annotations

import re

import pytest
import torch
from archtest import assert_static_shapes
from torch import nn

import archc
from archc import SpecError
from archc.backends.interpret import Interpreter

# (input sizes, the statement, torch's module for it)
CASES = {
    "lppool": ("3 x 9 x 8", "layer = lppool(2, 3, stride = 2, ceil_mode = true)",
               lambda: nn.LPPool2d(2, 3, stride=2, ceil_mode=True)),
    "lppool_pair": ("3 x 9 x 8", "layer = lppool(1.5, (2, 3))", lambda: nn.LPPool2d(1.5, (2, 3))),
    "lppool1d": ("4 x 17", "layer = lppool1d(4, 4, 3)", lambda: nn.LPPool1d(4, 4, 3)),
    "lppool3d": ("2 x 4 x 6 x 7", "layer = lppool3d(1, (1, 2, 3), stride = (1, 2, 2), ceil_mode = true)",
                 lambda: nn.LPPool3d(1, (1, 2, 3), stride=(1, 2, 2), ceil_mode=True)),
}


def load(tmp_path, sizes: str, stmt: str) -> archc.Spec:
    path = tmp_path / "lp.arch"
    path.write_text(f"network Net() {{\n    input {sizes}\n    {stmt}\n}}\nvariant net = Net()\n")
    return archc.load(path)


@pytest.mark.parametrize("case", list(CASES))
def test_each_computes_what_torch_does_and_the_interpreter_agrees(tmp_path, case):
    sizes, stmt, make = CASES[case]
    s = load(tmp_path, sizes, stmt)
    model, reference = s.build("net"), make()
    x = torch.rand(2, *(int(d) for d in sizes.split(" x ")), dtype=torch.float64) + 0.1
    assert type(model.layer) is type(reference)
    assert torch.equal(model(x), reference(x))
    assert_static_shapes(s, "net", model, x)
    interp = Interpreter(s.graph("net"))
    for training in (True, False):
        assert torch.allclose(interp.train(training)(x), model.train(training)(x), rtol=1e-12, atol=1e-12)
    # and the comparison can fail: another power is another pooling
    power = re.sub(r"\(([\d.]+),", lambda m: f"({float(m.group(1)) + 1},", stmt, count=1)
    other = load(tmp_path, sizes, power).build("net")
    assert not torch.allclose(other(x), reference(x))


@pytest.mark.parametrize(("sizes", "stmt", "message"), [
    ("3 x 9", "lppool1d(2, 10)", "lppool1d: kernel (10) is larger than the padded input length (9 + 2*0)"),
    ("3 x 2 x 8 x 8", "lppool3d(2, 3)", "lppool3d: kernel (3) is larger than the padded input depth (2 + 2*0)"),
    ("3 x 8 x 8", "lppool3d(2, 2)", "lppool3d needs a C x D x H x W volume, got 3 x 8 x 8"),
    ("3 x 8 x 8", "lppool(0, 2)", "lppool: bad value 0 for 'norm_type'"),
])
def test_mistakes_are_located_errors(tmp_path, sizes, stmt, message):
    with pytest.raises(SpecError) as err:
        load(tmp_path, sizes, stmt).graph("net")
    assert message in str(err.value) and ":3:" in str(err.value)
