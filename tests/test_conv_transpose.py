"""Transposed convolutions (``ops.conv_transpose``: conv_transpose1d, conv_transpose, conv_transpose3d) against
torch's nn.ConvTranspose1d/2d/3d: the same outputs from one state_dict, the same starting weights for one seed,
parameter counts, static shapes, MACs as torch's flop counter counts them, the graph interpreter (which computes
them as a conv of the input spread apart, not with torch's transposed conv), init rules with torch's fans, deploy;
and the mistakes a spec can make with them."""

from __future__ import annotations

import pytest
import torch
from archtest import assert_static_shapes
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archc
from archc import SpecError
from archc.backends import stats
from archc.backends.interpret import Interpreter

# (input sizes, the statement, torch's module for it)
CASES = {
    "1d": ("4 x 9", "layer = conv_transpose1d(6, 5, stride = 3, padding = 2, output_padding = 1, groups = 2)",
           lambda: nn.ConvTranspose1d(4, 6, 5, stride=3, padding=2, output_padding=1, groups=2)),
    "2d": ("3 x 7 x 5", "layer = conv_transpose(4, 3, 2, padding = 1, output_padding = 1, bias = false)",
           lambda: nn.ConvTranspose2d(3, 4, 3, 2, padding=1, output_padding=1, bias=False)),
    # a padding past dilation * (kernel - 1), which crops the spread input; an output padding under the dilation
    "2d_cropped": ("4 x 6 x 6", "layer = conv_transpose(6, (2, 3), (1, 2), padding = (2, 3), output_padding = (1, 0), "
                                "groups = 2, dilation = (3, 1))",
                   lambda: nn.ConvTranspose2d(4, 6, (2, 3), (1, 2), padding=(2, 3), output_padding=(1, 0), groups=2,
                                              dilation=(3, 1))),
    "3d": ("2 x 3 x 4 x 5", "layer = conv_transpose3d(3, (1, 4, 4), stride = (1, 2, 2), padding = (0, 1, 1), "
                            "padding_mode = \"zeros\")",
           lambda: nn.ConvTranspose3d(2, 3, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1))),
}


def load(text: str) -> archc.Spec:
    return archc.load("up.arch", text)


def one_op(case: str) -> tuple[archc.Spec, tuple[int, ...]]:
    sizes, stmt, _ = CASES[case]
    s = load(f"network Net() {{\n    input {sizes}\n    {stmt}\n}}\nvariant net = Net()\n")
    return s, tuple(int(d) for d in sizes.split(" x "))


@pytest.mark.parametrize("case", list(CASES))
def test_each_rank_computes_what_torch_does(case):
    s, sizes = one_op(case)
    model = s.build("net").eval()
    reference = CASES[case][2]().eval()
    model.load_state_dict({f"layer.{k}": v for k, v in reference.state_dict().items()}, strict=True)
    x = torch.randn(2, *sizes)
    assert torch.equal(model(x), reference(x))
    graph = s.graph("net")
    assert graph.params == sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert_static_shapes(s, "net", model, x)
    # the interpreter, in float64 and with the same weights, from its own definition
    interp = Interpreter(graph).double()
    interp.load_state_dict(model.state_dict(), strict=True)
    assert torch.allclose(interp(x.double()), reference.double()(x.double()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_macs_are_the_flop_counter_s(case):
    """fvcore's, ptflops' and torch's convention: in_channels x out_channels / groups x kernel per input position."""
    s, sizes = one_op(case)
    with torch.device("meta"):
        model = s.build("net").eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, *sizes, device="meta"))
    assert stats.totals(s.graph("net"))["macs"] == counter.get_total_flops() // 2 > 0


DECODER = """\
network Decoder(num_classes = 3) {
    input 8 x 7 x 7
    up1 = conv_transpose(16, 3, stride = 2, padding = 1, output_padding = 1)   # 7 x 7 -> 14 x 14
    bn1 = batchnorm
    relu
    up2 = conv_transpose(8, 4, stride = 2, padding = 1, bias = false)          # 14 x 14 -> 28 x 28
    head = conv(num_classes, 1)
}

variant decoder = Decoder()
"""


class _Decoder(nn.Module):
    def __init__(self, output_padding: int = 1):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(8, 16, 3, stride=2, padding=1, output_padding=output_padding)
        self.bn1 = nn.BatchNorm2d(16)
        self.up2 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, bias=False)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.up2(torch.relu(self.bn1(self.up1(x)))))


def test_a_decoder_starts_seed_for_seed_and_computes_what_torch_s_does():
    s = load(DECODER)
    torch.manual_seed(0)
    ours = s.build("decoder")
    torch.manual_seed(0)
    theirs = _Decoder()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.state_dict().items())
    x = torch.randn(2, 8, 7, 7)
    for training in (True, False):
        assert torch.equal(ours.train(training)(x), theirs.train(training)(x))
    # a mutation shows: another output padding gives another size
    torch.manual_seed(0)
    wrong = _Decoder(output_padding=0)
    assert wrong(x).shape != ours(x).shape


INIT = """\
network Up() {
    input 4 x 5 x 5
    up = conv_transpose(6, 3, groups = 2)
    init conv_transpose.weight = kaiming_normal(mode = "fan_out", nonlinearity = "relu")
    init conv_transpose.bias = uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))
}

network Wave() {
    input 2 x 16
    up = conv_transpose1d(4, 4, stride = 2, bias = false)
    init conv_transpose1d.weight = xavier_uniform()
}

variant up = Up()
variant wave = Wave()
"""


