"""The language: parsing, expressions, elaboration rules and their diagnostics."""

import pytest

import archc
from archc.backends.python import irprint
from archc.backends.python.lower import lower
from archc.errors import SpecError
from archc.lang.parser import parse
from archc.sema.expr import evaluate
from archc.sema.exprfold import fold


def to_python(e) -> str:
    """An expression as the code generator prints it: lowered to its IR, then printed."""
    return irprint.print_expr(lower(e))


def load(tmp_path, text, name="t.arch"):
    path = tmp_path / name
    path.write_text(text)
    return archc.load(path)


def error(tmp_path, text) -> str:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    return info.value.render()


def expr(text):
    return parse(f"let v = {text}\n").lets[0].value


NET = "network N(num_classes = 10) {{\n    input 3 x 32 x 32\n{body}\n}}\nvariant n = N()\n"


def net(body: str) -> str:
    return NET.format(body="\n".join("    " + line for line in body.strip().splitlines()))


# ---------------------------------------------------------------- expressions

@pytest.mark.parametrize("text", [
    "1 + 2 * 3", "(1 + 2) * 3", "2 ** 3 ** 2", "-2 ** 2", "7 // 2 * 2 + 7 % 2", "10 / 4",
    "1 if 2 > 3 else 4", "not 1 == 2 and 3 != 3 or 5 >= 5", "[1, 2, 3][1]", "len([1, 2]) + max(3, 4) + min([5, 6])",
    "int(2.7) + abs(-3) + sum([1, 2])", "(1, 2)", "[1, 2] * 2", "\"M\" == \"M\"", "range(3)", "2 * (3 if true else 4)",
    "1 - (2 - 3)", "2 ** -1", "(2 + 3) ** 2", "-(1 + 2)", "not (true and false)",
])
def test_printed_python_means_what_the_evaluator_computes(text):
    e = expr(text)
    ours = evaluate(e, {})
    printed = to_python(e)
    assert eval(printed, {"range": lambda *a: list(range(*a))}) == ours, printed  # noqa: S307 (the test's own strings)
    assert to_python(fold(e, {})) == repr(ours) or isinstance(ours, (list, tuple))


def test_fold_keeps_unknowns_and_folds_the_rest():
    e = expr("planes * (2 + 2) + in_channels // 1")
    assert to_python(fold(e, {})) == "planes * 4 + in_channels // 1"
    assert to_python(fold(e, {"planes": 16, "in_channels": 3})) == "67"


@pytest.mark.parametrize(("text", "message"), [
    ("1 // 0", "division by zero"),
    ("[1, 2][5]", "index 5 out of range"),
    ("undefined_thing + 1", "undefined name 'undefined_thing'"),
    ("1 + \"a\"", "unsupported operand types for +: int and string"),
    ("open(1)", "'open' cannot be called in an expression"),
    ("2 ** 1000", "exponent too large"),
    ("range(10 ** 9)", "more than the limit"),
])
def test_expression_errors(text, message):
    with pytest.raises(SpecError) as info:
        evaluate(expr(text), {})
    assert message in info.value.message


# ------------------------------------------------------------------- syntax

def test_statements_end_at_newlines_or_semicolons_and_wrap_inside_brackets(tmp_path):
    s = load(tmp_path, net("""
conv1 = conv(16,
             3, padding = 1); relu
fc_in = adaptive_avgpool(1); flatten
fc = linear(
    num_classes,
)
"""))
    assert s.graph("n").params == 3 * 16 * 9 + 16 + 16 * 10 + 10


def test_shortcut_may_start_on_the_next_line(tmp_path):
    s = load(tmp_path, """
block B(c) {
    residual { conv1 = conv(c, 3, padding = 1) }
    shortcut { proj = conv(c, 1) }
}
""" + net("b = B(8)"))
    assert set(s.graph("n").modules()) == {"b.conv1", "b.proj"}


def test_name_interpolation(tmp_path):
    s = load(tmp_path, net("""
for i in range(3) {
    conv{i + 1}_{i * 2} = conv(8, 1)
}
"""))
    assert list(s.graph("n").modules()) == ["conv1_0", "conv2_2", "conv3_4"]


