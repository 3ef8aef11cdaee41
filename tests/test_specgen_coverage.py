"""The random-spec generator writes every production of the grammar and calls every op kind: a construct it
never writes is one the soundness fuzzer never tests. Specs of fixed seeds are parsed (not compiled), and the
rules (read from grammar.lark now, so that a new production counts at once), operators, keywords used as names
and op kinds in their parse trees are collected.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from lark import Token, Tree
from specgen import generate

from archc.lang.syntax import _parser
from archc.ops import REGISTRY
from archc.sema.initrules import PARAMETERS

GRAMMAR = Path(__file__).parent.parent / "archc" / "lang" / "grammar.lark"
SEEDS = range(500)

# What the generator cannot write meaningfully, and why.
NOT_GENERATED = {
    "use": "needs a second file beside the spec; check_runs writes one file (test_loader covers use)",
}
KEYWORD_NAMES = {"BLOCK": "block", "GATE": "gate", "INIT": "init_", "ENSEMBLE": "ensemble", "TAP": "tap"}


def productions() -> set[str]:
    """The names a parse tree's nodes may carry: rules not inlined (no leading ``_`` or ``?``) and aliases."""
    text = re.sub(r"//[^\n]*", "", GRAMMAR.read_text())
    names = set(re.findall(r"->\s*([a-z_][a-z0-9_]*)", text))
    names |= {m.group(1) for m in re.finditer(r"^([a-z][a-z0-9_]*)\s*:", text, re.M)}
    return names


def operators() -> set[str]:
    """Each alternative of the operator terminals (``COMP_OP: "==" | "!=" ...``), as ``TERMINAL value``."""
    found = set()
    for name, body in re.findall(r"^([A-Z_]+_OP|POW)(?:\.\d+)?\s*:(.*)$", GRAMMAR.read_text(), re.M):
        found |= {f"{name} {v}" for v in re.findall(r'"([^"]+)"', body)}
    return found


def wrappers() -> set[str]:
    """Aliases of the levels ``X (OP X)*`` (``compare``, ``arith``, ``or_`` ...): lark makes one around every
    expression, so they count only where they apply an operator (more than one child)."""
    return set(re.findall(r"\)\*\s*->\s*([a-z_][a-z0-9_]*)", GRAMMAR.read_text()))


def uses(tree: Tree, found: set[str]) -> None:
    """Collect the productions, operators, keywords used as names and op kinds that ``tree`` writes."""
    levels = wrappers()
    for node in tree.iter_subtrees():
        kids = node.children
        if len(kids) > 1 or node.data not in levels:
            found.add(node.data)
        for kid in kids:
            if not isinstance(kid, Token):
                continue
            if kid.type.endswith("_OP") or kid.type == "POW":
                found.add(f"{kid.type} {kid}")
            if kid.type in KEYWORD_NAMES and node.data != KEYWORD_NAMES[kid.type]:
                found.add(f"{kid.type} as a name")
        if node.data == "call" and isinstance(kids[0], Token):
            found.add(f"op {kids[0]}")
        if node.data == "funcall" and isinstance(kids[0], Tree) and kids[0].data == "var":  # an op applied in a let
            found.add(f"op {kids[0].children[0]}")


def recursion(tree: Tree, found: set[str]) -> None:
    """Blocks that call themselves: directly, or through another block (recursion is no production)."""
    calls: dict[str, set[str]] = {}
    for node in tree.iter_subtrees():
        if node.data == "block":
            calls[str(node.children[1])] = {str(c.children[0]) for c in node.iter_subtrees()
                                            if c.data == "call" and isinstance(c.children[0], Token)}
    for name, callees in calls.items():
        if name in callees:
            found.add("recursion: a block calls itself")
        if any(name in calls.get(other, ()) for other in callees - {name}):
            found.add("recursion: through another block")


RECURSION = {"recursion: a block calls itself", "recursion: through another block"}
# what a block with named tensors writes with productions used elsewhere too
FLOW_FORMS = {"flow: a for loop", "flow: a member applied by index", "flow: an empty list extended"}


def nested_paths(tree: Tree, found: set[str]) -> None:
    """Dotted names of more than one key (``stages.{i}.blocks.{j}``): containers in containers."""
    if any(node.data == "target" and sum(isinstance(c, Tree) for c in node.children) > 1
           for node in tree.iter_subtrees()):
        found.add("a nested dotted path")


