"""Laying DOT text out: which renderer, and running it (see ``archc.draw`` for the choice of renderer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

FORMATS = ("svg", "png", "dot", "pdf", "html")
PNG_DPI = 96


class DrawError(Exception):
    """A usage problem: a format archc cannot write, no renderer, a renderer that failed, a diagram too big."""


def format_of(path: str | Path) -> str:
    """The format a file name asks for: its extension (``.gv`` is DOT, ``.htm`` the page)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = {"gv": "dot", "htm": "html"}.get(suffix, suffix)
    if suffix not in FORMATS:
        raise DrawError(f"cannot tell the format of '{path}': use a .svg, .png, .pdf, .dot or .html file name")
    return suffix


def find_renderer() -> tuple[str, str] | None:
    """(name, path) of the layout program: $ARCHC_DOT, a system ``dot``, else ``graphviz-pure``."""
    override = os.environ.get("ARCHC_DOT")
    if override:
        found = shutil.which(override)
        if found is None:
            raise DrawError(f"ARCHC_DOT names '{override}', which is not a program")
        return Path(found).stem, found
    found = shutil.which("dot")
    if found:
        return "dot", found
    exe = "graphviz-pure.exe" if os.name == "nt" else "graphviz-pure"
    candidates = [shutil.which("graphviz-pure"), str(Path(sys.executable).parent / exe),
                  str(Path(sysconfig.get_path("scripts")) / exe)]
    try:
        candidates.append(str(Path(sysconfig.get_path("scripts", f"{os.name}_user")) / exe))
    except KeyError:
        pass
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return "graphviz-pure", candidate
    return None


def render(source: str, fmt: str) -> bytes:
    """Lay out DOT text with Graphviz and return the ``fmt`` file's bytes (``dot``: the text itself)."""
    if fmt == "dot":
        return source.encode("utf-8")
    renderer = find_renderer()
    if renderer is None:
        raise DrawError("no Graphviz renderer found: install Graphviz ('dot') or the graphviz-pure package "
                        "(pip install graphviz-pure), or write a .dot file")
    name, path = renderer
    if fmt == "pdf" and name == "graphviz-pure":
        raise DrawError("graphviz-pure (the renderer in use: no Graphviz 'dot' on PATH) cannot write PDF; "
                        "write .svg or .png, or install Graphviz for PDF")
    cmd = [path, "-q", f"-T{fmt}"]
    if fmt == "png":
        cmd.append(f"-Gdpi={PNG_DPI}")
    result = subprocess.run(cmd, input=source.encode("utf-8"), capture_output=True)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise DrawError(f"{name} ({path}) could not write {fmt.upper()}: {message}")
    return result.stdout
