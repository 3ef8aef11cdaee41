"""Test-session settings: models built by archc.load(...).build() keep their generated code in a cache for
pickling (archc.built); during the tests that cache is a temporary directory, not the user's."""

import os
import tempfile

_CACHE = tempfile.TemporaryDirectory(prefix="archc-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE.name


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the default, pyproject.toml): one worker a core, at most four; each worker checks every spec
    it meets and holds its models, so more workers cost memory faster than they save time."""
    return min(4, _cores())


if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # the workers share the cores: one torch thread pool each over its share, not every worker one a core
    import torch

    torch.set_num_threads(max(1, _cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
