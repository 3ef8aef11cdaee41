"""What a diagram says about an op: its colour, its label text, shapes and names relative to a box.

Shared by the Graphviz drawing (``dot``) and the interactive page (``page``).
"""

from __future__ import annotations

import html
import zlib

from ...ops import REGISTRY
from ...sema.graph import OpNode
from .calls import rounded

# One fill per kind of op; a kind not listed (the registry grows) gets one from ``colour``.
COLOURS = {
    "conv": "#cfe2f3",
    "batchnorm": "#fff2cc",
    "relu": "#d9ead3",
    "maxpool": "#fce5cd",
    "avgpool": "#fce5cd",
    "adaptive_avgpool": "#f9cb9c",
    "adaptive_maxpool": "#f9cb9c",
    "lrn": "#d0e0e3",
    "dropout": "#eeeeee",
    "flatten": "#ffffff",
    "linear": "#d9d2e9",
    "identity": "#ffffff",
    "subsample": "#ead1dc",
    "pad_channels": "#ead1dc",
    "zero_pad": "#ead1dc",
    "concat": "#ffd966",
    "add": "#e06666",
    "input": "#ffffff",
}
BLOCK_COLOUR = "#b4d6d0"  # a block drawn as one node
SIDE_COLOUR = "#c2185b"  # side outputs: their edges and borders
EDGE_COLOUR = "#555555"

# Families recognised by name, so that a new kind looks like its relatives: (test, the kind it borrows from).
_FAMILIES = (
    (lambda k: "norm" in k, "batchnorm"),
    (lambda k: "pool" in k, "maxpool"),
    (lambda k: "relu" in k or k.endswith("lu"), "relu"),
)


def colour(kind: str) -> str:
    """The fill of ``kind``: its own, its family's (``layernorm`` a norm's, ``relu6`` relu's), else a pale
    colour of its own derived from its name (stable across runs and machines, unlike ``hash``)."""
    if kind in COLOURS:
        return COLOURS[kind]
    for test, relative in _FAMILIES:
        if test(kind):
            return COLOURS[relative]
    hue = zlib.crc32(kind.encode("utf-8")) % 360
    return _pale(hue)


def _pale(hue: int) -> str:
    """An HSL colour of lightness 90%, saturation 45%, as #rrggbb."""
    s, lightness = 0.45, 0.90
    c = (1 - abs(2 * lightness - 1)) * s
    x = c * (1 - abs((hue / 60) % 2 - 1))
    m = lightness - c / 2
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][hue // 60]
    return "#" + "".join(f"{round((v + m) * 255):02x}" for v in (r, g, b))


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def carried_text(shape: tuple[int, ...], count: int, into_concat: bool) -> str:
    """An edge that stands for ``count`` tensors of ``shape`` (a folded run's members into a concatenation):
    ``6 × 32×56×56 = 192×56×56``, so that what goes into a concatenation adds up to what comes out."""
    if count == 1:
        return shape_text(shape)
    text = f"{count} × {shape_text(shape)}"
    if into_concat and shape:
        text += f" = {shape_text((count * shape[0], *shape[1:]))}"
    return text


def op_summary(op: OpNode) -> str:
    """The op and its key arguments, as its registry entry labels it, numbers rounded: ``conv 7x7/2, 64``,
    ``linear 1000``; a residual's sum is ``+`` (or ``×scale +``), any other kind its name. The arguments are
    what the op does on its input (``effective``): Swin's shift is off where the window covers the map."""
    args, _ = effective(op)
    if op.op == "add":
        scale = args.get("scale")
        return "+" if scale in (None, 1, 1.0) else f"×{rounded(scale)} +"
    kind = REGISTRY.get(op.op)
    return kind.label(rounded(args)) if kind is not None and kind.label is not None else op.op


def effective(op: OpNode) -> tuple[dict, str | None]:
    """The op's arguments as they act on its input, and a note where they differ from those it was given
    (``shift off: the 7x7 window covers the 7×7 map``): its kind's ``effective``."""
    kind = REGISTRY.get(op.op)
    rule = kind.effective if kind is not None else None
    return rule(op.args, op.in_shapes) if rule is not None and op.in_shapes else (op.args, None)


def esc(text: str) -> str:
    """Text for a Graphviz HTML-like label."""
    return html.escape(str(text), quote=True)


def quote(text: str) -> str:
    """A Graphviz quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def relative(path: str, parent: str | None) -> str:
    if parent and path.startswith(parent + "."):
        return path[len(parent) + 1:]
    return path


def display(path: str, parent: str | None) -> str:
    """``path`` inside the drawn box ``parent``; a seq's numbered child keeps the seq's name (``layer1.0``)."""
    rel = relative(path, parent)
    if parent and rel.split(".")[0].isdigit():
        rel = parent.rsplit(".", 1)[-1] + "." + rel
    return rel


def small(text: str) -> str:
    return f'<font point-size="9" color="#444444">{esc(text)}</font>'
