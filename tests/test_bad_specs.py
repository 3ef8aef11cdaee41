"""Golden diagnostics: each tests/bad/NAME.arch must fail with exactly tests/bad/NAME.err.

After a deliberate change to a message, rewrite the expected texts and review the diff:
    ARCHC_UPDATE_GOLDEN=1 python -m pytest tests/test_bad_specs.py
"""

import os

import pytest
from archtest import ROOT

from archc.cli import main

BAD = ROOT / "tests" / "bad"
CASES = sorted(BAD.glob("*.arch"))


def test_there_are_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_exact_diagnostic(path, capsys, monkeypatch):
    monkeypatch.chdir(BAD)  # paths in messages as the user typed them
    assert main(["check", path.name]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    expected = path.with_suffix(".err")
    if os.environ.get("ARCHC_UPDATE_GOLDEN"):
        expected.write_text(err)
    assert err == expected.read_text()
