"""Reading and writing files: regular files only, bounded reads, atomic writes with a normal mode, the marker.

The tests that hand archc a device or a pipe run it in a subprocess under a memory cap and a timeout:
reading /dev/zero would exhaust the cap (an internal error), reading a pipe with no writer would hang.
"""

import os
import re
import resource
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from archtest import ROOT, SPECS

from archc.backends.python import codegen
from archc.cli import main
from archc.lang import files

MEMORY_CAP = 512 * 1024 * 1024  # archc checks a spec in about 60 MiB resident, 256 MiB of address space
TIMEOUT_S = 60  # a few seconds' work on a loaded machine; a read of a pipe would never end
NET = "network N() {\n    input 3 x 8 x 8\n    conv1 = conv(4, 3)\n}\nvariant n = N()\n"
SMALL = SPECS / "experiments" / "factorization.arch"


def archc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archc", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, preexec_fn=cap_memory)


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def device_node(path: Path) -> Path:
    """A device node like /dev/zero at ``path`` (creating one needs root)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.stat("/dev/zero").st_rdev)
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def device_link(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


# ------------------------------------------------------------------ inputs


@pytest.mark.parametrize("make", [lambda p: Path("/dev/zero"), lambda p: fifo(p / "net.arch")], ids=["device", "fifo"])
def test_a_device_or_pipe_named_as_a_spec_is_refused(tmp_path, make):
    path = make(tmp_path)
    result = archc("check", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    kind = "a character device" if path.is_char_device() else "a named pipe"
    assert result.stderr == f"archc: error: '{path}' is {kind}, not a regular file\n"


@pytest.mark.parametrize("make", [lambda p: Path("/dev/zero"), lambda p: fifo(p / "lib.arch")], ids=["device", "fifo"])
def test_a_device_or_pipe_reached_through_use_is_an_error_at_the_use(tmp_path, make):
    used = make(tmp_path)
    (tmp_path / "net.arch").write_text(f'use "{used}"\n' + NET)
    result = archc("check", "net.arch", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    kind = "a character device" if used.is_char_device() else "a named pipe"
    assert result.stderr.splitlines()[:3] == [f"net.arch:1:1: error: '{used}' is {kind}, not a regular file",
                                              f'    use "{used}"', "    ^" + "~" * (len(str(used)) + 5)]


@pytest.mark.parametrize("make", [device_node, device_link, fifo], ids=["device", "link", "fifo"])
@pytest.mark.parametrize("force", [False, pytest.param(True, marks=pytest.mark.slow)])  # each runs archc anew
def test_a_device_or_pipe_where_build_would_write_is_never_read(tmp_path, make, force):
    (tmp_path / "net.arch").write_text(NET)
    (tmp_path / "out").mkdir()
    target = make(tmp_path / "out" / "net.py")
    result = archc("build", "net.arch", "-o", "out", *["--force"] * force, cwd=tmp_path)
    if force and make is device_link:  # the link is replaced; /dev/zero is not touched
        assert result.returncode == 0, result.stderr
        assert not target.is_symlink() and codegen.MARKER in target.read_text()
        return
    assert result.returncode == 2, result.stderr
    kind = {device_node: "a character device;", device_link: "a symbolic link,", fifo: "a named pipe;"}[make]
    assert result.stderr.startswith(f"archc: error: '{Path('out') / 'net.py'}' is {kind} ")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize("make", [device_node, device_link, fifo], ids=["device", "link", "fifo"])
def test_a_device_or_pipe_where_draw_would_write_is_never_read(tmp_path, make):
    make(tmp_path / "net.dot")
    result = archc("draw", str(SMALL), "-o", "net.dot", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    kind = {device_node: "a character device;", device_link: "a symbolic link,", fifo: "a named pipe;"}[make]
    assert result.stderr.startswith(f"archc: error: 'net.dot' is {kind} ")


@pytest.mark.slow  # writes a file past the size limit
def test_an_oversized_spec_is_refused_unread(tmp_path):
    big = tmp_path / "big.arch"
    with open(big, "wb") as fh:  # sparse: no disk, and zeros that would fail to parse if read
        fh.truncate(files.MAX_SPEC_BYTES + 1)
    result = archc("check", str(big), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"archc: error: '{big}' is larger than 4 MiB, the limit for a spec file\n"
    (tmp_path / "net.arch").write_text('use "big.arch"\n' + NET)
    result = archc("check", "net.arch", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("net.arch:1:1: error: 'big.arch' is larger than 4 MiB")


def test_the_read_limit_is_exact(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert files.read_spec_bytes(path, limit=10) == b"x" * 10
    with pytest.raises(files.FileProblem, match="is larger than 9 bytes"):
        files.read_spec_bytes(path, limit=9)
    assert "4 MiB" in (ROOT / "README.md").read_text()  # the README states the limit
    assert files.MAX_SPEC_BYTES == 4 * 1024 * 1024


def test_a_directory_or_missing_file_through_use_is_an_error_at_the_use(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    for used, message in [("lib", "'lib' is a directory, not a regular file"), ("nope.arch", "no such file: 'nope.arch'")]:
        (tmp_path / "net.arch").write_text(f'use "{used}"\n' + NET)
        assert main(["check", "net.arch"]) == 1
        assert capsys.readouterr().err.startswith(f"net.arch:1:1: error: {message}\n")


# ------------------------------------------------------------------ outputs


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_outputs_get_the_mode_of_a_new_file(tmp_path, umask_027, capsys):
    assert main(["build", str(SMALL), "-o", str(tmp_path)]) == 0
    assert main(["draw", str(SMALL), "-o", str(tmp_path / "f.dot")]) == 0
    for name in ("factorization.py", "f.dot"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640  # 0666 less the umask, not 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.dot", "factorization.py"]  # no temporaries left


def test_a_symlink_is_replaced_never_written_through(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere.dot"
    elsewhere.write_text("digraph x {\n  // Generated by archc\n}\n")  # even a file archc wrote
    link = tmp_path / "link.dot"
    link.symlink_to(elsewhere)
    assert main(["draw", str(SMALL), "-o", str(link)]) == 2
    assert "is a symbolic link, not a file archc generated; use --force" in capsys.readouterr().err
    assert main(["draw", str(SMALL), "-o", str(link), "--force"]) == 0
    assert not link.is_symlink() and link.read_text().startswith("digraph archc {")
    assert elsewhere.read_text() == "digraph x {\n  // Generated by archc\n}\n"


def test_draw_refuses_to_overwrite_a_file_it_did_not_write(tmp_path, capsys):
    target = tmp_path / "net.svg"
    target.write_text("<svg>my own drawing</svg>\n")
    assert main(["draw", str(SMALL), "-o", str(target)]) == 2
    assert capsys.readouterr().err == f"archc: error: '{target}' was not generated by archc; use --force to " \
                                      "overwrite it\n"
    assert target.read_text() == "<svg>my own drawing</svg>\n"
    assert main(["draw", str(SMALL), "-o", str(target), "--force"]) == 0
    assert main(["draw", str(SMALL), "-o", str(target)]) == 0  # now its own file
    ET.parse(target)


def test_the_marker_counts_only_where_archc_writes_it(tmp_path, capsys):
    target = tmp_path / "factorization.py"
    target.write_text("# my own code\n" + "x = 1\n" * 1000 + f"# a note about '{files.MARKER}' files\n")
    assert main(["build", str(SMALL), "-o", str(tmp_path)]) == 2
    assert "was not generated by archc" in capsys.readouterr().err
    target.write_text(f"# {files.MARKER}\n" + "x = 1\n" * 100_000)  # near the start, but not its line
    assert not files.is_generated(target)
    module = f'"""Mine.\n\n{files.MARKER} from x.arch; do not edit: change the spec and rebuild.\n"""\n'
    target.write_text(module + "x = 1\n" * 2_000_000)  # a large file is read no further than its first MiBs
    assert files.is_generated(target)


def test_a_refused_output_stops_the_whole_build(tmp_path, capsys):
    (tmp_path / "nin.py").mkdir()
    assert main(["build", str(SMALL), str(SPECS / "nin.arch"), "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"archc: error: '{tmp_path / 'nin.py'}' is a directory; archc writes only " \
                                      "regular files\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nin.py"]


def test_write_outputs_writes_all_or_nothing(tmp_path, monkeypatch):
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(files.FileProblem, match="cannot write '.*b.txt': No space left on device"):
        files.write_outputs({tmp_path / "a.txt": b"a", tmp_path / "b.txt": b"b"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # renamed before the failure; no temporaries


def test_codegen_writes_the_same_marker():
    assert codegen.MARKER == files.MARKER == "Generated by archc"


# ------------------------------------------------------------------ the marker in each format


def head(data: bytes) -> bytes:
    return data[:files.MARKER_WINDOW]


def test_dot_svg_and_html_markers_are_comments():
    dot = files.marked(b"digraph archc {\n  a -> b;\n}\n", "dot")
    assert dot == b"digraph archc {\n  // Generated by archc\n  a -> b;\n}\n"
    svg = files.marked(b'<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"/>\n', "svg")
    assert svg.startswith(b'<?xml version="1.0"?>\n<!-- Generated by archc -->\n<!DOCTYPE svg>')
    ET.fromstring(svg)
    html = files.marked(b"<!DOCTYPE html>\n<html><body>x</body></html>\n", "html")
    assert html == b"<!DOCTYPE html>\n<!-- Generated by archc -->\n<html><body>x</body></html>\n"
    assert files.marked(b"<html></html>", "html") == b"<!-- Generated by archc -->\n<html></html>"
    with pytest.raises(ValueError, match="no marker for .jpg files"):
        files.marked(b"", "jpg")


def png_chunks(data: bytes):
    at = 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        crc = int.from_bytes(data[at + 8 + length:at + 12 + length], "big")
        yield kind, body, crc == zlib.crc32(kind + body)
        at += 12 + length


def test_png_marker_is_a_text_chunk_after_ihdr(tmp_path, capsys):
    assert main(["draw", str(SMALL), "-o", str(tmp_path / "f.png")]) == 0
    data = (tmp_path / "f.png").read_bytes()
    chunks = list(png_chunks(data))
    assert [c[0] for c in chunks[:2]] == [b"IHDR", b"tEXt"] and chunks[-1][0] == b"IEND"
    assert chunks[1][1] == b"Comment\0Generated by archc"
    assert all(ok for _, _, ok in chunks), "a chunk's CRC is wrong"
    assert files.is_generated(tmp_path / "f.png")


def pdf(objects: list[bytes]) -> bytes:
    """A minimal PDF with a classic cross-reference table, as cairo writes one."""
    out, offsets = bytearray(b"%PDF-1.5\n%\xb5\xed\xae\xfb\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_marker_moves_the_cross_reference_offsets():
    original = pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    data = files.marked(original, "pdf")
    assert data.startswith(b"%PDF-1.5\n%Generated by archc\n")
    xref = int(re.search(rb"startxref\n(\d+)", data)[1])
    assert data[xref:xref + 4] == b"xref"
    offsets = [int(m[1]) for m in re.finditer(rb"(\d{10}) 00000 n", data)]
    assert [data[o:o + 8] for o in offsets] == [b"1 0 obj\n", b"2 0 obj\n"]
    streamed = original.replace(b"xref\n0 3", b"3 0 obj\n<< /Type /XRef >>")  # another layout: left alone
    assert files.marked(streamed, "pdf") == streamed
