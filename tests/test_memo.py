"""Block calls elaborated once (archc/sema/memo.py): a copy must be exactly what elaborating the call again gives.

The oracle is the elaborator with the memo off: for every shipped spec, every variant's graph (operations,
scopes, taps, side outputs, resolved init rules), the shapes recorded for the code generator, the evaluation
steps counted against the limit and the generated source must be the same either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archc.lang.loader import load_program
from archc.sema import memo
from archc.sema.elaborate import Elaborator
from archc.spec import Spec, load

USED = ("googlenet", "resnet", "densenet")  # specs whose calls repeat: the copies are exercised in the fast tier
SPECS = [pytest.param(p, marks=() if p.stem in USED else pytest.mark.slow)
         for p in sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.arch"))]


def _both(path: Path) -> tuple[Spec, Spec]:
    program = load_program(path)
    plain, memoized = Spec(program), Spec(program)
    plain.elaborator = Elaborator(program, memoize=False)
    return plain, memoized


def _graph_record(g) -> tuple:
    return (g.ops(), g.scopes, g.sides, g.taps, g.inits, g.input, g.output)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_copies_equal_elaboration(path, monkeypatch):
    copies = []
    real = memo.replay
    monkeypatch.setattr(memo, "replay", lambda *a: copies.append(a[2]) or real(*a))
    plain, memoized = _both(path)
    graphs, shapes = plain.checked()
    graphs_m, shapes_m = memoized.checked()
    assert graphs.keys() == graphs_m.keys()
    for name in graphs:
        assert _graph_record(graphs[name]) == _graph_record(graphs_m[name]), name
    assert shapes == shapes_m
    assert plain.elaborator.budget.steps == memoized.elaborator.budget.steps  # the step limit binds as before
    assert plain.source() == memoized.source()
    if path.stem in USED:
        assert copies, "the memo was never used: the comparison tests nothing"


def test_a_copy_reads_its_own_input_and_gets_its_own_names(monkeypatch):
    """Two calls with one key in different places: the copy's names, scopes and inputs are its own."""
    text = (
        "block Unit(c) {\n    conv = conv(c, 3, padding = 1); bn = batchnorm; relu\n}\n"
        "network Net() {\n    input 8 x 8 x 8\n    a = Unit(8)\n    stage = seq { Unit(8); Unit(8) }\n}\n"
        "variant net = Net()\n"
    )
    graph = load("unit.arch", text).check()["net"]
    ops = {op.id: op for op in graph.ops()}
    assert ops["stage.1.conv"].inputs == ("stage.0.relu#1",)
    assert ops["stage.0.conv"].inputs == ("a.relu#1",)
    assert ops["stage.1.bn"].scope == ("stage", "stage.1")
    assert ops["a.bn"].scope == ("a",)
    assert set(graph.scopes) == {"a", "stage", "stage.0", "stage.1"}


def test_a_moved_op_keeps_every_other_field():
    """``OpNode.moved`` writes the fields out by position: one added to the record and not to it would be lost."""
    from dataclasses import fields, replace

    from archc.sema.graph import OpNode

    values = {f.name: (f"value of {f.name}",) for f in fields(OpNode)}  # every field told apart from the others
    node = OpNode(**values)
    changes = {"id": "b.conv", "name": "b.conv", "scope": ("b",), "inputs": ("x",)}
    assert node.moved(**changes) == replace(node, **changes)


def _same_either_way(text: str):
    """The spec's graphs, elaborated with the memo and without it: equal, or the same error."""
    from archc.errors import SpecError
    from archc.lang.loader import load_program as load_text

    program = load_text("depths.arch", text)
    results = []
    for memoize in (False, True):
        spec = Spec(program)
        spec.elaborator = Elaborator(program, memoize=memoize)
        try:
            graphs, _ = spec.checked()
            results.append({name: _graph_record(g) for name, g in graphs.items()})
        except SpecError as exc:
            results.append(str(exc))
    assert results[0] == results[1]
    return results[1]


def test_a_copy_at_another_depth_keeps_the_init_rules_precedence():
    """A call made again one level deeper (a network as an ensemble member replays its variant's calls) is a copy:
    its init rules are as deep as the copy, so an inner kind rule still wins over the caller's."""
    text = (
        "block Unit(c) {\n    conv = conv(c, 3, padding = 1)\n    init conv.weight = 1\n}\n"
        "block Wrap(c) {\n    u = Unit(c)\n    init conv.weight = 2\n}\n"
        "network Net() {\n    input 8 x 8 x 8\n    a = Unit(8)\n    w = Wrap(8)\n}\n"
        "variant net = Net()\n"
    )
    graphs = _same_either_way(text)
    inits = graphs["net"][4]
    assert inits["a.conv"]["weight"].args == {"val": 1}
    assert inits["w.u.conv"]["weight"].args == {"val": 1}  # Unit's own rule is deeper than Wrap's


def test_a_copy_deeper_than_the_limit_is_elaborated_and_refused():
    """A call recorded near the top, made again where its nesting would pass the limit: the error, as without memo."""
    chain = "".join(f"block B{i}(c) {{\n    b = B{i + 1}(c)\n}}\n" for i in range(40))
    text = (chain + "block B40(c) {\n    conv = conv(c, 1)\n}\n"
            "block Deep(c, n) {\n    d = Deep(c, n - 1) if n > 0\n    b = B0(c) if n == 0\n}\n"
            "network Net() {\n    input 8 x 8 x 8\n    a = B0(8)\n    d = Deep(8, 30)\n}\n"
            "variant net = Net()\n")
    result = _same_either_way(text)
    assert isinstance(result, str) and "nest" in result, result
