"""Hostile and broken specs: every input ends in a located SpecError or valid code, never a crash;
nothing from a spec reaches generated Python but validated names and literals.

The fuzzing budget here is small so CI stays quick; for a longer run:
    HYPOTHESIS_PROFILE=long python -m pytest tests/test_robustness.py
"""

import ast
import builtins
import os

import pytest
from archtest import ALLOWED_IMPORTS, ROOT, SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archc
from archc.errors import SpecError

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# small specs, quick to elaborate, covering blocks, concat, residual, side outputs, loops, lets
SEEDS = [(SPECS / name).read_text() for name in ("nin.arch", "googlenet.arch", "alexnet.arch")] + [
    (SPECS / "experiments" / name).read_text() for name in ("bottleneck.arch", "factorization.arch")
]
TOKENS = ["block", "network", "variant", "use", "let", "input", "seq", "concat", "dense", "residual", "shortcut",
          "from", "side", "for", "in", "out", "if", "else", "and", "or", "not", "true", "false", "none",
          "conv", "relu", "linear", "batchnorm", "maxpool", "flatten", "identity", "B", "N", "x", "c", "i",
          "(", ")", "{", "}", "[", "]", ",", "=", ";", "\n", ".", "+", "-", "*", "//", "**", "%", "==", "<",
          "0", "1", "3", "64", "-1", "1e9", "2.5", '"M"', "range", "len", "channels", "{i}", "#"]


def outcome(text: str, tmp_path) -> None:
    """Loading either succeeds (and then the generated code is safe) or raises a located SpecError."""
    path = tmp_path / "fuzz.arch"
    path.write_text(text, encoding="utf-8", errors="surrogateescape") if isinstance(text, str) else \
        path.write_bytes(text)
    try:
        spec = archc.load(path)
        if spec.variants:
            assert_safe(spec.source())
    except SpecError as exc:
        exc.render()  # rendering must not fail either


def assert_safe(source: str) -> None:
    """Generated code imports only torch and a few of the standard library's modules, and calls only torch, its own
    classes and a few builtins."""
    tree = ast.parse(source)
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    allowed = classes | {"range", "len", "min", "max", "int", "float", "abs", "sum", "round", "enumerate", "zip", "str",
                         "getattr", "super", "isinstance", "set", "tuple", "dict", "all",
                         "ValueError", "list"}  # the feature-extractor and window-attention helpers
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(a.name in ALLOWED_IMPORTS for a in node.names), [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS and node.level == 0, node.module
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            assert not node.decorator_list
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            # a bare name called: a builtin we allow, a generated class, or a parameter holding one
            assert node.func.id in allowed or node.func.id not in dir(builtins), node.func.id
        elif isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__") or node.attr == "__init__", node.attr


@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_byte_mutations_of_real_specs(seed, data, tmp_path_factory):
    raw = bytearray(seed.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if op == "delete":
            del raw[at:at + data.draw(st.integers(1, 8))]
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "replace":
            raw[at] = data.draw(st.integers(0, 255))
        else:
            raw[at:at] = raw[at:at + data.draw(st.integers(1, 40))]
    outcome(bytes(raw), tmp_path_factory.mktemp("m"))


@given(tokens=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=60))
def test_token_soup(tokens, tmp_path_factory):
    outcome(" ".join(tokens), tmp_path_factory.mktemp("t"))


@st.composite
def small_networks(draw):
    """Grammar-aware: well-formed networks with random layers, some of which are wrong."""
    layers = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "pool", "relu", "concat", "dense", "residual", "bn", "flatten", "linear"]))
        n = draw(st.integers(-2, 70))
        k = draw(st.integers(0, 9))
        layers.append({
            "conv": f"c{i} = conv({n}, {k}, stride = {draw(st.integers(0, 3))}, padding = {draw(st.integers(0, 4))})",
            "pool": f"maxpool({k}, stride = {draw(st.integers(1, 3))}, ceil_mode = {draw(st.sampled_from(['true', 'false']))})",
            "relu": "relu",
            "concat": f"concat {{ a{i} = conv({n}, 1); b{i} = conv({n}, 3, padding = {k % 2}) }}",
            "dense": f"dense(checkpoint = {draw(st.sampled_from(['true', 'false']))}) {{ for j in range({k % 4}) "
                     f"{{ d{i}_{{j}} = conv({n}, 3, padding = {k % 3}) }} }}",
            "residual": f"residual {{ r{i} = conv(out.channels, 3, padding = 1) }}",
            "bn": f"bn{i} = batchnorm",
            "flatten": "flatten",
            "linear": f"fc{i} = linear({n})",
        }[kind])
    size = draw(st.integers(1, 40))
    body = "\n    ".join(layers)
    return f"network N() {{\n    input 3 x {size} x {size}\n    {body}\n}}\nvariant n = N()\n"


@given(text=small_networks())
def test_generated_networks(text, tmp_path_factory):
    outcome(text, tmp_path_factory.mktemp("g"))


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.arch")), ids=lambda p: p.stem)
def test_committed_generated_code_is_safe(path):
    assert_safe((ROOT / "generated" / f"{path.stem}.py").read_text())


@pytest.mark.parametrize("comment", ['"""; import os; os.system("echo pwned") #', 'ends with a quote"', "back\\slash"])
def test_comments_cannot_escape_their_docstrings(comment, tmp_path):
    text = f"# {comment}\n\n# {comment}\nblock B() {{\n    relu\n}}\n# {comment}\nnetwork N() {{\n" \
           f"    input 3 x 8 x 8\n    b = B()\n}}\n# {comment}\nvariant n = N()\n"
    path = tmp_path / "c.arch"
    path.write_text(text)
    source = archc.load(path).source()
    tree = ast.parse(source)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name == "os"]
    docs = [ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
    assert sum(comment in (d or "") for d in docs) >= 3  # the comment survives, as text


@pytest.mark.parametrize("text", [
    'let s = "x\\"); import os; #"\n',
    'network N() {\n    input 3 x 8 x 8\n    os = conv(8, 1)\n    __import__ = conv(8, 1)\n}\nvariant n = N()\n',
])
def test_strings_and_names_cannot_inject_code(text, tmp_path):
    outcome(text, tmp_path)


def test_control_characters_are_located_errors(tmp_path):
    path = tmp_path / "nul.arch"
    path.write_bytes(b"# a comment with a \x00 in it\nblock B() {\n    relu\n}\n")
    with pytest.raises(SpecError) as info:
        archc.load(path)
    assert info.value.render().startswith(f"{path}:1:20: error: control character U+0000")
    path.write_bytes("\ufeffblock B() {\n    relu\n}\n".encode())  # a byte-order mark is fine
    archc.load(path)