def test_syntax_error_points_at_the_token(tmp_path):
    text = error(tmp_path, net("conv1 = conv(16 3)"))
    assert "t.arch:3:21: error: unexpected '3'" in text


# -------------------------------------------------------------- elaboration

@pytest.mark.parametrize(("body", "message"), [
    ("conv(16, 3)", "this conv has parameters and needs a name"),
    ("c = conv(16, 3)\nc = conv(16, 3)", "'c' is already defined in this scope"),
    ("c = conv(16, 3, stride = 0)", "bad value 0 for 'stride'"),
    ("c = conv(16, 3, strid = 2)", "conv has no argument 'strid'"),
    ("c = conv(16)", "conv is missing its argument 'kernel_size'"),
    ("c = conv(16, 3, 1, 0, 1, 1, true, 9)", "conv takes at most 7 positional arguments"),
    ("c = conv(16, \"3\")", "bad value \"3\" for 'kernel_size'"),
    ("c = conv(16, 64)", "kernel (64) is larger than the padded input height (32 + 2*0)"),
    ("class = conv(16, 3)", "'class' is not a valid Python identifier"),
    ("self = conv(16, 3)", "'self' is reserved"),
    ("c = convv(16, 3)", "did you mean 'conv'?"),
    ("flatten\nc = conv(16, 3)", "conv needs a C x H x W feature map, got 3072 features"),
    ("concat { a = conv(8, 3); b = conv(8, 1) }", "concat branches have different spatial sizes: 30x30, 32x32"),
    ("for i in range(300000) { relu }", "more than the limit"),
    ("a = side conv(8, 1)\nb = side conv(8, 1)\na = side conv(8, 1)", "side output 'a' is defined twice"),
])
def test_elaboration_errors(tmp_path, body, message):
    assert message in error(tmp_path, net(body))


def test_error_inside_a_block_shows_the_call_chain(tmp_path):
    text = error(tmp_path, """
block Inner(c) {
    conv = conv(c, 99)
}
block Outer(c) {
    inner = Inner(c)
}
""" + net("outer = Outer(8)"))
    lines = text.splitlines()
    assert lines[0].endswith("/t.arch:3:5: error: conv: kernel (99) is larger than the padded input height (32 + 2*0)")
    assert "t.arch:6:5: note: in block Inner, called here" in text
    assert "t.arch:10:5: note: in block Outer, called here" in text
    assert "note: in variant n" in text


def errors_of(tmp_path, text) -> list[SpecError]:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text)
    return info.value.errors


def test_independent_errors_are_all_reported_once_each(tmp_path):
    found = errors_of(tmp_path, "block B(c) {\n    conv = conv(c, 3, bais = false)\n}\n" + net("""
a = B(8)
b = B(16)
pool = maxpol(2)
fc = linear(num_clases)
"""))
    assert [e.message for e in found] == [
        "conv has no argument 'bais'", "unknown layer or block 'maxpol'", "undefined name 'num_clases'"]
    assert [e.span.line for e in found] == [2, 8, 9]
    assert ("in block B, called here", found[0].notes[0][1]) == found[0].notes[0] and found[0].notes[0][1].line == 6


def test_shape_errors_after_another_error_are_not_reported(tmp_path):
    # conv(99) on 32 x 32 fails, so the residual's shapes are meaningless: only the first error is reported
    text = net("""
stem = conv(16, 99)
residual { c = conv(32, 3) }
""")
    assert [e.message for e in errors_of(tmp_path, text)] == [
        "conv: kernel (99) is larger than the padded input height (32 + 2*0)"]
    # on its own, the residual's mismatch is reported
    assert "residual branch gives" in error(tmp_path, net("residual { c = conv(32, 3) }"))


def test_an_error_in_one_variant_only_is_reported_with_that_variant(tmp_path):
    text = net("conv = conv(16, k)").replace("num_classes = 10", "k = 3") + "variant big = N(k = 99)\nvariant bad = N(k = 0)\n"
    found = errors_of(tmp_path, text)
    assert len(found) == 2
    assert found[0].notes[-1][0] == "in variant big" and "larger than" in found[0].message
    assert found[1].notes[-1][0] == "in variant bad" and "'kernel_size'" in found[1].message


