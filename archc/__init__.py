"""archc: a compiler from declarative network specs (.arch) to PyTorch modules."""

from .backends import stats  # archc.stats: parameters and MACs of a graph, as before the backends had a package
from .deployment import deploy
from .errors import SpecError
from .spec import Spec, load
from .zoo.registry import create_model, list_models

__all__ = ["Spec", "SpecError", "create_model", "deploy", "list_models", "load", "stats"]
__version__ = "0.1.0"
