"""Lifting a PyTorch model into a spec: ``lift(model, example_input) -> str``.

The model is captured module by module (``capture``), its modules grouped into blocks with parameters for what
differs between instances (``blocks``), printed (``write``), and the text proven: it is compiled, the model's
state_dict loads into the built network strictly and its eval outputs are identical (``roundtrip``). A model
that does not round-trip is a ``LiftError``, never a file. Imports torch (lifting reads a model).
"""

from __future__ import annotations

from .errors import LiftError
from .lift import lift, lift_unchecked

__all__ = ["LiftError", "lift", "lift_unchecked"]
