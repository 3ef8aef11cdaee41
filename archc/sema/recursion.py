"""Block calls nested too deeply: a recursion that does not end, told as the chain of calls that led there.

A block may call itself (directly or through other blocks): elaboration follows the calls one by one, each
with its own arguments, and a condition on them ends the recursion. One that does not end reaches the depth
limit (or the evaluation budget, for a tree of calls); the error names the first calls, the last one and the
blocks that repeat, which is what a reader needs to find the argument that fails to shrink.
"""

from __future__ import annotations

from ..errors import SpecError
from ..lang import nodes as n

MAX_DEPTH = 64  # block calls nested; a block's call takes about ten Python frames while it is elaborated
SHOWN = 40  # characters of one call in a chain
HINT = ("a block that calls itself must stop: call it under a condition on an argument that changes at each call "
        "('if levels > 1 { ... } else { ... }', or '... if levels > 1')")


def too_deep(stack: list[tuple], span: n.Span, limit: str) -> SpecError:
    """The error at the call ``span`` that nests too deeply; ``stack`` is every open call, outermost first, as
    (block, the call with its values, ...); ``limit`` names the limit reached ("within 64 nested calls")."""
    names = [entry[0] for entry in stack]
    cycle = repeating(names)
    chain = shorten([entry[1] for entry in stack])
    if cycle is None:
        return SpecError(f"blocks nest too deeply: the calls do not end {limit} ({chain})", span,
                         hint="nest fewer blocks: write repeated blocks side by side in a 'for'")
    first = min(cycle, key=names.index)  # the pattern told from the block the recursion entered by
    cycle = cycle[cycle.index(first):] + cycle[:cycle.index(first)]
    pattern = " -> ".join(cycle + cycle[:1])
    return SpecError(f"the recursion of block {first} does not end {limit} ({chain}; {pattern} repeats)", span,
                     hint=HINT)


def same_call(stack: list[tuple], span: n.Span) -> SpecError:
    """The error at the call ``span`` that repeats an open call: the same block, arguments and input, so its
    elaboration would come back here forever. ``stack`` ends with that call."""
    first = next(i for i, entry in enumerate(stack) if entry[2] == stack[-1][2])
    chain = shorten([entry[1] for entry in stack[first:]])
    return SpecError(f"block {stack[-1][0]} calls itself with the same arguments and input, so the recursion never "
                     f"ends ({chain})", span, hint=HINT)


def recursive(names: list[str]) -> bool:
    """Whether some block in the open calls ``names`` calls itself."""
    return len(set(names)) < len(names)


def repeating(names: list[str]) -> list[str] | None:
    """The shortest run of blocks that the chain of calls ends by repeating (at least twice), if any."""
    for size in range(1, min(8, len(names) // 2) + 1):
        if names[-size:] == names[-2 * size:-size]:
            return names[-size:]
    return None


def shorten(calls: list[str]) -> str:
    """The first three calls and the last two, the ones between counted."""
    calls = [c if len(c) <= SHOWN else c[:SHOWN - 4] + "...)" for c in calls]
    if len(calls) <= 6:
        return " -> ".join(calls)
    return f"{' -> '.join(calls[:3])} -> ... {len(calls) - 5} more ... -> {' -> '.join(calls[-2:])}"