def flow_forms(tree: Tree, found: set[str]) -> None:
    """Loops, container members and lists of tensors in blocks with named tensors."""
    for node in tree.iter_subtrees():
        if node.data != "block" or not any(isinstance(c, Tree) and c.data == "signature" for c in node.children):
            continue
        subs = list(node.iter_subtrees())
        if any(s.data == "for_" for s in subs):
            found.add("flow: a for loop")
        if any(s.data == "funcall" and isinstance(s.children[0], Tree) and s.children[0].data == "index" for s in subs):
            found.add("flow: a member applied by index")
        if any(s.data == "list_" and not [c for c in s.children if c is not None] for s in subs):
            found.add("flow: an empty list extended")


def same_padded(text: str, found: set[str]) -> None:
    """The op kinds a spec pads "same" (TensorFlow's), which no production of their own marks."""
    found |= {f"same {kind}" for kind in re.findall(r'\b(\w+)\([^()]*padding = "same"', text)}


def generated() -> set[str]:
    found: set[str] = set()
    for seed in SEEDS:
        text = generate(random.Random(seed).randint)
        tree = _parser().parse(text)
        same_padded(text, found)
        found |= {f"init {kind}" for kind in re.findall(r"\binit (\w+)\.", text)}
        if "absolute = " in text:
            found.add("lookup with absolute terms")
        if "zero_bias = " in text:
            found.add("linear with zero_bias")
        uses(tree, found)
        recursion(tree, found)
        flow_forms(tree, found)
        nested_paths(tree, found)
    return found


@pytest.fixture(scope="module")
def found() -> set[str]:
    return generated()


def test_every_production_is_generated(found):
    missing = sorted(productions() - found - set(NOT_GENERATED))
    assert not missing, f"grammar productions the generator never writes: {missing}"


def test_every_operator_and_keyword_name_is_generated(found):
    wanted = operators() | {f"{k} as a name" for k in KEYWORD_NAMES}
    missing = sorted(wanted - found)
    assert not missing, f"operators or keywords-as-names the generator never writes: {missing}"


def test_every_op_kind_is_called(found):
    missing = sorted(f"op {k}" for k in REGISTRY if f"op {k}" not in found)
    assert not missing, f"op kinds the generator never calls: {missing}"


def test_every_kind_that_takes_same_padding_is_padded_same(found):
    missing = sorted(f"same {k}" for k, kind in REGISTRY.items() if kind.same_module and f"same {k}" not in found)
    assert not missing, f'kinds the generator never pads "same": {missing}'


def test_every_kind_an_init_rule_may_reach_is_initialised(found):
    missing = sorted(f"init {k}" for k in PARAMETERS if f"init {k}" not in found)
    assert not missing, f"kinds whose parameters the generator's init rules never reach: {missing}"


def test_lookup_with_absolute_terms_is_generated(found):
    assert "lookup with absolute terms" in found, "the generator never writes lookup's absolute terms (LeViT's)"


def test_linear_with_part_of_its_bias_zeroed_is_generated(found):
    assert "linear with zero_bias" in found, "the generator never writes linear's zero_bias (Swin V2's keys)"


def test_recursive_blocks_are_generated(found):
    missing = sorted(RECURSION - found)
    assert not missing, f"recursion the generator never writes: {missing}"


def test_loops_members_and_lists_in_dataflow_blocks_are_generated(found):
    missing = sorted(FLOW_FORMS - found)
    assert not missing, f"forms of blocks with named tensors the generator never writes: {missing}"


def test_nested_dotted_paths_are_generated(found):
    assert "a nested dotted path" in found, "the generator never writes containers in containers"


def test_the_allow_list_holds_only_what_is_not_generated(found):
    """An entry the generator has learnt to write must leave the allow-list, or it would hide a regression."""
    stale = sorted(set(NOT_GENERATED) & found)
    assert not stale, f"generated after all, drop from NOT_GENERATED: {stale}"


def test_the_collector_sees_what_a_spec_writes():
    """The collection itself can fail: a spec without comparisons gives no compare, one with gives it."""
    plain, chained = set(), set()
    uses(_parser().parse("network N() {\n    input 3 x 8 x 8\n    c = conv(4, 1)\n}\n"), plain)
    uses(_parser().parse("network N() {\n    input 3 x 8 x 8\n    c = conv(4 if 1 < 2 < 3 else 2, 1)\n}\n"), chained)
    assert "compare" not in plain and "ifexp" not in plain and "op conv" in plain
    assert {"compare", "ifexp", "COMP_OP <"} <= chained
    flat, deep = set(), set()
    recursion(_parser().parse("block A(n) {\n    b = B(n)\n}\nblock B(n) {\n    c = conv(4, 1)\n}\n"), flat)
    recursion(_parser().parse("block A(n) {\n    b = B(n) if n > 0\n}\nblock B(n) {\n    a = A(n - 1)\n}\n"), deep)
    assert not flat and deep == {"recursion: through another block"}
