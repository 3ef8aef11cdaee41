"""Deployed models against the reference, as ratios measured in one run (these machines are noisy).

    python benchmarks/deploy.py                                  # the default five, eager
    python benchmarks/deploy.py --models resnet50 --rounds 9 --batch 8
    python benchmarks/deploy.py --compile --models resnet50     # torch.compile too (minutes on a CPU)

For each model: torchvision's eager model (the reference; timm's for RepVGG, and timm's own
re-parameterised model beside it), archc's model as trained (the same weights, loaded strictly),
``archc.deploy(model)`` and ``archc.deploy(model, channels_last=True)``, all in eval under
torch.inference_mode, batch 8 at 224 x 224. After a warm-up, each round runs every
side once, in an order that rotates from round to round; the medians are compared. Batch norms get
random statistics first, so that folding has something to fold. Throughput ratios > 1 are faster
than the reference. With --compile, the reference and the deployed models are compiled too.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import archc  # noqa: E402

DEFAULT = ["resnet50", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny", "swin_t", "repvgg_a0"]


def randomise_norms(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def sides(name: str, compile_too: bool) -> dict[str, torch.nn.Module]:
    """The reference first (torchvision's; timm's for the timm families), then ours as trained and deployed;
    where timm re-parameterises the model itself (RepVGG), its re-parameterised model too."""
    timm_model = name not in importlib.import_module("torchvision.models").list_models()
    if timm_model:
        reference = importlib.import_module("timm").create_model(name, pretrained=False).eval()
    else:
        reference = getattr(importlib.import_module("torchvision.models"), name)(weights=None).eval()
    with torch.no_grad():
        randomise_norms(reference)
    ours = archc.create_model(name).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    out = {"timm" if timm_model else "torchvision": reference, "archc": ours}
    if timm_model and any(hasattr(m, "reparameterize") for m in reference.modules()):
        reparameterize = importlib.import_module("timm.utils.model").reparameterize_model
        out["timm, re-parameterised"] = reparameterize(reference)
        out["timm, re-parameterised, channels-last"] = out["timm, re-parameterised"].to(
            memory_format=torch.channels_last)
    out["deployed"] = archc.deploy(ours)
    out["deployed, channels-last"] = archc.deploy(ours, channels_last=True)
    if compile_too:
        for k in [k for k in out if k not in ("archc", "deployed")]:
            out[k + ", compiled"] = torch.compile(out[k])
    return out


def measure(models: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median seconds per forward of each side, interleaved."""
    times: dict[str, list[float]] = {k: [] for k in models}
    names = list(models)
    with torch.inference_mode():
        for m in models.values():  # warm-up (and the compiles)
            m(x)
            m(x)
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for k in order:
                t = time.perf_counter()
                models[k](x)
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, eval (> 1: faster)")
    for name in args.models:
        torch.manual_seed(0)
        models = sides(name, args.compile)
        x = torch.randn(args.batch, 3, 224, 224)
        first = next(iter(models))
        with torch.inference_mode():
            ref = models[first](x)
            for k, m in models.items():
                diff = float((m(x) - ref).abs().max() / ref.abs().max())
                assert diff < 1e-4, f"{name}: {k} differs from {first} by {diff:.3g}"
        med = measure(models, x, args.rounds)
        base = med[first]
        counts = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items() if "compiled" not in k}
        print(f"\n{name}  (parameters: {first} {counts[first]:,}, deployed {counts['deployed']:,}; "
              f"throughput against {first}'s eager model)")
        for k, t in med.items():
            print(f"  {k:36s} {t * 1000:8.1f} ms   {base / t:5.2f}x")


if __name__ == "__main__":
    main()
