"""archc.list_models and archc.create_model, and models that pickle, checked from outside the repository.

Each check runs in a fresh interpreter whose working directory is a temporary one and whose
environment has no PYTHONPATH, so it uses the installed archc and cannot reach the checkout by
accident. Here archc is installed in editable mode, which resolves to the checkout, so every process
also asserts that the checkout's top-level ``generated`` package is not importable and that the
models come from ``archc.models``; the slow test repeats the checks against a non-editable install.
"""

import fnmatch
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from archtest import ROOT, SPECS, spec

import archc
from archc import built

TINY = """\
# A small network for the pickling tests.
network Tiny(num_classes = 10, width = 8) {
    input 3 x 16 x 16
    conv1 = conv(width, 3, padding = 1)
    relu
    pool = adaptive_avgpool(1)
    flatten
    fc = linear(num_classes)
}

variant tiny = Tiny(width = WIDTH)
"""

PRELUDE = f"""\
import importlib.util, json, sys
from pathlib import Path
import archc
assert importlib.util.find_spec("generated") is None, "the checkout is importable"
assert not Path.cwd().resolve().is_relative_to({str(ROOT)!r}), "running inside the checkout"
out = {{"archc": archc.__file__}}
"""


def outside(tmp_path: Path, code: str, site: Path | None = None, ok: bool = True) -> dict | str:
    """Run ``code`` after ``PRELUDE`` in a fresh interpreter, in ``tmp_path / "work"``, with archc's cache in
    ``tmp_path / "cache"`` and archc imported from ``site`` if given: ``out``, as the code left it, or (if
    not ``ok``) what it printed on stderr."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    if site is not None:
        env["PYTHONPATH"] = str(site)
    program = PRELUDE + textwrap.dedent(code) + "print(json.dumps(out))\n"
    result = subprocess.run([sys.executable, "-c", program], cwd=work, env=env, capture_output=True, text=True,
                            timeout=600)
    if not ok:
        assert result.returncode != 0, result.stdout
        return result.stderr
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def shipped_variants() -> list[str]:
    return [name for path in sorted(SPECS.glob("*.arch")) for name in spec(path.stem).variants]


def write_tiny(path: Path, width: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TINY.replace("WIDTH", str(width)))
    return path


def test_list_models_names_every_variant_of_the_specs_without_importing_torch(tmp_path):
    out = outside(tmp_path, """
        out["all"] = archc.list_models()
        out["resnet1"] = archc.list_models("resnet1*")
        out["vgg_bn"] = archc.list_models("vgg1?_bn")
        out["none"] = archc.list_models("no_such_net*")
        out["torch"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    """)
    variants = shipped_variants()
    assert len(variants) == len(set(variants)), "two specs define one name: the registry would hide one"
    assert sorted(out["all"]) == sorted(variants)
    assert set(out["resnet1"]) == set(fnmatch.filter(variants, "resnet1*"))
    # sorted as timm sorts, numbers by value (a plain sort puts resnet101 ... resnet1202 before resnet18)
    known = ["resnet18", "resnet101", "resnet110", "resnet152", "resnet1202"]
    assert [name for name in out["resnet1"] if name in known] == known
    assert out["all"].index("resnet18") < out["all"].index("resnet34") < out["all"].index("resnet101")
    assert out["vgg_bn"] == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert out["none"] == []
    assert out["torch"] == []


def test_unknown_names_and_pretrained_weights_are_clear_errors(tmp_path):
    out = outside(tmp_path, """
        for name, kwargs in [("resnt50", {}), ("zzzz", {}), ("resnet50", {"pretrained": True})]:
            try:
                archc.create_model(name, **kwargs)
            except ValueError as exc:
                out[name] = str(exc)
        out["torch"] = "torch" in sys.modules
    """)
    assert out["resnt50"] == ("unknown model 'resnt50': did you mean resnet50, res2next50 or resnet56? "
                              "(archc.list_models() names them all)")
    assert out["zzzz"] == "unknown model 'zzzz': archc.list_models() names them all"
    assert out["resnet50"].startswith("archc has no pretrained weights for 'resnet50'")
    assert out["torch"] is False  # both refused before torch is imported


def test_a_spec_path_that_leads_nowhere_names_the_specs_near_it(tmp_path, capsys):
    """A misspelt spec path (``resnt.arch``, ``.arc``), to create_model or on the command line: one line naming the
    specs beside it that it is closest to; a folder that is not there says so."""
    from archc.cli import main

    (tmp_path / "resnet.arch").write_text("network N() {\n    input 3 x 8 x 8\n    relu\n}\nvariant n = N()\n")
    for name in [f"{tmp_path}/resnt.arch", f"{tmp_path}/resnet.arc", f"{tmp_path}/resnet.arc:n"]:
        with pytest.raises(FileNotFoundError, match=f"did you mean {tmp_path / 'resnet.arch'}\\?$"):
            archc.create_model(name)
    with pytest.raises(FileNotFoundError, match="no spec at nowhere/net.arch: there is no folder nowhere$"):
        archc.create_model("nowhere/net.arch")
    with pytest.raises(ValueError, match="unknown model 'zzzz/resnet'"):  # no spec near it: a name
        archc.create_model("zzzz/resnet")
    assert main(["check", f"{tmp_path}/resnt.arch"]) == 2
    assert capsys.readouterr().err.splitlines()[1] == f"hint: did you mean {tmp_path / 'resnet.arch'}?"


@pytest.mark.slow  # fresh interpreters with torch
def test_create_model_has_the_head_asked_for_and_pickles_into_a_fresh_process(tmp_path):
    saved = outside(tmp_path, """
        import torch
        model = archc.create_model("resnet18", num_classes=10).eval()
        torch.manual_seed(0)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            y = model(x)
        torch.save({"model": model, "x": x, "y": y}, "resnet18.pt")
        out["module"] = type(model).__module__
        out["head"] = [model.fc.in_features, model.fc.out_features]
        out["shape"] = list(y.shape)
    """)
    assert saved["module"] == "archc.models.resnet"
    assert saved["head"] == [512, 10]
    assert saved["shape"] == [2, 10]
    assert not (tmp_path / "cache").exists()  # shipped models need no cache to unpickle
    loaded = outside(tmp_path, """
        import torch
        saved = torch.load("resnet18.pt", weights_only=False)
        with torch.no_grad():
            out["equal"] = torch.equal(saved["model"](saved["x"]), saved["y"])
        out["module"] = type(saved["model"]).__module__
    """)
    assert loaded == {"archc": saved["archc"], "equal": True, "module": "archc.models.resnet"}


@pytest.mark.slow  # fresh interpreters with torch
def test_a_built_model_pickles_after_its_spec_changes_and_is_deleted(tmp_path):
    path = write_tiny(tmp_path / "specs" / "tiny.arch", width=8)
    saved = outside(tmp_path, f"""
        import torch
        def save(width):
            model = archc.load({str(path)!r}).build("tiny").eval()
            torch.manual_seed(0)
            x = torch.randn(2, 3, 16, 16)
            with torch.no_grad():
                torch.save({{"model": model, "x": x, "y": model(x)}}, f"tiny{{width}}.pt")
            out[width] = type(model).__module__
        save(8)
        Path({str(path)!r}).write_text(Path({str(path)!r}).read_text().replace("width = 8", "width = 12"))
        save(12)
    """)
    assert saved["8"] != saved["12"]
    assert all(saved[w].startswith("archc.built.tiny_") for w in ("8", "12"))
    shutil.rmtree(tmp_path / "specs")
    loaded = outside(tmp_path, """
        import torch
        for width in (8, 12):
            saved = torch.load(f"tiny{width}.pt", weights_only=False)
            model = saved["model"]
            with torch.no_grad():
                out[width] = [type(model).__module__, model.conv1.out_channels,
                              torch.equal(model(saved["x"]), saved["y"])]
    """)
    # each pickle keeps the classes it was built with
    assert loaded["8"] == [saved["8"], 8, True]
    assert loaded["12"] == [saved["12"], 12, True]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """archc's cache directory for this test, for this process and those ``outside`` starts."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "archc" / "built"


@pytest.mark.slow  # fresh interpreters with torch
def test_the_cache_runs_only_what_archc_wrote(tmp_path, cache):
    model = archc.load(write_tiny(tmp_path / "specs" / "tiny.arch", width=5)).build("tiny")
    name = type(model).__module__.rpartition(".")[2]
    file = cache / f"{name}.py"
    source = file.read_text()
    assert sorted(cache.iterdir()) == [file]  # no temporary file left behind
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "tiny.pickle").write_bytes(pickle.dumps(type(model)))
    load = 'import pickle\nout["class"] = pickle.loads(Path("tiny.pickle").read_bytes()).__name__\n'

    file.write_text(source + 'open("ran", "w").close()\n')  # not what archc wrote under that name
    error = outside(tmp_path, load, ok=False)
    assert f"ImportError: archc: refusing to run {file}: it is not the code archc generated" in error
    assert not (tmp_path / "work" / "ran").exists()

    file.unlink()
    (tmp_path / "elsewhere.py").write_text(source)
    file.symlink_to(tmp_path / "elsewhere.py")
    assert "refusing to run" in outside(tmp_path, load, ok=False)  # a link is not followed, even to the right code

    file.unlink()
    error = outside(tmp_path, load, ok=False)
    assert f"ModuleNotFoundError: No module named 'archc.built.{name}': the code archc generated from tiny.arch " \
           f"is not in its cache ({cache})" in error

    file.write_text(source[: len(source) // 2])  # a damaged file is replaced by the next build, whole
    archc.load(tmp_path / "specs" / "tiny.arch").build("tiny")
    assert file.read_text() == source
    assert sorted(cache.iterdir()) == [file]
    assert outside(tmp_path, load)["class"] == "Tiny"


def test_without_a_writable_cache_a_model_still_builds_and_pickles_in_process(tmp_path, monkeypatch):
    blocked = tmp_path / "not_a_directory"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    spec_ = archc.load(write_tiny(tmp_path / "tiny.arch", width=6))
    with pytest.warns(RuntimeWarning, match="models built from it will not unpickle in another process"):
        model = spec_.build("tiny")
    assert type(model).__module__.startswith("archc.built.tiny_")
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is type(model)
    assert copy.conv1.out_channels == 6


def test_module_names_are_identifiers_and_follow_the_source():
    assert built.module_name("a", "my-net.v2") == f"archc.built.my_net_v2_{built._digest(b'a')}"
    assert built.module_name("a", "3x3").startswith("archc.built.spec_3x3_")
    assert built.module_name("a", "n") != built.module_name("b", "n")


@pytest.mark.slow
def test_a_non_editable_install_ships_the_models_and_pickles(tmp_path):
    pytest.importorskip("setuptools")
    src, site = tmp_path / "src", tmp_path / "site"
    for folder in ("archc", "codegen_templates", "generated", "specs"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / file, src / file)
    # a copy, so the build's folders stay out of the checkout; no isolation: the build needs no network
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True, timeout=600)
    path = write_tiny(tmp_path / "specs" / "tiny.arch", width=7)
    saved = outside(tmp_path, f"""
        import torch
        import archc.models
        out["models"] = archc.models.__file__
        out["all"] = archc.list_models()
        torch.manual_seed(0)
        x = torch.randn(2, 3, 32, 32)
        models = {{"shipped": archc.create_model("resnet20", num_classes=7),
                   "built": archc.load({str(path)!r}).build("tiny", num_classes=7)}}
        with torch.no_grad():
            torch.save({{k: (m.eval(), m(x)) for k, m in models.items()}} | {{"x": x}}, "models.pt")
        out["deployed"] = type(archc.deploy(models["shipped"])).__name__  # its spec shipped as archc/specs
    """, site=site)
    assert Path(saved["archc"]).is_relative_to(site) and Path(saved["models"]).is_relative_to(site)
    assert sorted(saved["all"]) == sorted(shipped_variants())
    assert saved["deployed"] == "CifarResNet" and (site / "archc" / "specs" / "resnet.arch").is_file()
    shutil.rmtree(tmp_path / "specs")
    loaded = outside(tmp_path, """
        import torch
        saved = torch.load("models.pt", weights_only=False)
        for key in ("shipped", "built"):
            model, y = saved[key]
            with torch.no_grad():
                out[key] = [type(model).__module__, sys.modules[type(model).__module__].__file__,
                            torch.equal(model(saved["x"]), y), list(y.shape)]
    """, site=site)
    assert Path(loaded["archc"]).is_relative_to(site)
    assert loaded["shipped"][0] == "archc.models.resnet" and Path(loaded["shipped"][1]).is_relative_to(site)
    assert loaded["shipped"][2:] == [True, [2, 7]]
    assert loaded["built"][0].startswith("archc.built.tiny_")
    assert Path(loaded["built"][1]).is_relative_to(tmp_path / "cache")
    assert loaded["built"][2:] == [True, [2, 7]]


# ---------------------------------------------------------------- timm's list_models, and a user's own specs


def test_list_models_takes_patterns_exclusions_and_a_module():
    both = archc.list_models(["vit_b*", "swin_t"])
    assert both == ["swin_t", "vit_b_16", "vit_b_32"]
    assert "swin_v2_t" in archc.list_models("swin*") and "swin_v2_t" not in archc.list_models(
        "swin*", exclude_filters=["*_v2_*"])
    assert archc.list_models(module="alexnet") == ["alexnet", "alexnet_paper"]
    assert archc.list_models("resnet*", pretrained=True) == []  # archc ships no weights


def test_an_unknown_name_suggests_by_prefix_then_spelling():
    with pytest.raises(ValueError) as error:
        archc.create_model("resnet5")
    message = str(error.value)
    assert "\n" not in message and "did you mean resnet50, " in message
    with pytest.raises(ValueError, match="did you mean efficientnet_b0"):
        archc.create_model("efficentnet_b0")


def test_create_model_takes_a_spec_file(tmp_path):
    path = write_tiny(tmp_path / "specs" / "tiny.arch", 4)
    model = archc.create_model(f"{path}:tiny", num_classes=3)
    assert model.conv1.out_channels == 4 and model.fc.out_features == 3
    assert archc.create_model(str(path)).fc.out_features == 10  # the first variant, its defaults
    with pytest.raises(ValueError, match="no variant 'tiny2'"):
        archc.create_model(f"{path}:tiny2")


def test_the_spec_path_and_entry_points_make_a_users_specs_models(tmp_path, monkeypatch):
    write_tiny(tmp_path / "env" / "envnet.arch", 5)
    (tmp_path / "env" / "envnet.arch").write_text(
        (tmp_path / "env" / "envnet.arch").read_text().replace("variant tiny", "variant env_tiny"))
    monkeypatch.setenv("ARCHC_SPEC_PATH", str(tmp_path / "env"))
    assert "env_tiny" in archc.list_models() and archc.list_models(module="envnet") == ["env_tiny"]
    assert archc.create_model("env_tiny").conv1.out_channels == 5
    # an installed package names its folder of specs with an archc.specs entry point
    site = tmp_path / "site"
    specs = write_tiny(site / "mypkg" / "specs" / "pkgnet.arch", 6)
    specs.write_text(specs.read_text().replace("variant tiny", "variant pkg_tiny"))
    (site / "mypkg" / "__init__.py").write_text("from pathlib import Path\nSPECS = Path(__file__).parent / 'specs'\n")
    info = site / "mypkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[archc.specs]\nmypkg = mypkg:SPECS\n")
    monkeypatch.syspath_prepend(str(site))
    assert "pkg_tiny" in archc.list_models("pkg_*")
    assert archc.create_model("pkg_tiny").conv1.out_channels == 6
    # a shipped name is never shadowed by a user's spec
    write_tiny(tmp_path / "env" / "shadow.arch", 7).write_text(TINY.replace("WIDTH", "7").replace(
        "variant tiny", "variant alexnet"))
    assert type(archc.create_model("alexnet")).__module__ == "archc.models.alexnet"


def test_list_models_features_only_lists_the_backbones(tmp_path, monkeypatch):
    import inspect

    from archc.zoo.registry import model_entrypoint

    backbones = archc.list_models(features_only=True)
    assert "resnet50" in backbones and "vgg16_vgg19_ensemble" not in backbones  # an ensemble has no taps
    for name in archc.list_models():  # exactly the factories that take features_only
        takes = "features_only" in inspect.signature(model_entrypoint(name)).parameters
        assert takes == (name in backbones), name
    tapped = TINY.replace("    pool = adaptive_avgpool(1)", "    tap\n    pool = adaptive_avgpool(1)")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "plain.arch").write_text(TINY.replace("WIDTH", "4").replace("variant tiny", "variant my_plain"))
    (folder / "tapped.arch").write_text(tapped.replace("WIDTH", "4").replace("variant tiny", "variant my_tapped"))
    monkeypatch.setenv("ARCHC_SPEC_PATH", str(folder))
    assert archc.list_models("my_*", features_only=True) == ["my_tapped"]
    assert archc.list_models("my_*") == ["my_plain", "my_tapped"]
