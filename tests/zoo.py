"""Checks of a spec's variants against torchvision's classification zoo, shared by every zoo family.

For a variant named like a torchvision model (or given that model's ``name``):

- ``assert_counts``: what ``archc stats`` counts, without torch, against torchvision's weight metadata
  (``num_params`` exactly, ``_ops`` within 1%);
- ``assert_matches_torchvision``: under 100 M parameters, our model and torchvision's built for real,
  torchvision's normalisation layers randomised and its state_dict loaded into ours strictly, eval outputs
  compared; above, both built on the meta device and compared parameter by parameter, shape by shape. Then, on
  the same model, static shapes against runtime shapes and torch.compile graph breaks. All on the smallest input
  the network accepts, so a whole network costs seconds;
- ``assert_mutation_fails``: the same comparison for a spec with one textual change, which must now fail,
  which shows the comparison can.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import torch
import torchvision
from archtest import SPECS, assert_static_shapes, count_params, graph_breaks, randomize_batchnorm, spec
from torch import nn

import archc
from archc import SpecError
from archc.backends import stats

LARGE = 100_000_000  # parameters from which models are compared on the meta device only
MACS_RTOL = 0.01  # archc's MACs against torchvision's _ops
# _ops is printed to three decimals (shufflenet_v2_x0_5: 0.04): a figure cannot be held to better than its rounding
OPS_ROUNDING = 0.0005
OUTPUT_RTOL = 1e-5  # max |ours - theirs| against max |theirs|
GLOBAL_POOLS = {"adaptive_avgpool", "adaptive_maxpool", "global_avgpool"}


@cache
def torchvision_meta(name: str) -> dict:
    """torchvision's metadata for a model's default weights (nothing is downloaded): ``num_params``, and
    ``_ops``, GFLOPs that count multiply-adds, as archc does."""
    return dict(torchvision.models.get_model_weights(name).DEFAULT.meta)


def assert_counts(spec_name: str, variant: str, name: str | None = None, *, sides: bool = True) -> dict:
    """``archc stats``'s totals against torchvision's metadata; returns ours and theirs. ``num_params`` counts the
    model ``get_model`` builds, side outputs (Inception-v3's auxiliary head) included, except GoogLeNet's, which
    omits its auxiliary heads: ``sides=False``. MACs are the main path's (side outputs run in training only)."""
    totals = stats.totals(spec(spec_name).graph(variant))
    meta = torchvision_meta(name or variant)
    params = totals["params"] + (totals["side_params"] if sides else 0)
    gmacs = totals["macs"] / 1e9
    assert params == meta["num_params"], f"{params:,} parameters, torchvision {meta['num_params']:,}"
    assert abs(gmacs - meta["_ops"]) <= max(MACS_RTOL * meta["_ops"], OPS_ROUNDING), \
        f"{gmacs:.4f} G MACs, torchvision {meta['_ops']} G"
    return {"params": params, "macs": totals["macs"], "num_params": meta["num_params"], "_ops": meta["_ops"]}


def weights_entries(variants: list[str]):
    """``(variant, weights)`` parameters, one per weights entry torchvision has for each variant: entries for
    larger images (ViT's and Swin V2's) count at their own ``crop_size``."""
    import pytest

    for variant in variants:
        for weights in torchvision.models.get_model_weights(variant):
            yield pytest.param(variant, weights, id=f"{variant}-{weights.name}")


def assert_counts_at_the_weights_size(spec_name: str, variant: str, weights, size_param: str) -> None:
    """``archc stats`` at the weights entry's image size against that entry's metadata."""
    size = weights.transforms.keywords["crop_size"]
    totals = stats.totals(spec(spec_name).graph(variant, **{size_param: size}))
    assert totals["params"] == weights.meta["num_params"]
    assert abs(totals["macs"] / 1e9 - weights.meta["_ops"]) <= MACS_RTOL * weights.meta["_ops"], \
        (totals["macs"], weights.meta["_ops"])


# ------------------------------------------------------------------ inputs


def _accepts(s: archc.Spec, variant: str, size: int) -> bool:
    try:
        graph = s.graph(variant, size=size)
    except SpecError:
        return False
    return all(min(op.in_shapes[0][1:]) >= 2 for op in graph.ops()
               if op.op in GLOBAL_POOLS and len(op.in_shapes[0]) == 3)


@cache
def smallest_size(s: archc.Spec, variant: str, limit: int = 4096) -> int | None:
    """The side of the smallest square input the variant accepts, for networks whose input side is their ``size``
    parameter (None for a fixed input): the smallest at which every shape checks and each global pooling still
    pools over at least 2 x 2, so every 3x3 kernel's taps, strides and paddings still matter (ResNet would take
    1 x 1, where a 3x3 conv only uses its centre). Found by doubling, then bisecting."""
    if "size" not in {p.name for p in s.variants[variant].network.params}:
        return None
    high = 1
    while not _accepts(s, variant, high):
        high *= 2
        assert high <= limit, f"{variant} accepts no input up to {limit} x {limit}"
    low = high // 2  # rejected, or 0
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _accepts(s, variant, mid) else (mid, high)
    return high


def small_input(s: archc.Spec, variant: str, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """A batch at the smallest input size, and the overrides that give the graph that size. Doubled normal
    values, so the nonlinearities (ReLUs, pools) see both signs and a range well past 1."""
    size = smallest_size(s, variant)
    overrides = {"size": size} if size else {}
    graph = s.graph(variant, **overrides)
    shape = graph.node(graph.input).shape
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed)) * 2
    return x, overrides


