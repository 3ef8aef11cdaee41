"""The main path's strides, for the reductions of a network's taps: the elaborator's and the generated
``feature_info``'s."""

from __future__ import annotations

from .layout import TensorType, stride_factor

TAPPABLE = ("CHW", "HWC", "LD", "GLD")  # layouts whose positions follow the input's grid


def step_stride(before: TensorType, after: TensorType) -> int | None:
    """A step's stride on the main path (its input's height over its output's, rounded), for the reductions of
    the taps after it. Tokens keep the grid they were read from: a step from a map to tokens shrinks it by the
    square root of positions over tokens (a patch embedding of stride 16: 16); None where the grid is lost."""
    factor = stride_factor(before, after)
    if factor is not None or before.layout not in TAPPABLE or after.layout not in TAPPABLE:
        return factor
    if before.layout in ("CHW", "HWC") and after.layout == "LD":
        return max(1, round((before.size("H") * before.size("W") / after.shape[0]) ** 0.5))
    return 1
