"""Tensor types: a shape (without the batch dimension) and the layout that names its dimensions.

A layout is a string of dimension letters in memory order after the batch dimension:

- ``CHW``: a feature map, N x C x H x W (what convolutions and pools take);
- ``CL``, ``CDHW``: a 1-D signal, N x C x L, and a volume, N x C x D x H x W (what the 1-D and 3-D
  convolutions and pools take);
- ``HWC``: a channels-last feature map, N x H x W x C (linear layers and LayerNorm act on C);
- ``F``: flat features, N x F (after ``flatten``);
- ``LD``: a token sequence, N x L x D (length L, D features per token);
- ``GLD``: groups of tokens, N x G x L x D (a map partitioned into G windows or grid cells of L positions);
- ``.``, ``..``, ``...``: a tensor of that rank whose axes have no names (what reshapes, transposes and the
  other tensor primitives of ``ops.tensor`` give); its last axis counts as its features, as ``nn.Linear`` and
  ``nn.LayerNorm`` read it.

Every layout has one *feature* dimension, the one layers change (C, F or D): the code generator
tracks its size through ``__init__``; the others are checked while elaborating only.
"""

from __future__ import annotations

from dataclasses import dataclass


def is_generic(layout: str) -> bool:
    """A layout of unnamed axes: ``.`` once per axis."""
    return bool(layout) and layout == "." * len(layout)


def feature_axis(layout: str) -> int:
    """Where a layout keeps its features: C, F or D, or the last of unnamed axes."""
    return len(layout) - 1 if is_generic(layout) else layout.index(FEATURE_DIM[layout])


def generic(rank: int) -> str:
    return "." * rank


class _ByLayout(dict):
    """A table by layout that answers for the unnamed layouts of every rank too."""

    def __init__(self, table: dict, unnamed):
        super().__init__(table)
        self.unnamed = unnamed

    def __missing__(self, layout: str):
        if is_generic(layout):
            return self.unnamed(len(layout))
        raise KeyError(layout)


FEATURE_DIM = _ByLayout({"CHW": "C", "CL": "C", "CDHW": "C", "HWC": "C", "F": "F", "LD": "D", "GLD": "D"},
                        lambda rank: ".")
NAMES = _ByLayout({
    "CHW": "a C x H x W feature map",
    "CL": "a C x L signal",
    "CDHW": "a C x D x H x W volume",
    "HWC": "a channels-last H x W x C feature map",
    "F": "flat features",
    "LD": "an L x D token sequence",
    "GLD": "G groups of L x D tokens",
}, lambda rank: f"a tensor of {rank} dimensions")
# What a shape comment and an error show after the sizes; the default layouts show nothing.
SUFFIX = _ByLayout({"CHW": "", "CL": "", "CDHW": "", "F": "", "HWC": " (channels last)", "LD": " (tokens)",
                    "GLD": " (groups of tokens)"},
                   lambda rank: " (tensor)")


@dataclass(frozen=True, slots=True)
class TensorType:
    """The type of a tensor while elaborating: sizes in layout order, batch dimension excluded."""

    shape: tuple[int, ...]
    layout: str = "CHW"

    def __post_init__(self) -> None:
        assert len(self.shape) == len(self.layout), (self.shape, self.layout)

    @property
    def feature_axis(self) -> int:
        return feature_axis(self.layout)

    @property
    def features(self) -> int:
        """The size of the feature dimension (C, F or D)."""
        return self.shape[self.feature_axis]

    def size(self, dim: str) -> int | None:
        return self.shape[self.layout.index(dim)] if dim in self.layout else None

    def with_features(self, features: int) -> TensorType:
        shape = list(self.shape)
        shape[self.feature_axis] = features
        return TensorType(tuple(shape), self.layout)

    def describe(self) -> str:
        """``256 x 56 x 56``, ``56 x 56 x 96 (channels last)``, ``1000 features``."""
        if self.layout == "F":
            return f"{self.shape[0]} features"
        if is_generic(self.layout):
            return " x ".join(map(str, self.shape)) + SUFFIX[self.layout]
        return " x ".join(map(str, self.shape)) + SUFFIX[self.layout]


def named(shape: tuple[int, ...]) -> TensorType:
    """A tensor that reshapes and transposes give: flat features for one axis, tokens for two (what the layers
    after it expect of a sequence), unnamed axes otherwise."""
    return TensorType(tuple(shape), {1: "F", 2: "LD"}.get(len(shape), generic(len(shape))))


def broadcast(types) -> TensorType | None:
    """The type of entrywise arithmetic on tensors of ``types``: sizes equal or 1 axis by axis, in one layout (a
    tensor of unnamed axes takes the others'); None where they do not broadcast."""
    layouts = {t.layout for t in types if not is_generic(t.layout)}
    if len({len(t.shape) for t in types}) != 1 or len(layouts) > 1:
        return None
    shape = []
    for sizes in zip(*(t.shape for t in types)):
        big = set(sizes) - {1}
        if len(big) > 1:
            return None
        shape.append(big.pop() if big else 1)
    return TensorType(tuple(shape), layouts.pop() if layouts else types[0].layout)


def as_named(t: TensorType, accepted: tuple[str, ...] | None = None, prefer: str | None = None) -> TensorType:
    """A tensor of unnamed axes read in a named layout of its rank: one that ``accepted`` lists (``prefer`` where
    it does, as a block's input's layout; else a C x H x W map first), else flat features, tokens or a C x H x W
    map for one, two or three axes. Others stay as they are."""
    if not is_generic(t.layout):
        return t
    rank = len(t.shape)
    options = [lay for lay in (accepted or ("F", "LD", "CHW")) if len(lay) == rank and not is_generic(lay)]
    if not options:
        return t
    return TensorType(t.shape, prefer if prefer in options else "CHW" if "CHW" in options else options[0])


def given_back(t: TensorType, like: str | None) -> TensorType:
    """A block's output as it leaves: a tensor of unnamed axes in the layout of the block's (first) input where it
    has as many axes (a channels-last map back as one), else as ``as_named`` reads it."""
    if is_generic(t.layout) and like is not None and not is_generic(like) and len(like) == len(t.shape):
        return TensorType(t.shape, like)
    return as_named(t)


def kinds(layouts: tuple[str, ...]) -> str:
    """``a C x H x W feature map or flat features``."""
    names = [NAMES[lay] for lay in layouts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def stride_factor(before: TensorType, after: TensorType) -> int | None:
    """How much a layer shrinks the map: its input's height over its output's, rounded (a 3x3 conv of stride
    2 without padding takes 299 to 149: 2); None when the output has no height left."""
    if before.layout not in ("CHW", "HWC") or after.layout not in ("CHW", "HWC"):
        return None
    return max(1, round(before.size("H") / after.size("H")))
