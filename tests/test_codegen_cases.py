"""Regression cases of the "ok means correct" issue for the code generator: specs that checked ok and then
gave a module that did not import, did not construct, or computed something else. Each one now either
builds into a module whose outputs are checked against what the spec means, computed here with torch's
functions, or is a located error that says what is wrong."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_soundness_cases import located_error

import archc
from archc.backends.python import ir, irparse, irprint


def net(body: str, params: str = "", name: str = "N", blocks: str = "", size: str = "3 x 8 x 8") -> str:
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"{blocks}network {name}({params}) {{\n    input {size}\n{lines}\n}}\nvariant n = {name}()\n"


def build(tmp_path: Path, text: str, variant: str = "n", **kwargs) -> tuple[archc.Spec, torch.nn.Module]:
    path = tmp_path / "case.arch"
    path.write_text(text)
    spec = archc.load(path)
    torch.manual_seed(0)
    return spec, spec.build(variant, **kwargs)


def test_a_residual_scale_keeps_its_parentheses(tmp_path):
    spec, model = build(tmp_path, net("residual(scale = 1.0 - slope) { relu }", "slope = 0.4"))
    assert "out * (1.0 - self.slope) + identity" in spec.source()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model.eval()(x), F.relu(x) * (1 - 0.4) + x, rtol=0, atol=1e-6)
    other = spec.build("n", slope=-2.5).eval()
    torch.testing.assert_close(other(x), F.relu(x) * 3.5 + x, rtol=0, atol=1e-6)


def test_a_scale_read_by_a_nested_expression(tmp_path):
    spec, model = build(tmp_path, net("residual(scale = a - b * (a - 1)) { relu }", "a = 3, b = 2"))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model.eval()(x), F.relu(x) * (3 - 2 * 2) + x, rtol=0, atol=1e-6)


def test_a_conditional_quoted_name_constructs_either_way(tmp_path):
    text = net('"proj-1" = conv(8, 1) if proj', "proj = true") + "variant m = N(proj = false)\n"
    spec, model = build(tmp_path, text)
    assert sorted(model.state_dict()) == ["proj-1.bias", "proj-1.weight"]
    x = torch.randn(2, 3, 8, 8)
    conv = model.get_submodule("proj-1")
    torch.testing.assert_close(model(x), F.conv2d(x, conv.weight, conv.bias), rtol=0, atol=0)
    skipped = spec.build("m")
    assert list(skipped.state_dict()) == []
    assert torch.equal(skipped(x), x)


def test_a_quoted_shortcut_under_a_condition_constructs(tmp_path):
    blocks = """block B(c, down = true) {
    residual {
        c1 = conv(c, 3, padding = 1)
    } shortcut if down {
        "shortcut" = seq { proj = conv(c, 1); bn = batchnorm }
    }
}
"""
    spec, model = build(tmp_path, net("b = B(8)\nc = B(8, down = false)", blocks=blocks, size="8 x 8 x 8"))
    assert "b.shortcut.proj.weight" in model.state_dict() and not any(k.startswith("c.shortcut") for k in
                                                                       model.state_dict())
    model.eval()
    x = torch.randn(2, 8, 8, 8)
    b, c = model.b, model.c
    y = b.c1(x) + b.shortcut.bn(b.shortcut.proj(x))
    torch.testing.assert_close(model(x), c.c1(y) + y, rtol=0, atol=1e-6)


def test_learned_tensors_named_in_a_loop_are_parameters(tmp_path):
    spec, model = build(tmp_path, net("for j in range(2) { w{j} = learned_scale((3, 1, 1), init = 0.5 + j) }"))
    assert sorted(dict(model.named_parameters())) == ["w0", "w1"]
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), x * 0.5 * 1.5, rtol=0, atol=1e-6)


def test_a_let_that_sets_the_width_is_in_init_too(tmp_path):
    blocks = "block B(c) {\n    let w = c + 1\n    pad_channels(0, w)\n}\n"
    spec, model = build(tmp_path, net("b = B(2)\nflatten\nfc = linear(10)", blocks=blocks))
    x = torch.randn(2, 3, 8, 8)
    padded = F.pad(x, (0, 0, 0, 0, 0, 3)).flatten(1)
    torch.testing.assert_close(model(x), model.fc(padded), rtol=0, atol=1e-6)


def test_an_init_rule_under_a_condition_inside_a_shortcut(tmp_path):
    blocks = """block B(c, z = true) {
    residual {
        c1 = conv(c, 3, padding = 1)
    } shortcut if c != in.channels {
        proj = conv(c, 1)
        init proj.weight = constant(0.25) if z
    }
}
""".replace("constant(0.25)", "0.25")
    spec, model = build(tmp_path, net("b = B(8)\nd = B(16, z = false)", blocks=blocks))
    assert torch.all(model.b.proj.weight == 0.25)
    assert not torch.all(model.d.proj.weight == 0.25)


def test_a_side_layernorm_on_a_map_normalises_the_channels(tmp_path):
    spec, model = build(tmp_path, net("c1 = conv(8, 3, padding = 1)\naux = side layernorm\nflatten\nfc = linear(10)",
                                      size="3 x 8 x 6"))
    model.train()
    x = torch.randn(2, 3, 8, 6)
    out, aux = model(x)
    y = model.c1(x)
    want = F.layer_norm(y.permute(0, 2, 3, 1), (8,), model.aux.weight, model.aux.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(aux, want, rtol=0, atol=1e-5)


LONG = "a_rather_long_width_name_number_one + (a_rather_long_width_name_number_two + a_rather_long_width_name_three)"


@pytest.mark.parametrize("line", [
    f"        self.conv = nn.Conv2d({LONG}, 8, kernel_size=1)",
    f"        channels = {LONG}",
    f"        self.conv = nn.Conv2d(in_channels, {LONG})",
    '        layers.add_module("name_with_a_bracket)_and, a comma", nn.Conv2d(in_channels, 8, kernel_size=1, stride=2, padding=1))',
    '        layers.add_module(f"stage_{i}(", nn.Conv2d(in_channels, "\\"(" + "x", kernel_size=1, stride=2, padding=1, groups=4))',
], ids=["sum-argument", "sum-assignment", "last-sum-argument", "bracket-in-string", "escaped-quote"])
def test_long_lines_wrap_into_the_same_python(line):
    """Breaking a long line at its last call's arguments keeps its meaning: a parenthesised sum once became a
    one-element tuple, and brackets and commas inside strings were taken for the code's own."""
    assert len(line) > 100
    wrapped = "\n".join(irprint.print_body([_statement(ast.parse(line.strip()).body[0])], 2))
    assert ast.dump(ast.parse(wrapped.strip())) == ast.dump(ast.parse(line.strip()))
    assert ("\n" in wrapped) == ("channels = " not in line)  # broken where it ends in a call's arguments


