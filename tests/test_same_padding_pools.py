"""TensorFlow's "same" padding on pools (``maxpool`` and ``avgpool`` ``padding = "same"``): ceil(size / stride)
outputs, the input padded by its size with the odd row or column at the bottom or right, with -inf before a max
and with zeros before an average (which counts them whatever count_include_pad says). Held to timm's
MaxPool2dSame and AvgPool2dSame, named (modules) and unnamed (functions), on sizes and strides that pad evenly and
unevenly, with the interpreter and the static shapes; symmetric padding in their place fails."""

import pytest
import torch
import zoo
from archtest import assert_static_shapes
from test_same_padding import load
from timm.layers import Conv2dSame
from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
from torch import nn

import archc

SPEC = """\
block Pools(stride, pad = "same") (x) -> y {
    let m = maxpool(x, 3, stride, padding = pad)           # unnamed: a function
    let y = avgpool(m, 2, padding = "same", count_include_pad = false)
}

network Tf(size = 15) {
    input 3 x size x size
    stem = conv(8, 3, 2, padding = "same")
    pool = maxpool(3, 2, padding = "same")                 # 8 -> 4 (0 above, 1 below)
    avg = avgpool(3, 1, padding = "same")                  # an even pad at stride 1: 1 and 1, zeros counted
    wide = maxpool(2, 1, padding = "same", dilation = 2)   # a dilated window: 1 and 1
    pools = Pools(2)
    plain = Pools(1, pad = 1)                              # the same block, a number: padding=1 as torch takes it
    head = conv(8, 1)
}
variant tf = Tf()
"""


class Tf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, 2)
        self.pool = MaxPool2dSame(3, 2)
        self.avg = AvgPool2dSame(3, 1)
        self.wide = MaxPool2dSame(2, 1, dilation=2)
        self.pools = [MaxPool2dSame(3, 2), AvgPool2dSame(2, 2, count_include_pad=False)]
        self.plain = [nn.MaxPool2d(3, 1, padding=1), AvgPool2dSame(2, 2, count_include_pad=False)]
        self.head = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.wide(self.avg(self.pool(self.stem(x))))
        for pool in self.pools + self.plain:
            x = pool(x)
        return self.head(x)


@pytest.mark.parametrize("size", [15, 16, 33])
def test_matches_timms_pools_same(tmp_path, size):
    s = load(tmp_path, SPEC)
    model, x = s.python_module().Tf(), torch.randn(2, 3, size, size) - 2  # negative: a zero pad would show
    diff, _ = zoo.compare(model, Tf(), x)
    assert diff <= 1e-6
    assert_static_shapes(s, "tf", model, x, size=size)
    interpreted = s.interpret("tf", size=size)
    interpreted.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(interpreted.eval()(x), model(x))
    source = s.source()
    assert 'self.pool = _MaxPool2dSame(kernel_size=3, stride=2, padding="same")' in source
    assert "_max_pool2d_same(x, 3, stride=self.stride, padding=self.pad)" in source


@pytest.mark.parametrize(("old", "new"), [
    ('pool = maxpool(3, 2, padding = "same")', "pool = maxpool(3, 2, padding = 1)"),
    ('avg = avgpool(3, 1, padding = "same")', "avg = avgpool(3, 1, padding = 1, count_include_pad = false)"),
])
def test_symmetric_padding_in_its_place_fails(tmp_path, old, new):
    s = load(tmp_path, zoo.mutate(SPEC, old, new))
    with pytest.raises(AssertionError):
        zoo.compare(s.python_module().Tf(), Tf(), torch.randn(2, 3, 16, 16) - 2)


def test_conv_act_names_every_taker(tmp_path):
    with pytest.raises(archc.SpecError) as err:
        load(tmp_path, 'network N() {\n    input 3 x 8 x 8\n    c = conv_act(8, 3, padding = "same")\n}\n'
                       'variant n = N()\n')
    assert err.value.span.line == 3
    assert '"same" (TensorFlow\'s) is taken by conv, ws_conv, maxpool and avgpool' in err.value.render()