def test_errors_stop_at_a_limit_and_never_hang(tmp_path):
    many = "\n".join(f"l{i} = foo{i}" for i in range(50))
    rendered = error(tmp_path, net(many))
    assert rendered.splitlines()[-1] == "20 errors (stopped there; fix these and check again)"
    # ten billion failing statements: elaboration gives up after a bounded number of failures
    found = errors_of(tmp_path, net("for i in range(100000) {\n    for j in range(100000) { foo }\n}"))
    assert [e.message for e in found] == ["unknown layer or block 'foo'"]


def test_block_argument_binding_errors(tmp_path):
    block = "block B(c, k = 3) {\n    conv = conv(c, k)\n}\n"
    assert "block B is missing its argument 'c'" in error(tmp_path, block + net("b = B()"))
    assert "block B has no parameter 'kk'" in error(tmp_path, block + net("b = B(8, kk = 1)"))
    assert "block B got parameter 'c' twice" in error(tmp_path, block + net("b = B(8, c = 1)"))
    assert "takes 2 positional arguments but 3 were given" in error(tmp_path, block + net("b = B(8, 3, 1)"))


def test_a_recursion_without_an_end_is_an_error(tmp_path):
    """(Recursion that ends: test_recursion.py.)"""
    text = error(tmp_path, "block A() {\n    b = B()\n}\nblock B() {\n    a = A()\n}\n" + net("a = A()"))
    assert "block A calls itself with the same arguments and input, so the recursion never ends" in text


def test_residual_mismatch_suggests_a_projection(tmp_path):
    text = error(tmp_path, "block R(c) {\n    residual { conv1 = conv(c, 3, padding = 1) }\n}\n" + net("r = R(32)"))
    assert "residual branch gives 32 x 32 x 32 but the shortcut gives 3 x 32 x 32" in text
    assert "hint: add a projection shortcut" in text


def test_a_residual_that_should_be_a_gate_says_so(tmp_path):
    """Squeeze-and-excitation written as a residual: a C x 1 x 1 body cannot be fixed by a projection."""
    body = "residual {\n    adaptive_avgpool(1)\n    fc1 = conv(4, 1); relu\n    fc2 = conv(in.channels, 1); sigmoid\n}"
    text = error(tmp_path, "block SE() {\n" + body + "\n}\n" + net("c = conv(16, 3, padding = 1)\nse = SE()"))
    assert "residual branch gives 16 x 1 x 1 but the shortcut gives 16 x 32 x 32" in text
    assert "is a gate: 'gate { ... }'" in text and "projection" not in text


def test_a_residual_whose_body_strides_asks_for_a_strided_shortcut(tmp_path):
    text = error(tmp_path, "block R() {\n    residual { conv1 = conv(3, 3, 2, padding = 1) }\n}\n" + net("r = R()"))
    assert "residual branch gives 3 x 16 x 16 but the shortcut gives 3 x 32 x 32" in text
    assert "changes the height and width (a stride?)" in text


@pytest.mark.parametrize(("typo", "meant"), [("relu7", "relu6"), ("hardswsh", "hardswish"), ("sigmod", "sigmoid"),
                                             ("layer_norm", "layernorm"), ("maxpol", "maxpool")])
def test_a_misspelt_activation_gets_the_right_suggestion(tmp_path, typo, meant):
    assert f"did you mean '{meant}'?" in error(tmp_path, net(f"c = conv(8, 1)\n{typo}"))


def test_every_activation_compiles_and_is_what_torch_calls_it(tmp_path):
    import torch

    names = ["relu", "relu6", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "gelu"]
    body = "c = conv(8, 1)\n" + "\n".join(f"a{i} = {name}\nb{i} = conv(8, 1)" for i, name in enumerate(names))
    model = load(tmp_path, net(body)).build("n")
    kinds = [type(getattr(model, f"a{i}")).__name__.lower() for i in range(len(names))]
    assert kinds == names
    x = torch.randn(1, 8, 4, 4) * 4
    for i, name in enumerate(names):  # each module is torch's own function
        expected = {"relu6": torch.nn.functional.relu6, "hardsigmoid": torch.nn.functional.hardsigmoid,
                    "hardswish": torch.nn.functional.hardswish, "silu": torch.nn.functional.silu,
                    "gelu": torch.nn.functional.gelu, "relu": torch.relu, "sigmoid": torch.sigmoid,
                    "tanh": torch.tanh}[name]
        assert torch.equal(getattr(model, f"a{i}")(x.clone()), expected(x)), name  # (in place, some of them)


