"""1-D and 3-D convolution and pooling (``ops.conv_nd``) and batch norm over signals and volumes, against torch's
own modules: the same outputs from one state_dict, parameter counts, static shapes, MACs, the graph interpreter;
and the mistakes a spec can make with them."""

from __future__ import annotations

import pytest
import torch
from archtest import assert_static_shapes, graph_breaks
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archc
from archc import SpecError
from archc.backends import stats
from archc.backends.interpret import Interpreter

# (input sizes, the statement, torch's module for it)
CASES = {
    "conv1d": ("4 x 30", "layer = conv1d(6, 5, stride = 2, padding = 2, dilation = 1, groups = 2, bias = false)",
               lambda: nn.Conv1d(4, 6, 5, stride=2, padding=2, groups=2, bias=False)),
    "conv1d_dilated": ("3 x 17", "layer = conv1d(5, 3, dilation = 3)", lambda: nn.Conv1d(3, 5, 3, dilation=3)),
    "conv3d": ("3 x 5 x 9 x 8", "layer = conv3d(4, (1, 3, 3), stride = (1, 2, 2), padding = (0, 1, 1))",
               lambda: nn.Conv3d(3, 4, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
    "conv3d_groups": ("4 x 6 x 6 x 6", "layer = conv3d(8, 3, padding = 1, dilation = 2, groups = 4)",
                      lambda: nn.Conv3d(4, 8, 3, padding=1, dilation=2, groups=4)),
    "maxpool1d": ("3 x 11", "layer = maxpool1d(3, stride = 2, padding = 1, ceil_mode = true)",
                  lambda: nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True)),
    "avgpool1d": ("3 x 11", "layer = avgpool1d(4, padding = 2, count_include_pad = false)",
                  lambda: nn.AvgPool1d(4, padding=2, count_include_pad=False)),
    "adaptive_avgpool1d": ("3 x 11", "layer = adaptive_avgpool1d(4)", lambda: nn.AdaptiveAvgPool1d(4)),
    "maxpool3d": ("2 x 5 x 7 x 7", "layer = maxpool3d((1, 3, 3), stride = 2, dilation = (1, 2, 1))",
                  lambda: nn.MaxPool3d((1, 3, 3), stride=2, dilation=(1, 2, 1))),
    "avgpool3d": ("2 x 5 x 7 x 7", "layer = avgpool3d(2, ceil_mode = true)", lambda: nn.AvgPool3d(2, ceil_mode=True)),
    "adaptive_avgpool3d": ("2 x 5 x 7 x 7", "layer = adaptive_avgpool3d((1, 2, 3))",
                           lambda: nn.AdaptiveAvgPool3d((1, 2, 3))),
    "adaptive_maxpool1d": ("3 x 11", "layer = adaptive_maxpool1d(4)", lambda: nn.AdaptiveMaxPool1d(4)),
    "adaptive_maxpool3d": ("2 x 5 x 7 x 7", "layer = adaptive_maxpool3d((2, 3, 1))",
                           lambda: nn.AdaptiveMaxPool3d((2, 3, 1))),
    # the norms over a map's positions, over a signal's or a volume's
    "groupnorm1d": ("6 x 9", "layer = groupnorm(3, eps = 0.001)", lambda: nn.GroupNorm(3, 6, eps=0.001)),
    "groupnorm3d": ("4 x 3 x 5 x 4", "layer = groupnorm(2, affine = false)", lambda: nn.GroupNorm(2, 4, affine=False)),
    "instancenorm1d": ("3 x 9", "layer = instancenorm(affine = true, track_running_stats = true)",
                       lambda: nn.InstanceNorm1d(3, affine=True, track_running_stats=True)),
    "instancenorm3d": ("3 x 2 x 4 x 5", "layer = instancenorm(eps = 0.01)", lambda: nn.InstanceNorm3d(3, eps=0.01)),
    "lrn1d": ("7 x 9", "layer = lrn(3, alpha = 0.01, k = 2.0)", lambda: nn.LocalResponseNorm(3, alpha=0.01, k=2.0)),
    "lrn3d": ("6 x 2 x 3 x 4", "layer = lrn(4, beta = 0.5)", lambda: nn.LocalResponseNorm(4, beta=0.5)),
    "batchnorm1d": ("3 x 9", "layer = conv1d(4, 1)\n    bn = batchnorm(eps = 0.001)", None),
    "batchnorm3d": ("3 x 2 x 4 x 4", "layer = conv3d(4, 1)\n    bn = batchnorm(eps = 0.001)", None),
}


def load(tmp_path, text: str) -> archc.Spec:
    path = tmp_path / "nd.arch"
    path.write_text(text)
    return archc.load(path)


def one_op(tmp_path, case: str) -> tuple[archc.Spec, tuple[int, ...]]:
    sizes, stmt, _ = CASES[case]
    s = load(tmp_path, f"network Net() {{\n    input {sizes}\n    {stmt}\n}}\nvariant net = Net()\n")
    return s, tuple(int(d) for d in sizes.split(" x "))


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][2] is not None])
def test_each_op_computes_what_torch_does(tmp_path, case):
    s, sizes = one_op(tmp_path, case)
    model = s.build("net").eval()
    reference = CASES[case][2]().eval()
    theirs = {f"layer.{k}": v for k, v in reference.state_dict().items()}
    model.load_state_dict(theirs, strict=True)  # the same keys and shapes, and no others
    x = torch.randn(2, *sizes)
    assert torch.equal(model(x), reference(x))
    graph = s.graph("net")
    assert graph.params == sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert_static_shapes(s, "net", model, x)


