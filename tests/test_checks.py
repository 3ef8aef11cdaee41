"""Everything a spec says about initialisation and files is checked before anything runs: each mistake is a
located error (exit status 1), never an internal one (3), whether its value is written in the rule or comes
through a block's or a network's parameters; and archc replaces only files it wrote."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from archtest import SPECS, spec

import archc
from archc.cli import EXIT_SPEC, main
from archc.lang import files

# The rule under test stands on line 5, so its error is at i.arch:5:COL.
HEAD = "network N(flag = false) {\n    input 3 x 8 x 8\n    c = conv(4, 3); bn = batchnorm; flatten\n    fc = linear(4)\n"
TAIL = "\n}\nvariant n = N()\n"


def error_of(path: Path) -> str:
    with pytest.raises(archc.SpecError) as info:
        archc.load(path).graph("n")
    return info.value.render()


def rule_error(tmp_path, rule: str) -> str:
    path = tmp_path / "i.arch"
    path.write_text(HEAD + "    " + rule + TAIL)
    return error_of(path)


# (the rule on line 5, where its error is, the message's fragment)
BAD_RULES = [
    ('init conv.weight = kaiming_normal(mode = "fan_sideways")', "5:46",
     "kaiming_normal's mode must be 'fan_in' or 'fan_out', got 'fan_sideways'"),
    ('init conv.weight = kaiming_uniform(mode = 3)', "5:47", "kaiming_uniform's mode must be a string, got int"),
    ('init conv.weight = kaiming_normal(nonlinearity = "banana")', "5:54",
     "kaiming_normal's nonlinearity 'banana' is not one torch.nn.init.calculate_gain knows"),
    ('init conv.weight = kaiming_normal(a = "steep")', "5:43", "kaiming_normal's a must be a number, got string"),
    ("init conv.bias = kaiming_normal()", "5:22",
     "kaiming_normal needs a tensor of 2 or more dimensions, and a conv's bias is 1-D"),
    ("init batchnorm.weight = xavier_uniform", "5:29",
     "xavier_uniform needs a tensor of 2 or more dimensions, and a batchnorm's weight is 1-D"),
    ("init fc.bias = xavier_normal(gain = 2)", "5:20",
     "xavier_normal needs a tensor of 2 or more dimensions, and a linear's bias is 1-D"),
    ("init conv.weight = uniform(1, -1)", "5:35", "uniform's bounds are out of order: a = 1 > b = -1"),
    ("init conv.weight = uniform(2)", "5:32", "uniform's bounds are out of order: a = 2 > b = 1"),
    ("init conv.weight = trunc_normal(a = 2, b = -2)", "5:48",
     "trunc_normal's bounds must satisfy a < b, got a = 2, b = -2"),
    ("init conv.weight = trunc_normal(0, 0)", "5:40", "trunc_normal's std must be positive, got 0"),
    ("init conv.weight = normal(std = -0.5)", "5:37", "normal's std must not be negative, got -0.5"),
    ('init conv.weight = xavier_normal(gain = "big")', "5:45", "xavier_normal's gain must be a number, got string"),
    ("init conv.weight = xavier_normal(gain = true)", "5:45", "xavier_normal's gain must be a number, got bool"),
    ("init conv.weight = 1e39", "5:24", "an init rule's constant 1e+39 is not finite in float32"),
    ("init conv.weight = -4e38", "5:24", "an init rule's constant -4e+38 is not finite in float32"),
    ("init conv.weight = normal(0, 1e39)", "5:34", "normal's std = 1e+39 is not finite in float32"),
    ("init conv.weight = uniform(-1e300, 1)", "5:32", "uniform's a = -1e+300 is not finite in float32"),
    ("init batchnorm.weight = normal(std = 1 / fan_in)", "5:46", "'fan_in' is not a size of a batchnorm layer"),
    ("init linear.weight = normal(std = 1 / out_channels)", "5:43", "'out_channels' is not a size of a linear layer"),
]


@pytest.mark.parametrize(("rule", "where", "message"), BAD_RULES, ids=[r[0][5:40] for r in BAD_RULES])
def test_a_bad_rule_is_a_located_error(tmp_path, rule, where, message):
    text = rule_error(tmp_path, rule)
    assert text.startswith(f"{tmp_path / 'i.arch'}:{where}: error: {message}\n"), text
    assert "\nhint: " in text or "must be a number" in text or "must be a string" in text, text


@pytest.mark.parametrize(("rule", "where", "message"), BAD_RULES[:4] + BAD_RULES[7:9] + BAD_RULES[14:15],
                         ids=lambda x: "")
def test_the_command_line_exits_with_the_spec_error_status(tmp_path, capsys, rule, where, message):
    (tmp_path / "i.arch").write_text(HEAD + "    " + rule + TAIL)
    assert main(["check", str(tmp_path / "i.arch")]) == EXIT_SPEC == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'i.arch'}:{where}: error: {message}\n")


@pytest.mark.parametrize(("wrong", "meant"), [("fan_ot", "fan_out"), ("fanin", "fan_in"), ("rleu", "relu"),
                                              ("leaky-relu", "leaky_relu"), ("tahn", "tanh"),
                                              ("FAN_IN", "fan_in"), ("ReLU", "relu")])
def test_a_misspelt_mode_or_nonlinearity_gets_a_did_you_mean(tmp_path, wrong, meant):
    key = "mode" if wrong.lower().startswith("fan") else "nonlinearity"
    text = rule_error(tmp_path, f'init conv.weight = kaiming_normal({key} = "{wrong}")')
    assert f"got '{wrong}'" in text or f"'{wrong}' is not one" in text
    assert text.endswith(f"hint: did you mean '{meant}'?"), text


# ------------------------------------------------------------------ the same values through parameters

BLOCK = """block B(mode = "fan_in", nl = "relu", lo = 0, hi = 1, gain = 1, std = 1, k = 0) {
    c = conv(4, 3); bn = batchnorm
    init conv.weight = kaiming_normal(mode = mode, nonlinearity = nl)
    init conv.bias = uniform(lo, hi) if k == 0
    init conv.bias = trunc_normal(std = std, a = lo, b = hi) if k == 1
    init c.weight = xavier_normal(gain = gain) if k == 2
    init bn.weight = std if k == 3
}
network N(%s) {
    input 3 x 8 x 8
    b = B(%s)
}
variant n = N()
"""


@pytest.mark.parametrize(("params", "args", "where", "message"), [
    ('mode = "fan_sideways"', "mode = mode", "3:46",
     "kaiming_normal's mode must be 'fan_in' or 'fan_out', got 'fan_sideways'"),
    ('nl = "banana"', "nl = nl", "3:67", "kaiming_normal's nonlinearity 'banana' is not one torch.nn.init.calculate_gain knows"),
    ("lo = 1, hi = -1", "lo = lo, hi = hi", "4:34", "uniform's bounds are out of order: a = 1 > b = -1"),
    ("lo = 2, hi = -2", "lo = lo, hi = hi, k = 1", "5:58", "trunc_normal's bounds must satisfy a < b"),
    ("s = 0.0", "std = s, k = 1", "5:41", "trunc_normal's std must be positive, got 0"),
    ('g = "big"', "gain = g, k = 2", "6:42", "xavier_normal's gain must be a number, got string"),
    ("s = 1e39", "std = s, k = 3", "7:22", "an init rule's constant 1e+39 is not finite in float32"),
])
def test_a_bad_value_through_a_block_and_a_network_parameter_is_located_at_the_rule(tmp_path, params, args, where,
                                                                                   message):
    path = tmp_path / "p.arch"
    path.write_text(BLOCK % (params, args))
    text = error_of(path)
    assert text.startswith(f"{path}:{where}: error: {message}"), text
    assert f"{path}:2:5: note: initialising 'b.c." in text or f"{path}:2:21: note: initialising 'b.bn.weight'" in text
    assert f"{path}:11:5: note: in block B, called here" in text and f"{path}:13:1: note: in variant n" in text


def test_a_variant_passes_the_bad_value(tmp_path):
    path = tmp_path / "p.arch"
    path.write_text(BLOCK % ('mode = "fan_in"', "mode = mode") + 'variant m = N(mode = "fan_ot")\n')
    with pytest.raises(archc.SpecError) as info:
        archc.load(path)
    text = info.value.render()
    assert text.startswith(f"{path}:3:46: error: kaiming_normal's mode must be 'fan_in' or 'fan_out', got 'fan_ot'")
    assert f"{path}:14:1: note: in variant m" in text and text.endswith("hint: did you mean 'fan_out'?")


def test_a_rule_is_checked_where_no_variant_makes_it(tmp_path):
    """Under a condition no variant meets, or in a block no network calls: the factory could still be asked."""
    for rule, where in [("init conv.weight = uniform(1, -1) if flag", "5:35"),
                        ("if flag {\n        init conv.weight = 1e39\n    }", "6:28")]:
        assert rule_error(tmp_path, rule).startswith(f"{tmp_path / 'i.arch'}:{where}: error: ")
    path = tmp_path / "u.arch"
    path.write_text('block Unused() {\n    c = conv(4, 1)\n    init conv.bias = kaiming_uniform(mode = "fan_in")\n}\n'
                    + HEAD + TAIL)
    assert error_of(path).startswith(f"{path}:3:22: error: kaiming_uniform needs a tensor of 2 or more dimensions")


@pytest.mark.parametrize("rule", [
    "init conv.weight = uniform(1, 1)", "init conv.weight = uniform(-3.4e38, 3.4e38)", "init conv.weight = 3.4e38",
    "init conv.weight = normal(std = 0)", "init conv.weight = trunc_normal(0, 0.02, -0.04, 0.04)",
    'init conv.weight = kaiming_uniform(a = sqrt(5), mode = "fan_out", nonlinearity = "leaky_relu")',
    'init conv.weight = kaiming_normal(nonlinearity = "conv_transpose3d")', "init fc.weight = xavier_uniform(gain = 0)",
    "init fc.bias = uniform(-1 / sqrt(in_features), 1 / sqrt(in_features))",
    "init bn.weight = normal(1, 1 / num_features)", "init conv.bias = normal(std = sqrt(2.0 / fan_out))",
])
def test_valid_rules_pass(tmp_path, rule):
    path = tmp_path / "i.arch"
    path.write_text(HEAD + "    " + rule + TAIL)
    assert archc.load(path).graph("n").inits


def test_every_spec_with_rules_passes():
    """Loading checks every variant (and raises on a mistake); the session's copies, shared with other tests."""
    stems = [p.stem for p in sorted(SPECS.glob("*.arch"))  # (a library of blocks has no variant to check)
             if "    init " in p.read_text() and "\nvariant " in p.read_text()]
    assert len(stems) >= 10
    for stem in stems:
        graphs = spec(stem).check()
        assert any(g.inits for g in graphs.values()), stem


