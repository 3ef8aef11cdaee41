"""Shared checks of generated models against static graphs and reference implementations."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from functools import cache
from pathlib import Path

import torch
from torch import nn

import archc
from archc.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# what generated code may import: torch, and the standard library's math, functools.partial (a norm held with its
# arguments) and collections.abc.Callable (its annotation)
ALLOWED_IMPORTS = {"math", "functools", "collections.abc", "torch", "torch.nn.functional", "torch.nn",
                   "torch.utils.checkpoint"}


@cache
def spec(name: str) -> archc.Spec:
    """``spec("resnet")`` loads and checks ``specs/resnet.arch`` once per test run."""
    return archc.load(SPECS / f"{name}.arch")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def rounds_to(value: int, paper: float, unit: float = 1e6) -> bool:
    """Whether ``value`` rounds to the paper's figure at the paper's precision (``paper`` in ``unit``s)."""
    text = repr(paper)
    decimals = len(text.split(".")[1]) if "." in text else 0
    return round(value / unit, decimals) == paper


def input_for(s: archc.Spec, variant: str, batch: int = 2, **overrides) -> torch.Tensor:
    graph = s.graph(variant, **overrides)
    shape = graph.node(graph.input).shape
    return torch.randn(batch, *shape)


def assert_same_as_reference(model: nn.Module, reference: nn.Module, x: torch.Tensor, atol: float = 1e-5) -> None:
    """Strict state_dict loading from the reference, then equal outputs in eval mode."""
    model.load_state_dict(reference.state_dict(), strict=True)
    model.eval()
    reference.eval()
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape
    diff = (ours - theirs).abs().max().item()
    assert diff < atol, f"max difference {diff}"


def assert_static_shapes(s: archc.Spec, variant: str, model: nn.Module, x: torch.Tensor, **overrides) -> None:
    """Every module the graph names exists, sees the inferred input shape, gives the inferred output shape,
    and holds exactly the parameters the graph counts; and no parameters live outside the graph."""
    graph = s.graph(variant, **overrides)
    named = graph.modules()
    modules = dict(model.named_modules())
    seen: dict[str, tuple] = {}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, tuple):  # nn.MultiheadAttention: the output, then the attention weights
                output = output[0]
            seen[name] = (tuple(inputs[0].shape), tuple(output.shape))

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in named if name in modules]
    missing = sorted(set(named) - set(modules))
    assert not missing, f"graph modules missing from the model: {missing[:5]}"
    model.train()  # side outputs run in training mode only
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    batch = x.shape[0]
    for name, op in named.items():
        assert name in seen, f"{name} was never called"
        got_in, got_out = seen[name]
        assert got_in == (batch, *op.in_shapes[0]), f"{name}: input {got_in} != {op.in_shapes[0]}"
        assert got_out == (batch, *op.shape), f"{name}: output {got_out} != {op.shape}"
        own = sum(p.numel() for p in modules[name].parameters())  # an op's module may have parts (out_proj)
        assert own == op.params, f"{name}: {own} parameters, graph says {op.params}"
    learned = graph.learned()  # learned tensors: nn.Parameters of their block, not modules (or a lookup's buffer)
    for name, op in learned.items():
        if REGISTRY[op.op].buffer:
            assert op.params == 0 and name in dict(model.named_buffers()), f"{name}: no buffer"
            continue
        assert model.get_parameter(name).numel() == op.params, f"{name}: {model.get_parameter(name).numel()} != {op.params}"
    own = {name: {f"{name}.{k}" if name else k for k, _ in m.named_parameters(recurse=False)}
           for name, m in modules.items()}
    inside_an_op = {name for name in modules if any(name.startswith(op + ".") for op in named)}
    unknown = sorted(name for name, keys in own.items()
                     if keys and name not in named and name not in inside_an_op and not keys <= set(learned))
    assert not unknown, f"modules with parameters the graph does not know: {unknown[:5]}"
    assert count_params(model) == graph.params


def graph_breaks(model: nn.Module, x: torch.Tensor) -> int:
    torch._dynamo.reset()
    return torch._dynamo.explain(model)(x).graph_break_count


@contextlib.contextmanager
def stack_limited_to(frames: int):
    """Python's recursion limit set to the current stack depth plus ``frames``."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def run_deep_network(name: str, variant: str, tmp_path, capsys):
    """check, build, stats, load, graph, build the module and run it with shape hooks, with no more than
    150 stack frames to spare (nothing may recurse per layer); prints the time of each step.
    Returns (spec, graph, model, stats json, generated source)."""
    from archc.cli import main

    path = str(SPECS / f"{name}.arch")
    timings = {}

    def timed(step, run):
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        timings[step] = (time.perf_counter() - start, time.process_time() - cpu)
        return result

    with stack_limited_to(150):
        assert timed("archc check", lambda: main(["check", path])) == 0
        assert timed("archc build", lambda: main(["build", path, "-o", str(tmp_path)])) == 0
        capsys.readouterr()
        assert timed("archc stats", lambda: main(["stats", f"{path}:{variant}", "--json"])) == 0
        s = timed("load", lambda: archc.load(path))
        graph = timed("graph", lambda: s.graph(variant))
        model = timed("module", lambda: s.build(variant))
        stats = json.loads(capsys.readouterr().out)
        x = input_for(s, variant, batch=1)
        timed("forward with hooks", lambda: assert_static_shapes(s, variant, model, x))
    with capsys.disabled():
        print(f"\n{variant} seconds (wall/CPU): " + ", ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in timings.items()))
    return s, graph, model, stats, (tmp_path / f"{name}.py").read_text()


# Normalisation layers by module type: batch and instance norms (running statistics and affine terms), layer
# and group norms (affine terms; torchvision's LayerNorm2d and ours subclass nn.LayerNorm), RMS norm (a scale).
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


def randomize_batchnorm(model: nn.Module, spread: float = 0.5, seed: int = 0) -> nn.Module:
    """Every normalisation layer's statistics and affine terms away from their defaults (mean 0, variance 1, scale
    1 and shift 0 would hide a wrong eps or a misplaced norm): means and biases in [-spread, spread], variances and
    scales in [1 - spread, 1 + spread]. Batch norms, instance norms, layer norms, group norms and RMS norms, found
    by module type; a missing statistic or affine term is skipped."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, NORMS):
                continue
            for name, low, high in (("running_mean", -spread, spread), ("running_var", 1 - spread, 1 + spread),
                                    ("weight", 1 - spread, 1 + spread), ("bias", -spread, spread)):
                tensor = getattr(m, name, None)
                if isinstance(tensor, torch.Tensor):
                    tensor.uniform_(low, high, generator=generator)
    return model


def fast_tier(values, fast):
    """``values`` for ``pytest.mark.parametrize``, those not in ``fast`` marked slow: the fast tier checks a
    representative few, the whole suite every one."""
    import pytest

    return [v if v in fast else pytest.param(v, marks=pytest.mark.slow) for v in values]