def test_side_outputs_only_in_networks(tmp_path):
    text = error(tmp_path, "block B() {\n    a = side conv(8, 1)\n}\n" + net("b = B()"))
    assert "side outputs are allowed only in the body of the network being built" in text and "t.arch:2:5" in text


def test_use_missing_file_and_cycles(tmp_path):
    assert "no such file" in error(tmp_path, 'use "missing.arch"\n')
    (tmp_path / "a.arch").write_text('use "b.arch"\n')
    (tmp_path / "b.arch").write_text('use "a.arch"\n')
    with pytest.raises(SpecError) as info:
        archc.load(tmp_path / "a.arch")
    assert "'use' cycle: a.arch -> b.arch -> a.arch" in info.value.message


def test_use_shares_blocks(tmp_path):
    (tmp_path / "lib.arch").write_text("block Unit(c) {\n    conv = conv(c, 3, padding = 1); relu\n}\n")
    s = load(tmp_path, 'use "lib.arch"\n' + net("u = Unit(8)"))
    assert "class Unit(nn.Module):" in s.source()


def test_unknown_variant_network(tmp_path):
    text = error(tmp_path, "network N() {\n    input 3 x 8 x 8\n}\nvariant v = M()\n")
    assert "unknown network 'M'" in text


# -------------------------------------------------------- semantics in torch

def test_conditionals_switch_per_factory_argument(tmp_path):
    s = load(tmp_path, """
network N(bn = true, width = 8) {
    input 3 x 16 x 16
    conv = conv(width, 3, padding = 1, bias = not bn)
    norm = batchnorm if bn
    relu
    if width > 8 { extra = conv(width, 1) } else { small = conv(4, 1) }
    adaptive_avgpool(1); flatten
    fc = linear(2)
}
variant n = N()
""")
    for kwargs in ({}, {"bn": False}, {"width": 16}):
        model = s.build("n", **kwargs)
        assert sum(p.numel() for p in model.parameters()) == s.graph("n", **kwargs).params
    assert s.build("n", bn=False).norm is None


def test_dense_connectivity_and_scaled_residual_compute_what_they_say(tmp_path):
    import torch

    s = load(tmp_path, """
block Dense(k) {
    concat { identity; seq { conv = conv(k, 3, padding = 1) } }
}
block Scaled(s) {
    residual(scale = s) { conv = conv(in.channels, 1) }
}
network N() {
    input 3 x 8 x 8
    d = Dense(5)
    r = Scaled(0.5)
}
variant n = N()
""")
    model = s.build("n").eval()
    x = torch.randn(2, 3, 8, 8)
    dense = torch.cat([x, model.d.conv(x)], 1)
    expected = dense + 0.5 * model.r.conv(dense)
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert s.graph("n").node(s.graph("n").output).shape == (8, 8, 8)


DENSE = """
block Unit(k) {
    norm = batchnorm; relu = relu; conv = conv(k, 3, padding = 1)
}
block Block(n, k, ckpt = false) {
    dense(checkpoint = ckpt) {
        for j in range(n) { unit{j + 1} = Unit(k) }
        last = conv(k, 1) if n > 1
    }
}
network N(ckpt = false) {
    input 3 x 8 x 8
    b = Block(2, 4, ckpt)
}
variant n = N()
"""


