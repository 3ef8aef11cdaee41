"""Compiler speed, as ratios measured in one run: `python benchmarks/compiler.py`.

- a cold `archc build specs/googlenet.arch` against the import floor
  `python -c "import lark, jinja2, networkx, pydantic"` (runs interleaved, medians);
- all of specs/;
- synthetic chains of 1,000 and 10,000 layers, to see that the cost grows linearly.

archc's bytecode is written first, as an installed package has it (pip compiles on install, and the floor's
packages have theirs): with PYTHONDONTWRITEBYTECODE set, a checkout's edited modules would otherwise be compiled
from source on every run and the ratio would measure Python's compiler. Likewise the specs are built once before
the timed runs, so that archc's cache holds their syntax trees and compiled templates as it does after a spec's
first build (``lang.parsecache``, ``backends.templates``); a first build, with an empty cache, is measured too.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = [sys.executable, "-c", "import lark, jinja2, networkx, pydantic"]


def build(*specs: str, out: str) -> list[str]:
    return [sys.executable, "-m", "archc", "build", *specs, "-o", out]


def seconds(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def first_build(out: str) -> float:
    """A build of googlenet with archc's cache empty (a new one each time): nothing parsed or compiled before."""
    with tempfile.TemporaryDirectory() as cache:
        return seconds(build("specs/googlenet.arch", out=out), env={**os.environ, "XDG_CACHE_HOME": cache})


def chain(layers: int) -> str:
    units = layers // 3  # conv, batchnorm, relu a unit
    return (
        "block Unit(c) {\n    conv = conv(c, 3, padding = 1, bias = false); bn = batchnorm; relu\n}\n"
        f"network Chain() {{\n    input 16 x 8 x 8\n    units = seq {{ for i in range({units}) {{ Unit(16) }} }}\n}}\n"
        "variant chain = Chain()\n"
    )


def main(repeats: int = 9) -> None:
    compileall.compile_dir(str(ROOT / "archc"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.arch"))
        seconds(build(*specs, out=tmp))  # (archc's cache, as after each spec's first build)
        floor, googlenet, everything, first = [], [], [], []
        for _ in range(repeats):  # interleaved, so a noisy moment hurts all of them alike
            floor.append(seconds(FLOOR))
            googlenet.append(seconds(build("specs/googlenet.arch", out=tmp)))
            first.append(first_build(tmp))
            everything.append(seconds(build(*specs, out=tmp)))
        sizes = {}
        for layers in (1_000, 10_000):
            path = Path(tmp) / f"chain{layers}.arch"
            path.write_text(chain(layers))
            sizes[layers] = statistics.median(seconds(build(str(path), out=tmp)) for _ in range(max(1, repeats // 2)))
    f, g, a, g0 = (statistics.median(x) for x in (floor, googlenet, everything, first))
    print(f"{'measure':<44} {'seconds':>8} {'ratio':>8}")
    print(f"{'import floor (lark, jinja2, networkx, pydantic)':<44} {f:8.2f} {1:8.2f}")
    print(f"{'archc build specs/googlenet.arch':<44} {g:8.2f} {g / f:8.2f}  (goal: <= 1.5 x floor)")
    print(f"{'  the same, archc cache empty (first build)':<44} {g0:8.2f} {g0 / f:8.2f}")
    print(f"{'archc build specs/*.arch':<44} {a:8.2f} {a / f:8.2f}  (goal: < 3 s)")
    print(f"{'1,000-layer chain':<44} {sizes[1000]:8.2f} {sizes[1000] / f:8.2f}")
    print(f"{'10,000-layer chain':<44} {sizes[10000]:8.2f} {sizes[10000] / f:8.2f}  (goal: < 10 s)")
    per_k = (sizes[10000] - sizes[1000]) / 9
    print(f"marginal cost: {per_k * 1000:.0f} ms per 1,000 layers (10k / 1k time: {sizes[10000] / sizes[1000]:.1f}; "
          "the rest is start-up)")


if __name__ == "__main__":
    main()