# ------------------------------------------------------------------ files named by a use

NET = "network N() {\n    input 3 x 8 x 8\n    conv1 = conv(4, 3)\n}\nvariant n = N()\n"


def use_error(tmp_path, capsys, used: str) -> str:
    (tmp_path / "net.arch").write_text(f'use "{used}"\n' + NET)
    assert main(["check", str(tmp_path / "net.arch")]) == EXIT_SPEC
    return capsys.readouterr().err


def test_a_symlink_loop_through_use_is_an_error_at_the_use(tmp_path, capsys):
    (tmp_path / "a.arch").symlink_to("b.arch")
    (tmp_path / "b.arch").symlink_to("a.arch")
    (tmp_path / "self.arch").symlink_to("self.arch")
    for used in ("a.arch", "self.arch"):
        err = use_error(tmp_path, capsys, used)
        assert err.startswith(f"{tmp_path / 'net.arch'}:1:1: error: '{tmp_path / used}' is a loop of symbolic links"), err
    with pytest.raises(archc.SpecError, match="is a loop of symbolic links"):
        archc.load(tmp_path / "a.arch")


def test_a_directory_or_fifo_through_use_is_an_error_at_the_use(tmp_path, capsys):
    (tmp_path / "lib.arch").mkdir()
    os.mkfifo(tmp_path / "pipe.arch")
    for used, what in [("lib.arch", "a directory"), ("pipe.arch", "a named pipe"), ("", "a directory")]:
        err = use_error(tmp_path, capsys, used)
        assert err.startswith(f"{tmp_path / 'net.arch'}:1:1: error: '") and f"is {what}, not a regular file\n" in err