@pytest.mark.parametrize(("case", "cls"), [("batchnorm1d", nn.BatchNorm1d), ("batchnorm3d", nn.BatchNorm3d)])
def test_batchnorm_over_a_signal_or_a_volume_is_torch_s_module_of_that_rank(tmp_path, case, cls):
    s, sizes = one_op(tmp_path, case)
    model = s.build("net")
    assert type(model.bn) is cls and model.bn.eps == 0.001
    x = torch.randn(3, *sizes)
    reference = cls(4, eps=0.001)
    reference.load_state_dict(model.bn.state_dict(), strict=True)
    assert torch.equal(model(x), reference(model.layer(x)))  # in training: the batch's statistics
    assert_static_shapes(s, "net", model, x)


@pytest.mark.parametrize("case", list(CASES))
def test_the_interpreter_agrees(tmp_path, case):
    s, sizes = one_op(tmp_path, case)
    torch.manual_seed(0)
    model = s.build("net").double()
    interp = Interpreter(s.graph("net")).double()
    interp.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *sizes, dtype=torch.float64)
    for training in (True, False):
        model.train(training)
        interp.train(training)
        assert torch.allclose(model(x), interp(x), rtol=1e-12, atol=1e-12)


NETWORKS = """\
network Signal(num_classes = 5) {
    input 4 x 50
    conv1 = conv1d(8, 5, stride = 2, padding = 2, bias = false)
    bn1 = batchnorm
    relu
    maxpool1d(3, stride = 2, padding = 1)
    conv2 = conv1d(8, 3, dilation = 2, groups = 4)
    adaptive_avgpool1d(3)
    flatten
    fc = linear(num_classes)
}

network Volume(num_classes = 5) {
    input 3 x 6 x 16 x 16
    conv1 = conv3d(8, (1, 3, 3), stride = (1, 2, 2), padding = (0, 1, 1))
    bn1 = batchnorm
    relu
    maxpool3d(2, padding = 1)
    conv2 = conv3d(16, 3, padding = 1, groups = 2, bias = false)
    avgpool3d((1, 2, 2))
    adaptive_avgpool3d(1)
    flatten
    fc = linear(num_classes)
}

variant signal = Signal()
variant volume = Volume()
"""


@pytest.mark.parametrize("variant", ["signal", "volume"])
def test_macs_agree_with_torch_flop_counter(tmp_path, variant):
    s = load(tmp_path, NETWORKS)
    graph = s.graph(variant)
    with torch.device("meta"):
        model = s.build(variant).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, *graph.node(graph.input).shape, device="meta"))
    assert stats.totals(graph)["macs"] == counter.get_total_flops() // 2 > 0


def test_a_network_of_volumes_has_no_graph_breaks(tmp_path):
    s = load(tmp_path, NETWORKS)
    model = s.build("volume").eval()
    assert graph_breaks(model, torch.randn(1, 3, 6, 16, 16)) == 0


def test_two_input_sizes_are_tokens_unless_the_first_layer_takes_a_signal(tmp_path):
    tokens = "network Tokens() {\n    input 4 x 50\n    fc = linear(3)\n}\nvariant tokens = Tokens()\n"
    s = load(tmp_path, NETWORKS + tokens)
    assert s.graph("signal").node("input").layout == "CL"
    assert s.build("signal").conv1.in_channels == 4
    assert s.graph("tokens").node("input").layout == "LD" and s.build("tokens").fc.in_features == 50
    assert s.graph("volume").node("input").layout == "CDHW"