# ------------------------------------------------------------------ comparisons


def randomize_learned(model: nn.Module, spread: float = 0.5, seed: int = 1) -> nn.Module:
    """Every learned tensor, an nn.Parameter that a model's own module holds rather than a layer of torch's or a
    subclass of one (ConvNeXt's layer scale, a class token), drawn from [1 - spread, 1 + spread]: an initial value
    such as the layer scale's 1e-6 would shrink what it multiplies below the comparison's tolerance."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if not any(c.__module__.startswith("torch.") for c in type(m).__mro__ if c is not nn.Module):
                for tensor in m.parameters(recurse=False):
                    tensor.uniform_(1 - spread, 1 + spread, generator=generator)
    return model


def calibrate_batchnorm(model: nn.Module, x: torch.Tensor, spread: float = 0.5, seed: int = 2) -> nn.Module:
    """Every batch norm's running statistics near those of its input on ``x``: the batch statistics of one
    training-mode forward, then each mean moved by up to ``spread`` standard deviations and each variance scaled by
    [1 - spread, 1 + spread] (affine terms are left as they are). randomize_batchnorm's fixed ranges suit layers
    whose activations stay near unit variance; in narrow mobile layers (MobileNet, MNASNet) they dwarf the signal,
    and after a dozen layers the output is the same for every input to 1e-7, below the comparison's tolerance."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average: after one batch, that batch's statistics
    with torch.no_grad():
        model.train()(x)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.num_batches_tracked.zero_()
            shift = torch.rand(m.running_mean.shape, generator=generator) * 2 - 1
            m.running_mean.add_(spread * shift * m.running_var.sqrt())
            m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(1 - spread, 1 + spread, generator=generator))
    return model.eval()


def reference_model(name: str, calibrate_on: torch.Tensor | None = None) -> nn.Module:
    """torchvision's model, randomly initialised (no weights downloaded), normalisation layers and learned
    tensors randomised; with ``calibrate_on``, its batch norms' statistics calibrated on that input."""
    torch.manual_seed(0)
    model = randomize_learned(randomize_batchnorm(torchvision.models.get_model(name, weights=None)))
    return model if calibrate_on is None else calibrate_batchnorm(model, calibrate_on)