def _statement(s: ast.stmt) -> ir.Node:
    """A line of the generated code's kind as the IR, to print it back."""
    def expr(e: ast.expr) -> ir.Node:
        if isinstance(e, ast.JoinedStr):
            return ir.FString(tuple(v.value if isinstance(v, ast.Constant) else expr(v.value) for v in e.values))
        if isinstance(e, ast.Call):
            return ir.Call(expr(e.func), tuple(expr(a) for a in e.args), tuple((k.arg, expr(k.value)) for k in e.keywords))
        if isinstance(e, ast.BinOp):
            return ir.BinOp("+", expr(e.left), expr(e.right))
        return irparse._from_ast(e)

    if isinstance(s, ast.Assign):
        return ir.Assign(expr(s.targets[0]), expr(s.value))
    return ir.Expr(expr(s.value))


@pytest.mark.parametrize(("text", "fragment"), [
    ("block channels_last(c) { c1 = conv(c, 1) }\n" + net("b = channels_last(4)"),
     "block name 'channels_last' is reserved"),
    (net("c1 = conv(4, 1)", name="channels_last").replace("variant n = channels_last()", "variant n = channels_last()"),
     "network name 'channels_last' is reserved"),
    ("block in_channels(c) { c1 = conv(c, 1) }\n" + net("b = in_channels(4)"), "block name 'in_channels' is reserved"),
    ("block self(c) { c1 = conv(c, 1) }\n" + net("b = self(4)"), "block name 'self' is reserved"),
    ("block B(c) { c1 = conv(c, 1) }\nblock C(B = 4) { b = B(B) }\n" + net("x1 = C()"),
     "parameter 'B' has the name of a block"),
], ids=["block-channels_last", "network-channels_last", "block-in_channels", "block-self", "param-named-like-block"])
def test_names_that_collide_with_generated_ones_are_located_errors(tmp_path, text, fragment):
    located_error(tmp_path, text, fragment)


