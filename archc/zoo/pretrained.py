"""What a shipped model's reference was trained on: timm's ``pretrained_cfg`` for it (input size, mean, std,
crop and interpolation), so that data pipelines built for timm (``timm.data.resolve_data_config(model=m)``)
make the reference's transforms for an archc model.

The values are the reference's facts, kept in ``pretrained_cfgs.json`` beside this module: torchvision's
weights' transforms for torchvision's networks, timm's default configuration for timm's. A test derives them
again from torchvision and timm and fails where they differ (``ARCHC_UPDATE_GOLDEN=1`` rewrites the file).
archc ships no weights: the configuration says how the reference's weights expect their inputs.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

FILE = "pretrained_cfgs.json"


@cache
def _table() -> dict[str, dict]:
    return json.loads(resources.files(__package__).joinpath(FILE).read_text())


def pretrained_cfg(name: str) -> dict | None:
    """A fresh copy of the model's configuration, or None for a model without a reference (a paper's
    variant, a CIFAR network, a spec of your own)."""
    cfg = _table().get(name)
    if cfg is None:
        return None
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
