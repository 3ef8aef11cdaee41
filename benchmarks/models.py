"""Generated models against their references, as ratios (ours / reference) measured in one run.

    python benchmarks/models.py                        # eager eval forward, training step, memory
    python benchmarks/models.py --models resnet50 googlenet --rounds 5
    python benchmarks/models.py --compile --models googlenet --json results.json
    python benchmarks/models.py --channels-last

Both sides of a pair hold the same weights (the reference's state_dict, loaded strictly into ours).

- Speed: eager CPU, eval forward under torch.inference_mode and one training step (forward,
  cross-entropy, backward, SGD step; an optimizer per model). After a warm-up, R rounds alternate
  ours and the reference, swapping which goes first each round; medians are reported.
- Memory, each side in a fresh subprocess (so nothing one run cached or fragmented affects another):
  (a) peak RSS growth of a training step: after a warm-up step (lazy initialisation, allocator and
      thread pools) and zero_grad(set_to_none=True), the peak RSS is reset (`5` to
      /proc/self/clear_refs), then the peak after a second step minus the RSS just before it: what a
      step needs beyond the weights (gradients, activations, workspace). The peak is VmHWM from
      /proc/self/status, not ru_maxrss: after a fork+exec ru_maxrss keeps the parent's RSS as a floor,
      which clear_refs does not reset, so a big benchmark process would mask the child's peak. The
      subprocess runs with a fixed MALLOC_MMAP_THRESHOLD_, so glibc returns freed tensors to the OS
      and RSS follows live memory rather than malloc's heuristics. Where the reset is refused, the
      peak since the subprocess started is used (an upper bound; "peak_reset": false in the JSON).
  (b) bytes saved for backward by the training forward (torch.autograd.graph.saved_tensors_hooks),
      each storage counted once by data_ptr; storages of parameters and buffers are left out (they
      are the same on both sides and resident anyway), so this is activation memory.
- --compile: torch.compile (inductor). Compile time is the first call of the compiled eval model in
  a fresh subprocess with an empty inductor cache directory (so the second side cannot reuse the
  first side's kernels); compiled eval speed is then measured interleaved in this process, whose own
  compile reuses the cold compiles' cache. Compiling is slow on CPU (minutes for the big models), so
  --compile is opt-in; restrict it with --models.
- --channels-last: our model's eval forward in torch.channels_last against ours contiguous.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import importlib
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def ours(path: str, **kwargs) -> Callable[[], nn.Module]:
    """``ours("resnet.resnet50")`` builds ``generated.resnet.resnet50()``."""
    module, name = path.rsplit(".", 1)
    return lambda: getattr(importlib.import_module(f"generated.{module}"), name)(**kwargs)


def tv(name: str, **kwargs) -> Callable[[], nn.Module]:
    return lambda: getattr(importlib.import_module("torchvision.models"), name)(weights=None, **kwargs)


def from_timm(name: str, **kwargs) -> Callable[[], nn.Module]:
    return lambda: importlib.import_module("timm").create_model(name, pretrained=False, **kwargs)


def accepts(path: str, parameter: str) -> bool:
    module, name = path.rsplit(".", 1)
    return parameter in inspect.signature(getattr(importlib.import_module(f"generated.{module}"), name)).parameters


class Pair(NamedTuple):
    name: str
    ours: Callable[[], nn.Module]
    reference: Callable[[], nn.Module]
    size: int  # input height and width


# inception_v3 runs with aux_logits=True on both sides (torchvision's default; in training the loss sums
# both heads, in eval only the main head runs), so its training step needs --batch >= 2 (batch norm at 1x1).
PAIRS = [
    Pair("resnet50", ours("resnet.resnet50"), tv("resnet50"), 224),
    Pair("googlenet", ours("googlenet.googlenet", aux_logits=False), tv("googlenet", aux_logits=False, init_weights=False), 224),
    Pair("inception_v3", ours("inception_v3.inception_v3", aux_logits=True), tv("inception_v3", aux_logits=True, init_weights=False), 299),
    Pair("densenet121", ours("densenet.densenet121"), tv("densenet121"), 224),
    Pair("vgg16", ours("vgg.vgg16"), tv("vgg16"), 224),
    Pair("inception_v4", ours("inception_v4.inception_v4"), from_timm("inception_v4"), 299),
]
if accepts("densenet.densenet121", "memory_efficient"):  # turns on once our factory takes the flag
    PAIRS.append(Pair("densenet121_memeff", ours("densenet.densenet121", memory_efficient=True), tv("densenet121", memory_efficient=True), 224))
BY_NAME = {pair.name: pair for pair in PAIRS}
SIDES = ("ours", "ref")


def build(pair: Pair, side: str) -> nn.Module:
    return pair.ours() if side == "ours" else pair.reference()


def batch(pair: Pair, n: int, memory_format=torch.contiguous_format) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, pair.size, pair.size, generator=gen).contiguous(memory_format=memory_format)
    return x, torch.randint(0, 1000, (n,), generator=gen)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    out = model(x)
    loss = sum(F.cross_entropy(o, y) for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    optimizer.step()


def trainer(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return lambda: (model.train(), train_step(model, optimizer, x, y))


def evaluator(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run():
        model.eval()
        with torch.inference_mode():
            model(x)

    return run


def interleaved(a: Callable[[], None], b: Callable[[], None], rounds: int, warmup: int) -> tuple[float, float]:
    """Median seconds of a and b: warm-up, then rounds alternating a and b, swapping the order each round."""
    for _ in range(warmup):
        a()
        b()
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            start = time.perf_counter()
            (a, b)[i]()
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def result(a: float, b: float, **extra) -> dict:
    return {"ours": a, "ref": b, "ratio": a / b, **extra}


# --- measured in fresh subprocesses -----------------------------------------------------------------------

def status_kib(field: str) -> int:
    """VmRSS (resident now) or VmHWM (its peak) from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(pair: Pair, side: str, n: int) -> dict:
    model = build(pair, side).train()
    x, y = batch(pair, n)
    step = trainer(model, x, y)
    step()  # warm-up: lazy initialisation, first gradients, thread pools
    model.zero_grad(set_to_none=True)  # so the baseline is the weights alone; the step makes the gradients
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS, to the current RSS
        reset = True
    except OSError:
        reset = False
    before = status_kib("VmRSS")
    step()
    peak = status_kib("VmHWM")
    fixed = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in fixed:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return {"peak_rss_growth": (peak - before) * 1024, "peak_reset": reset, "saved_bytes": sum(saved.values())}


