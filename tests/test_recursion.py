"""Recursive blocks (issue 20, item 4): a block calls itself, directly or through another block, and a condition
on its arguments, decided call by call while elaborating, ends the recursion. The generated class calls its own
class in ``__init__``; the graph interpreter agrees with it. A recursion that does not end is a located error
that says the chain of calls; none hangs, nor reaches Python's recursion limit."""

from __future__ import annotations

import pytest
import torch
from archtest import count_params, graph_breaks, stack_limited_to
from test_interpret import pair_of_models

import archc
from archc.sema import expr

TOWER = """
block Tower(levels, width) {
    conv = conv(width, 3, padding = 1)
    relu
    if levels > 1 {
        inner = Tower(levels - 1, width * 2)
    } else {
        head = conv(width, 1)
    }
}

network Net(levels = 3, num_classes = 10) {
    input 3 x 16 x 16
    tower = Tower(levels, 8)
    global_avgpool
    fc = linear(num_classes)
}
variant net = Net()
variant net1 = Net(levels = 1)
"""

# A tree of two calls a level, joined by a concat (as Deep Layer Aggregation's tree), its sizes halving.
TREE = """
block Tree(levels, c) {
    if levels > 1 {
        concat {
            tree1 = Tree(levels - 1, c)
            tree2 = Tree(levels - 1, c // 2)
        }
        root = seq { conv(c, 1, bias = false); batchnorm; relu }
    } else {
        leaf = seq { conv(c, 3, padding = 1, bias = false); batchnorm; relu }
    }
}

network Net() {
    input 3 x 8 x 8
    tree = Tree(3, 8)
    global_avgpool
    fc = linear(5)
}
variant net = Net()
"""

# Mutual recursion through a conditional layer; and a block with named tensors whose declared self, switched
# off, passes its input through.
MUTUAL = """
block Down(c, levels) {
    conv = conv(c, 3, stride = 2, padding = 1)
    up = Up(c + 2, levels - 1) if levels > 0
}
block Up(c, levels) {
    bn = batchnorm; relu
    down = Down(c, levels)
}
block Refine(c, levels = 2) (x) -> y {
    conv = conv(c, 3, padding = 1)
    inner = Refine(c, levels - 1) if levels > 0
    let y = relu(inner(conv(x)) + x)
}
network Net() {
    input 4 x 16 x 16
    refine = Refine(4)
    down = Down(4, 2)
    global_avgpool
    fc = linear(3)
}
variant net = Net()
"""


def load(tmp_path, text: str, name: str = "rec.arch") -> archc.Spec:
    path = tmp_path / name
    path.write_text(text)
    return archc.load(path)


def error(tmp_path, text: str) -> archc.SpecError:
    with pytest.raises(archc.SpecError) as info:
        load(tmp_path, text)
    return info.value


def deep(levels: int, condition: str = "if levels > 1") -> str:
    return f"""
block Deep(levels) {{
    conv = conv(4, 1)
    inner = Deep(levels - 1) {condition}
}}
network Net() {{
    input 4 x 4 x 4
    deep = Deep({levels})
}}
variant net = Net()
"""


def test_the_condition_ends_the_recursion_call_by_call(tmp_path):
    s = load(tmp_path, TOWER)
    graph = s.graph("net")
    paths = {op.name for op in graph.ops() if op.name}
    assert {"tower.conv", "tower.inner.conv", "tower.inner.inner.conv", "tower.inner.inner.head"} <= paths
    assert "tower.inner.inner.inner.conv" not in paths and "tower.head" not in paths
    assert graph.node(graph.output).shape == (10,)
    assert s.graph("net1").params < graph.params  # one level: one conv and the head
    model = s.build("net")
    assert count_params(model) == graph.params
    assert model.tower.inner.inner.head.out_channels == 32 and model.fc.in_features == 32


def test_the_generated_class_calls_its_own_class(tmp_path):
    source = load(tmp_path, TOWER).source()
    assert "            self.inner = Tower(width, levels - 1, width * 2)\n" in source
    assert "            channels = self.inner.out_channels\n" in source  # the width a recursive call records
    assert source.index("class Tower(") < source.index("class Net(")


