"""The graph interpreter (``Spec.interpret``) against the generated models: the same state_dict keys and
parameter counts, and, with one state_dict loaded into both, the same outputs. Mutated graphs prove that the
comparison can fail."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from archtest import SPECS, count_params, spec

import archc
from archc import SpecError
from archc.backends.interpret import Interpreter
from archc.sema.graph import Graph
from archc.sema.values import OpRef

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BIG = 100_000_000  # parameters: above this, only keys and counts, on the meta device
# multiply-adds: above this, the slow tier's every-variant comparison runs one sample, not two (in float64 on two
# cores the largest under BIG took minutes each; the fast tier compares one variant of every family at two)
HEAVY = 1_500_000_000
MACS = 20_000_000_000  # multiply-adds: above this (XCiT at 384 or with 8 x 8 patches, EfficientNet-B7), keys and counts


def randomised(state: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """Batch-norm statistics and every constant-initialised tensor (norm weights, biases, layer scales, tokens)
    made random, so that a swapped weight and bias or a missing statistic shows; weight matrices drawn with
    variance 1 / fan-in, so that the input still matters at the output of a deep network."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, t in state.items():
        if not t.is_floating_point():
            out[key] = t
        elif t.dim() >= 2 and t.shape[0] > 1:  # drawn in float32 (half the time of float64 draws), then cast
            out[key] = torch.randn(t.shape, generator=g).to(t.dtype) * (t[0].numel() ** -0.5)
        elif key.endswith("running_var"):
            out[key] = torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5
        elif key.endswith("running_mean") or (t.numel() and bool((t == t.flatten()[0]).all())):
            out[key] = t + 0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype)
        else:
            out[key] = t
    return out


def pair_of_models(s: archc.Spec, variant: str, graph: Graph | None = None, **overrides):
    """The generated model (randomised) and an interpreter (of ``graph``, else the variant's) holding its state."""
    torch.manual_seed(0)
    if set(overrides) & set(s.variants[variant].fixed):  # the factory fixes them: call the network's class
        net, values = s.values(variant, **overrides)
        cls = getattr(s.python_module(), net.name)
        taken = inspect.signature(cls).parameters  # not the sizes only the input reads
        # (not an op a parameter holds by default, norm_layer = batchnorm: the class's default is that op, as a
        # torch class; one the variant fixes would fail here, loudly)
        fixed = s.variants[variant].fixed
        model = cls(**{k: v for k, v in values.items()
                       if k in taken and (k in fixed or not isinstance(v, OpRef))}).double()
    else:
        model = s.build(variant, **overrides).double()
    model.load_state_dict(randomised(model.state_dict()))
    interp = Interpreter(graph or s.graph(variant, **overrides)).double()
    interp.load_state_dict(model.state_dict(), strict=True)
    return model, interp


def outputs(model, interp, x: torch.Tensor, train: bool = False):
    model.train(train)
    interp.train(train)
    with torch.no_grad():
        return model(x), interp(x)


