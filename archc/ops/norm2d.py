"""Norms over the channels of a map that a network may hold as its ``norm_layer`` with their own class.

``layernorm`` on a C x H x W map is written as a ``_LayerNorm2d`` helper, but a parameter holding an op holds one
class, the kind's own (``nn.LayerNorm``), so ``norm_layer = layernorm`` cannot stand for torchvision's
ConvNeXt norms. ``layernorm2d`` is that class as a kind of its own: torchvision's ``LayerNorm2d``, held as
``norm_layer = layernorm2d(eps = 1e-6)`` and generated as ``partial(_LayerNorm2d, eps=1e-06)``, so a caller may
pass ``partial(torchvision.models.convnext.LayerNorm2d, eps=1e-6)`` or any class built from the width.
"""

from __future__ import annotations

from .base import INPUT, OpKind, _register, _same
from .initsizes import WEIGHT_BIAS, affine_if, shape_sizes
from .norm import LayerNormArgs, _layernorm_make, _layernorm_params, _layernorm_run

_register(OpKind(
    "layernorm2d", LayerNormArgs, _same, layouts=("CHW",), module="_LayerNorm2d", in_arg=True,
    params=_layernorm_params, make=_layernorm_make, run=_layernorm_run, value=True,
    doc="layer normalisation over the channels of a C x H x W map (torchvision's LayerNorm2d), as layernorm there, "
        "but with a class of its own, so a network may hold it as its norm_layer",
    saves=INPUT, init_params=WEIGHT_BIAS, init_has=affine_if("elementwise_affine", "bias"), init_sizes=shape_sizes))
