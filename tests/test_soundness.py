"""Differential soundness testing: when archc says ok, the module runs and is what archc says it is.

Random valid specs (``specgen``: blocks, seq blocks, named and numbered seqs, concat, gate, residual
with and without shortcuts, conditions and stochastic depth, dense, side outputs, for, if, let,
interpolated names, channel splits and shuffles, layouts and learned tensors, token sequences with
attention, windowed attention with shifts, partitions into windows and grids) are checked; each one that
checks is generated, its source parsed and inspected (it may only import torch, define classes,
functions and constants), imported, every factory called with its defaults, run in eval and in
training mode with backward, and every module's input and output shape and parameter count compared
with the validated graph and with ``archc stats --json``'s totals; its inference form (``archc.deploy``: norms folded, dropout left out)
computes in eval what the trained model does.

CI runs a small budget. A long run, as in the notes of the soundness issue (one a core, side by side, with
different seeds):
    python tests/test_soundness.py --count 20000 [--seed 0]
"""

from __future__ import annotations

import ast
import copy
import json
import random
import sys
import tempfile
import traceback
from pathlib import Path

import pytest
import torch
from archtest import assert_static_shapes, count_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from specgen import generate

import archc
from archc.backends import stats

settings.register_profile("soundness-ci", max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("soundness-long", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))


def check_runs(text: str, directory: Path) -> bool:
    """False if archc rejects the spec (a located SpecError); else every promise must hold."""
    path = directory / "fuzz.arch"
    path.write_text(text)
    try:
        spec = archc.load(path)
        source = spec.source()
    except archc.SpecError as exc:
        assert exc.span is not None or "no network" in exc.message, exc.render()
        return False
    assert_only_definitions(source)
    module = spec.python_module()
    for variant in spec.variants:
        graph = spec.graph(variant)
        totals = json.loads(stats.as_json(graph))["totals"]
        torch.manual_seed(0)
        model = getattr(module, variant)()
        assert count_params(model) == totals["params"] + totals["side_params"] == graph.params
        x = torch.randn(2, *graph.node(graph.input).shape)
        assert_static_shapes(spec, variant, model, x)  # every module: input, output and parameters
        model.eval()
        with torch.no_grad():
            out = model(x)
        assert tuple(out.shape) == (2, *graph.node(graph.output).shape)
        if hasattr(model, "forward_head"):
            assert_head_splits(model, x, out, graph.node(graph.input).layout == "CL",
                               {op.shape for op in graph.ops() if op.layout == "HWC"})
        # the independent oracle: the graph interpreter, holding the same state (in float64, batch statistics
        # moved off their defaults), gives the same outputs, in training too where nothing draws random numbers
        ref = copy.deepcopy(model).double()
        with torch.no_grad():
            for key, t in ref.state_dict().items():
                if key.endswith(("running_mean", "running_var")):
                    t.copy_(torch.rand_like(t) + 0.5)
        interp = spec.interpret(variant).double()
        interp.load_state_dict(ref.state_dict(), strict=True)
        assert count_params(interp) == count_params(model)
        drawn = any(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for op in graph.ops()
                    for k, v in op.args.items() if k in ("p", "dropout", "attention_dropout", "stochastic_depth", "dropout_p"))
        for train in (False, True) if not drawn else (False,):
            with torch.no_grad():
                theirs, ours = ref.train(train)(x.double()), interp.train(train)(x.double())
            theirs, ours = (t if isinstance(t, tuple) else (t,) for t in (theirs, ours))
            theirs = tuple(t for t in theirs if t is not None)  # a side output switched off by its condition
            assert len(theirs) == len(ours), (train, len(theirs), len(ours))
            for a, b in zip(theirs, ours):
                scale = max(a.abs().max(), b.abs().max())  # (outputs that cancel to ~0: float noise is agreement)
                assert a.shape == b.shape and (a - b).abs().max() <= 1e-6 * scale + 1e-9, (train, a, b)
        assert_deploys(spec, variant, ref, x)
        model.train()
        outs = model(x)
        outs = outs if isinstance(outs, tuple) else (outs,)
        sum(o.float().sum() for o in outs if o is not None).backward()
        assert all(p.grad is not None or not p.requires_grad for p in model.parameters() if p.numel())
        if graph.taps:
            assert_backbone_runs(getattr(module, variant), graph, x)
    return True


