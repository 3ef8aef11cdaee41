"""The compiler's path never imports torch: it stays fast."""

import subprocess
import sys

import pytest
from archtest import ROOT, SPECS


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow  # builds every spec in a fresh interpreter
def test_build_and_check_do_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from archc.cli import main\n"
        f"assert main(['check', *{sorted(map(str, SPECS.glob('*.arch')))!r}]) == 0\n"
        f"assert main(['build', *{sorted(map(str, SPECS.glob('*.arch')))!r}, '-o', {str(tmp_path)!r}]) == 0\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if bad else 'CLEAN', bad[:3])\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "CLEAN" in result.stdout, result.stdout


def test_loading_a_spec_does_not_import_torch():
    code = (
        "import sys, archc\n"
        f"s = archc.load({str(SPECS / 'resnet.arch')!r})\n"
        "s.graph('resnet50'); s.source()\n"
        "print('TORCH' if 'torch' in sys.modules else 'CLEAN')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "CLEAN" in result.stdout
