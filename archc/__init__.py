"""archc: a compiler from declarative network specs (.arch) to PyTorch modules.

The API's names are imported on first use (PEP 562), so that ``archc build`` (``python -m archc``
imports this package first) loads only what it runs: not the statistics, deployment, lifting or the zoo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import SpecError

if TYPE_CHECKING:
    from .backends import stats
    from .deployment import deploy
    from .lifting import lift
    from .spec import Spec, load
    from .zoo.registry import create_model, list_models

__all__ = ["Spec", "SpecError", "create_model", "deploy", "lift", "list_models", "load", "stats"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("Spec", "load"):
        from . import spec as home
    elif name == "deploy":
        from . import deployment as home
    elif name == "lift":  # archc.lift(model, example_input) -> spec text (imports torch)
        from . import lifting as home
    elif name in ("create_model", "list_models"):
        from .zoo import registry as home
    elif name == "stats":  # archc.stats: parameters and MACs of a graph, as before the backends had a package
        from .backends import stats

        return stats
    else:
        raise AttributeError(f"module 'archc' has no attribute '{name}'")
    return getattr(home, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
