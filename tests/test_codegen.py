"""Generated code: deterministic, in sync with specs/, clean, importing only torch."""

import ast
import subprocess
import sys

import pytest
from archtest import ALLOWED_IMPORTS, ROOT, SPECS

import archc
from archc.cli import main

SPEC_FILES = sorted(SPECS.glob("*.arch"))


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_generated_is_a_fresh_build(path, tmp_path):
    assert main(["build", str(path), "-o", str(tmp_path)]) == 0
    fresh = (tmp_path / f"{path.stem}.py").read_text()
    committed = ROOT / "generated" / f"{path.stem}.py"
    assert committed.exists(), f"run: archc build {path.relative_to(ROOT)}"
    assert fresh == committed.read_text(), f"generated/{path.stem}.py is stale: run archc build specs/*.arch"


@pytest.mark.slow  # builds every spec twice more
@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_build_is_deterministic(path):
    first = archc.load(path).source()
    second = archc.load(path).source()
    assert first == second


@pytest.mark.slow  # two fresh interpreters
def test_build_is_deterministic_across_processes(tmp_path):
    outputs = []
    for i in range(2):
        out = tmp_path / str(i)
        subprocess.run([sys.executable, "-m", "archc", "build", str(SPECS / "googlenet.arch"), "-o", str(out)],
                       check=True, capture_output=True, env={"PYTHONHASHSEED": str(i + 1), "PATH": ""})
        outputs.append((out / "googlenet.py").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_generated_imports_only_torch(path):
    tree = ast.parse((ROOT / "generated" / f"{path.stem}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= ALLOWED_IMPORTS
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS and node.level == 0
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "compile", "__import__", "open", "globals", "locals"}


def test_generated_is_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT / "generated")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # imports every generated module in a fresh interpreter
def test_generated_modules_import_without_archc():
    code = (
        "import sys; sys.modules['archc'] = None\n"
        "import torch\n"
        "from generated.resnet import resnet18\n"
        "from generated.googlenet import googlenet\n"
        "print(resnet18(num_classes=10)(torch.randn(1, 3, 64, 64)).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 10])" in result.stdout


def test_classes_per_block_and_loops_not_copies():
    source = (ROOT / "generated" / "resnet.py").read_text()
    tree = ast.parse(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"BasicBlock", "Bottleneck", "ResNet"} <= classes
    assert source.count("class Bottleneck(") == 1
    assert "for i in range(layers[2]):" in source  # 23 or 36 blocks are a loop, not copies
    assert "self.layer1(x)  # N x 64|256 x 56 x 56" in source
    factories = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= factories


def test_factories_build_channels_last_models_that_compute_the_same():
    import torch

    from generated.googlenet import googlenet

    torch.manual_seed(0)
    plain = googlenet(aux_logits=False).eval()
    nhwc = googlenet(aux_logits=False, channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict(), strict=True)
    assert nhwc.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)  # a contiguous input: the first convolution switches the layout
    with torch.no_grad():
        assert torch.allclose(plain(x), nhwc(x), atol=1e-5)
