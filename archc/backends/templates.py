"""The Jinja2 templates of the generated files (``codegen_templates/``, ``archc.codegen_templates`` once
installed): one environment each for Python (no escaping) and for the HTML page (autoescaped)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


@lru_cache(maxsize=2)
def environment(autoescape: bool) -> jinja2.Environment:
    package = Path(__file__).parents[1]  # archc/
    for candidate in (package / "codegen_templates", package.parent / "codegen_templates"):
        if candidate.is_dir():
            break
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(candidate)), undefined=jinja2.StrictUndefined,
                              autoescape=autoescape, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