def close(a, b) -> bool:
    """Equal within 1e-6 of the output's scale (same shapes, and tuples element by element)."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(map(close, a, b))
    if a.shape != b.shape:
        return False
    return (a - b).abs().max().item() <= 1e-6 * max(a.abs().max().item(), 1e-12)


def sample(graph: Graph, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(2)
    return torch.randn(batch, *graph.node(graph.input).shape, dtype=torch.float64)


def assert_agrees(s: archc.Spec, variant: str, train: bool = False, batch: int = 2, graph: Graph | None = None,
                  **overrides) -> None:
    graph = graph or s.graph(variant, **overrides)
    model, interp = pair_of_models(s, variant, graph, **overrides)
    assert list(interp.state_dict()) == list(model.state_dict()) or \
        sorted(interp.state_dict()) == sorted(model.state_dict())
    assert count_params(interp) == count_params(model) == graph.params
    x = sample(graph, batch)
    ours, theirs = outputs(model, interp, x)
    assert tuple(theirs.shape) == (batch, *graph.node(graph.output).shape)
    assert close(ours, theirs), (ours - theirs).abs().max().item()
    # the rows differ, so the output depends on the input (a deep net at random weights may barely: any difference)
    assert batch == 1 or not torch.equal(theirs[0], theirs[1]), "the output does not depend on the input"
    if train:
        ours, theirs = outputs(model, interp, x, train=True)
        assert close(ours, theirs)


# One small variant per spec family (the fast tier); the others are slow. Overrides shrink the transformers.
FAST = [
    pytest.param("alexnet", "alexnet_paper", {"num_classes": 10}, marks=pytest.mark.slow),
    ("convnext", "convnext_tiny", {"depths": [1, 1, 2, 1], "size": 64}),
    ("densenet", "densenet_bc100_k12", {}),
    ("efficientnet", "efficientnet_b0", {}),
    ("googlenet", "googlenet", {}),
    pytest.param("inception_v3", "inception_v3", {}, marks=pytest.mark.slow),
    pytest.param("inception_v4", "inception_resnet_v1", {}, marks=pytest.mark.slow),
    ("maxvit", "maxvit_t", {"block_layers": [1, 1, 1, 1]}),
    ("mnasnet", "mnasnet0_5", {}),
    ("mobilenet", "mobilenet_v3_small", {}),
    ("nin", "nin_cifar10", {}),
    ("preact_resnet", "preact_resnet164", {}),
    ("regnet", "regnet_y_400mf", {}),
    ("resnet", "resnet20", {}),
    ("shufflenet", "shufflenet_v2_x0_5", {}),
    ("squeezenet", "squeezenet1_1", {}),
    ("swin", "swin_t", {"depths": [2, 2, 2, 2], "size": 96}),
    ("swin", "swin_v2_t", {"depths": [2, 2, 2, 2], "size": 96}),
    ("vit", "vit_b_32", {"num_layers": 2, "image_size": 64}),
]


@pytest.mark.parametrize(("name", "variant", "overrides"), FAST, ids=lambda v: v if isinstance(v, str) else "")
def test_interpreter_agrees_with_the_generated_model(name, variant, overrides):
    assert_agrees(spec(name), variant, **overrides)


def _shipped() -> list[tuple[str, str]]:
    out = []
    for path in sorted(SPECS.glob("*.arch")):
        s = spec(path.stem)
        out += [(path.stem, v) for v in s.variants]
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant"), _shipped(), ids=[f"{n}-{v}" for n, v in _shipped()])
def test_every_shipped_variant_agrees(name, variant):
    s = spec(name)
    graph = s.graph(variant)
    if graph.params > BIG or graph.macs > MACS:  # too large to run twice here: keys and counts only
        with torch.device("meta"):
            model, interp = s.build(variant), Interpreter(graph)
        assert sorted(interp.state_dict()) == sorted(model.state_dict())
        assert count_params(interp) == count_params(model) == graph.params
        return
    assert_agrees(s, variant, batch=1 if graph.macs > HEAVY else 2, graph=graph)


@pytest.mark.parametrize(("name", "variant"), [("vgg", "vgg11_bn"), ("vit", "vit_l_32")])
def test_large_models_have_the_same_keys_and_counts(name, variant):
    s = spec(name)
    with torch.device("meta"):
        model, interp = s.build(variant), s.interpret(variant)
    assert sorted(interp.state_dict()) == sorted(model.state_dict())
    assert count_params(interp) == count_params(model) == s.graph(variant).params


# ------------------------------------------------------------------ training mode


@pytest.mark.parametrize(("name", "variant", "overrides"), [
    ("resnet", "resnet20", {}),
    ("densenet", "densenet_bc100_k12", {}),
    ("shufflenet", "shufflenet_v2_x0_5", {}),
    ("swin", "swin_t", {"depths": [2, 2, 2, 2], "size": 96, "stochastic_depth_prob": 0.0}),
])
def test_training_mode_agrees_without_dropout(name, variant, overrides):
    """Batch statistics in training mode, and the running statistics they leave behind."""
    s = spec(name)
    model, interp = pair_of_models(s, variant, **overrides)
    x = sample(s.graph(variant, **overrides))
    ours, theirs = outputs(model, interp, x, train=True)
    assert close(ours, theirs)
    after = interp.state_dict()
    assert all(close(after[k], v) for k, v in model.state_dict().items() if v.is_floating_point())


def test_side_outputs_come_after_the_output_in_training(tmp_path):
    text = """
block Aux(classes) {
    avgpool(4);  flatten;  fc = linear(classes)
}

network N(classes = 5) {
    input 3 x 16 x 16
    c1 = conv(8, 3, padding = 1);  bn1 = batchnorm;  relu
    aux = side Aux(classes)
    c2 = conv(8, 3, stride = 2);  relu
    global_avgpool
    fc = linear(classes)
}
variant n = N()
"""
    path = tmp_path / "side.arch"
    path.write_text(text)
    s = archc.load(path)
    model, interp = pair_of_models(s, "n")
    x = sample(s.graph("n"))
    ours, theirs = outputs(model, interp, x, train=True)
    assert isinstance(theirs, tuple) and len(theirs) == 2
    assert close(ours, theirs)
    ours, theirs = outputs(model, interp, x)
    assert not isinstance(ours, tuple) and close(ours, theirs)


@pytest.mark.parametrize(("body", "op"), [
    ("concat { x1 = seq { }; x2 = seq { } }", "concat"),
    ("residual(scale = 2.0) { }", "add"),
])
def test_an_input_used_twice_is_kept(tmp_path, body, op):
    """Edges cannot hold concat(x, x) or x + x; the node's ``inputs`` do, and the interpreter reads those."""
    path = tmp_path / "twice.arch"
    path.write_text(f"network N() {{\n    input 4 x 8 x 8\n    {body}\n    c = conv(3, 1)\n}}\nvariant n = N()\n")
    s = archc.load(path)
    graph = s.graph("n")
    assert next(node for node in graph.ops() if node.op == op).inputs == ("input", "input")
    assert_agrees(s, "n", train=True)


