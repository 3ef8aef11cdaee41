"""TensorFlow's "same" padding (conv and ws_conv ``padding = "same"``): ceil(size / stride) outputs, the input padded
by its size with the odd row or column at the bottom or right. Held to timm's Conv2dSame (its weight and bias under
their names), on sizes and kernels that pad evenly and unevenly; symmetric padding in its place fails; archc.deploy
leaves such a conv unfused; any other word is a located error."""

import pytest
import torch
import zoo
from archtest import assert_static_shapes
from timm.layers import Conv2dSame
from torch import nn

import archc

SPEC = """\
block Down(c, stride, pad = "same") {
    conv = conv(c, 3, stride, padding = pad)
    relu
}

network Tf(size = 15) {
    input 3 x size x size
    stem = conv(8, 3, 2, padding = "same")       # 15 -> 8 (1 and 1), 16 -> 8 (0 and 1)
    down = Down(8, 2)
    even = conv(8, 4, padding = "same")          # an even kernel at stride 1: 1 above, 2 below
    wide = conv(8, 3, 2, padding = "same", dilation = 2)
    plain = Down(8, 1, pad = 1)                  # the same class, a number: padding=1 as nn.Conv2d takes it
    head = conv(8, 1)
}
variant tf = Tf()
"""


class Tf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, 2)
        self.down = nn.Module()
        self.down.conv = Conv2dSame(8, 8, 3, 2)
        self.even = Conv2dSame(8, 8, 4)
        self.wide = Conv2dSame(8, 8, 3, 2, dilation=2)
        self.plain = nn.Module()
        self.plain.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.stem(x)
        x = self.down.conv(x).relu()
        x = self.wide(self.even(x))
        return self.head(self.plain.conv(x).relu())


def load(tmp_path, text: str = SPEC) -> archc.Spec:
    path = tmp_path / "tf.arch"
    path.write_text(text)
    return archc.load(path)


@pytest.mark.parametrize("size", [15, 16, 31])
def test_matches_timms_conv2d_same(tmp_path, size):
    s = load(tmp_path)
    model, x = s.python_module().Tf(), torch.randn(2, 3, size, size)  # its input's size: any, as timm's
    torch.manual_seed(0)
    diff, _ = zoo.compare(model, Tf(), x)
    assert diff <= 1e-6
    assert_static_shapes(s, "tf", model, x, size=size)
    assert "self.stem = _Conv2dSame(3, 8, kernel_size=3, stride=2, padding=\"same\")" in s.source()


def test_even_padding_in_its_place_fails(tmp_path):
    s = load(tmp_path, zoo.mutate(SPEC, 'stem = conv(8, 3, 2, padding = "same")', "stem = conv(8, 3, 2, padding = 1)"))
    torch.manual_seed(0)
    with pytest.raises(AssertionError):
        zoo.compare(s.python_module().Tf(), Tf(), torch.randn(2, 3, 16, 16))


def test_deploy_leaves_it_unfused_and_equal(tmp_path):
    s = load(tmp_path)
    model, x = s.build("tf").eval(), torch.randn(2, 3, 15, 15)
    deployed = archc.deploy(model, spec=s)
    # a conv padded "same" in any instance stays as it is (Down's in both); another becomes a conv_act
    assert type(deployed.stem).__name__ == type(deployed.plain.conv).__name__ == "_Conv2dSame"
    assert type(deployed.head).__name__ == "_ConvAct2d"
    with torch.no_grad():
        assert torch.allclose(deployed(x), model(x), atol=1e-6)


@pytest.mark.parametrize(("call", "hint"), [
    ('conv(8, 3, padding = "valid")', "TensorFlow's \"valid\" is padding = 0"),
    ('conv(8, 3, padding = "SAME")', 'a padding is a number, a pair, or "same"'),
    ('conv_act(8, 3, padding = "same")', '"same" (TensorFlow\'s) is taken by conv, ws_conv, maxpool and avgpool'),
])
def test_another_word_is_a_located_error(tmp_path, call, hint):
    with pytest.raises(archc.SpecError) as err:
        load(tmp_path, f"network N() {{\n    input 3 x 8 x 8\n    c = {call}\n}}\nvariant n = N()\n")
    assert err.value.span.line == 3 and hint in err.value.render()
