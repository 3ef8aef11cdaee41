"""The builtin functions expressions may call (``len``, ``range``, ``sum`` ...), each checking its
arguments as Python would, and what a call costs the evaluation budget besides its result."""

from __future__ import annotations

import math
from collections.abc import Callable

from .values import MAX_LIST, Iteration, size, type_name


def _ints(*args) -> bool:
    return all(isinstance(a, int) and not isinstance(a, bool) for a in args)


def _range(*args):
    if not _ints(*args) or not 1 <= len(args) <= 3:
        raise TypeError("range() takes one to three integers")
    if len(args) == 3 and args[2] == 0:
        raise ValueError("range() step must not be zero")
    r = range(*args)
    if len(r) > MAX_LIST:
        raise ValueError(f"{len(r)} items, more than the limit of {MAX_LIST}")
    return list(r)


def _number(x, what: str):
    if not isinstance(x, (int, float)):  # a bool is the int 0 or 1, as in Python
        raise TypeError(f"{what}() needs a number, got {type_name(x)}")
    return x


def _int(x):
    if isinstance(x, str):
        raise TypeError("int() of a string")
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError("int() of an infinite number")
    return int(_number(x, "int"))


def _float(x):
    return float(_number(x, "float"))


def _round(x, ndigits=None):
    _number(x, "round")
    if ndigits is not None and not _ints(ndigits):
        raise TypeError("round()'s second argument must be an integer")
    if ndigits is not None and abs(ndigits) > 400:  # round(5, -10**18) would compute 10**(10**18)
        raise ValueError("digits out of range (at most 400 either way)")
    return round(x) if ndigits is None else round(x, ndigits)


def _ceil(x):
    return math.ceil(_number(x, "ceil"))


def _floor(x):
    return math.floor(_number(x, "floor"))


def _sqrt(x):
    if _number(x, "sqrt") < 0:
        raise ValueError("sqrt() of a negative number")
    return math.sqrt(x)


def _log(x, base=None):
    _number(x, "log")
    if x <= 0 or (base is not None and (_number(base, "log") <= 0 or base == 1)):
        raise ValueError("log() of a number that is not positive (or of base 1)")
    return math.log(x) if base is None else math.log(x, base)


def _sequence(x, what: str):
    if isinstance(x, Iteration):
        return list(x)
    if not isinstance(x, (list, tuple, str)):
        raise TypeError(f"{what}() needs a list, got {type_name(x)}")
    return x


def _enumerate(xs, start=0):
    if not _ints(start):
        raise TypeError("enumerate()'s start must be an integer")
    return Iteration([(i + start, x) for i, x in enumerate(_sequence(xs, "enumerate"))])


def _zip(*lists):
    return Iteration([tuple(t) for t in zip(*(_sequence(x, "zip") for x in lists))])


def _len(x):
    if isinstance(x, Iteration) or not isinstance(x, (list, tuple, str)):
        raise TypeError(f"a {type_name(x)} has no len()")
    return len(x)


def _aggregate(f, what: str):
    def run(*args):
        items = _sequence(args[0], what) if len(args) == 1 else args
        if not items:
            raise ValueError(f"{what}() of an empty list")
        return f(items)

    return run


def _sum(xs, start=0):
    return sum(_sequence(xs, "sum"), start)


def _sum_work(room: int, *args) -> int:
    """The items ``sum`` copies: adding lists makes each partial sum anew, so that is quadratic in their count."""
    if not 1 <= len(args) <= 2 or not isinstance(args[0], (list, tuple, Iteration)):
        return 1  # sum() itself says what is wrong
    xs, start = args[0], args[1] if len(args) == 2 else 0
    total = work = len(start) if isinstance(start, (list, tuple, str)) else 0
    for x in xs:
        if isinstance(x, (list, tuple, str)):
            total += len(x)
            work += total
        else:
            work += 1
        if work > room:  # past the budget: no need to count on
            break
    return work


# What a builtin's call costs besides its result's size (charged as for any value made), counted up to
# the room left in the budget.
WORK: dict[str, Callable[..., int]] = {
    "sum": _sum_work,
    "min": lambda room, *args: size(list(args), room),  # comparing the items
    "max": lambda room, *args: size(list(args), room),
}


BUILTINS: dict[str, Callable] = {
    "len": _len,
    "min": _aggregate(min, "min"),
    "max": _aggregate(max, "max"),
    "int": _int,
    "float": _float,
    "abs": lambda x: abs(_number(x, "abs")),
    "sum": _sum,
    "range": _range,
    "round": _round,
    "ceil": _ceil,
    "floor": _floor,
    "log": _log,
    "sqrt": _sqrt,
    "enumerate": _enumerate,
    "zip": _zip,
}
