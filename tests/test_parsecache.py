"""The syntax trees kept in the user's cache (``archc.lang.parsecache``): a cached tree is the tree ``parse``
gives, found without parsing; a damaged file, another text, another archc or an error is parsed as before."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archc.errors import SpecError, source_text
from archc.lang import loader, parsecache, parser
from archc.lang import nodes as n
from archc.lang.loader import load_program

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "archc" / "trees"


def _no_parsing(monkeypatch):
    def refuse(text, file="<string>"):
        raise AssertionError(f"parsed {file}")

    monkeypatch.setattr(parser, "parse", refuse)


def _same(a, b) -> bool:
    """Equal trees, spans included (``same_ast`` leaves them out)."""
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):  # (keyed by nodes, each equal only to itself)
        return _same(list(a.items()), list(b.items()))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_a_cached_tree_is_the_parsed_one_without_parsing(cache, monkeypatch):
    path = SPECS / "googlenet.arch"
    monkeypatch.setattr(loader, "_USED", {})  # (the used files' trees this process parsed already)
    first = load_program(path)  # parses both files, and keeps their trees
    assert len(list(cache.glob("*.pickle"))) == 2
    _no_parsing(monkeypatch)
    monkeypatch.setattr(loader, "_USED", {})
    second = load_program(path)
    assert [m.file for m in second.modules] == [m.file for m in first.modules]
    for a, b in zip(first.modules, second.modules):
        assert a is not b and _same(a, b)
        assert source_text(b.file) == b.source  # errors can quote its lines
    monkeypatch.undo()
    changed = n.Module(first.main.file, first.main.source)  # the check can fail: another tree is not the same
    assert not _same(changed, second.main)


def test_another_text_or_another_archc_parses_again(cache, tmp_path, monkeypatch):
    spec = tmp_path / "net.arch"
    spec.write_text("network N() {\n    input 3 x 8 x 8\n    relu\n}\nvariant n = N()\n")
    load_program(spec)
    spec.write_text("network N() {\n    input 3 x 8 x 8\n    sigmoid\n}\nvariant n = N()\n")
    assert load_program(spec).main.networks[0].body[0].func == "sigmoid"
    monkeypatch.setattr(parsecache, "_code_fingerprint", lambda: "another archc")
    calls = []
    real = parser.parse
    monkeypatch.setattr(parser, "parse", lambda text, file: calls.append(file) or real(text, file))
    load_program(spec)
    assert calls == [str(spec)]


def test_a_damaged_tree_is_parsed_again_and_replaced(cache, monkeypatch):
    path = SPECS / "common.arch"
    load_program(path)
    (stored,) = cache.glob("*.pickle")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    parsed = []
    real = parser.parse
    monkeypatch.setattr(parser, "parse", lambda text, file: parsed.append(file) or real(text, file))
    assert load_program(path).main.blocks
    assert parsed == [str(path)] and stored.read_bytes() != bytes(data)


def test_an_error_is_not_kept(cache, tmp_path):
    spec = tmp_path / "bad.arch"
    spec.write_text("block B() {\n    conv(8, 3\n}\n")
    for _ in range(2):
        with pytest.raises(SpecError, match="never closed"):
            load_program(spec)
    assert not cache.exists() or not list(cache.glob("*.pickle"))


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # a file where the folder would be
    assert load_program(SPECS / "common.arch").main.blocks


def test_old_trees_are_pruned(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(parsecache, "MAX_TREES", 4)
    for i in range(6):
        spec = tmp_path / f"s{i}.arch"
        spec.write_text(f"let x = {i}\n")
        load_program(spec)
    assert 2 <= len(list(cache.glob("*.pickle"))) <= 4


@pytest.mark.slow  # two processes
def test_a_build_from_cached_trees_never_imports_lark(tmp_path):
    script = ("import sys; from archc.commands.common import load_all; load_all([sys.argv[1]])[0].source(); "
              "print('lark' in sys.modules)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", script, str(SPECS / "googlenet.arch")], env=env, check=True,
                           capture_output=True, text=True).stdout.split() for _ in range(2)]
    assert runs == [["True"], ["False"]]  # parsed the first time, its trees loaded the second


def test_a_folder_others_may_write_in_is_not_read(cache, monkeypatch):
    path = SPECS / "common.arch"
    monkeypatch.setattr(loader, "_USED", {})
    load_program(path)
    cache.chmod(0o777)  # (a pickle runs what it says: another user could have put one there)
    parsed = []
    real = parser.parse
    monkeypatch.setattr(parser, "parse", lambda text, file: parsed.append(file) or real(text, file))
    load_program(path)
    cache.chmod(0o700)
    load_program(path)
    assert parsed == [str(path)]  # parsed in the shared folder only