@pytest.mark.parametrize(("sizes", "stmt", "message"), [
    ("3 x 16 x 16", "c = conv3d(8, 3)", "conv3d needs a C x D x H x W volume, got 3 x 16 x 16"),
    ("3 x 16 x 16", "c = conv1d(8, 3)", "conv1d needs a C x L signal, got 3 x 16 x 16"),
    ("3 x 4 x 8 x 8", "c = conv(8, 3)", "conv needs a C x H x W feature map, got 3 x 4 x 8 x 8"),
    ("3 x 4", "c = conv1d(8, 5)", "conv1d: kernel (5) is larger than the padded input length (4 + 2*0)"),
    ("3 x 2 x 8 x 8", "c = conv3d(8, 3)", "conv3d: kernel (3) is larger than the padded input depth (2 + 2*0)"),
    ("3 x 9", "maxpool1d(2, padding = 2)", "maxpool1d: padding 2 must be at most half the kernel size 2"),
    ("3 x 9", "c = conv1d(4, 3, groups = 2)", "conv1d: groups=2 must divide both the input (3) and output (4)"),
    ("3 x 2 x 8 x 8", "c = conv3d(4, (1, 3))", "conv3d: bad value (1, 3) for 'kernel_size'"),
    ("3 x 2 x 8 x 8", "avgpool3d((1, 2, 9))", "avgpool3d: kernel (9) is larger than the padded input width (8 + 2*0)"),
    ("3 x 9", "c = conv1d(6, 9)\n    i = instancenorm", "instancenorm: a signal of length 1 has one value per channel"),
    ("3 x 2 x 8 x 8", "adaptive_maxpool3d(1)\n    i = instancenorm", "instancenorm: a 1 x 1 x 1 volume has one value"),
    ("6 x 9", "g = groupnorm(4)", "groupnorm: 6 channels do not split into 4 groups"),
])
def test_mistakes_are_located_errors(tmp_path, sizes, stmt, message):
    with pytest.raises(SpecError) as err:
        load(tmp_path, f"network Net() {{\n    input {sizes}\n    {stmt}\n}}\nvariant net = Net()\n").graph("net")
    column = 19 if "bad value" in message else 5  # at the argument, or at the statement
    line = 3 + stmt.count("\n")  # the last statement's
    assert f"{tmp_path / 'nd.arch'}:{line}:{column}: error: {message}" in str(err.value)


def test_the_wrong_rank_says_how_to_declare_a_volume(tmp_path):
    with pytest.raises(SpecError) as err:
        load(tmp_path, "network Net() {\n    input 3 x 16 x 16\n    c = conv3d(8, 3)\n}\nvariant net = Net()\n")
    assert "hint: a volume is an input of four sizes, 'input C x D x H x W'" in str(err.value)


class _Signal(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm1d(4)
        self.pool = nn.MaxPool1d(2)

    def forward(self, x):
        return self.pool(self.bn(self.conv(x)))


class _Volume(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.bn = nn.BatchNorm3d(4)
        self.pool = nn.AvgPool3d(2)

    def forward(self, x):
        return self.pool(self.bn(self.conv(x)).relu())


@pytest.mark.parametrize(("model", "sizes", "op"), [(_Signal, (3, 8), "conv1d(4, (3,)"),
                                                    (_Volume, (3, 2, 8, 8), "conv3d(4, (1, 3, 3)")])
def test_torch_s_1d_and_3d_layers_lift_to_specs_that_compute_the_same(model, sizes, op):
    from archc.lifting import lift

    text = lift(model().eval(), torch.randn(1, *sizes))  # proven: the weights load strictly, the outputs agree
    assert f"input {' x '.join(map(str, sizes))}\n" in text and op in text and "batchnorm" in text


INIT = """\
network V() {
    input 2 x 4 x 6 x 6
    conv1 = conv3d(4, (1, 3, 3), padding = (0, 1, 1))
    bn = batchnorm
    flatten
    fc = linear(3)
    init conv3d.weight = normal(0, 1.0 / sqrt(fan_in))
    init conv3d.bias = 0
}

network S() {
    input 3 x 20
    conv1 = conv1d(6, 5, bias = false)
    bn = batchnorm
    init conv1d.weight = kaiming_normal(mode = "fan_out", nonlinearity = "relu")
    init batchnorm.weight = 0.5
}

variant v = V()
variant s = S()
"""


def _volume_reference():
    conv, bn, fc = nn.Conv3d(2, 4, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(4), nn.Linear(4 * 4 * 6 * 6, 3)
    nn.init.normal_(conv.weight, 0, 1.0 / (2 * 9) ** 0.5)
    nn.init.constant_(conv.bias, 0)
    return {"conv1": conv, "bn": bn, "fc": fc}


def _signal_reference():
    conv, bn = nn.Conv1d(3, 6, 5, bias=False), nn.BatchNorm1d(6)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.constant_(bn.weight, 0.5)
    return {"conv1": conv, "bn": bn}


@pytest.mark.parametrize(("variant", "make"), [("v", _volume_reference), ("s", _signal_reference)])
def test_init_rules_reach_conv1d_and_conv3d_seed_for_seed(tmp_path, variant, make):
    s = load(tmp_path, INIT)
    torch.manual_seed(0)
    ours = s.build(variant).state_dict()
    torch.manual_seed(0)
    theirs = {f"{name}.{k}": v for name, m in make().items() for k, v in m.state_dict().items()}
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
