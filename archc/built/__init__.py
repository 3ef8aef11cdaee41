"""Importable homes for the modules ``Spec.build`` compiles, so that their models pickle.

``torch.save(model, f)`` records a model's classes by module and name, and ``torch.load(f,
weights_only=False)`` imports them by those names, in whatever process loads the file. So each
spec's generated source is written to a cache, ``$XDG_CACHE_HOME/archc/built/`` (``~/.cache/...``
when that is unset, a temporary directory when neither can be written), as ``<stem>_<hash>.py``,
``<hash>`` being the first 32 hex digits of the source's SHA-256, and is executed as the module
``archc.built.<stem>_<hash>``. In a fresh process, importing that name (as unpickling does) goes
through the finder this package installs, which executes a cached file only if it is a regular
file carrying archc's marker whose bytes hash to its name: a file that does not is refused, so
nothing runs but source archc generated. (Unpickling with ``weights_only=False`` runs whatever a
pickle says anyway: load only pickles you trust.)

The cache is content-addressed: when a spec changes, its source gets a new name and the old file
stays, so a pickle keeps the classes it was built with even after its spec is edited or deleted.
Files are written whole (a temporary file beside the target, then a rename), so processes that
build the same spec at once never see half a file. Nothing is ever pruned; removing the cache is
safe, except that pickles whose code only it held no longer load (save a ``state_dict`` to move a
model between machines, or ship its generated file).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import linecache
import os
import re
import sys
import tempfile
import types
import warnings
from pathlib import Path

from ..lang.files import MARKER, MARKER_WINDOW, FileProblem, _read_head, user_cache_dir, write_outputs

PACKAGE = __name__
HASH_DIGITS = 32
MAX_SOURCE_BYTES = 64 * 1024 * 1024
_NAME = re.compile(rf"([A-Za-z_][A-Za-z0-9_]*)_([0-9a-f]{{{HASH_DIGITS}}})\Z")

# Submodules come from the cache alone, through _Finder: never from this package's directory.
__path__: list[str] = []


def cache_dirs() -> list[Path]:
    """Where generated modules are kept, in the order they are tried."""
    user_dir = user_cache_dir()
    dirs = [] if user_dir is None else [user_dir / "built"]
    user = getattr(os, "getuid", lambda: "user")()
    dirs.append(Path(tempfile.gettempdir()) / f"archc-{user}" / "built")
    return dirs


def module_name(source: str, stem: str) -> str:
    """``archc.built.<stem>_<hash>``: the spec's file name for readers, the source's hash for the finder."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", stem)[:64]
    if not safe or safe[0].isdigit():
        safe = f"spec_{safe}"
    return f"{PACKAGE}.{safe}_{_digest(source.encode())}"


def load(source: str, stem: str) -> types.ModuleType:
    """The module of this generated source, written to the cache unless it is there and imported
    (once a process). If no cache directory can be written, the module still works, but its models
    unpickle only in this process: a warning says so."""
    name = module_name(source, stem)
    problems = _store(name.rpartition(".")[2], source.encode())  # again if imported: the cache may have been cleared
    if problems:
        warnings.warn(f"archc: cannot cache the code generated from {stem}.arch ({'; '.join(problems)}): "
                      "models built from it will not unpickle in another process", RuntimeWarning, stacklevel=2)
    if name in sys.modules:
        return sys.modules[name]
    return _uncached(name, source, stem) if problems else importlib.import_module(name)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_DIGITS]


def _read(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (not a link) archc may read; else None."""
    try:
        return _read_head(path, MAX_SOURCE_BYTES + 1, follow=False)
    except FileProblem:
        return None


def _valid(data: bytes | None, digest: str) -> bool:
    return data is not None and MARKER.encode() in data[:MARKER_WINDOW] and _digest(data) == digest


def _store(name: str, data: bytes) -> list[str]:
    """Make sure some cache directory holds ``name``.py with ``data``: the problems met if none does."""
    problems = []
    for directory in cache_dirs():
        path = directory / f"{name}.py"
        if _valid(_read(path), _digest(data)):
            return []
        try:
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise FileProblem(f"cannot create directory '{directory}': {exc.strerror}") from None
            write_outputs({path: data}, force=True)  # replaces a damaged file or a link, atomically
            return []
        except FileProblem as exc:
            problems.append(str(exc))
    return problems


def _uncached(name: str, source: str, stem: str) -> types.ModuleType:
    filename = f"<archc:{stem}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # so that pickling in this process finds the classes
    try:
        exec(compile(source, filename, "exec"), module.__dict__)  # our own generated code, not spec text
    except BaseException:
        del sys.modules[name]
        raise
    return module


class _Loader(importlib.abc.Loader):
    """Executes the bytes the finder verified (not the file again, which might have changed since)."""

    def __init__(self, data: bytes, path: Path):
        self.data = data
        self.path = path

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        exec(compile(self.data, str(self.path), "exec", dont_inherit=True), module.__dict__)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``archc.built.<stem>_<hash>`` in the cache, and nothing else."""

    archc_built = True

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        match = _NAME.match(name) if package == PACKAGE else None
        if match is None:
            return None
        dirs = cache_dirs()
        refused = []
        for directory in dirs:
            file = directory / f"{name}.py"
            data = _read(file)
            if _valid(data, match[2]):
                spec = importlib.machinery.ModuleSpec(fullname, _Loader(data, file), origin=str(file))
                spec.has_location = True  # __file__ is the cached file: tracebacks and inspect show its lines
                return spec
            if data is not None or os.path.lexists(file):
                refused.append(str(file))
        if refused:
            raise ImportError(f"archc: refusing to run {refused[0]}: it is not the code archc generated under that "
                              f"name (a regular file whose contents hash to {match[2]})", name=fullname)
        raise ModuleNotFoundError(
            f"No module named '{fullname}': the code archc generated from {match[1]}.arch is not in its cache "
            f"({dirs[0]}): the model was saved on another machine or the cache was cleared. Build the model "
            "again from its spec and load a saved state_dict into it", name=fullname)


if not any(getattr(finder, "archc_built", False) for finder in sys.meta_path):
    sys.meta_path.append(_Finder())