def assert_head_splits(model, x: torch.Tensor, out: torch.Tensor, signal: bool = False,
                       channels_last: set = frozenset()) -> None:
    """timm's methods (eval, no grad): the halves give forward's output (also where forward keeps its side
    outputs whole), the pre-logits are head_hidden_size wide, and a reset classifier gives the new classes.
    A map's or a volume's features are its channels, dimension 1, as a signal's (N x C x L); tokens' and a
    channels-last map's the last."""
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.allclose(model.forward_head(features), out, rtol=1e-5, atol=1e-6)
        pre = model.forward_head(features, pre_logits=True)
        first = (4, 5, 3) if signal else (4, 5)  # the dimensions of tensors whose features are dimension 1
        assert (pre.shape[1] if pre.dim() in first else pre.shape[-1]) == model.head_hidden_size
        last = tuple(features.shape[1:]) in channels_last  # a channels-last map's features are its last dimension
        assert (features.shape[1] if features.dim() in first and not last else features.shape[-1]) == \
            model.num_features
        clone = copy.deepcopy(model)
        clone.reset_classifier(3)
        assert clone(x).shape == (x.shape[0], 3)


def assert_deploys(spec, variant: str, trained, x: torch.Tensor) -> None:
    """archc.deploy's inference form (norms folded, dropout left out) computes what the trained model does in eval:
    ``trained`` holds batch statistics moved off their defaults, so that a fold that is wrong shows."""
    trained = copy.deepcopy(trained).eval()  # in float64: a norm that divides by a tiny spread magnifies rounding
    deployed = archc.deploy(trained, spec=spec, check=False)
    assert not deployed.training and all(p.dtype == torch.float64 for p in deployed.parameters())
    with torch.no_grad():
        want, got = trained(x.double()), deployed(x.double())
    want, got = ([t for t in (o if isinstance(o, tuple) else (o,)) if t is not None] for o in (want, got))
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-9 * max(1.0, float(a.abs().max())), (a, b)


def assert_backbone_runs(factory, graph, x: torch.Tensor) -> None:
    """The features model: feature_info is the graph's taps, forward gives maps of their shapes, and backward
    reaches every parameter that a map depends on."""
    torch.manual_seed(0)
    backbone = factory(features_only=True)
    taps = list(graph.taps.values())
    assert backbone.feature_info.module_name() == [t.name for t in taps]
    assert backbone.feature_info.reduction() == [t.reduction for t in taps]
    assert backbone.feature_info.channels() == [graph.node(t.node).shape[graph.node(t.node).layout.index("C")]
                                                for t in taps]
    maps = backbone.train()(x)
    assert [tuple(m.shape[1:]) for m in maps] == [graph.node(t.node).shape for t in taps]
    total = sum(m.float().sum() for m in maps)
    if total.requires_grad:  # (a map may be the input itself)
        total.backward()


def assert_only_definitions(source: str) -> None:
    """Importing the module can only define things: imports of torch, classes, functions, constants."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert all(n in ("torch", "math") or n.startswith("torch.") for n in names), names
        elif isinstance(node, ast.Assign):
            ast.literal_eval(node.value)  # constants only: a table, a number
        elif isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)  # the docstring
        else:
            assert isinstance(node, (ast.ClassDef, ast.FunctionDef)), ast.dump(node)[:80]
            assert not node.decorator_list


@settings(settings.get_profile("soundness-ci"))
@given(data=st.data())
def test_random_specs_that_check_run(data, tmp_path_factory):
    text = generate(lambda lo, hi: data.draw(st.integers(lo, hi)))
    check_runs(text, tmp_path_factory.mktemp("s"))


def test_the_generator_writes_specs_that_check(tmp_path):
    """Most generated specs must check, or the test above would only test the rejections."""
    ok = sum(check_runs(generate(random.Random(seed).randint), tmp_path) for seed in range(12))
    assert ok >= 9, f"only {ok} of 12 generated specs check"


def main(argv: list[str]) -> int:
    # the specs' tensors are tiny: one thread each, so that runs side by side (one a core) do not oversubscribe
    # the cores, which made two runs on two cores several times slower than one
    torch.set_num_threads(1)
    count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 1000
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    checked = failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(seed, seed + count):
            text = f"# the generator failed at seed {i}"
            try:
                text = generate(random.Random(i).randint)
                checked += check_runs(text, Path(tmp))
            except Exception:  # a broken promise: keep the spec
                failures += 1
                keep = Path(f"soundness-failure-{i}.arch")
                keep.write_text(text)
                print(f"seed {i}: FAILED, kept as {keep}\n{traceback.format_exc(limit=3)}", flush=True)
            if (i - seed + 1) % 500 == 0:
                print(f"{i - seed + 1} specs, {checked} checked and ran, {failures} failures", flush=True)
    print(f"done: {count} specs, {checked} checked and ran, {count - checked - failures} rejected, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main(sys.argv[1:]))

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
