"""``archc lift TARGET``: the model lifted, proven, and written (or printed); a ``LiftError`` is one line."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import LiftError


def run(args) -> int:
    import torch

    from .lift import lift
    from .target import resolve

    try:
        model, size, name = resolve(args.target, args.kwargs)
        size = args.input_size or size or (3, 224, 224)
        if len(size) == 1:
            size = (3, size[0], size[0])
        elif len(size) == 2:
            size = (3, *size)
        torch.manual_seed(0)
        example = torch.randn(1, *size)
        header = f"# Lifted from {args.target} by archc lift: every module class a block, its original names kept."
        text = lift(model.eval(), example, args.name or name, header=header)
    except LiftError as e:
        print(f"archc lift: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001  (a bug in the lifter, or a model that fails on its own)
        print(f"archc lift: internal error ({type(e).__name__}: {e}); please report it with the model",
              file=sys.stderr)
        return 3
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