def test_an_unreadable_file_through_use_is_an_error_at_the_use(tmp_path, capsys, monkeypatch):
    (tmp_path / "lib.arch").write_text("block B() {\n    relu\n}\n")
    real_open = os.open

    def refusing_open(path, *args, **kwargs):  # as chmod 000 does, for a user other than root
        if str(path).endswith("lib.arch"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    err = use_error(tmp_path, capsys, "lib.arch")
    assert err.startswith(f"{tmp_path / 'net.arch'}:1:1: error: cannot read '{tmp_path / 'lib.arch'}': "
                          "Permission denied\n")


def test_a_path_too_long_through_use_is_an_error_at_the_use_that_quotes_it_shortened(tmp_path, capsys):
    for used in ["x" * 300 + ".arch", "/".join(["y" * 200] * 30) + ".arch"]:
        err = use_error(tmp_path, capsys, used)
        first = err.splitlines()[0]
        assert first.startswith(f"{tmp_path / 'net.arch'}:1:1: error: cannot read '") and "File name too long" in first
        assert "...." not in first and len(first) < 400 and "characters)" in first


def test_non_utf8_bytes_through_use_are_an_error_at_the_byte_and_the_use(tmp_path, capsys):
    (tmp_path / "lib.arch").write_bytes(b"block B() {\n    relu # caf\xe9\n}\n")
    err = use_error(tmp_path, capsys, "lib.arch")
    assert err.startswith(f"{tmp_path / 'lib.arch'}:2:15: error: the file is not valid UTF-8 text\n"
                          f"{tmp_path / 'net.arch'}:1:1: note: used here\n"), err


def test_a_name_no_file_can_have_is_a_spec_error(tmp_path):
    with pytest.raises(archc.SpecError, match="no file can have that name"):
        archc.load(tmp_path / "a\0b.arch")


# ------------------------------------------------------------------ which files are archc's

SMALL = SPECS / "experiments" / "factorization.arch"


@pytest.mark.parametrize("text", [
    '"""Helpers for code Generated by archc.\n\nNot generated: edit freely.\n"""\n',
    '"""Post-processing.\n\nGenerated by archc from x.arch; do not edit: change the spec and rebuild.\nreally not.\n"""\n',
    '# Generated by archc from x.arch; do not edit: change the spec and rebuild.\n"""Mine."""\n',
    '"""Mine.\n"""\n# Generated by archc from x.arch; do not edit: change the spec and rebuild.\n',
])
def test_a_hand_written_file_that_quotes_the_marker_is_not_overwritten(tmp_path, capsys, text):
    target = tmp_path / "factorization.py"
    target.write_text(text)
    assert main(["build", str(SMALL), "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"archc: error: '{target}' was not generated by archc; use --force to " \
                                      "overwrite it\n"
    assert target.read_text() == text


def test_a_generated_file_is_regenerated(tmp_path, capsys):
    assert main(["build", str(SMALL), "-o", str(tmp_path)]) == 0
    target = tmp_path / "factorization.py"
    first = target.read_text()
    target.write_text(first + "\nx = 1  # an edit, which the rebuild replaces\n")
    assert main(["build", str(SMALL), "-o", str(tmp_path)]) == 0
    assert target.read_text() == first


def test_every_checked_in_generated_module_is_recognised():
    modules = sorted((SPECS.parent / "generated").glob("*.py"))
    assert len(modules) >= 15
    assert [p.name for p in modules if not files.is_generated(p)] == ["__init__.py"]


def test_a_long_header_keeps_the_module_archcs(tmp_path, capsys):
    """The marker ends the docstring, after the spec's header comment: past 4 KiB for a long one."""
    spec = tmp_path / "long.arch"
    spec.write_text("".join(f"# line {i} of a long header, as a paper's abstract might be\n" for i in range(200))
                    + "\n" + NET)
    assert main(["build", str(spec), "-o", str(tmp_path)]) == 0
    assert (tmp_path / "long.py").read_text().index(files.MARKER) > 4096
    assert main(["build", str(spec), "-o", str(tmp_path)]) == 0


@pytest.mark.parametrize(("fmt", "data"), [
    ("dot", b"digraph archc {\n  a -> b;\n}\n"),
    ("svg", b'<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"/>\n'),
    ("html", b"<!DOCTYPE html>\n<html><body>x</body></html>\n"),
    ("html", b"<html></html>"),
    ("png", b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + bytes(13) + b"\0\0\0\0"
     + b"\0\0\0\0IEND\xaeB`\x82"),
    ("pdf", b"%PDF-1.5\n1 0 obj\n<< >>\nendobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \n"
            b"trailer\n<< /Size 2 >>\nstartxref\n30\n%%EOF\n"),
])
def test_each_format_is_recognised_only_with_the_marker_where_archc_puts_it(fmt, data):
    assert files.carries_marker(files.marked(data, fmt))
    assert not files.carries_marker(data)
    quoted = data.replace(b"}\n", b"  // Generated by archc\n}\n").replace(b"x</body>", b"<!-- Generated by archc -->")
    assert not files.carries_marker(quoted)
