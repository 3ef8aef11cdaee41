"""benchmarks/models.py runs end to end on its cheapest configuration; no timing is asserted."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # runs the benchmark in subprocesses
def test_models_benchmark_smoke(tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "models.py"), "--models", "googlenet", "--rounds", "1",
           "--warmup", "0", "--batch", "1", "--threads", "1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "googlenet" in done.stdout and "ours/ref" in done.stdout
    results = json.loads(out.read_text())
    assert results["machine"]["threads"] == 1
    assert results["settings"]["batch"] == 1
    assert set(results["models"]) == {"googlenet"}
    res = results["models"]["googlenet"]
    assert res["input"] == [1, 3, 224, 224]
    assert res["max_abs_diff"] <= 1e-4
    for key in ("eval", "train", "peak_rss_growth", "saved_bytes"):
        assert res[key]["ours"] > 0 and res[key]["ref"] > 0 and res[key]["ratio"] > 0, key
        assert res[key]["ratio"] == res[key]["ours"] / res[key]["ref"], key
    saved = res["saved_bytes"]
    assert isinstance(saved["ours"], int) and isinstance(saved["ref"], int)
    assert saved["ratio"] == saved["ours"] / saved["ref"]
    assert "compile_time" not in res and "channels_last" not in res  # opt-in only


@pytest.mark.slow  # starts the language server and archc check in subprocesses
def test_lsp_benchmark_smoke():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "lsp.py"), "--rounds", "2", str(ROOT / "specs" / "alexnet.arch")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.strip().splitlines()
    assert "diagnostics" in header and row.startswith("alexnet.arch")
    cold, change, hover = (float(x) for x in re.findall(r"([\d.]+) ms", row))
    assert cold > 0 and change > 0 and hover > 0