def test_a_block_named_like_a_generated_local_keeps_its_class(tmp_path):
    blocks = "block channels(c) {\n    c1 = conv(c, 3, padding = 1)\n}\n"
    spec, model = build(tmp_path, net("b = channels(4)\nd = channels(6)", blocks=blocks))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), model.d.c1(model.b.c1(x)), rtol=0, atol=1e-6)


def test_a_let_named_like_a_generated_local_is_its_value(tmp_path):
    spec, model = build(tmp_path, "let x = 2.5\n" + net("residual(scale = x) { relu }"))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), F.relu(x) * 2.5 + x, rtol=0, atol=1e-6)


def test_a_parameter_named_like_the_init_loop_variable(tmp_path):
    spec, model = build(tmp_path, net("c1 = conv(4, 1)\ninit conv.weight = 0.5 if m > b", "m = 5, b = 2"))
    assert torch.all(model.c1.weight == 0.5)
    assert not torch.all(spec.build("n", m=1).c1.weight == 0.5)


def test_an_optional_argument_of_a_functional_op_is_a_keyword(tmp_path):
    spec, model = build(tmp_path, net('gelu(approximate = a)\nmaxpool(2 + 1, padding = 1, stride = 1)', 'a = "tanh"'))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), F.max_pool2d(F.gelu(x, approximate="tanh"), 3, 1, 1), rtol=0, atol=0)
    assert not torch.equal(spec.build("n", a="none")(x), model(x))


def test_out_channels_read_in_forward_says_why(tmp_path):
    located_error(tmp_path, "block B(c, out_channels = true) { relu if out_channels; c1 = conv(c, 1) }\n" +
                  net("b = B(4)"), "every generated block class sets self.out_channels")


def test_side_outputs_come_back_in_the_order_written(tmp_path):
    blocks = "block Head(k) {\n    global_avgpool\n    fc = linear(k)\n}\n"
    body = "conv1 = conv(8, 1)\naux = side Head(5)\naux_from = side Head(6) from conv1\nglobal_avgpool\nfc = linear(7)"
    spec, model = build(tmp_path, net(body, blocks=blocks))
    out, aux, aux_from = model.train()(torch.randn(2, 3, 8, 8))
    assert (out.shape[1], aux.shape[1], aux_from.shape[1]) == (7, 5, 6)


def test_a_block_init_condition_reads_builtins_and_lets(tmp_path):
    blocks = ("block B(c) {\n    let q = c * 2\n    c1 = conv(c, 1)\n"
              "    init conv.weight = 0.5 if q > 4 and max(c, 1) == c\n}\n")
    spec, model = build(tmp_path, net("b = B(4)\nd = B(2)", blocks=blocks))
    assert torch.all(model.b.c1.weight == 0.5)
    assert not torch.all(model.d.c1.weight == 0.5)


def test_an_indexed_list_argument_stays_an_index(tmp_path):
    spec, model = build(tmp_path, net("subsample([k + 1, 4][0])", "k = 1"))
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model(x), x[:, :, ::2, ::2])


