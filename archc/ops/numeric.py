"""Numeric primitives: sin and cos of every entry, the Lp normalisation of vectors along one axis, and tables of
coordinates, from which fixed encodings of positions are computed (the sinusoids of "Attention is all you need",
the Fourier features of DETR and XCiT) with the arithmetic of the lets.

Like the tensor primitives (``ops.tensor``) they take a tensor of any layout and count dimensions as torch does,
the batch as 0. ``coordinates`` reads nothing of its tensor but its batch size, dtype and device: its values are a
function of the shape it is given, the same for every sample. Each ``run`` is written from the definition, not
from the torch call the code generator writes.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from ..sema.layout import TensorType, named
from .base import ANY, INPUT, NOTHING, Args, NoArgs, OpKind, ShapeError, _register, _same, axis
from .tensor import _items

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _pointwise(name: str, doc: str) -> None:
    """``torch.sin(x)``: a function of every entry, torch's of the same name."""

    def run(m, a: dict, t, xs: list, training: bool):
        import torch

        return getattr(torch, name)(xs[0])

    _register(OpKind(name, NoArgs, _same, layouts=ANY, functional=f"torch.{name}", view=False, doc=doc, run=run,
                     saves=INPUT))


_pointwise("sin", "the sine of every entry (radians)")
_pointwise("cos", "the cosine of every entry (radians)")


class NormalizeArgs(Args):
    p: Positive = 2.0
    dim: int = 1
    eps: Positive = 1e-12


def _normalize_shape(a: NormalizeArgs, t: TensorType) -> TensorType:
    axis(a.dim, len(t.shape))
    return t


def _normalize_run(m, a: dict, t, xs: list, training: bool):
    x = xs[0]
    length = (x.abs() ** a["p"]).sum(a["dim"], keepdim=True) ** (1 / a["p"])  # the vector's Lp length
    return x / length.clamp(min=a["eps"])


_register(OpKind(
    "normalize", NormalizeArgs, _normalize_shape, layouts=ANY, functional="F.normalize", view=False,
    sym=lambda a, shape: shape, run=_normalize_run,
    macs=lambda a, t, o: math.prod(o.shape),  # the squares summed
    doc="every vector along dimension dim divided by its Lp length (at least eps): F.normalize",
    saves=INPUT))  # (and the lengths, one a vector)


class CoordinatesArgs(Args):
    shape: tuple[Annotated[int, Field(gt=0)], ...]
    dim: int


def _coordinates_shape(a: CoordinatesArgs, t: TensorType) -> TensorType:
    if not a.shape:
        raise ShapeError("coordinates needs at least one size")
    axis(a.dim, len(a.shape))
    if math.prod(a.shape) > 2 ** 31:
        raise ShapeError(f"a table of {math.prod(a.shape)} entries is too large",
                         hint="coordinates makes one table per sample, of at most 2 ** 31 entries")
    return named(tuple(a.shape))


def _coordinates_sym(a: dict, shape: tuple) -> tuple | None:
    items = _items(a["shape"])
    return None if items is None else tuple(items)


def _coordinates_run(m, a: dict, t, xs: list, training: bool):
    import torch

    x, shape = xs[0], tuple(a["shape"])
    i = axis(a["dim"], len(shape))
    grids = torch.meshgrid(*(torch.arange(s, dtype=torch.int64) for s in shape), indexing="ij")
    table = grids[i].to(device=x.device, dtype=x.dtype)
    return torch.stack([table] * x.shape[0])


_register(OpKind(
    "coordinates", CoordinatesArgs, _coordinates_shape, layouts=ANY, template="_coordinates({x}, {shape}, {dim})",
    sym=_coordinates_sym, run=_coordinates_run,
    doc="a tensor of the given shape (after the input's batch; its dtype and device) whose every entry is its "
        "index along dimension dim: 0, 1, 2, ... (the input's values are not read)", saves=NOTHING))