def test_init_rules_use_torch_s_fans_for_a_transposed_weight():
    """Its weight is in x out / groups x kernel: fan_in is out / groups x kernel, fan_out in x kernel."""
    s = load(INIT)
    torch.manual_seed(0)
    ours = s.build("up").state_dict()
    torch.manual_seed(0)
    up = nn.ConvTranspose2d(4, 6, 3, groups=2)
    nn.init.kaiming_normal_(up.weight, mode="fan_out", nonlinearity="relu")
    nn.init.uniform_(up.bias, -1.0 / (3 * 9) ** 0.5, 1.0 / (3 * 9) ** 0.5)
    assert all(torch.equal(ours[f"up.{k}"], v) for k, v in up.state_dict().items())
    torch.manual_seed(0)
    wave = s.build("wave").state_dict()
    torch.manual_seed(0)
    ref = nn.ConvTranspose1d(2, 4, 4, stride=2, bias=False)
    nn.init.xavier_uniform_(ref.weight)
    assert torch.equal(wave["up.weight"], ref.weight)


def test_a_batch_norm_after_one_stays_in_deploy_and_the_outputs_agree():
    s = load(DECODER)
    torch.manual_seed(0)
    model = s.build("decoder")
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 1.5)
        model.bn1.weight.uniform_(0.5, 1.5)
    model.eval()
    deployed = archc.deploy(model, spec=s)
    assert isinstance(deployed.bn1, nn.BatchNorm2d) and isinstance(deployed.up1, nn.ConvTranspose2d)
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        assert torch.allclose(deployed(x), model(x), atol=1e-5)


def test_memory_is_what_torch_measures():
    """What autograd keeps (each transposed conv its input) and what an eval pass makes, as archc stats counts them."""
    from test_stats_memory import measured_activations, measured_saved

    s = load(DECODER)
    model, x = s.build("decoder"), torch.randn(2, 8, 7, 7)
    totals = stats.totals(s.graph("decoder"), 2)
    assert (totals["saved"], totals["activations"]) == (measured_saved(model, x), measured_activations(model, x))


def test_its_diagram_label_says_its_sizes():
    from archc.ops import REGISTRY

    label = REGISTRY["conv_transpose"].label
    assert label({"out_channels": 64, "kernel_size": 4, "stride": 2}) == "conv_transpose 4x4/2, 64"
    assert REGISTRY["conv_transpose3d"].label({"out_channels": 8, "kernel_size": (1, 3, 3), "output_padding": 1,
                                               "groups": 2}) == "conv_transpose3d 1x3x3, 8, output_padding 1, groups 2"


@pytest.mark.parametrize(("sizes", "stmt", "message"), [
    ("8 x 5 x 5", "u = conv_transpose(4, 3, 2, output_padding = 2)",
     "conv_transpose: output_padding 2 must be smaller than the stride (2) or the dilation (1)"),
    ("8 x 5", "u = conv_transpose1d(4, 3, output_padding = 1)",
     "conv_transpose1d: output_padding 1 must be smaller than the stride (1) or the dilation (1)"),
    ("8 x 5 x 5", "u = conv_transpose(6, 3, groups = 4)",
     "conv_transpose: groups=4 must divide both the input (8) and output (6) channels"),
    ("8 x 1 x 1", "u = conv_transpose(4, 1, padding = 1)",
     "conv_transpose: output height would be -1: (1 - 1) * 1 - 2 * 1 + 1 * (1 - 1) + 0 + 1"),
    ("8 x 5 x 5", "u = conv_transpose3d(4, 3)", "conv_transpose3d needs a C x D x H x W volume, got 8 x 5 x 5"),
    ("8 x 2 x 5 x 5", "u = conv_transpose(4, 3)", "conv_transpose needs a C x H x W feature map, got 8 x 2 x 5 x 5"),
])
def test_mistakes_are_located_errors(sizes, stmt, message):
    with pytest.raises(SpecError) as err:
        load(f"network Net() {{\n    input {sizes}\n    {stmt}\n}}\nvariant net = Net()\n").graph("net")
    assert f"up.arch:3:5: error: {message}" in str(err.value)


def test_only_zeros_padding_is_taken():
    """torch's transposed convolutions take no other padding_mode."""
    with pytest.raises(SpecError) as err:
        load('network Net() {\n    input 8 x 5 x 5\n    u = conv_transpose(4, 3, padding_mode = "reflect")\n}\n'
             "variant net = Net()\n").graph("net")
    assert "up.arch:3:30: error: conv_transpose: bad value \"reflect\" for 'padding_mode': input should be 'zeros'" \
        in str(err.value)


class _Up(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)

    def forward(self, x):
        return torch.relu(self.bn(self.up(x)))


class _One(nn.Module):
    def __init__(self, up: nn.Module):
        super().__init__()
        self.up = up

    def forward(self, x):
        return self.up(x)


@pytest.mark.parametrize(("model", "sizes", "ops"), [
    (_Up, (4, 5, 5), ["conv_transpose(6, 3, stride = 2, padding = 1, output_padding = 1, bias = false)"]),
    (lambda: _One(nn.ConvTranspose1d(6, 2, 4, stride=2, dilation=2)), (6, 9),
     ["conv_transpose1d(2, (4,), stride = (2,)", "dilation = (2,)"]),
    (lambda: _One(nn.ConvTranspose3d(2, 4, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), groups=2)), (2, 2, 4, 4),
     ["conv_transpose3d(4, (1, 3, 3), stride = (1, 2, 2), padding = (0, 1, 1)", "groups = 2"])],
    ids=["2d", "1d", "3d"])
def test_torch_s_transposed_convs_lift_to_specs_that_compute_the_same(model, sizes, ops):
    from archc.lifting import lift

    text = lift(model().eval(), torch.randn(1, *sizes))  # proven: the weights load strictly, the outputs agree
    assert all(op in text for op in ops), text
