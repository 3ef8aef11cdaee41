"""The activation and normalisation kinds of language v3's tensor primitives: each one, unnamed (a function call
in forward) and named (a module), computes what torch's own function computes, the graph interpreter agrees
with the generated model on one state_dict, parameters are counted as the model holds them, and every bad
argument is a located error. Each comparison is shown able to fail: the expected output differs from a near
miss (another slope, another dim, the default arguments)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_codegen_cases import build, net
from test_soundness_cases import located_error

from archc.ops import REGISTRY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# (the call as a spec writes it, torch's reference, a near miss the reference must differ from)
ELEMENTWISE = [
    ("leaky_relu", lambda x: F.leaky_relu(x), F.relu),
    ("leaky_relu(0.2)", lambda x: F.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x)),
    ("elu", F.elu, F.relu),
    ("elu(alpha = 0.5)", lambda x: F.elu(x, alpha=0.5), F.elu),
    ("celu(alpha = 1.5)", lambda x: F.celu(x, alpha=1.5), lambda x: F.elu(x, alpha=1.5)),
    ("selu", F.selu, F.elu),
    ("mish", F.mish, F.silu),
    ("softplus", F.softplus, F.relu),
    ("softplus(beta = 2, threshold = 1.5)", lambda x: F.softplus(x, beta=2, threshold=1.5),
     lambda x: F.softplus(x, beta=2)),
    ("hardtanh", F.hardtanh, lambda x: x.clamp(-2, 2)),
    ("hardtanh(-0.5, max_val = 2)", lambda x: F.hardtanh(x, -0.5, 2.0), F.hardtanh),
    ("softsign", F.softsign, torch.tanh),
    ("tanhshrink", F.tanhshrink, torch.tanh),
    ("logsigmoid", F.logsigmoid, lambda x: -F.softplus(x)),
    ("softmax(1)", lambda x: F.softmax(x, 1), lambda x: F.softmax(x, 2)),
    ("softmax(-1)", lambda x: F.softmax(x, -1), lambda x: F.softmax(x, 1)),
    ("log_softmax(dim = 2)", lambda x: F.log_softmax(x, 2), lambda x: F.log_softmax(x, 3)),
    ("softmin(1)", lambda x: F.softmin(x, 1), lambda x: F.softmax(x, 1)),
    ("softmax2d", torch.nn.Softmax2d(), lambda x: F.softmax(x, 2)),
    ("hardshrink", F.hardshrink, lambda x: F.hardshrink(x, 1.0)),
    ("hardshrink(1.5)", lambda x: F.hardshrink(x, 1.5), F.hardshrink),
    ("softshrink(lambd = 0.25)", lambda x: F.softshrink(x, 0.25), F.softshrink),
    ("threshold(0.5, -2.0)", lambda x: F.threshold(x, 0.5, -2.0), lambda x: F.threshold(x, 0.5, 0.0)),
]
FORMS = {  # the module and the function the generated code writes for each kind
    "leaky_relu": ("nn.LeakyReLU", "F.leaky_relu"), "elu": ("nn.ELU", "F.elu"), "celu": ("nn.CELU", "F.celu"),
    "selu": ("nn.SELU", "F.selu"), "mish": ("nn.Mish", "F.mish"), "softplus": ("nn.Softplus", "F.softplus"),
    "hardtanh": ("nn.Hardtanh", "F.hardtanh"), "softsign": ("nn.Softsign", "F.softsign"),
    "tanhshrink": ("nn.Tanhshrink", "F.tanhshrink"), "logsigmoid": ("nn.LogSigmoid", "F.logsigmoid"),
    "softmax": ("nn.Softmax", "F.softmax"), "log_softmax": ("nn.LogSoftmax", "F.log_softmax"),
    "softmin": ("nn.Softmin", "F.softmin"), "softmax2d": ("nn.Softmax2d", "F.softmax"), "hardshrink": ("nn.Hardshrink", "F.hardshrink"),
    "softshrink": ("nn.Softshrink", "F.softshrink"), "threshold": ("nn.Threshold", "F.threshold"),
}


def kind_of(call: str) -> str:
    return call.split("(")[0]


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter and statistic drawn at random, so that a slope or scale read wrong shows."""
    torch.manual_seed(3)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if key.endswith("running_var") else torch.randn_like(t))
    return model


