"""How many of timm's (or torchvision's) models `archc lift` round-trips, and why the rest do not:
`python benchmarks/lift.py` (all of timm's architectures at their default configuration), `--sample N --seed S`
for a reproducible random sample, `--source torchvision` for torchvision's classification models.

Each model is built at its default configuration and lifted on its registry's input size; the lifter proves
the text itself (the weights load strictly into the rebuilt network and the eval outputs are identical) and
raises with the module path and the reason where it cannot. Models above --max-params are lifted on the meta
device, where the proof is every state_dict key and shape (no outputs). The summary counts the reasons (the
part of the message after the module path) so that the most common wall shows first.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
import time
import warnings


def _models(source: str) -> list[str]:
    if source == "timm":
        import timm

        return timm.list_models()
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _build(source: str, name: str, meta: bool):
    import torch

    if source == "timm":
        import timm

        make = lambda: timm.create_model(name)  # noqa: E731
    else:
        import torchvision

        make = lambda: torchvision.models.get_model(name)  # noqa: E731
    if meta:
        try:
            with torch.device("meta"):
                return make()
        except Exception:  # noqa: BLE001  (a constructor that computes with tensors: built, then moved)
            return make().to("meta")
    return make()


def _size(source: str, model, name: str) -> tuple[int, ...]:
    if source == "timm":
        return tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    return (3, 299, 299) if "inception" in name else (3, 224, 224)


def _reason(message: str) -> str:
    """The reason without the module path and the names in it: what to count."""
    text = message.split(": ", 1)[-1] if re.match(r"^(?:[\w.]+|the model) \(\w+\): ", message) else message
    text = re.sub(r"^[\w.]+ (\(\w+\) (?:is never called|holds its own buffer))", r"\1", text)  # the class, not its path
    text = re.sub(r"'[^']*'", "'…'", text)
    return text.splitlines()[0][:110]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("timm", "torchvision"), default="timm")
    parser.add_argument("--sample", type=int, default=None, metavar="N", help="a random sample of N models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=None, help="these models only")
    parser.add_argument("--max-params", type=float, default=100e6,
                        help="above this many parameters, lift on the meta device (default 100e6)")
    parser.add_argument("--json", metavar="FILE", help="write every model's result here")
    args = parser.parse_args(argv)

    import torch

    from archc.lifting import LiftError, lift

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    names = args.models or _models(args.source)
    if args.sample and not args.models:
        names = sorted(random.Random(args.seed).sample(names, min(args.sample, len(names))))
    results: dict[str, dict] = {}
    start = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        try:
            model = _build(args.source, name, meta=True)
            meta = sum(p.numel() for p in model.parameters()) > args.max_params
            if not meta:
                model = _build(args.source, name, meta=False)
            size = _size(args.source, model, name)
            example = torch.randn(1, *size, device="meta" if meta else "cpu")
            lift(model.eval(), example, re.sub(r"\W", "_", name))
            results[name] = {"ok": True, "meta": meta}
        except LiftError as e:
            results[name] = {"ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001  (a model that cannot even be built or run here, or a lifter bug)
            results[name] = {"ok": False, "error": f"crash: {type(e).__name__}: {e}"}
        mark = "ok" if results[name]["ok"] else "--"
        print(f"{mark} {name} ({time.perf_counter() - t:.1f} s){'' if results[name]['ok'] else ': '}"
              f"{results[name].get('error', '')[:160]}", flush=True)
    ok = sum(r["ok"] for r in results.values())
    print(f"\n{ok} of {len(results)} {args.source} models round-trip ({100 * ok / max(len(results), 1):.0f}%), "
          f"{time.perf_counter() - start:.0f} s")
    reasons = collections.Counter(_reason(r["error"]) for r in results.values() if not r["ok"])
    for reason, count in reasons.most_common(15):
        print(f"{count:5d}  {reason}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