# ------------------------------------------------------------------ mutations: the comparison can fail


def mutated(graph: Graph, pick, **changes) -> Graph:
    """A copy of ``graph`` with the first op that ``pick`` accepts changed."""
    out = Graph(graph.network, graph.variant)
    out.input, out.output, out.sides = graph.input, graph.output, dict(graph.sides)
    done = False
    for op in graph.ops():
        if not done and pick(op):
            op, done = dataclasses.replace(op, **changes), True
        out.add(op, list(op.inputs))
    assert done, "nothing to mutate"
    return out


@pytest.mark.parametrize(("name", "variant", "overrides", "pick", "changes"), [
    ("resnet", "resnet20", {}, lambda op: op.op == "relu", {"op": "gelu", "args": {"approximate": "none"}}),
    ("resnet", "resnet20", {}, lambda op: op.op == "add", {"op": "identity", "args": {}}),  # the shortcut dropped
    ("googlenet", "googlenet", {}, lambda op: op.op == "concat",
     {"inputs": None}),  # the branches in another order
    ("mobilenet", "mobilenet_v3_small", {}, lambda op: op.op == "hardswish", {"op": "silu"}),
    ("swin", "swin_v2_t", {"depths": [2, 2, 2, 2], "size": 96},  # V2's bias without its 16 sigmoid(...)
     lambda op: op.op == "sigmoid", {"op": "identity", "args": {}}),
    ("swin", "swin_t", {"depths": [2, 2, 2, 2], "size": 96},  # V1's attention, written: a shift rolled back
     lambda op: op.op == "roll" and op.args["shifts"][0] > 0, {"args": "unrolled"}),
    ("maxvit", "maxvit_t", {"block_layers": [1, 1, 1, 1]},
     lambda op: op.op == "partition" and op.args["kind"] == "grid", {"args": "window"}),
])
def test_a_mutated_graph_gives_other_outputs(name, variant, overrides, pick, changes):
    s = spec(name)
    graph = s.graph(variant, **overrides)
    target = next(op for op in graph.ops() if pick(op))
    if changes.get("inputs", 1) is None:
        changes = {"inputs": tuple(reversed(target.inputs))}
    elif changes.get("args") == "unrolled":
        changes = {"args": {**target.args, "shifts": [0, 0]}}
    elif changes.get("args") == "window":
        changes = {"args": {**target.args, "kind": "window"}}
    model, interp = pair_of_models(s, variant, mutated(graph, pick, **changes), **overrides)
    ours, theirs = outputs(model, interp, sample(graph))
    assert ours.shape == theirs.shape and not close(ours, theirs)


# ------------------------------------------------------------------ checks of the registry's own


def _load(tmp_path, body: str) -> archc.Spec:
    path = tmp_path / "n.arch"
    path.write_text(f"network N() {{\n    input 8 x 8 x 8\n{body}\n}}\nvariant n = N()\n")
    return archc.load(path)


@pytest.mark.parametrize("body", [
    "    s = learned_scale((8, 1, 1), init = 1e300)",
    "    s = learned_scale((8, 1, 1), init = -4e38)",
    "    to_tokens\n    t = prepend_token(init = 1e39)",
    "    p = learned_add((8, 1, 1), init = 1e300)",
    "    t = learned((8, 3), init = 1e300)",
])
def test_a_learned_tensor_must_start_finite_in_float32(tmp_path, body):
    with pytest.raises(SpecError) as info:
        _load(tmp_path, body)
    assert info.value.span is not None and info.value.span.line >= 3
    assert "not finite in float32" in info.value.message


def test_the_largest_float32_init_is_accepted(tmp_path):
    _load(tmp_path, "    s = learned_scale((8, 1, 1), init = 3.4e38)")


@pytest.mark.parametrize("window", ["1", "(1, 2)", "(2, 1)"])
def test_swin_v2_windows_need_two_positions_a_side(tmp_path, window):
    body = f"    permute((0, 2, 3, 1))\n    a = window_attention({window}, 2, version = 2)"
    with pytest.raises(SpecError) as info:
        _load(tmp_path, body)
    err = info.value
    assert err.span is not None and err.span.line == 4
    assert "version 2 needs windows at least 2 positions on each side" in err.message
    assert err.hint == "use a larger window_size, or version = 1"


def test_swin_v1_windows_of_one_position_run(tmp_path):
    s = _load(tmp_path, "    permute((0, 2, 3, 1))\n    a = window_attention(1, 2)\n    permute((0, 3, 1, 2))")
    assert_agrees(s, "n")
    model, _ = pair_of_models(s, "n")
    assert torch.isfinite(model.eval()(sample(s.graph("n")))).all()
