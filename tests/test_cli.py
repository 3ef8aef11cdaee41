"""The command line: exit statuses, located error messages, safe writes."""

import os
import re
import subprocess
import sys

import pytest
from archtest import ROOT, SPECS

import archc
from archc.cli import main

BROKEN = """network Broken(num_classes = 10) {
    input 3 x 32 x 32
    conv1 = conv(16, 3, padding = 1)
    fc = linaer(num_classes)
}
variant broken = Broken()
"""


def test_build_writes_one_module_per_spec(tmp_path, capsys):
    assert main(["build", str(SPECS / "resnet.arch"), str(SPECS / "googlenet.arch"), "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["googlenet.py", "resnet.py"]
    assert "wrote" in capsys.readouterr().out


def test_check_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(SPECS / "googlenet.arch")]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "googlenet, googlenet_paper" in capsys.readouterr().out


def test_spec_error_is_located_with_caret_and_hint(tmp_path, capsys):
    spec = tmp_path / "broken.arch"
    spec.write_text(BROKEN)
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{spec}:4:10: error: unknown layer or block 'linaer'",
        "        fc = linaer(num_classes)",
        "             ^~~~~~",
        f"{spec}:6:1: note: in variant broken",
        "hint: did you mean 'linear'?",
    ]


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["frobnicate", "x.arch"])
    assert info.value.code == 2


