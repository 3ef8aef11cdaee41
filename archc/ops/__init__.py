"""The op registry: ``base`` (``OpKind``, ``REGISTRY``, argument types) and one module per family of kinds.

Importing the package registers every family, in this order, which is the registry's order (the
order of the docs and of anything listed from it). A family imports ``base``, never this package.
"""

# isort: off
from . import conv, conv_nd, norm, activations, layout, partition, tokens, windows, tensor, joins, einsum, split, numeric, fused, indexing, norm2d, select, elementwise, lppool, conv_transpose  # noqa: F401  (register the families, in this order)
# isort: on
from .base import REGISTRY, OpKind, ShapeError, pair

__all__ = ["REGISTRY", "OpKind", "ShapeError", "pair"]
