"""Modules whose forward builds a fixed table from sizes alone, never reading a tensor (timm's Fourier position
encodings, called as ``self.pos_embed(B, H, W)``): traced, such a forward is one tensor constant, which a spec
cannot write. For the ones known here the table is written as the language computes it, from ``coordinates``
and the lets' arithmetic, op for op as the module computes it (so the values are the same, bit for bit, which
the round trip proves). The table's block takes one tensor of its caller, of which ``coordinates`` reads only
the batch size, dtype and device: the tensor the caller computed last before the call."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import ir

# module class -> its epsilon (timm's XCiT keeps it as an attribute, EdgeNeXt writes it in its forward)
_FOURIER = {"timm.models.xcit.PositionalEncodingFourier": None, "timm.models.edgenext.PositionalEncodingFourier": 1e-6}


@dataclass
class Table:
    """A module that builds a fixed table, its forward to be written once its caller gives it a tensor."""

    cls: str
    path: str
    children: list
    module: nn.Module

    def dag(self, x_shape: tuple[int, ...], args: tuple) -> ir.Dag:
        """Its forward on a tensor of the caller of shape ``x_shape``, for the sizes among its call's ``args``."""
        m = self.module
        sizes = [a for a in ir.flat(args) if isinstance(a, int) and not isinstance(a, bool)]
        h, w = sizes[-2:]
        eps = _FOURIER[_qualname(m)]
        return fourier(self.cls, self.path, self.children, x_shape, h, w, m.hidden_dim, m.temperature, m.scale,
                       m.eps if eps is None else eps)


def table_of(m: nn.Module, path: str, children: list) -> Table | None:
    """The module as a table to write, or None where it is none known here."""
    if _qualname(m) in _FOURIER and len(children) == 1 and children[0][0] == "token_projection" and \
            isinstance(children[0][1], ir.Leaf) and children[0][1].op == "conv":
        return Table(type(m).__name__, path, children, m)
    return None


def fourier(cls, path, children, x_shape, h, w, hidden_dim, temperature, scale, eps) -> ir.Dag:
    """DETR's and XCiT's sines and cosines of each position's row and column (1 to h, over h + eps, times scale)
    over temperature ** (2 k / hidden_dim), interleaved, rows' channels first, projected by ``token_projection``:
    a (projected) D x h x w map. The module's steps: positions as h x w x 1, frequencies as 1 x 1 x hidden_dim / 2
    (its even and odd frequencies are the same), sines and cosines stacked last and merged, channels moved first."""
    dag = ir.Dag(cls=cls, path=path, children=list(children), inputs=["x"], input_shapes=[tuple(x_shape)])
    half = hidden_dim // 2

    def add(fn, args, shape) -> ir.Ref:
        dag.nodes.append(ir.Node(fn=fn, args=args, shape=tuple(shape)))
        return ir.Ref(len(dag.nodes))

    grid = (h, w, 1)
    positions = []
    for dim, size in ((1, h), (2, w)):  # rows, then columns
        count = add("+", (add("coordinates", (ir.Ref(0), grid, dim), grid), 1), grid)
        last = add("+", (add("narrow", (count, dim, size - 1, 1), (1, w, 1) if dim == 1 else (h, 1, 1)), eps),
                   (1, w, 1) if dim == 1 else (h, 1, 1))
        positions.append(add("*", (add("/", (count, last), grid), scale), grid))
    k = add("coordinates", (ir.Ref(0), (1, 1, half), 3), (1, 1, half))
    wavelengths = add("**", (temperature, add("/", (add("*", (k, 2), (1, 1, half)), hidden_dim), (1, 1, half))),
                      (1, 1, half))
    waves = []
    for p in positions:
        angle = add("/", (p, wavelengths), (h, w, half))
        both = add("stack", ([add("sin", (angle,), (h, w, half)), add("cos", (angle,), (h, w, half))], 4),
                   (h, w, half, 2))
        waves.append(add("flatten_dims", (both, 3, 4), (h, w, hidden_dim)))
    pos = add("cat", (waves, 3), (h, w, 2 * hidden_dim))
    pos = add("transpose", (pos, 1, 3), (2 * hidden_dim, w, h))  # permute(0, 3, 1, 2), the same view
    pos = add("transpose", (pos, 2, 3), (2 * hidden_dim, h, w))
    out = children[0][1].args["out_channels"]
    dag.nodes.append(ir.Node(fn="call", args=(pos,), child="token_projection", shape=(out, h, w)))
    dag.output = ir.Ref(len(dag.nodes))
    return dag


def _qualname(m: nn.Module) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"