def compare(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Strict loading of the reference's state_dict into ``model``, then equal eval outputs: returns the max
    absolute difference and the output's scale (max |reference output|). Raises AssertionError if either fails."""
    try:
        model.load_state_dict(reference.state_dict(), strict=True)
    except RuntimeError as exc:
        raise AssertionError(f"strict load failed: {exc}") from None
    model.eval()
    reference.eval()
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape, f"output {tuple(ours.shape)}, torchvision {tuple(theirs.shape)}"
    scale = theirs.abs().max().item()
    # a comparison of constants cannot fail: the output must depend on the input
    assert scale > 0 and not torch.equal(theirs[0], theirs[-1]), "the reference's output ignores its input"
    diff = (ours - theirs).abs().max().item()
    assert diff <= OUTPUT_RTOL * scale, f"max difference {diff:.3g} at output scale {scale:.3g}"
    return diff, scale


def compare_training(model: nn.Module, reference: nn.Module, x: torch.Tensor, seed: int = 0) -> float:
    """One training-mode forward of each, both holding the same weights, after the same ``torch.manual_seed``:
    equal outputs (dropout and stochastic depth draw the same numbers, batch norms use batch statistics) and equal
    running statistics afterwards (the batch norms' momentum). Returns the max output difference; raises
    AssertionError if they differ, or if another seed gives the same output (nothing random ran)."""
    outputs = []
    for net in (model.train(), reference.train()):
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs.append(net(x))
    ours, theirs = outputs
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert diff <= OUTPUT_RTOL * scale, f"training mode: max difference {diff:.3g} at output scale {scale:.3g}"
    expected = reference.state_dict()
    for key, value in model.state_dict().items():
        assert torch.allclose(value, expected[key], rtol=OUTPUT_RTOL, atol=0), f"after a training step: {key} differs"
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        assert not torch.equal(model(x), ours), "the training-mode output does not depend on the seed"
    return diff


def shapes(tensors) -> dict[str, tuple[int, ...]]:
    return {key: tuple(t.shape) for key, t in tensors}


def assert_matches_torchvision(spec_name: str, variant: str, name: str | None = None, *, breaks: bool = True,
                               calibrate: bool = False) -> dict:
    """One model, built once, against torchvision's (see the module's docstring); with ``breaks``, also no graph
    breaks; with ``calibrate``, the reference's batch norms calibrated on the input (calibrate_batchnorm). Returns
    what was measured: the parameter count, the input, the difference and the output's scale."""
    s = spec(spec_name)
    name = name or variant
    num_params = torchvision_meta(name)["num_params"]
    x, overrides = small_input(s, variant)
    result = {"params": num_params, "input": tuple(x.shape)}
    if num_params < LARGE:
        reference = reference_model(name, x if calibrate else None)
        model = s.build(variant)
        result["diff"], result["scale"] = compare(model, reference, x)
    else:
        with torch.device("meta"):
            model = s.build(variant)
            reference = torchvision.models.get_model(name, weights=None)
        assert shapes(model.named_parameters()) == shapes(reference.named_parameters())
        assert shapes(model.state_dict().items()) == shapes(reference.state_dict().items())
        x = x.to("meta")
    assert count_params(model) == count_params(reference)
    assert_static_shapes(s, variant, model, x, **overrides)
    if breaks:
        assert graph_breaks(model.eval(), x) == 0
    return result


# ------------------------------------------------------------------ mutations


def mutate(text: str, old: str, new: str, occurrence: int = 1) -> str:
    """``text`` with the ``occurrence``-th (from 1) ``old`` replaced by ``new``; ``new = ""`` drops it."""
    start = -1
    for _ in range(occurrence):
        start = text.find(old, start + 1)
        assert start >= 0, f"{old!r} does not occur {occurrence} time(s)"
    return text[:start] + new + text[start + len(old):]


def mutated_spec(spec_name: str, old: str, new: str, tmp_path: Path, *, occurrence: int = 1,
                 file: str | None = None) -> archc.Spec:
    """The spec loaded from a copy of specs/ in which ``file`` (default: the spec's own; a file it uses, such as
    ``common.arch``, may be named) has one mutation."""
    root = tmp_path / "specs"
    shutil.copytree(SPECS, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    target = root / (file or f"{spec_name}.arch")
    target.write_text(mutate(target.read_text(), old, new, occurrence))
    return archc.load(root / f"{spec_name}.arch")


def assert_mutation_fails(spec_name: str, variant: str, old: str, new: str, tmp_path: Path, *,
                          name: str | None = None, occurrence: int = 1, file: str | None = None,
                          calibrate: bool = False) -> str:
    """Build ``variant`` from the spec with one textual mutation and assert that the comparison with torchvision
    now fails; returns why it failed. The mutated spec must still compile (a SpecError propagates): one the
    compiler rejects shows that the compiler checks, not that the comparison can fail."""
    s = mutated_spec(spec_name, old, new, tmp_path, occurrence=occurrence, file=file)
    x, _ = small_input(spec(spec_name), variant)
    mutated_x, _ = small_input(s, variant)
    if mutated_x.shape[-1] > x.shape[-1]:  # the mutant needs a larger input: torchvision takes it too
        x = mutated_x
    model = s.build(variant)
    try:
        compare(model, reference_model(name or variant, x if calibrate else None), x)
    except AssertionError as exc:
        return str(exc)
    raise AssertionError(f"the mutation {old!r} -> {new!r} still matches torchvision")
