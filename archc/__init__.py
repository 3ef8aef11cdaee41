"""archc: a compiler from declarative network specs (.arch) to PyTorch modules."""

from .errors import SpecError
from .registry import create_model, list_models
from .spec import Spec, load

__all__ = ["Spec", "SpecError", "create_model", "list_models", "load"]
__version__ = "0.1.0"
