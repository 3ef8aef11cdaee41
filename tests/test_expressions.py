"""One meaning for every expression: what archc's evaluator computes is what Python computes from the text
the printer writes for it (random trees, checked against Python's own ``eval``), the printed text parses
back to the same value, and evaluation is bounded in work and memory."""

from __future__ import annotations

import ast
import math
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from archtest import ROOT, SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Tree

import archc
from archc.backends.python import irprint
from archc.backends.python.lower import lower
from archc.cli import EXIT_SPEC
from archc.errors import SpecError
from archc.lang import nodes as n
from archc.lang.parser import parse
from archc.lang.syntax import _fragment_parser, _parser
from archc.sema.expr import evaluate
from archc.sema.exprfold import fold
from archc.sema.values import MAX_INT

HERE = n.Span("<test>", 1, 1, 1, 2)
PYTHON_NAMES = {"True": True, "False": False}  # what Python's spelling reads as, for archc's parser

# ------------------------------------------------------------------ random expression trees

_INTS = st.integers(-12, 12) | st.sampled_from([0, 1, -1, 100, 2**31, -(2**40), 10**15])
_FLOATS = st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.1, 3.0, 1e16, 1.5e-7, 1e300, -1e300, 5e-324,
                           2.0**62, 1e-300, 7.25])
_LEAVES = st.builds(lambda v: n.Num(v, HERE), _INTS | _FLOATS) | st.builds(lambda v: n.Const(v, HERE), st.booleans())
_ARITH = ["+", "-", "*", "/", "//", "%"]
_COMPARE = ["==", "!=", "<", "<=", ">", ">="]
# small exponents only: ``**`` of anything large is a limit, not a meaning
_EXPONENTS = st.builds(lambda v: n.Num(v, HERE), st.integers(-3, 4) | st.sampled_from([0.5, 2.0, -1.0])) | \
    st.builds(lambda v: n.Const(v, HERE), st.booleans())


def to_python(e) -> str:
    """An expression as the code generator prints it: lowered to its IR, then printed."""
    return irprint.print_expr(lower(e))


def _nodes(children):
    return st.one_of(
        st.builds(lambda op, a, b: n.BinOp(op, a, b, HERE), st.sampled_from(_ARITH + _COMPARE + ["and", "or"]),
                  children, children),
        st.builds(lambda a, b: n.BinOp("**", a, b, HERE), children, _EXPONENTS | st.builds(
            lambda e: n.UnaryOp("-", e, HERE), _EXPONENTS)),
        st.builds(lambda ops, xs: n.Compare(ops, xs[:len(ops) + 1], HERE),
                  st.lists(st.sampled_from(_COMPARE), min_size=2, max_size=3), st.lists(children, min_size=4, max_size=4)),
        st.builds(lambda op, a: n.UnaryOp(op, a, HERE), st.sampled_from(["-", "+", "not"]), children),
        st.builds(lambda c, a, b: n.IfExp(c, a, b, HERE), children, children, children),
    )


TREES = st.recursive(_LEAVES, _nodes, max_leaves=12)


def archc_value(e: n.Expr, env=None):
    try:
        return ("value", evaluate(e, env or {}))
    except SpecError as exc:
        return ("error", exc.message)