@pytest.mark.parametrize("ckpt", [False, True])
def test_dense_members_read_everything_before_them(tmp_path, ckpt):
    import torch

    s = load(tmp_path, DENSE)
    g = s.graph("n")
    assert g.node(g.output).shape == (3 + 4 + 4 + 4, 8, 8)
    assert [op.in_shapes[0][0] for op in g.ops() if op.op == "conv"] == [3, 7, 11]
    model = s.build("n", ckpt=ckpt).train()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    b = model.b
    f1 = b.unit1(x.clone())
    f2 = b.unit2(torch.cat([x, f1], 1))
    f3 = b.last(torch.cat([x, f1, f2], 1))
    expected = torch.cat([x, f1, f2, f3], 1)
    out = model(x)
    assert torch.allclose(out, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(grad, expected_grad, atol=1e-5)
    assert ("_checkpointed(" in s.source()) and ("import torch.utils.checkpoint" in s.source())


@pytest.mark.parametrize(("body", "message"), [
    ("dense { conv = conv(4, 3) }", "a dense member must keep the input's height and width, but this one gives 4 x 30 x 30"),
    ("dense(checkpoint = 1) { conv = conv(4, 1) }", "checkpoint must be true or false, got int"),
    ("dense(2) { conv = conv(4, 1) }", "dense takes only 'checkpoint = ...'"),
    ("dense { }", "dense needs at least one member"),
    ("seq1 = seq { dense { conv = conv(4, 1) } }", "a named seq becomes nn.Sequential and cannot hold a dense"),
])
def test_dense_errors(tmp_path, body, message):
    assert message in error(tmp_path, "block B() {\n    " + body + "\n}\n" + net("b = B()"))


def test_checkpointed_dense_members_are_modules(tmp_path):
    s = load(tmp_path, "block B() {\n    dense(checkpoint = true) { seq { conv = conv(4, 1); relu } }\n}\n"
                       + net("b = B()"))
    with pytest.raises(SpecError, match="with checkpoint, each member of a dense must be one named layer or block"):
        s.source()


def test_shortcut_from_a_tap_reads_it_only_for_the_projection(tmp_path):
    import torch

    s = load(tmp_path, """
block Pre(c, stride = 1) {
    residual {
        bn = batchnorm; pre = relu
        conv = conv(c, 3, stride, padding = 1, bias = false)
    } shortcut from pre if stride != 1 or in.channels != c {
        proj = conv(c, 1, stride, bias = false)
    }
}
network N() {
    input 4 x 8 x 8
    a = Pre(4)
    b = Pre(8, 2)
}
variant n = N()
""")
    model = s.build("n").eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        a = model.a.conv(torch.relu(model.a.bn(x))) + x  # identity: the raw input
        pre = torch.relu(model.b.bn(a))
        b = model.b.conv(pre) + model.b.proj(pre)  # projection: the pre-activated tensor
        assert torch.allclose(model(x), b, atol=1e-5)


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_spec_is_an_error(tmp_path, text):
    assert "the spec defines nothing" in error(tmp_path, text)


@pytest.mark.slow  # each case runs to the nesting limit
@pytest.mark.parametrize("text", [
    "let x = " + "-" * 5000 + "1\n",
    "let x = " + "+".join(["1"] * 20000) + "\n",
    "let x = " + "not " * 3000 + "true\n",
    "let x = " + "[" * 500 + "]" * 500 + "\n",
    net("if true { relu }" + " else if true { relu }" * 5000),
    net("seq { " * 300 + "relu" + " }" * 300),
], ids=["minus", "plus", "not", "lists", "else-if", "seq"])
def test_pathological_nesting_is_a_located_spec_error(tmp_path, text):
    message = error(tmp_path, text)
    assert "nests more than 64 levels deep here" in message
    assert message.startswith(str(tmp_path / "t.arch") + ":")  # with its line and column


def test_brackets_alone_are_not_nesting(tmp_path):
    spec = load(tmp_path, "let x = " + "(" * 3000 + "1" + ")" * 3000 + "\n")
    assert spec.elaborator.globals["x"] == 1


def test_a_wide_concat_is_not_deep(tmp_path):
    """A flat concat of 1,000 branches compiles, and its generated code runs."""
    body = "concat {\n" + "".join(f"    b{i} = conv(2, 1)\n" for i in range(1000)) + "}"
    spec = load(tmp_path, net(body))
    compile(spec.source(), "wide.py", "exec")
    assert spec.graph("n").node(spec.graph("n").output).shape == (2000, 32, 32)
