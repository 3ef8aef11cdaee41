"""Power-average pooling, ``lppool`` on a C x H x W map and ``lppool1d`` / ``lppool3d`` on a C x L signal and a
C x D x H x W volume: each window's (sum of x ** norm_type) ** (1 / norm_type), torch's ``nn.LPPool1d/2d/3d``
(norm_type 1 is sum pooling; a large one nears max pooling). No padding, no dilation, as torch's have none; the
stride defaults to the kernel size."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field, create_model

from ..sema.layout import TensorType
from .base import Args, OpKind, Pair, Pos, Saves, _register, size_text
from .conv import _window

Triple = Pos | tuple[Pos, Pos, Pos]
One = Pos | tuple[Pos]
# per rank: the op's name, its layout, its spatial axes' names and the type of a size
RANKS = {1: ("lppool1d", "CL", ("length",), One), 2: ("lppool", "CHW", ("height", "width"), Pair),
         3: ("lppool3d", "CDHW", ("depth", "height", "width"), Triple)}
NormType = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _each(v, rank: int) -> tuple[int, ...]:
    return (v,) * rank if isinstance(v, int) else tuple(v)


def _entry(rank: int) -> OpKind:
    name, layout, axes, size = RANKS[rank]
    args = create_model(f"LPPool{rank}dArgs", __base__=Args, norm_type=(NormType, ...), kernel_size=(size, ...),
                        stride=(size | None, None), ceil_mode=(bool, False))

    def shape(a, t: TensorType) -> TensorType:
        ks = _each(a.kernel_size, rank)
        ss = _each(a.stride if a.stride is not None else a.kernel_size, rank)
        return TensorType((t.shape[0], *(_window(n, k, s, 0, 1, a.ceil_mode, axis)
                                         for n, k, s, axis in zip(t.shape[1:], ks, ss, axes))), layout)

    def run(m, a: dict, t: TensorType, xs: list, training: bool):
        """The windows' sums of x ** p, as torch takes them (the mean of each window times its full size, also
        where ceil_mode cuts a window short), to the power 1 / p."""
        import torch.nn.functional as F

        p, k = a["norm_type"], a["kernel_size"]
        mean = F.__dict__[f"avg_pool{rank}d"](xs[0].pow(p), k, a["stride"] or k, 0, a["ceil_mode"])
        return (mean * math.prod(_each(k, rank))).pow(1.0 / p)

    def saves(a: dict, ins: tuple, out: tuple) -> Saves:
        """torch composes it: the input and its power, and four tensors of the output's size (the windows' mean,
        its sign, its magnitude, their product scaled)."""
        return Saves((0,), extra=((math.prod(ins[0]), 0),) + ((math.prod(out), 0),) * 4)

    def label(a: dict) -> str:
        stride = a.get("stride") or a["kernel_size"]
        text = size_text(a["kernel_size"]) if rank == 2 else "x".join(map(str, _each(a["kernel_size"], rank)))
        return f"{name} {a['norm_type']:g}, {text}" + ("" if stride == 1 else f"/{stride}")

    return OpKind(
        name, args, shape, layouts=(layout,), module=f"nn.LPPool{rank}d", functional=f"F.lp_pool{rank}d", run=run,
        label=label, saves=saves,
        doc=f"power-average pooling of a {'C x L signal' if rank == 1 else 'C x D x H x W volume' if rank == 3 else 'map'}: "
            "each window's (sum of x ** norm_type) ** (1 / norm_type); stride defaults to the kernel size")


for _rank in (2, 1, 3):
    _register(_entry(_rank))