@pytest.mark.parametrize("text", [TOWER, TREE, MUTUAL], ids=["tower", "tree", "mutual"])
def test_the_interpreter_agrees_and_a_mutation_shows(tmp_path, text):
    s = load(tmp_path, text)
    model, interp = pair_of_models(s, "net")
    x = torch.randn(2, *s.graph("net").node("input").shape, dtype=torch.float64)
    model.eval(), interp.eval()
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, interp(x))
        deepest = max((k for k in interp.state_dict() if k.endswith("weight")), key=lambda k: k.count("."))
        interp.state_dict()[deepest].mul_(1.5)  # the innermost call's weights matter
        assert not torch.allclose(out, interp(x))


def test_a_deep_recursion_checks_builds_and_runs(tmp_path):
    s = load(tmp_path, deep(50))
    model = s.build("net")
    assert count_params(model) == s.graph("net").params == 50 * 20
    assert model(torch.randn(1, 4, 4, 4)).shape == (1, 4, 4, 4)


def test_a_recursion_that_does_not_end_says_its_chain(tmp_path):
    exc = error(tmp_path, deep(3, ""))
    assert exc.span.line == 4 and exc.span.column == 5  # the call past the limit
    assert exc.message == ("the recursion of block Deep does not end within 64 nested calls (Deep(3) -> Deep(2) -> "
                           "Deep(1) -> ... 60 more ... -> Deep(-60) -> Deep(-61); Deep -> Deep repeats)")
    assert "call it under a condition on an argument that changes at each call" in exc.hint
    through = error(tmp_path, MUTUAL.replace("Up(c + 2, levels - 1) if levels > 0", "Up(c + 2, levels - 1) if levels > -99"))
    assert through.message.startswith("the recursion of block Down does not end within 64 nested calls "
                                      "(Down(4, 2) -> Up(6, 1) -> Down(6, 1) -> ... 60 more ... ->")
    assert through.message.endswith("; Down -> Up -> Down repeats)")


def test_a_call_that_repeats_an_open_one_is_refused_at_once(tmp_path):
    exc = error(tmp_path, deep(3, "if levels > 1").replace("Deep(levels - 1)", "Deep(levels)"))
    assert exc.message == ("block Deep calls itself with the same arguments and input, so the recursion never ends "
                           "(Deep(3) -> Deep(3))")


def test_a_tree_of_calls_past_the_budget_says_its_chain(tmp_path, monkeypatch):
    monkeypatch.setattr(expr, "MAX_STEPS", 20_000)
    text = TREE.replace("c // 2", "c + 1").replace("Tree(3, 8)", "Tree(30, 8)")  # 2 ** 30 calls, none alike
    exc = error(tmp_path, text)
    assert exc.message.startswith("the recursion of block Tree does not end within the budget of 20,000 evaluation "
                                  "steps (Tree(30, 8) -> Tree(29, 8) -> Tree(28, 8) -> ...")
    assert exc.span.line in (5, 6)  # a call of the tree


def test_python_s_stack_is_a_located_error_too(tmp_path):
    with stack_limited_to(150):  # (a spec nests its blocks 60 deep here, nothing else deeply)
        exc = error(tmp_path, deep(60))
    assert "does not end before Python's stack runs out (Deep(60) -> Deep(59)" in exc.message


@pytest.mark.slow
def test_recursive_classes_compile_without_graph_breaks(tmp_path):
    for text in (TOWER, TREE, MUTUAL):
        s = load(tmp_path, text)
        model = s.build("net").eval()
        assert graph_breaks(model, torch.randn(1, *s.graph("net").node("input").shape)) == 0


def test_a_default_that_names_its_own_block_is_refused(tmp_path):
    """A class cannot default to itself (its name is unbound while its def runs), nor to a class that defaults
    back to it: whichever is written first would name one not yet defined."""
    own = error(tmp_path, deep(3).replace("block Deep(levels)", "block Deep(levels, sub = Deep)"))
    assert own.message.startswith("the default of parameter 'sub' names its own block Deep:")
    assert (own.span.line, own.span.column) == (2, 26)
    text = deep(3).replace("block Deep(levels)", "block Deep(levels, sub = Other)") + \
        "block Other(c, sub = Deep) {\n    conv = conv(c, 1)\n}\n"
    assert "(the defaults name Deep -> Other -> Deep)" in error(tmp_path, text).message