def test_a_block_condition_with_or_keeps_its_parentheses(tmp_path):
    blocks = "block B(c, g = 1) {\n    c1 = conv(c, 1)\n    init conv.weight = 0.5 if g > 5 or g < 2\n}\n"
    spec, model = build(tmp_path, net("b = B(4)\nd = B(4, g = 3)\ne = conv(4, 1)", blocks=blocks))
    assert torch.all(model.b.c1.weight == 0.5) and not torch.all(model.d.c1.weight == 0.5)


def test_an_unnamed_tap_in_an_else_names_the_layer_before_the_if(tmp_path):
    body = ("b7 = conv(4, 3, 2, padding = 1)\nif flag {\n    c8 = conv(4, 1)\n} else {\n    tap\n}\n"
            "global_avgpool\nfc = linear(5)")
    spec, model = build(tmp_path, net(body, "flag = true") + "variant m = N(flag = false)\n")
    backbone = spec.build("m", features_only=True)
    assert backbone.feature_info.module_name() == [t.name for t in spec.graph("m").taps.values()] == ["b7"]


def test_an_unnamed_tap_after_a_conditional_layer_needs_a_name(tmp_path):
    located_error(tmp_path, net("b7 = conv(4, 1)\nc8 = conv(4, 1) if flag\ntap\nglobal_avgpool\nfc = linear(5)",
                                "flag = true"), "depends on a condition")


def test_a_block_rule_reading_the_blocks_parameter_in_its_arguments_is_a_located_error(tmp_path):
    blocks = "block B(c, s = 0.1) {\n    c1 = conv(c, 1)\n    init conv.weight = normal(0, s / 11)\n}\n"
    located_error(tmp_path, net("b = B(4)", blocks=blocks), "arguments read B's parameter 's'")


def test_a_block_named_like_an_op_is_a_located_error(tmp_path):
    located_error(tmp_path, "block identity(c) { c1 = conv(c, 1) }\n" + net("b = identity(4)"),
                  "block name 'identity' is the name of an op")


def test_a_rule_reading_a_parameter_named_like_a_layer_size_is_a_located_error(tmp_path):
    located_error(tmp_path, net("fc = linear(5, bias = false)\ninit linear.weight = normal(0, out_channels / 10)",
                                "out_channels = 2", size="8"), "'out_channels' is both a name defined here")


def test_a_shortcut_written_first_under_a_false_constant_condition(tmp_path):
    body = ('residual shortcut if 2 // 1 > 1 * 2 {\n    "shortcut" = seq { conv(3, 1); batchnorm }\n} {\n'
            '    c1 = conv(3, 3, padding = 1)\n    relu\n}')
    spec, model = build(tmp_path, net(body))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), F.relu(model.c1(x)) + x, rtol=0, atol=1e-6)


def test_a_function_called_by_a_block_init_condition_is_emitted(tmp_path):
    blocks = ("def keep(v, d = 2) {\n    return v * d // d\n}\n"
              "block B(c) {\n    c1 = conv(c, 1)\n    init conv.weight = 0.5 if keep(c) > 3\n}\n")
    spec, model = build(tmp_path, net("b = B(4)\nd = B(2)", blocks=blocks))
    assert torch.all(model.b.c1.weight == 0.5) and not torch.all(model.d.c1.weight == 0.5)


def test_lets_that_do_not_change_between_calls_are_computed_once_in_init(tmp_path):
    """A let forward reads that depends on the constructor's arguments alone is an attribute set in __init__ (as
    BasicBlockA's ``pad``); one that could fail where forward would not compute it, or that reads the running
    tensor, stays in forward."""
    blocks = ("block Pad(width) {\n    let p = (width - in.channels) // 2\n    let q = 6 // width\n"
              "    let r = out.channels + 1\n    pad_channels(p, p)\n    pad_channels(q, 0)\n    pad_channels(0, r - 4)\n}\n")
    spec, model = build(tmp_path, net("b = Pad(9)", blocks=blocks))
    source = spec.source()
    init, forward = source.split("class Pad")[1].split("\nclass ")[0].split("def forward")
    assert "self.p = (width - in_channels) // 2" in init and "self.p" in forward and "p = " not in forward
    assert "q = 6 // self.width" in forward and "self.q" not in source  # a division by an argument
    assert "r = x.shape[1] + 1" in forward  # the running tensor's width
    x = torch.randn(2, 3, 8, 8)
    # p = (9 - 3) // 2 = 3, q = 0, r = 3 + 1 (the width where the let is): 3 channels more on either side
    assert torch.equal(model(x), F.pad(x, (0, 0, 0, 0, 3, 3)))
    assert torch.equal(spec.interpret("n")(x), model(x))


