"""Test-session settings: models built by archc.load(...).build() keep their generated code in a cache for
pickling (archc.built); during the tests that cache is a temporary directory, not the user's."""

import os
import tempfile

_CACHE = tempfile.TemporaryDirectory(prefix="archc-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE.name
