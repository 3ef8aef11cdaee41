"""Python's cycle collector, paused while archc allocates: elaboration (and importing the compiler's modules)
creates hundreds of thousands of small objects and frees few of them."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def fewer_collections():
    """Python's cycle collector, run every 700 allocations by default, took a third of the time of building every
    spec, and a tenth of that of importing the compiler. Collect less often for the duration, then restore the
    thresholds."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