def python_value(text: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ("value", eval(text, {"__builtins__": {}, "math": math}))  # noqa: S307 (the oracle)
    except (ArithmeticError, TypeError, ValueError) as exc:
        return ("error", str(exc))


def out_of_limits(value) -> bool:
    """A value archc refuses to hold (its documented limits), though Python holds it."""
    if isinstance(value, complex):
        return True
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and abs(value) > MAX_INT


def subtrees(e: n.Expr):
    return list(e.walk())


def same(a, b) -> bool:
    """Equal values of one type; floats by repr, so -0.0 is not 0.0."""
    (ka, va), (kb, vb) = a, b
    if ka == kb == "error":
        return True
    return ka == kb == "value" and type(va) is type(vb) and repr(va) == repr(vb)


def check_one_meaning(tree: n.Expr) -> None:
    text = to_python(tree)
    ours, theirs = archc_value(tree), python_value(text)
    if ours[0] == "error" and theirs[0] == "value" and any(w in ours[1] for w in ("too large", "complex", "finite")):
        # a limit: some part of the expression is a value archc does not hold (Python computes on)
        assert any(out_of_limits(python_value(to_python(s))[1]) for s in subtrees(tree)), (text, ours, theirs)
        return
    assert same(ours, theirs), (text, ours, theirs)
    folded = fold(tree, {}) if ours[0] == "value" else tree
    assert same(archc_value(folded), ours), (text, to_python(folded))


def check_round_trip(tree: n.Expr) -> None:
    text = to_python(tree)
    reparsed = parse(f"let x = {text}\n").lets[0].value
    assert same(archc_value(reparsed, PYTHON_NAMES), archc_value(tree)), (text, to_python(reparsed))
    assert to_python(reparsed) == text  # and it prints the same: nothing regrouped


_FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
_SLOW = settings(max_examples=int(os.environ.get("ARCHC_EXPR_EXAMPLES", "5000")), deadline=None,
                 suppress_health_check=list(HealthCheck))


@_FAST
@given(TREES)
def test_archc_and_python_agree(tree):
    check_one_meaning(tree)


@_FAST
@given(TREES)
def test_printed_text_parses_back_to_the_same_value(tree):
    check_round_trip(tree)


@pytest.mark.slow
@_SLOW
@given(TREES)
def test_archc_and_python_agree_on_thousands(tree):
    check_one_meaning(tree)
    check_round_trip(tree)


# ------------------------------------------------------------------ the reported cases, and their neighbours


def value_of(text: str, **env):
    return evaluate(parse(f"let x = {text}\n").lets[0].value, env)


@pytest.mark.parametrize(("text", "expected"), [
    ("16 if a < b < c else 8", 8), ("(a < b) < c", True), ("8 if (c < b) == (b < a) else 4", 8),
    ("c < b == b < a", False), ("1 < 2 > 0 == 0", True), ("3 > 2 > 1", True),
    ("-2 ** 2", -4), ("(-2) ** 2", 4), ("2 ** 3 ** 2", 512), ("2 ** -1", 0.5), ("2 ** -2 ** 2", 0.0625),
    ("-7 // 2", -4), ("-7 % 2", 1), ("7 % -2", -1), ("7.5 // -2", -4.0), ("-7.5 % 2", 0.5),
    ("not 1 == 2", True), ("not 1 + 1", False), ("- -3", 3), ("-true", -1), ("+false", 0), ("true + true", 2),
    ("1 if false else 2 if true else 3", 2), ("(1 if false else 2) if true else 3", 2),
    ("-(1 if true else 2)", -1), ("[1 if a else 2, 3][0]", 1), ("2 ** (2 if true else 3)", 4),
    ("abs(true)", 1), ("int(true)", 1), ("1e16", 1e16), ("1.5e-7 * 2", 3e-7), ("-0.0", -0.0),
])
def test_values_of_reported_and_neighbouring_cases(text, expected):
    env = {"a": 1, "b": 2, "c": 2}
    got = value_of(text, **env)
    assert type(got) is type(expected) and repr(got) == repr(expected)
    printed = to_python(parse(f"let x = {text}\n").lets[0].value)
    theirs = eval(printed, {"__builtins__": {"abs": abs, "int": int}}, {**env, **PYTHON_NAMES})  # noqa: S307
    assert type(theirs) is type(expected) and repr(theirs) == repr(expected)


@pytest.mark.parametrize(("text", "printed"), [
    ("8 if (a < b) == (b < c) else 4", "8 if (a < b) == (b < c) else 4"),
    ("(a < b) < c", "(a < b) < c"), ("a < (b < c)", "a < (b < c)"), ("a < b < c", "a < b < c"),
    ("(a == none) == b", "(a is None) == b"), ("2 ** -a", "2 ** -a"), ("(-a) ** 2", "(-a) ** 2"),
    ("-a ** 2", "-a ** 2"), ("(a if b else c) + 1", "(a if b else c) + 1"), ("not (a and b)", "not (a and b)"),
    ("ceil(a) + floor(b) + log(c) + sqrt(a)", "math.ceil(a) + math.floor(b) + math.log(c) + math.sqrt(a)"),
])
def test_printing_keeps_the_grouping(text, printed):
    assert to_python(parse(f"let x = {text}\n").lets[0].value) == printed


def test_a_folded_negative_zero_keeps_its_parentheses():
    tree = n.BinOp("**", n.Num(-0.0, HERE), n.Num(2, HERE), HERE)
    assert to_python(tree) == "(-0.0) ** 2" and eval(to_python(tree)) == 0.0 == evaluate(tree, {})
    assert repr(evaluate(tree, {})) == "0.0"


def net(body: str, params: str = "") -> str:
    return f"network N({params}) {{\n    input 3 x 8 x 8\n    {body}\n}}\nvariant n = N()\n"


@pytest.mark.parametrize(("cond", "values"), [
    ("a < b < c", [((1, 2, 2), 8), ((1, 2, 3), 16), ((3, 2, 1), 8)]),
    ("(a < b) == (b < c)", [((2, 1, 0), 16), ((1, 2, 3), 16), ((1, 2, 2), 8)]),
])
def test_a_chain_in_a_layer_means_one_thing_in_the_check_and_the_model(tmp_path, cond, values):
    (tmp_path / "chain.arch").write_text(net(f"c = conv(16 if {cond} else 8, 1)", "a = 1, b = 2, c = 2"))
    spec = archc.load(tmp_path / "chain.arch")
    for (a, b, c), channels in values:
        graph = spec.graph("n", a=a, b=b, c=c)
        model = spec.build("n", a=a, b=b, c=c)
        assert model.c.out_channels == channels
        assert graph.params == sum(p.numel() for p in model.parameters()) == channels * 3 + channels


def test_generated_code_computes_builtins_with_math_not_tensors():
    """``import math`` (the standard library), never a value through a tensor and back (``.item()``)."""
    for path in sorted((ROOT / "generated").glob("*.py")):
        tree = ast.parse(path.read_text())
        defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert not defined & {"_ceil", "_floor", "_log", "_sqrt"}, path.name
        uses_math = any(isinstance(x, ast.Attribute) and isinstance(x.value, ast.Name) and x.value.id == "math"
                        for x in ast.walk(tree))
        imports_math = any(isinstance(x, ast.Import) and [a.name for a in x.names] == ["math"] for x in tree.body)
        assert uses_math == imports_math, path.name
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "forward":
                assert not any(isinstance(x, ast.Attribute) and x.attr == "item" for x in ast.walk(node)), path.name
    assert "import math" in (ROOT / "generated" / "regnet.py").read_text()  # log and sqrt: one spec that uses them


def test_a_let_named_math_is_refused(tmp_path):
    (tmp_path / "m.arch").write_text("let math = 2\n" + net("c = conv(4, 1)"))
    with pytest.raises(SpecError, match="imports"):
        archc.load(tmp_path / "m.arch").source()


# ------------------------------------------------------------------ bounded work and memory

MEMORY_CAP = 1024 * 1024 * 1024
TIMEOUT_S = 60


def run_check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    (tmp_path / "case.arch").write_text(text)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run([sys.executable, "-m", "archc", "check", "case.arch"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT_S, preexec_fn=cap, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("text", [
    "".join(f"let r{i} = range(100000)\n" for i in range(1000)) + net("c = conv(4, 1)"),
    "let s = sum([[0] * 100000] * 100000, [])\n" + net("c = conv(4, 1)"),
    "let s = sum([[0]] * 100000, [])\n" + net("c = conv(4, 1)"),
    "let x = [[0] * 1000] * 1000\nlet y = [[0] * 1000] * 1000\n" + net("c = conv(4 if x == y else 8, 1)"),
    "let x = max([[0] * 10000] * 10000)\n" + net("c = conv(4, 1)"),
    net("c = conv(len([[i] * 1000 for i in range(5000)]), 1)"),
], ids=["1000-ranges", "sum-of-lists", "sum-of-many-small-lists", "comparing-shared-lists", "max-of-lists",
        "comprehension"])
def test_evaluation_is_bounded_and_located(tmp_path, text):
    result = run_check(tmp_path, text)
    assert result.returncode == EXIT_SPEC, result.stderr[-2000:]
    assert result.stderr.startswith("case.arch:") and "steps" in result.stderr, result.stderr[-2000:]


def test_round_with_huge_digits_is_an_error():
    with pytest.raises(SpecError, match="digits"):
        value_of("round(5, 0 - 10 ** 18)")


def test_variant_arguments_are_bounded_too(tmp_path):
    (tmp_path / "v.arch").write_text(
        "network N(k = 1) {\n    input 3 x 8 x 8\n    c = conv(4, 1)\n}\n"
        "variant n = N(k = len(sum([[0] * 1000] * 3000, [])))\n")
    with pytest.raises(SpecError, match="steps"):
        archc.load(tmp_path / "v.arch").source()


# ------------------------------------------------------------------ the AST's walker


def _lark_vars(tree: Tree) -> int:
    """Names read in expressions, counted on lark's parse tree (quoted names' interpolations parsed apart)."""
    count = 0
    for sub in tree.iter_subtrees():
        if sub.data == "var":
            count += 1
        elif sub.data == "string_target":
            text = str(sub.children[0])[1:-1]
            for piece in text.split("{")[1:]:
                count += _lark_vars(_fragment_parser().parse(piece.split("}")[0]))
    return count


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.arch")), ids=lambda p: p.stem)
def test_walk_reaches_every_name_of_every_spec(path):
    text = path.read_text()
    module = parse(text, str(path))
    walked = sum(isinstance(x, n.Var) for x in module.walk())
    assert walked == _lark_vars(_parser().parse(text)) > 0


def test_children_come_from_every_field():
    a, b, c = (n.Var(name, HERE) for name in "abc")
    call = n.Call(n.Var("f", HERE), [a], [("k", b)], HERE)
    chain = n.Compare(["<", "<"], [call, c, n.Num(1, HERE)], HERE)
    assert [type(x).__name__ for x in chain.walk()] == ["Compare", "Call", "Var", "Var", "Var", "Var", "Num"]
    assert [x.name for x in call.walk() if isinstance(x, n.Var)] == ["f", "a", "b"]
    assert list(n.Tap(None, HERE).children()) == []
