"""``archc fmt``: the canonical style (golden cases), safety (same AST, same comments) and idempotence over every
spec and doc example, and the command line."""

import os
import re
import stat

import pytest
from archtest import ROOT, SPECS, fast_tier
from test_docs import BLOCKS

from archc.cli import main
from archc.errors import SpecError
from archc.lang import format as fmt
from archc.lang.format import UnsafeFormat, format_source, format_text, same_ast
from archc.lang.parser import parse

SPEC_FILES = sorted([*SPECS.glob("*.arch"), *SPECS.glob("experiments/*.arch")])
# the fast tier's sample for the rewriting sweeps: tables, strings, comprehensions, long calls and the most layout
SAMPLE = fast_tier(SPEC_FILES, {SPECS / f"{stem}.arch" for stem in
                                ("densenet", "efficientnet", "inception_v4", "maxvit", "regnet", "swin", "xcit")})
EXAMPLES = [(kind, code) for kind, code, _ in BLOCKS]


def _ids(paths):
    return [str(p.relative_to(SPECS)) for p in paths]


@pytest.mark.parametrize("path", SPEC_FILES, ids=_ids(SPEC_FILES))
def test_every_spec_is_formatted(path):
    text = path.read_text()
    assert format_source(text, str(path)) == text, f"run: archc fmt {path.relative_to(ROOT)}"


@pytest.mark.parametrize(("kind", "code"), EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_every_doc_example_is_formatted(kind, code):
    if kind == "arch error":  # an error example its parse already refuses (a loop's misuse): fmt refuses it too
        try:
            parse(code, "example.arch")
        except SpecError:
            with pytest.raises(SpecError):
                format_source(code, "example.arch")
            return
    assert format_source(code, "example.arch") == code


@pytest.mark.parametrize("path", SAMPLE, ids=_ids(SPEC_FILES))
def test_reindenting_restores_the_spec(path):
    """Indentation, trailing spaces and extra blank lines thrown away: the formatter puts them back as they were."""
    text = path.read_text()
    mangled = "\n".join(line.strip() + "  " if line.strip() else "\n\n" for line in text.splitlines())
    assert format_source(mangled, str(path)) == text


def _squeeze(text: str) -> str:
    """Every space between two tokens that the lexer does not need dropped, on code lines without strings or
    braces (a '{' right after a name would open an interpolation) and outside tables."""
    out = []
    for line in text.splitlines():
        code, hash_, comment = line.strip().partition("#")
        if not code or '"' in line or "{" in line or "}" in line or "  " in code.strip():
            out.append(line)
            continue
        tokens = re.findall(r"\*\*|//|==|!=|<=|>=|[\w.]+|\S", code)
        squeezed = tokens[0]
        for tok in tokens[1:]:
            squeezed += (" " if re.match(r"\w", squeezed[-1]) and re.match(r"[\w.]", tok) else "") + tok
        out.append(line[:len(line) - len(line.lstrip())] + squeezed + (" #" + comment if hash_ else ""))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("path", SAMPLE, ids=_ids(SPEC_FILES))
def test_squeezed_spec_round_trips(path):
    """With its spaces squeezed out, a spec formats to the same program, idempotently, and to the spec itself
    but for the alignment that squeezing lost."""
    text = path.read_text()
    squeezed = _squeeze(text)
    assert squeezed != text
    formatted = format_source(squeezed, str(path))  # raises if the program or its comments changed
    assert format_text(formatted) == formatted
    assert re.sub(" +", " ", formatted) == re.sub(" +", " ", text)


def test_generated_specs_format_safely_and_idempotently():
    """The specs the soundness fuzzer writes: each formats to the same program (checked) and to a fixed point."""
    import random

    from specgen import generate

    for seed in range(40):
        formatted = format_source(generate(random.Random(seed).randint), f"generated{seed}.arch")
        assert format_text(formatted) == formatted


# ------------------------------------------------------------------ golden cases of the canonical style

GOLDEN = {
    "spacing": (
        "let  x=[1,2 ,3]\n"
        "def f( a ,b=2 ){\n"
        "  let y=a*-b+ ( a//2 )\n"
        "  return y**2 if not(a>b) else -y\n"
        "}\n",
        "let x = [1, 2, 3]\n"
        "def f(a, b = 2) {\n"
        "    let y = a * -b + (a // 2)\n"
        "    return y ** 2 if not (a > b) else -y\n"
        "}\n",
    ),
    "bodies, one-line bodies and semicolons": (
        "block B(c)=seq{\n"
        "conv(c,3);relu\n"
        "   head = seq {  linear(c) ;relu  }\n"
        "  if c>3{relu}else{ relu }\n"
        "residual{conv(c,1)}shortcut{conv( c,1)}\n"
        "}\n",
        "block B(c) = seq {\n"
        "    conv(c, 3); relu\n"
        "    head = seq { linear(c); relu }\n"
        "    if c > 3 { relu } else { relu }\n"
        "    residual { conv(c, 1) } shortcut { conv(c, 1) }\n"
        "}\n",
    ),
    "interpolated names and inputs": (
        "network N(n = 2) {\n"
        "input 3 x (n) x 32\n"
        "for i in range(n) { layer{ i+1 }_conv = conv(8, 3) }\n"
        "}\n",
        "network N(n = 2) {\n"
        "    input 3 x (n) x 32\n"
        "    for i in range(n) { layer{i + 1}_conv = conv(8, 3) }\n"
        "}\n",
    ),
    "comments and blank lines": (
        "# header\n\n\n\nblock B() {\n\n"
        "      # about relu\n"
        "  relu # trailing\n"
        "  relu       # kept wide\n\n\n"
        "  relu\n\n"
        "}\n\n\n",
        "# header\n\nblock B() {\n"
        "    # about relu\n"
        "    relu  # trailing\n"
        "    relu       # kept wide\n\n"
        "    relu\n"
        "}\n",
    ),
    "continuation lines": (
        "network N(a,\n"
        "  b = 2) {\n"
        "input 3 x 8 x 8\n"
        "let t = [\n"
        "[1, 2],\n"
        "  [3, 4],\n"
        "    ]\n"
        "}\n",
        "network N(a,\n"
        "          b = 2) {\n"
        "    input 3 x 8 x 8\n"
        "    let t = [\n"
        "        [1, 2],\n"
        "        [3, 4],\n"
        "    ]\n"
        "}\n",
    ),
    "tables keep their columns": (
        "network N() {\n"
        "    input 3 x 224 x 224\n"
        "    #              1x1  3x3\n"
        "    a = Inception(  64,  96, k5)\n"
        "    pool = maxpool(3, stride = 2)\n"
        "    b = Inception( 128, 128, k5)\n"
        "    c = conv(64, 3);      relu\n"
        "    d = conv(64, 3, 1);   relu\n"
        "    e = conv(  8,    3)\n"
        "}\n",
        "network N() {\n"
        "    input 3 x 224 x 224\n"
        "    #              1x1  3x3\n"
        "    a = Inception(  64,  96, k5)\n"
        "    pool = maxpool(3, stride = 2)\n"
        "    b = Inception( 128, 128, k5)\n"
        "    c = conv(64, 3);      relu\n"
        "    d = conv(64, 3, 1);   relu\n"
        "    e = conv(8, 3)\n"
        "}\n",
    ),
    "long lines wrap after a comma of the outermost call": (
        "variant v = Network(table, stem = 32, width_mult = 1.0, depth_mult = 1.0, last_channel = none,"
        " dropout = 0.2, size = 224, eps = 0.001, momentum = 0.01)\n",
        "variant v = Network(table, stem = 32, width_mult = 1.0, depth_mult = 1.0, last_channel = none, dropout = 0.2,\n"
        "                    size = 224, eps = 0.001, momentum = 0.01)\n",
    ),
    "a block's inputs stay apart from its parameters wrapped onto a second line": (
        "block Unit(out_channels, stride, alpha, beta, group_size, bottle_ratio, gamma, eps, transition,\n"
        "           attn_gain = 2.0)(x) -> y {\n    let y = x\n}\n",
        "block Unit(out_channels, stride, alpha, beta, group_size, bottle_ratio, gamma, eps, transition,\n"
        "           attn_gain = 2.0) (x) -> y {\n    let y = x\n}\n",
    ),
}


@pytest.mark.parametrize(("source", "expected"), GOLDEN.values(), ids=GOLDEN.keys())
def test_canonical_style(source, expected):
    assert format_source(source, "golden.arch") == expected
    assert format_source(expected, "golden.arch") == expected


def test_header_comments_stay_the_header():
    """The file's first comment lines at the margin are the module's header (the generated docstring): an
    indented comment after them, or a comment after a blank first line, must not join it."""
    for text in ["# a\n  # not the header\nlet x = 1\n", "\n  # not the header\nlet x = 1\n"]:
        formatted = format_source(text, "h.arch")
        assert parse(formatted).header == parse(text).header
        assert format_text(formatted) == formatted


# ------------------------------------------------------------------ safety


def test_same_ast_ignores_layout_not_meaning():
    assert same_ast(parse("let x = [1, 2]\n"), parse("let  x=[1,\n   2]\n"))
    assert not same_ast(parse("let x = [1, 2]\n"), parse("let x = [1, 3]\n"))
    assert not same_ast(parse("let x = 1\n"), parse("let x = 1.0\n"))


def _broken_formatter(monkeypatch, change):
    real = fmt.format_text
    monkeypatch.setattr(fmt, "format_text", lambda text: change(real(text)))


@pytest.mark.parametrize(("change", "why"), [
    (lambda text: text.replace("64", "65"), "different program"),
    (lambda text: text.replace("= 1)", "= 1"), "does not parse"),
    (lambda text: text.replace("# its conv", "# a conv"), "different comments"),
    (lambda text: text.replace("# the stem\n", "# the stem\n\n"), "above its definitions"),
])
def test_a_formatter_that_changes_the_program_is_caught(monkeypatch, change, why):
    text = "# the stem\nblock Stem(c = 64) {\n    conv(c, 3, padding = 1)  # its conv\n}\n"
    _broken_formatter(monkeypatch, change)
    with pytest.raises(UnsafeFormat, match=why):
        format_source(text, "stem.arch")


def test_fmt_leaves_a_file_it_would_change_untouched(monkeypatch, tmp_path, capsys):
    path = tmp_path / "stem.arch"
    text = "block Stem(c=64) {\n    conv(c, 3, padding = 1)\n}\n"
    path.write_text(text)
    _broken_formatter(monkeypatch, lambda text: text.replace("64", "65"))
    assert main(["fmt", str(path)]) == 3
    assert path.read_text() == text
    assert f"{path}: error: formatting would change the program (please report it)" in capsys.readouterr().err


# ------------------------------------------------------------------ the command line

MESSY = "block B(c=8){\nconv(c,3);relu\n}\n"
TIDY = "block B(c = 8) {\n    conv(c, 3); relu\n}\n"


def test_fmt_rewrites_in_place_keeping_the_mode(tmp_path, capsys):
    path = tmp_path / "b.arch"
    path.write_text(MESSY)
    path.chmod(0o640)
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == TIDY
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert capsys.readouterr().out == f"formatted {path}\n"
    assert main(["fmt", str(path)]) == 0
    assert capsys.readouterr().out == ""


def test_fmt_check_prints_the_diff_and_fails(tmp_path, capsys):
    messy, tidy = tmp_path / "messy.arch", tmp_path / "tidy.arch"
    messy.write_text(MESSY)
    tidy.write_text(TIDY)
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 1
    out, err = capsys.readouterr()
    assert f"--- {messy}\n+++ {messy}\n" in out and "+    conv(c, 3); relu" in out and str(tidy) not in out
    assert "1 of 2 files would be formatted" in err
    assert messy.read_text() == MESSY
    assert main(["fmt", "--check", str(tidy)]) == 0


def test_fmt_diff_writes_nothing(tmp_path, capsys):
    path = tmp_path / "b.arch"
    path.write_text(MESSY)
    assert main(["fmt", "--diff", str(path)]) == 0
    assert "-conv(c,3);relu" in capsys.readouterr().out
    assert path.read_text() == MESSY


def test_fmt_errors(tmp_path, capsys):
    bad = tmp_path / "bad.arch"
    bad.write_text("block B( {\n}\n")
    assert main(["fmt", str(bad)]) == 1
    assert f"{bad}:1:" in capsys.readouterr().err
    assert bad.read_text() == "block B( {\n}\n"
    assert main(["fmt", str(tmp_path / "missing.arch")]) == 2
    link = tmp_path / "link.arch"
    link.symlink_to(bad)
    assert main(["fmt", str(link)]) == 2
    assert "symbolic link" in capsys.readouterr().err