def _same_as_interpreter(spec, model, x, train: bool = True):
    """The model and the interpreter agree (with the model's weights), and backward runs through the model."""
    interp = spec.interpret("n")
    interp.load_state_dict(model.state_dict(), strict=True)
    model.train(train), interp.train(train)
    torch.testing.assert_close(model(x.clone()), interp(x.clone()), rtol=1e-5, atol=1e-6)
    x = x.clone().requires_grad_()
    model(x).sum().backward()
    assert x.grad is not None


def test_a_let_named_like_a_loop_variable_stays_in_forward(tmp_path):
    """Found by the fuzzer: the let and the loop variable are two bindings; computing the let once in __init__
    turned the loop into ``for self.channels in ...``."""
    body = ("for channels in range(3) { w{channels} = learned_scale((3, 1, 1), init = 0.5) }\n"
            "let channels = width - 2\npad_channels(channels // 2, channels - channels // 2)")
    spec, model = build(tmp_path, net(body, "width = 6"))
    assert "for self." not in spec.source()
    x = torch.randn(2, 3, 8, 8)
    assert model(x).shape == (2, 7, 8, 8)
    _same_as_interpreter(spec, model, x)


def test_a_layer_after_an_if_in_a_seq_works_in_place_only_if_both_branches_allow_it(tmp_path):
    """Found by the fuzzer: celu's backward reads its output, so the selu after the if must not change it in place,
    though the else branch (a batch norm) would allow it."""
    body = ("s = seq {\n    if flag { celu(0.8) } else { batchnorm }\n    selu\n}")
    spec, model = build(tmp_path, net(body, "flag = true"))
    assert "nn.SELU()" in spec.source() and "nn.SELU(inplace=True)" not in spec.source()
    _same_as_interpreter(spec, model, torch.randn(2, 3, 8, 8))


def test_a_layer_in_a_loop_of_a_seq_serves_every_iteration(tmp_path):
    """The loop's first layer follows its last in the next iteration: relu6 after sigmoid may not work in place."""
    spec, model = build(tmp_path, net("s = seq {\n    conv(3, 1)\n    for i in range(2) { relu6; sigmoid }\n}"))
    assert "nn.ReLU6(inplace=True)" not in spec.source()
    _same_as_interpreter(spec, model, torch.randn(2, 3, 8, 8))


def test_a_named_identity_hands_on_its_input_not_a_new_tensor(tmp_path):
    """Found by the fuzzer (in an ensemble, whose members share the input): an activation after a named identity
    changed the caller's tensor in place."""
    spec, model = build(tmp_path, net("skip = identity\nrelu\nact = selu"))
    x = torch.randn(2, 3, 8, 8)
    before = x.clone()
    model.eval()(x)
    assert torch.equal(x, before)
    _same_as_interpreter(spec, model, x)


def test_a_learned_tensor_given_an_integer_start_is_a_float_tensor(tmp_path):
    """Found writing ResMLP: 'init = 1' filled an integer tensor, which cannot be a parameter; the check said ok
    and the factory failed."""
    spec, model = build(tmp_path, net("scale = learned_scale((3, 1, 1), init = 1)\nshift = learned_add((3, 1, 1), init = -2)"))
    assert model.scale.dtype == model.shift.dtype == torch.float32 and model.scale.requires_grad
    _same_as_interpreter(spec, model, torch.randn(2, 3, 8, 8))
