"""Syntax trees of spec files kept in the user's cache, as Python keeps ``.pyc`` files: ``archc build`` of a spec
that has not changed loads its tree (under a millisecond) instead of loading Lark's tables and parsing (most of a
small spec's compile, and Lark is then never imported).

A tree is kept under the SHA-256 of everything it follows from: the file's name (every span holds it) and text,
Python's version, and the name, size and modification time of every source file of archc (the parser, the
lowering to dataflow and the op registry it reads), so an edited or upgraded archc parses again. Only a file
whose bytes match the digest written before them is unpickled, and only from a folder that is the user's and
that no one else may write in (``files.user_cache_dir``, made with mode 0700). Only a tree that parsed without
an error is kept, and a cache that cannot be read or written only costs time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import sys
from functools import lru_cache
from pathlib import Path

from ..errors import remember_source
from . import nodes as n
from .files import user_cache_dir

_DIGEST = 32  # bytes of SHA-256 before the pickle
MAX_TREES = 512


def parse_file_text(text: str, file: str) -> n.Module:
    """``parser.parse(text, file)``, from the cache where this text was parsed before."""
    folder = user_cache_dir()
    if folder is None:
        return _parse(text, file)
    path = folder / "trees" / f"{_key(text, file)}.pickle"
    module = _load(path)
    if module is not None:
        remember_source(file, text.removeprefix("\ufeff"))
        return module
    module = _parse(text, file)
    _store(path, module)
    return module


def _parse(text: str, file: str) -> n.Module:
    from .parser import parse  # (imports Lark: only where a tree is not cached)

    return parse(text, file)


def _key(text: str, file: str) -> str:
    h = hashlib.sha256(_code_fingerprint().encode())
    h.update(b"\0" + file.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """What archc's code is: Python's version, Lark's, and each source file's path, size and modification time."""
    root = Path(__file__).resolve().parents[1]
    found = [sys.version, str(pickle.HIGHEST_PROTOCOL), str(root), _lark_version()]
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(names):
            if name.endswith((".py", ".lark")):
                st = os.stat(os.path.join(folder, name))
                found.append(f"{os.path.relpath(os.path.join(folder, name), root)}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(found)


def _lark_version() -> str:
    """Where Lark is installed, and its ``__init__.py``'s size and time: its version, without importing it."""
    spec = importlib.util.find_spec("lark")
    if spec is None or spec.origin is None:
        return "no lark"
    st = os.stat(spec.origin)
    return f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}"


def _load(path: Path) -> n.Module | None:
    try:
        if not _private(os.stat(path.parent)):
            return None
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    digest, payload = data[:_DIGEST], data[_DIGEST:]
    if len(digest) != _DIGEST or hashlib.sha256(payload).digest() != digest:
        return None
    try:
        module = pickle.loads(payload)
    except Exception:  # a file of another archc that pickled what this one no longer has
        return None
    return module if isinstance(module, n.Module) else None


def _private(st: os.stat_result) -> bool:
    """Whether only this user can write in the folder: a pickle runs what it says, so a tree is read only from a
    folder that is the user's and that no one else may write in (not from a cache folder shared with others)."""
    if not hasattr(os, "getuid"):  # (Windows: the user's profile folder)
        return True
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _store(path: Path, module: n.Module) -> None:
    from .files import write_outputs

    try:
        payload = pickle.dumps(module, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # (a tree holds only plain values; should one not pickle, it is parsed each time)
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_outputs({path: hashlib.sha256(payload).digest() + payload}, force=True)
        _prune(path.parent)
    except Exception:  # a read-only or full cache: parsed again next time
        pass


def _prune(folder: Path) -> None:
    """At most ``MAX_TREES`` trees: past that, the least recently written half goes (each edit of a spec, and
    each change to archc, writes new ones)."""
    entries = [e for e in os.scandir(folder) if e.name.endswith(".pickle")]
    if len(entries) <= MAX_TREES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns)
    for entry in entries[: len(entries) - MAX_TREES // 2]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass
