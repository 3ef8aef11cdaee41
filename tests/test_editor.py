"""The VS Code extension (``editor/vscode``): its TextMate grammar scopes every keyword, string, number and
comment of every spec as archc's own lexer and parser see them; its manifest and language configuration
hold together.

The grammar runs on a small TextMate engine written here (match and begin/end rules, includes from the
repository, captures, earliest match wins and ties go to the first rule, as vscode-textmate does); the
oracle is the Lark lexer and parse tree of the compiler itself, so a word the grammar mistakes (``block``
as a parameter name, ``in`` of ``in.channels``) is caught on the specs that use it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from archtest import ROOT, SPECS
from lark import Token, Tree
from test_docs import BLOCKS

from archc.lang.syntax import _parser

VSCODE = ROOT / "editor" / "vscode"
GRAMMAR = json.loads((VSCODE / "syntaxes" / "arch.tmLanguage.json").read_text())
SOURCES = {p.relative_to(ROOT).as_posix(): p.read_text() for p in [*sorted(SPECS.glob("*.arch")),
                                                                   *sorted(SPECS.glob("experiments/*.arch")),
                                                                   *sorted((ROOT / "examples").rglob("*.arch"))]}
SOURCES.update({f"docs example {i}": code for i, (_, code, _) in enumerate(BLOCKS)})

# the words a statement may begin with that are also names elsewhere: keywords only under these rules
CONTEXTUAL = {"BLOCK": "block", "GATE": "gate", "INIT": "init_", "ENSEMBLE": "ensemble", "TAP": "tap"}
CONSTANTS = {"TRUE", "FALSE", "NONE"}


# ---------------------------------------------------------------- a small TextMate engine


def _rules(patterns: list[dict]) -> list[dict]:
    """``patterns`` with every include replaced by the repository rule it names (flattened)."""
    out = []
    for p in patterns:
        if "include" in p:
            rule = GRAMMAR["repository"][p["include"].removeprefix("#")]
            out += _rules(rule["patterns"]) if "patterns" in rule and "match" not in rule and "begin" not in rule \
                else [rule]
        else:
            out.append(p)
    return out


def _paint(scopes: list[list[str]], start: int, end: int, name: str | None) -> None:
    if name:
        for i in range(start, end):
            scopes[i].append(name)


def _captures(scopes, m: re.Match, captures: dict) -> None:
    for group, capture in captures.items():
        if m.group(int(group)) is not None:
            _paint(scopes, m.start(int(group)), m.end(int(group)), capture.get("name"))


def scopes_of(line: str) -> list[list[str]]:
    """The scopes of each character of one line, outermost first."""
    scopes: list[list[str]] = [[] for _ in range(len(line) + 1)]

    def run(patterns, pos: int, end_rule: dict | None) -> int:
        rules = _rules(patterns)
        while pos <= len(line):
            best, best_rule = None, None
            end_match = re.compile(end_rule["end"]).search(line, pos) if end_rule else None
            for rule in rules:
                m = re.compile(rule.get("match") or rule["begin"]).search(line, pos)
                if m and (best is None or m.start() < best.start()):
                    best, best_rule = m, rule
            if end_match and (best is None or end_match.start() <= best.start()):
                _captures(scopes, end_match, end_rule.get("endCaptures", {}))
                return end_match.end()
            if best is None or (best.end() == best.start() and "begin" not in best_rule):
                return len(line) + 1
            if "match" in best_rule:
                _paint(scopes, best.start(), best.end(), best_rule.get("name"))
                _captures(scopes, best, best_rule.get("captures", {}))
                pos = best.end()
            else:
                _captures(scopes, best, best_rule.get("beginCaptures", {}))
                inner_end = run(best_rule.get("patterns", []), best.end(), best_rule)
                _paint(scopes, best.start(), min(inner_end, len(line)), best_rule.get("name"))
                pos = max(inner_end, best.end() + (best.end() == best.start()))
        return pos

    run(GRAMMAR["patterns"], 0, None)
    return scopes


# ---------------------------------------------------------------- the oracle: archc's own lexer and parser


def _keyword_uses(text: str) -> tuple[set, set]:
    """(line, column) of contextual words used as keywords, and of ``in``/``out`` used as tensors."""
    keywords, tensors = set(), set()
    for tree in _parser().parse(text).iter_subtrees():
        for child in tree.children:
            if isinstance(child, Token) and child.type in CONTEXTUAL and tree.data == CONTEXTUAL[child.type]:
                keywords.add((child.line, child.column))
        if isinstance(tree, Tree) and tree.data in ("in_ref", "out_ref"):
            tensors.add((tree.meta.line, tree.meta.column))
    return keywords, tensors


def expected_scope(token: Token, keywords: set, tensors: set) -> str | None:
    """The scope a token must have (its prefix), None for tokens the grammar may leave alone."""
    if token.type == "COMMENT":
        return "comment.line"
    if token.type == "STRING":
        return "string.quoted"
    if token.type == "NUMBER":
        return "constant.numeric"
    if token.type in CONSTANTS:
        return "constant.language"
    if token.type in CONTEXTUAL:
        if (token.line, token.column) not in keywords:
            return "not keyword"
        return "storage.type" if token.type == "BLOCK" else "keyword"
    if token.type in ("IN", "OUT") and (token.line, token.column) in tensors:
        return "variable.language"
    if token.value.isalpha() and token.type == token.value.upper():  # a keyword of the grammar
        return "storage.type" if token.value in ("block", "network", "def", "variant") else "keyword"
    return None


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_token_gets_its_scope(name):
    text = SOURCES[name]
    keywords, tensors = _keyword_uses(text)
    lines = text.splitlines()
    painted = {}
    wrong = []
    for token in _parser().lex(text, dont_ignore=True):
        want = expected_scope(token, keywords, tensors)
        if want is None:
            continue
        if token.line not in painted:
            painted[token.line] = scopes_of(lines[token.line - 1])
        got = painted[token.line][token.column - 1]
        innermost = got[-1] if got else ""
        ok = not innermost.startswith("keyword") if want == "not keyword" else innermost.startswith(want)
        if not ok:
            wrong.append(f"{token.line}:{token.column} {token.value!r}: {innermost or 'no scope'}, want {want}")
    assert not wrong, f"{name}:\n" + "\n".join(wrong[:20])


def test_the_engine_and_oracle_can_fail():
    """A grammar that lost a rule is caught: the comparison is not vacuous."""
    line = "    for i in range(3) { conv(64, 3) if true }  # a comment"
    scopes = scopes_of(line)
    assert scopes[line.index("for")][-1] == "keyword.control.arch"
    assert scopes[line.index("64")][-1] == "constant.numeric.arch"
    assert scopes[line.index("true")][-1] == "constant.language.arch"
    assert scopes[line.index("# a")][-1] == "comment.line.number-sign.arch"
    assert scopes[line.index("conv")][-1] == "entity.name.function.arch"
    token = Token("NAME", "block", line=1, column=1)
    assert expected_scope(Token("BLOCK", "block", line=1, column=1), set(), set()) == "not keyword"
    assert expected_scope(token, set(), set()) is None


def test_contextual_words_as_names_are_not_keywords():
    cases = {"network ResNet(block, layers) {": ("block", False), "    tap": ("tap", True),
             "    tap c3": ("tap", True), "    tap = conv(8, 1)": ("tap", False),
             "    init conv.weight = zeros": ("init", True), "    init = conv(8, 1)": ("init", False),
             "    gate { conv(8, 1) }": ("gate", True), "    ensemble {": ("ensemble", True),
             "    x = in.channels + out.channels": ("in", None), "block Bottleneck(width) {": ("block", True)}
    for line, (word, keyword) in cases.items():
        innermost = (scopes_of(line)[line.index(word)] or [""])[-1]
        if keyword is None:
            assert innermost == "variable.language.arch", line
        else:
            assert innermost.startswith(("keyword", "storage")) == keyword, (line, innermost)


def test_manifest_language_configuration_and_client_hold_together():
    manifest = json.loads((VSCODE / "package.json").read_text())
    language = manifest["contributes"]["languages"][0]
    assert language["id"] == "arch" and ".arch" in language["extensions"]
    grammar = manifest["contributes"]["grammars"][0]
    assert grammar["language"] == "arch" and grammar["scopeName"] == GRAMMAR["scopeName"]
    assert (VSCODE / grammar["path"]).is_file()
    configuration = json.loads((VSCODE / language["configuration"]).read_text())
    assert configuration["comments"]["lineComment"] == "#"
    assert ["{", "}"] in configuration["brackets"] and ["(", ")"] in configuration["brackets"]
    assert "vscode-languageclient" in manifest["dependencies"]
    main = VSCODE / manifest["main"]
    assert main.is_file() and '"lsp"' in main.read_text()
    if shutil.which("node"):  # the client is valid JavaScript
        subprocess.run(["node", "--check", str(main)], check=True)
