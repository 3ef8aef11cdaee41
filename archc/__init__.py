"""archc: a compiler from declarative network specs (.arch) to PyTorch modules."""

from .errors import SpecError
from .spec import Spec, load

__all__ = ["Spec", "SpecError", "load"]
__version__ = "0.1.0"
