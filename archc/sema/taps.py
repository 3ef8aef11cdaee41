"""The main path's strides, for the reductions of a network's taps: the elaborator's and the generated
``feature_info``'s."""

from __future__ import annotations

import weakref

from ..lang import nodes as n
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


def read_numbers(stmt: n.Stmt, env: dict) -> dict[str, int]:
    """The whole numbers a statement reads, by name (in the order it reads them): where a step's stride differs
    between runs (a patch embedding of stride ``patch_size``), the name whose value is the stride in every run
    carries the taps' reductions in the generated ``feature_info``."""
    names = _READ.get(stmt)
    if names is None:  # a statement's names are its text's: found once, then looked up in each run
        names = _READ[stmt] = list(dict.fromkeys(node.name for node in stmt.walk() if isinstance(node, n.Var)))
    return {name: value for name in names
            if isinstance(value := env.get(name), int) and not isinstance(value, bool)}


_READ: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # statement -> the names it reads, in order


def stride_name(runs: list[tuple[int, dict[str, int]]], among=None) -> str | None:
    """The first name a step reads (of ``among``, if given) whose value equals the step's stride in every run (runs:
    its stride and the numbers it read), or None."""
    names = [name for name in (runs[0][1] if runs else {})
             if (among is None or name in among) and all(read.get(name) == f for f, read in runs)]
    return names[0] if names else None


def tapped_blocks(blocks: dict[str, n.BlockDef]) -> frozenset[str]:
    """The blocks whose taps become their caller's: those whose body holds a tap, or calls such a block as a
    step of its own main path (by its name), called as a step of a network's main path."""
    tapped: frozenset[str] = frozenset()
    while True:
        more = frozenset(name for name, block in blocks.items() if n.has_taps(block.body, tapped))
        if more == tapped:
            return tapped
        tapped = more


def has_taps_of(block: n.BlockDef, tapped: frozenset[str]) -> str:
    """How a block of ``tapped`` has taps, for messages: "has taps", or "has the taps of B" where a block with
    taps that it calls gives them."""
    if any(isinstance(s, n.Tap) for s in block.walk()):
        return "has taps"
    callee = next(s.func for s in block.walk() if isinstance(s, n.Layer) and s.func in tapped)
    return f"has the taps of {callee}"