def both(tmp_path: Path, text: str, train: bool = False):
    """The generated model (float64, randomised) and the interpreter holding its state_dict, strictly loaded."""
    spec, model = build(tmp_path, text)
    model = randomised(model.double()).train(train)
    interp = spec.interpret("n").double().train(train)
    interp.load_state_dict(model.state_dict(), strict=True)
    graph = spec.graph("n")
    assert graph.params == sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in interp.parameters())
    return spec, model, interp


def same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def differs(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and (a - b).abs().max() > 1e-3, "the near miss matches: the comparison cannot fail"


def sample(*shape: int) -> torch.Tensor:
    torch.manual_seed(1)
    return 2 * torch.randn(2, *shape, dtype=torch.float64)  # wide enough to cross every threshold and knee


# ------------------------------------------------------------ elementwise activations and softmax


@pytest.mark.parametrize(("call", "ref", "miss"), ELEMENTWISE, ids=[c for c, _, _ in ELEMENTWISE])
@pytest.mark.parametrize("named", [False, True], ids=["function", "module"])
def test_an_activation_computes_what_torch_does(tmp_path, call, ref, miss, named):
    """After a conv (a fresh tensor: in place where the kind may be), unnamed as torch's function, named as
    its module; the interpreter agrees, and the kind costs nothing."""
    kind = REGISTRY[kind_of(call)]
    spec, model, interp = both(tmp_path, net(f"conv = conv(4, 1)\n{'act = ' if named else ''}{call}"))
    source = spec.source()
    module, function = FORMS[kind.name]
    assert (f"self.act = {module}(" in source) if named else (f"{function}(x" in source)
    if not named:
        assert ("inplace=True" in source) == kind.inplace
    x = sample(3, 8, 8)
    with torch.no_grad():
        y = model.conv(x)
        expected = ref(y)
        same(model(x), expected)
        same(interp(x), expected)
        differs(expected, miss(y))
    op = next(op for op in spec.graph("n").ops() if op.op == kind.name)
    assert (op.params, op.macs, op.shape) == (0, 0, (4, 8, 8))


@pytest.mark.parametrize(("call", "ref"), [(c, r) for c, r, _ in ELEMENTWISE], ids=[c for c, _, _ in ELEMENTWISE])
def test_an_activation_on_the_input_leaves_it_unchanged(tmp_path, call, ref):
    """Not in place on the caller's tensor; and in a named seq, the module form."""
    spec, model, interp = both(tmp_path, net(f"{call}\nstage = seq {{ conv(4, 1); {call} }}"))
    assert f"{FORMS[kind_of(call)][0]}(" in spec.source()
    x = sample(3, 8, 8)
    kept = x.clone()
    with torch.no_grad():
        expected = ref(model.stage[0](ref(x)))
        same(model(x), expected)
        same(interp(x), expected)
    assert torch.equal(x, kept)


@pytest.mark.parametrize(("body", "size", "ref", "miss"), [
    ("flatten\nsoftmax(1)", "2 x 3 x 3", lambda x: F.softmax(x.flatten(1), 1), lambda x: x.flatten(1).sigmoid()),
    ("to_tokens\nsoftmax(-1)", "4 x 2 x 3", lambda x: F.softmax(x.flatten(2).transpose(1, 2), -1),
     lambda x: F.softmax(x.flatten(2).transpose(1, 2), 1)),
    ("to_tokens\ns = log_softmax(1)", "4 x 2 x 3", lambda x: F.log_softmax(x.flatten(2).transpose(1, 2), 1),
     lambda x: F.log_softmax(x.flatten(2).transpose(1, 2), 2)),
    ("permute([0, 2, 3, 1])\nsoftmax(3)", "4 x 2 x 3", lambda x: F.softmax(x.permute(0, 2, 3, 1), 3),
     lambda x: F.softmax(x.permute(0, 2, 3, 1), 1)),
])
def test_softmax_dim_counts_the_batch_in_every_layout(tmp_path, body, size, ref, miss):
    """dim is torch's, the batch as 0 (as permute's dims): the features of flat features and of tokens are
    -1, a map's channels 1, a channels-last map's 3."""
    spec, model, interp = both(tmp_path, net(body, size=size))
    x = sample(*map(int, size.split(" x ")))
    with torch.no_grad():
        same(model(x), ref(x))
        same(interp(x), ref(x))
        differs(ref(x), miss(x))


@pytest.mark.parametrize(("call", "module"), [("elu", "nn.ELU"), ("hardtanh", "nn.Hardtanh"), ("mish", "nn.Mish"),
                                              ("leaky_relu", "nn.LeakyReLU"), ("logsigmoid", "nn.LogSigmoid")])
def test_an_activation_passes_as_a_value(tmp_path, call, module):
    """Parameter-free with its defaults, so a block's parameter may hold it, as it holds relu."""
    blocks = "block Unit(c, act = relu) {\n    conv = conv(c, 1)\n    act = act\n}\n"
    spec, model, interp = both(tmp_path, net(f"u = Unit(4, act = {call})", blocks=blocks))
    assert f"act={module}" in spec.source()
    ref = {"elu": F.elu, "hardtanh": F.hardtanh, "mish": F.mish, "leaky_relu": F.leaky_relu,
           "logsigmoid": F.logsigmoid}[call]
    x = sample(3, 8, 8)
    with torch.no_grad():
        expected = ref(model.u.conv(x))
        same(model(x), expected)
        same(interp(x), expected)
        differs(expected, F.relu(model.u.conv(x)))


# ------------------------------------------------------------ glu: the size halves


@pytest.mark.parametrize(("body", "size", "ref", "miss"), [
    ("conv = conv(8, 1)\nglu(1)\nafter = conv(3, 1)", "3 x 4 x 4", lambda m, x: m.after(F.glu(m.conv(x), 1)),
     lambda m, x: m.after(F.glu(m.conv(x).flip(1), 1))),
    ("conv = conv(4, 1)\ng = glu\nafter = conv(3, 1)", "3 x 4 x 4", lambda m, x: m.after(m.g(m.conv(x))),
     lambda m, x: m.after(F.glu(m.conv(x), 2).repeat(1, 1, 2, 1)[..., :2])),
    ("to_tokens\nglu(-1)\nproj = linear(5)", "6 x 2 x 2", lambda m, x: m.proj(F.glu(x.flatten(2).transpose(1, 2))),
     lambda m, x: m.proj(F.glu(x.flatten(2).transpose(1, 2)) * 2)),
])
def test_glu_halves_its_dimension_and_what_follows_is_sized_by_the_half(tmp_path, body, size, ref, miss):
    spec, model, interp = both(tmp_path, net(body, size=size))
    x = sample(*map(int, size.split(" x ")))
    with torch.no_grad():
        same(model(x), ref(model, x))
        same(interp(x), ref(model, x))
        differs(ref(model, x), miss(model, x))


def test_glu_of_an_odd_size_is_a_located_error(tmp_path):
    located_error(tmp_path, net("conv = conv(5, 1)\nglu(1)"), "glu halves dimension 1, of odd size 5")


# ------------------------------------------------------------ prelu


@pytest.mark.parametrize(("body", "size", "slopes"), [
    ("conv = conv(4, 1)\nact = prelu(4, init = 0.1)", "3 x 5 x 5", 4),
    ("conv = conv(4, 1)\nact = prelu", "3 x 5 x 5", 1),
    ("global_avgpool\nact = prelu(num_parameters = 3)", "3 x 5 x 5", 3),
    ("to_tokens\nact = prelu(init = -0.5)", "3 x 2 x 2", 1),
    ("stage = seq { conv(4, 1); prelu(4) }", "3 x 5 x 5", 4),
])
def test_prelu_learns_its_slopes(tmp_path, body, size, slopes):
    """One slope or one per channel, a parameter `weight` that loads strictly into the interpreter."""
    spec, model, interp = both(tmp_path, net(body, size=size))
    prelu = next(m for m in model.modules() if isinstance(m, torch.nn.PReLU))
    assert prelu.weight.shape == (slopes,)
    assert {"act.weight", "stage.1.weight"} & set(model.state_dict())
    x = sample(*map(int, size.split(" x ")))
    before = {"conv": lambda x: model.conv(x), "global_avgpool": lambda x: x.mean((2, 3)),
              "to_tokens": lambda x: x.flatten(2).transpose(1, 2), "stage": lambda x: model.stage[0](x)}
    with torch.no_grad():
        y = before[body.split()[0]](x)
        expected = F.prelu(y, prelu.weight)
        same(model(x), expected)
        same(interp(x), expected)
        differs(expected, F.leaky_relu(y, 0.25))
    op = next(op for op in spec.graph("n").ops() if op.op == "prelu")
    assert (op.params, op.macs) == (slopes, 0)


def test_prelu_initialises_its_slopes_to_init(tmp_path):
    spec, model = build(tmp_path, net("conv = conv(4, 1)\nact = prelu(4, init = 0.1)"))
    assert torch.equal(model.act.weight.detach(), torch.full((4,), 0.1))


# ------------------------------------------------------------ instance norm


@pytest.mark.parametrize(("args", "params"), [("", 0), ("(eps = 0.001, affine = true)", 8),
                                              ("(affine = true, track_running_stats = true, momentum = 0.3)", 8),
                                              ("(track_running_stats = true)", 0)])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_instancenorm_normalises_each_sample_and_channel(tmp_path, args, params, train):
    """Over each sample's H x W: with running statistics, those in eval and updated alike in training."""
    spec, model, interp = both(tmp_path, net(f"conv = conv(4, 3, padding = 1)\nnorm = instancenorm{args}",
                                             size="3 x 6 x 5"), train)
    norm = model.norm
    tracked = norm.track_running_stats
    eps = 0.001 if "eps" in args else 1e-5
    x = sample(3, 6, 5)
    with torch.no_grad():
        y = model.conv(x)
        stats = (norm.running_mean.clone(), norm.running_var.clone()) if tracked else (None, None)
        own = train or not tracked  # the sample's own statistics, else the running ones
        expected = F.instance_norm(y, *stats, norm.weight, norm.bias, use_input_stats=own, momentum=0.0, eps=eps)
        same(model(x), expected)
        same(interp(x), expected)
        if tracked:
            differs(expected, F.instance_norm(y, *stats, norm.weight, norm.bias, use_input_stats=not own, eps=eps))
        else:
            differs(expected, F.instance_norm(y, weight=norm.weight, bias=norm.bias, eps=10.0))
    state, theirs = model.state_dict(), interp.state_dict()
    assert state.keys() == theirs.keys()
    for key in state:
        same(theirs[key], state[key])
    if train and tracked:  # updated, and alike (above)
        assert not torch.equal(norm.running_mean, stats[0]) and not torch.equal(norm.running_var, stats[1])
    op = next(op for op in spec.graph("n").ops() if op.op == "instancenorm")
    assert (op.params, op.macs) == (params, 0)


@pytest.mark.parametrize(("args", "params"), [("(2)", 16), ("(4, eps = 0.001, affine = false)", 0), ("(1)", 16),
                                              ("(8)", 16), ("(1, eps = 1e-6, bias = false)", 8)])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_groupnorm_normalises_each_group_of_channels(tmp_path, args, params, train):
    """Over each group of channels and H x W together: torch's group norm, and the interpreter's own."""
    spec, model, interp = both(tmp_path, net(f"conv = conv(8, 3, padding = 1)\nnorm = groupnorm{args}",
                                             size="3 x 6 x 5"), train)
    norm = model.norm
    groups = int(args[1])
    assert isinstance(norm, torch.nn.GroupNorm) and (norm.num_groups, norm.num_channels) == (groups, 8)
    x = sample(3, 6, 5)
    with torch.no_grad():
        y = model.conv(x)
        expected = F.group_norm(y, groups, norm.weight, norm.bias, eps=norm.eps)
        same(model(x), expected)
        same(interp(x), expected)
        differs(expected, F.group_norm(y, 8 if groups != 8 else 1, norm.weight, norm.bias, eps=norm.eps))
    op = next(op for op in spec.graph("n").ops() if op.op == "groupnorm")
    assert (op.params, op.macs) == (params, 0) and sum(p.numel() for p in model.norm.parameters()) == params


# ------------------------------------------------------------ bad arguments: located errors


@pytest.mark.parametrize(("body", "fragment"), [
    ("hardtanh(min_val = 1, max_val = -1)", "hardtanh: min_val (1.0) must be below max_val (-1.0)"),
    ("hardtanh(0.5, 0.5)", "must be below max_val"),
    ("softplus(beta = 0)", "softplus: bad value 0 for 'beta': input should be greater than 0"),
    ("softplus(threshold = true)", "bad value true for 'threshold'"),
    ("leaky_relu(negative_slope = true)", "bad value true for 'negative_slope'"),
    ("celu(alpha = 0)", "celu: bad value 0 for 'alpha'"),
    ("softmax", "softmax is missing its argument 'dim'"),
    ("softmax(0)", "softmax: dim 0 is the batch"),
    ("log_softmax(-4)", "log_softmax: dim -4 is the batch"),
    ("softmax(4)", "softmax: dim 4 is out of range"),
    ("softmax(1.0)", "bad value 1.0 for 'dim'"),
    ("flatten\nsoftmax(2)", "softmax: dim 2 is out of range for flat features"),
    ("c = conv(4, 1)\np = prelu(3)", "prelu: 3 slopes for 4 channels"),
    ("to_tokens\np = prelu(3)", "prelu: 3 slopes need one per channel"),
    ("prelu", "this prelu has parameters and needs a name"),
    ("p = prelu(0)", "prelu: bad value 0 for 'num_parameters'"),
    ("adaptive_avgpool(1)\nn = instancenorm", "instancenorm: a 1 x 1 map has one value per channel"),
    ("flatten\nn = instancenorm", "instancenorm needs a C x H x W"),
    ("n = instancenorm(momentum = 2)", "instancenorm: bad value 2 for 'momentum'"),
    ("n = instancenorm(eps = 0)", "instancenorm: bad value 0 for 'eps'"),
    ("c = conv(6, 1)\nn = groupnorm(4)", "groupnorm: 6 channels do not split into 4 groups"),
    ("n = groupnorm(0)", "groupnorm: bad value 0 for 'num_groups'"),
    ("flatten\nn = groupnorm(1)", "groupnorm needs a C x H x W"),
])
def test_a_bad_argument_is_a_located_error(tmp_path, body, fragment):
    located_error(tmp_path, net(body), fragment)


def test_the_errors_say_how_to_fix_them(tmp_path):
    hints = {
        "hardtanh(1, -1)": "hint: hardtanh(min_val, max_val) clamps to [min_val, max_val]",
        "softmax(0)": "hint: dim counts the batch as 0: here 1 to 3 (or -1 to -3); the features are dim 1",
        "to_tokens\nlog_softmax(3)": "the features are dim 2",
        "c = conv(4, 1)\np = prelu(3)": "hint: one per channel, prelu(4), or one for all, prelu(1)",
        "permute([0, 2, 3, 1])\np = prelu(3)": "hint: learn one slope: prelu(1)",
        "adaptive_avgpool(1)\nn = instancenorm": "hint: normalise before the map is pooled to 1 x 1",
    }
    for body, hint in hints.items():
        located_error(tmp_path, net(body), hint)


def test_an_op_with_a_required_argument_is_no_value(tmp_path):
    blocks = "block Unit(c, act = relu) {\n    conv = conv(c, 1)\n    act = act\n}\n"
    located_error(tmp_path, net("u = Unit(4, act = softmax)", blocks=blocks), "undefined name 'softmax'")


def test_in_place_forms_follow_torchs_autograd(tmp_path):
    """Where an in-place form's backward reads its output (leaky_relu, elu, celu, selu, as relu's), the next
    layer does not work in place on it; where it does not (hardtanh, mish), it may. Backward then runs."""
    body = "conv = conv(4, 1)\nleaky_relu(0.1)\nelu\nsoftplus\nhardtanh\nmish\ncelu\nselu\nrelu"
    spec, model = build(tmp_path, net(body))
    lines = [line.strip() for line in spec.source().splitlines() if "= F." in line]
    assert [line.split("(")[0][6:] for line in lines if "inplace=True" in line] == \
        ["leaky_relu", "hardtanh", "mish", "celu"]
    x = torch.randn(2, 3, 8, 8)
    model(x).sum().backward()
    assert model.conv.weight.grad is not None


@pytest.mark.parametrize(("body", "ref"), [
    ("leaky_relu(-0.1)", lambda y: F.leaky_relu(y, -0.1)),
    ("elu(alpha = -1)", lambda y: F.elu(y, -1.0)),
    ("s = seq { conv(4, 1); leaky_relu(-0.3) }", None),
])
def test_a_negative_slope_is_computed_out_of_place(tmp_path, body, ref):
    """torch cannot differentiate leaky_relu or elu computed in place with a negative slope: archc writes them
    out of place (a slope that is no constant too), and in place where the slope allows it."""
    spec, model, interp = both(tmp_path, net(f"conv = conv(4, 3, padding = 1)\n{body}"), True)
    source = spec.source()
    assert "inplace=True" not in source
    x = sample(3, 8, 8).requires_grad_()
    out = model(x)
    if ref is not None:
        same(out, ref(model.conv(x)))
    same(out, interp(x))
    out.sum().backward()  # in place, this raised
    assert x.grad is not None
    assert "inplace=True" in build(tmp_path, net("conv = conv(4, 3, padding = 1)\nleaky_relu(0.1)"))[0].source()