def compile_child(pair: Pair, side: str, n: int) -> dict:
    model = build(pair, side).eval()
    x, _ = batch(pair, n)
    torch._dynamo.reset()
    compiled = torch.compile(model)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
    return {"compile_seconds": time.perf_counter() - start}


def in_subprocess(kind: str, pair: Pair, side: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    if kind == "memory":
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"  # fixed, so freed tensors go back to the OS at once
    with tempfile.TemporaryDirectory() as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache  # empty: a cold compile
        cmd = [sys.executable, __file__, "--child", kind, pair.name, side, "--batch", str(args.batch)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if kind == "compile" and done.returncode == 0:  # this process's compile of the same graphs then hits the cache
            shutil.copytree(cache, os.environ["TORCHINDUCTOR_CACHE_DIR"], dirs_exist_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one pair, in this process -----------------------------------------------------------------------------

def measure(pair: Pair, args: argparse.Namespace) -> dict:
    mine, theirs = pair.ours(), pair.reference()
    mine.load_state_dict(theirs.state_dict(), strict=True)
    x, y = batch(pair, args.batch)
    with torch.inference_mode():
        diff = (mine.eval()(x) - theirs.eval()(x)).abs().max().item()
    out: dict = {"input": [args.batch, 3, pair.size, pair.size], "max_abs_diff": diff}
    rounds, warmup = args.rounds, args.warmup
    out["eval"] = result(*interleaved(evaluator(mine, x), evaluator(theirs, x), rounds, warmup), unit="s")
    if args.channels_last:
        cl = copy.deepcopy(mine).to(memory_format=torch.channels_last)
        x_cl, _ = batch(pair, args.batch, torch.channels_last)
        a, b = interleaved(evaluator(cl, x_cl), evaluator(mine, x), rounds, warmup)
        out["channels_last"] = {"channels_last": a, "contiguous": b, "ratio": a / b, "unit": "s"}
        del cl
    if args.compile:
        cold = [in_subprocess("compile", pair, side, args)["compile_seconds"] for side in SIDES]
        out["compile_time"] = result(*cold, unit="s")
        torch._dynamo.reset()
        fast_mine, fast_theirs = torch.compile(mine), torch.compile(theirs)
        a, b = interleaved(evaluator(fast_mine, x), evaluator(fast_theirs, x), rounds, max(warmup, 1))
        out["compiled_eval"] = result(a, b, unit="s")
        del fast_mine, fast_theirs
        torch._dynamo.reset()
    out["train"] = result(*interleaved(trainer(mine, x, y), trainer(theirs, x, y), rounds, warmup), unit="s")
    del mine, theirs
    gc.collect()
    if not args.no_memory:
        mem = {side: in_subprocess("memory", pair, side, args) for side in SIDES}
        out["peak_rss_growth"] = result(*(mem[s]["peak_rss_growth"] for s in SIDES), unit="B",
                                        peak_reset=all(mem[s]["peak_reset"] for s in SIDES))
        out["saved_bytes"] = result(*(mem[s]["saved_bytes"] for s in SIDES), unit="B")
    return out


ROWS = [  # key, label, scale to the printed unit
    ("eval", "eval forward (ms)", 1e3),
    ("train", "training step (ms)", 1e3),
    ("peak_rss_growth", "peak RSS growth, train (MiB)", 2**-20),
    ("saved_bytes", "saved for backward (MiB)", 2**-20),
    ("compile_time", "compile time, cold (s)", 1),
    ("compiled_eval", "compiled eval forward (ms)", 1e3),
    ("channels_last", "ours channels_last / contiguous (ms)", 1e3),
]


def machine(threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def print_table(info: dict, results: dict) -> None:
    print(f"{info['date']}  {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} threads")
    width = max(len("model"), *map(len, results))
    print(f"{'model':<{width}} {'measure':<38} {'ours':>10} {'ref':>10} {'ours/ref':>9}")
    for name, res in results.items():
        shape = "x".join(map(str, res["input"]))
        print(f"{name:<{width}} {'eval max |ours - ref|, input ' + shape:<38} {res['max_abs_diff']:>31.2e}")
        for key, label, scale in ROWS:
            if key in res:
                a, b = (res[key][k] for k in (("channels_last", "contiguous") if key == "channels_last" else SIDES))
                print(f"{'':<{width}} {label:<38} {a * scale:>10.1f} {b * scale:>10.1f} {res[key]['ratio']:>9.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(BY_NAME), default=[p.name for p in PAIRS])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per side (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per side first (default 2)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile: compile time and speed (slow)")
    parser.add_argument("--channels-last", action="store_true", help="also ours in channels_last against contiguous")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # KIND MODEL SIDE, for in_subprocess
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        kind, name, side = args.child
        child = {"memory": memory_child, "compile": compile_child}[kind]
        print(json.dumps(child(BY_NAME[name], side, args.batch)))
        return
    info = machine(torch.get_num_threads())
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # this run's own inductor cache, filled from the cold compiles
        for name in args.models:
            start = time.perf_counter()
            results[name] = measure(BY_NAME[name], args)
            print(f"{name}: measured in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print_table(info, results)
    if args.json:
        settings = {k: getattr(args, k) for k in ("rounds", "warmup", "batch", "compile", "channels_last")}
        args.json.write_text(json.dumps({"machine": info, "settings": settings, "models": results}, indent=2))


if __name__ == "__main__":
    main()