def test_missing_file_and_directory_are_usage_errors(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.arch")]) == 2
    assert capsys.readouterr().err == f"archc: error: no such file: '{tmp_path / 'nope.arch'}'\n"
    assert main(["check", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"archc: error: '{tmp_path}' is a directory, not a regular file\n"
    with pytest.raises(archc.SpecError, match="no such file"):  # the API's error stays a SpecError
        archc.load(tmp_path / "nope.arch")


def test_an_unreadable_spec_is_reported_with_the_spec_errors_of_the_others(tmp_path, capsys):
    broken = tmp_path / "broken.arch"
    broken.write_text(BROKEN)
    assert main(["check", str(tmp_path / "nope.arch"), str(broken)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"archc: error: no such file: '{tmp_path / 'nope.arch'}'"
    assert err[1] == f"{broken}:4:10: error: unknown layer or block 'linaer'"


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"archc {archc.__version__}\n" == "archc 0.1.0\n"


BROKEN_EXAMPLE = ROOT / "examples" / "broken.arch"
RESNET = str(SPECS / "resnet.arch")
# every command with: a spec of its own; an output; the arguments that name a variant and a depth (or None)
COMMANDS = {
    "check": ([], None, None),
    "build": (["-o", "{out}"], ["-o", "{tmp}/file/out"], None),
    "stats": ([], None, ["--variant", "{variant}", "--depth", "{depth}"]),
    "draw": (["-o", "{out}/net.dot"], ["-o", "{tmp}/file/net.dot"], ["--variant", "{variant}", "--depth", "{depth}"]),
}


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_exit_status_and_message_prefix_of_every_command(command, tmp_path, capsys):
    output, bad_output, selection = COMMANDS[command]
    (tmp_path / "file").write_text("a file, where a directory should be\n")
    (tmp_path / "out").mkdir()

    def argv(spec, *extra, output=output, **values):
        fields = {"out": str(tmp_path / "out"), "tmp": str(tmp_path), "variant": "resnet18", "depth": "1", **values}
        return [command, spec, *(a.format(**fields) for a in [*output, *extra])]

    assert run(argv(RESNET), capsys)[0] == 0
    status, err = run(argv(str(BROKEN_EXAMPLE)), capsys)  # a spec error: GCC's form, 1
    assert (status, err.splitlines()[0]) == (1, f"{BROKEN_EXAMPLE}:8:10: error: unknown layer or block 'linaer'")
    missing = str(tmp_path / "nope.arch")  # the rest: usage errors, 2
    assert run(argv(missing), capsys) == (2, f"archc: error: no such file: '{missing}'\n")
    assert run(argv("/dev/zero"), capsys) == (2, "archc: error: '/dev/zero' is a character device, not a regular "
                                                 "file\n")
    status, err = run(argv(RESNET, "--frobnicate"), capsys)
    assert status == 2 and err.splitlines()[-1] == "archc: error: unrecognized arguments: --frobnicate"
    if selection is not None:
        status, err = run(argv(RESNET, *selection, variant="resnet5"), capsys)
        assert (status, err) == (2, "archc: error: no variant 'resnet5' in resnet.arch\nhint: did you mean "
                                    "'resnet56'?\n")
        assert run(argv(RESNET, *selection, depth="0"), capsys) == (2, "archc: error: --depth must be at least 1\n")
        status, err = run(argv(str(SPECS / "common.arch")), capsys)
        assert status == 2 and err.startswith("archc: error: ") and "has no network" in err
    if bad_output is not None:
        status, err = run(argv(RESNET, output=bad_output), capsys)
        assert status == 2 and re.fullmatch(r"archc: error: cannot (write|create directory) '.*': Not a directory\n",
                                            err), err


def test_a_mistake_no_line_holds_names_the_file(tmp_path, monkeypatch, capsys):
    import archc.spec

    def load(path):
        raise archc.SpecError("the spec is nested too deeply to compile", None, hint="flatten it")

    monkeypatch.setattr(archc.spec, "load", load)
    assert main(["check", "deep.arch"]) == 1
    assert capsys.readouterr().err == "deep.arch: error: the spec is nested too deeply to compile\nhint: flatten it\n"


def test_two_specs_that_would_write_one_file(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "net.arch").write_text(BROKEN.replace("linaer", "linear").replace("fc =", "flatten\n    fc ="))
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "a" / "net.arch"), str(tmp_path / "b" / "net.arch"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"archc: error: '{tmp_path / 'a' / 'net.arch'}' and '{tmp_path / 'b' / 'net.arch'}' would both write "
        f"'{out / 'net.py'}'")
    assert not out.exists()
    assert main(["build", str(tmp_path / "a" / "net.arch"), "-o", str(out)]) == 0  # one of them builds


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_directory_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    assert main(["build", str(SPECS / "nin.arch"), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"archc: error: cannot write '{out / 'nin.py'}': Permission denied\n"
    assert main(["draw", str(SPECS / "nin.arch"), "-o", str(out / "nin.dot")]) == 2
    assert capsys.readouterr().err == f"archc: error: cannot write '{out / 'nin.dot'}': Permission denied\n"


def test_readme_error_example_is_what_archc_prints():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```\n(examples/broken\.arch:.*?)^```$", readme, re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, "the README should show the output of archc check examples/broken.arch"
    result = subprocess.run([sys.executable, "-m", "archc", "check", "examples/broken.arch"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == blocks[0]
    assert "specs/broken.arch" not in readme


def test_every_bad_spec_in_a_run_is_reported(tmp_path, capsys):
    a, b = tmp_path / "a.arch", tmp_path / "b.arch"
    a.write_text(BROKEN)
    b.write_text("network N() {\n    input 3 x 8 x 8\n    c = conv(16, 9)\n}\nvariant n = N()\n")
    assert main(["check", str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "a.arch:4:10" in err and "b.arch:3:5" in err


def test_build_refuses_to_overwrite_a_file_it_did_not_write(tmp_path, capsys):
    target = tmp_path / "googlenet.py"
    target.write_text("# my own code\n")
    assert main(["build", str(SPECS / "googlenet.arch"), "-o", str(tmp_path)]) == 2
    assert target.read_text() == "# my own code\n"
    assert main(["build", str(SPECS / "googlenet.arch"), "-o", str(tmp_path), "--force"]) == 0
    assert "Generated by archc" in target.read_text()
    assert main(["build", str(SPECS / "googlenet.arch"), "-o", str(tmp_path)]) == 0  # its own file: fine


def test_failed_build_leaves_outputs_untouched(tmp_path):
    assert main(["build", str(SPECS / "googlenet.arch"), "-o", str(tmp_path)]) == 0
    before = (tmp_path / "googlenet.py").read_text()
    broken = tmp_path / "googlenet_broken.arch"
    broken.write_text(BROKEN)
    assert main(["build", str(SPECS / "googlenet.arch"), str(broken), "-o", str(tmp_path)]) == 1
    assert (tmp_path / "googlenet.py").read_text() == before
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "googlenet_broken.py").exists()


def test_console_script_runs_as_a_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "archc", "check", str(SPECS / "resnet.arch")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "resnet50" in result.stdout
