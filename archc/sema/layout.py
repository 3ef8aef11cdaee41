"""Tensor types: a shape (without the batch dimension) and the layout that names its dimensions.

A layout is a string of dimension letters in memory order after the batch dimension:

- ``CHW``: a feature map, N x C x H x W (what convolutions and pools take);
- ``HWC``: a channels-last feature map, N x H x W x C (linear layers and LayerNorm act on C);
- ``F``: flat features, N x F (after ``flatten``);
- ``LD``: a token sequence, N x L x D (length L, D features per token);
- ``GLD``: groups of tokens, N x G x L x D (a map partitioned into G windows or grid cells of L positions).

Every layout has one *feature* dimension, the one layers change (C, F or D): the code generator
tracks its size through ``__init__``; the others are checked while elaborating only.
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURE_DIM = {"CHW": "C", "HWC": "C", "F": "F", "LD": "D", "GLD": "D"}
NAMES = {
    "CHW": "a C x H x W feature map",
    "HWC": "a channels-last H x W x C feature map",
    "F": "flat features",
    "LD": "an L x D token sequence",
    "GLD": "G groups of L x D tokens",
}
# What a shape comment and an error show after the sizes; the default layouts show nothing.
SUFFIX = {"CHW": "", "F": "", "HWC": " (channels last)", "LD": " (tokens)", "GLD": " (groups of tokens)"}


@dataclass(frozen=True, slots=True)
class TensorType:
    """The type of a tensor while elaborating: sizes in layout order, batch dimension excluded."""

    shape: tuple[int, ...]
    layout: str = "CHW"

    def __post_init__(self) -> None:
        assert len(self.shape) == len(self.layout), (self.shape, self.layout)

    @property
    def feature_axis(self) -> int:
        return self.layout.index(FEATURE_DIM[self.layout])

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
        return " x ".join(map(str, self.shape)) + SUFFIX[self.layout]


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
