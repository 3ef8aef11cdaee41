"""The Jinja2 templates of the generated files (``codegen_templates/``, ``archc.codegen_templates`` once
installed): one environment each for Python (no escaping) and for the HTML page (autoescaped).

Compiling a template took longer than elaborating a small spec, so the compiled templates are kept in the
user's cache (``<archc's cache>/templates/``, see ``files.user_cache_dir``), as Python keeps ``.pyc`` files:
Jinja checks each against its template's source hash, and the file names hold the environment's options and
Jinja's version, which the compiled code depends on. A cache that cannot be read or written only costs time."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import jinja2

from ..lang.files import user_cache_dir


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's cache of compiled templates, made when first written to, and never an error."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            pass

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@lru_cache(maxsize=2)
def environment(autoescape: bool) -> jinja2.Environment:
    package = Path(__file__).parents[1]  # archc/
    for candidate in (package / "codegen_templates", package.parent / "codegen_templates"):
        if candidate.is_dir():
            break
    options = dict(undefined=jinja2.StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                   keep_trailing_newline=True)
    cache_dir = user_cache_dir()
    if cache_dir is not None:
        key = hashlib.sha256(repr((jinja2.__version__, sorted(options.items()))).encode()).hexdigest()[:16]
        options["bytecode_cache"] = _BytecodeCache(str(cache_dir / "templates"), f"%s-{key}.cache")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(candidate)), **options)
