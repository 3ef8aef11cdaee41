"""Every example in docs/language.md compiles (or fails with the documented message)."""

import re

import pytest
from archtest import ROOT

import archc

DOC = (ROOT / "docs" / "language.md").read_text()
BLOCKS = re.findall(r"```(arch(?: error)?)\n(.*?)```(?:\n\n```text\n(.*?)```)?", DOC, re.S)
GOOD = [code for kind, code, _ in BLOCKS if kind == "arch"]
BAD = [(code, expected) for kind, code, expected in BLOCKS if kind == "arch error"]


def test_the_doc_has_examples():
    assert len(GOOD) >= 10 and len(BAD) >= 2


@pytest.mark.parametrize("code", GOOD, ids=[f"example{i}" for i in range(len(GOOD))])
def test_example_compiles(code, tmp_path):
    path = tmp_path / "example.arch"
    path.write_text(code)
    spec = archc.load(path)
    source = spec.source()
    compile(source, "example.py", "exec")
    for variant in spec.variants:
        if "input" in code:
            model = spec.build(variant)
            assert sum(p.numel() for p in model.parameters()) == spec.graph(variant).params


@pytest.mark.parametrize(("code", "expected"), BAD, ids=[f"error{i}" for i in range(len(BAD))])
def test_error_example(code, expected, tmp_path):
    path = tmp_path / "example.arch"
    path.write_text(code)
    with pytest.raises(archc.SpecError) as info:
        archc.load(path)
    text = info.value.render()
    for line in expected.strip().splitlines():
        assert line in text
