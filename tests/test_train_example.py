"""examples/train.py: one DDP step's gradients, torchrun and image-folder smoke runs, and its errors.

The distributed tests use gloo on 127.0.0.1 and one thread a process, so they run on a small CPU machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "train.py"
WORLD_SIZE = 2
# gloo on the loopback interface only, whatever the host name resolves to
LOCAL_ENV = {"MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"} | (
    {"GLOO_SOCKET_IFNAME": "lo"} if sys.platform == "linux" else {}
)
TIMEOUT_S = 300  # generous: a shared 2-core machine may take long to import torch in three processes


def load_train() -> ModuleType:
    """examples/train.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("train_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = load_train()
from generated.resnet import resnet20  # noqa: E402  (train puts the repository root on sys.path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_batch(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four 32x32 images and labels, different for every rank."""
    generator = torch.Generator().manual_seed(1000 + rank)
    return torch.randn(4, 3, 32, 32, generator=generator), torch.randint(10, (4,), generator=generator)


def gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def ddp_worker(rank: int, port: int, out_dir: str) -> None:
    """One training step of resnet20 under the script's DDP set-up; saves this rank's gradients."""
    torch.set_num_threads(1)
    os.environ.update(
        LOCAL_ENV, MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank)
    )
    torch.manual_seed(rank)  # different weights in every rank: DDP must start all of them from rank 0's
    model = train.setup_distributed(resnet20(num_classes=10), torch.device("cpu"))
    assert dist.get_world_size() == WORLD_SIZE and dist.get_backend() == "gloo"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images, targets = rank_batch(rank)
    train.train_step(model, images, targets, nn.CrossEntropyLoss(), optimizer)
    torch.save(gradients(model.module), Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # spawns two processes
def test_ddp_step_averages_gradients_over_ranks(tmp_path):
    # Spawned, not forked: a process that has already run autograd (earlier tests) cannot fork safely.
    args = (free_port(), str(tmp_path))
    context = mp.start_processes(ddp_worker, args=args, nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):  # raises if a worker fails
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the DDP workers did not finish in {TIMEOUT_S} s")
    ddp = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]

    # The same step without DDP, one rank's data at a time, from rank 0's initial weights.
    local = []
    for rank in range(WORLD_SIZE):
        torch.manual_seed(0)
        model = resnet20(num_classes=10).train()
        images, targets = rank_batch(rank)
        train.compute_loss(model(images), targets, nn.CrossEntropyLoss()).backward()
        local.append(gradients(model))

    assert ddp[0].keys() == local[0].keys()
    differ = [name for name in local[0] if not torch.allclose(local[0][name], local[1][name], rtol=1e-3, atol=1e-5)]
    assert len(differ) > len(local[0]) // 2, "the ranks' batches should give different gradients"
    for name in local[0]:
        assert torch.equal(ddp[0][name], ddp[1][name]), f"{name}: the ranks' DDP gradients differ"
        average = sum(grads[name] for grads in local) / WORLD_SIZE
        torch.testing.assert_close(ddp[0][name], average, rtol=1e-4, atol=1e-6, msg=f"{name}: not the ranks' average")


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(LOCAL_ENV)
    command = [sys.executable, *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow  # torchrun, two processes
def test_torchrun_smoke_run_writes_a_loadable_checkpoint(tmp_path):
    checkpoint = tmp_path / "out" / "resnet20.pt"
    torchrun = ["-m", "torch.distributed.run", f"--nproc_per_node={WORLD_SIZE}", "--master_addr=127.0.0.1"]
    result = run_script(
        *torchrun,
        f"--master_port={free_port()}",
        str(SCRIPT),
        "resnet20",
        *("--data", "synthetic", "--synthetic-size", "64", "--steps", "2", "--batch-size", "4", "--workers", "0"),
        *("--output", str(checkpoint)),
        cwd=tmp_path,
    )
    assert sum(line.startswith("resnet20: ") for line in result.stdout.splitlines()) == 1  # rank 0 alone reports
    state = torch.load(checkpoint)
    assert state["epoch"] == 1 and state["args"]["model"] == "resnet20"
    model = resnet20(num_classes=10)
    model.load_state_dict(state["model"], strict=True)
    torch.manual_seed(0)  # the script's initial weights
    assert not torch.equal(model.conv1.weight, resnet20(num_classes=10).conv1.weight), "two steps changed nothing"


@pytest.mark.parametrize("layout", ["train/<class>", "<class>", "train/<class> val/<class>"])
def test_image_folder_run(tmp_path, layout, monkeypatch, capsys):
    from PIL import Image

    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)  # a single process, whatever launched pytest
    root = tmp_path / "images"
    folders = [root / "train"] if layout.startswith("train") else [root]
    folders += [root / "val"] if "val" in layout else []
    generator = torch.Generator().manual_seed(0)
    for folder in folders:
        for c, name in enumerate(["cat", "dog", "emu"]):
            (folder / name).mkdir(parents=True)
            for i in range(4):
                pixels = torch.randint(256, (20 + 4 * c, 28 + i, 3), generator=generator, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / name / f"{i}.png")
    checkpoint = tmp_path / "ckpt.pt"
    train.main(
        ["resnet20", "--data", str(root), *"--batch-size 4 --steps 2 --workers 0".split(), "--output", str(checkpoint)]
    )
    model = resnet20(num_classes=3)  # the folder's class count, not the factory's 10
    model.load_state_dict(torch.load(checkpoint)["model"], strict=True)
    tested = re.findall(r"test accuracy (\d+\.\d\d)%", capsys.readouterr().out)
    assert len(tested) == ("val" in layout), tested  # a test set only where there is a val folder


@pytest.mark.slow  # reads and splits the whole data set
def test_the_digits_split_is_fixed_and_disjoint():
    imagedata = sys.modules["imagedata"]  # train put examples/ on sys.path
    first, test = imagedata.Digits("train", 16), imagedata.Digits("test", 16)
    assert (len(first), len(test)) == (1437, 360)
    assert first.images.shape == (1437, 3, 16, 16) and set(test.labels.tolist()) == set(range(10))
    again = imagedata.Digits("train", 16)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert abs(float(first.images.mean())) < 0.05 and abs(float(first.images.std()) - 1) < 0.05  # normalised
    train_rows = {tuple(x.flatten().tolist()) for x in first.images[:, 0]}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in test.images[:, 0])


@pytest.mark.slow  # about 20 seconds on two CPU cores
def test_a_small_network_learns_the_digits(monkeypatch, capsys):
    """Real data: resnet20 from its own initialisation, 4 epochs of SGD on 1,437 digits at 16x16, then at
    least 95% of the 360 test digits right (a model that ignored its input would get about 10%; the run
    measured gave 53%, 95%, 99% and 99% after each epoch)."""
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    train.main(["resnet20", *"--data digits --image-size 16 --epochs 4 --batch-size 32 --lr 0.05 --workers 0".split()])
    out = capsys.readouterr().out
    tested = [float(a) for a in re.findall(r"test accuracy (\d+\.\d\d)%", out)]
    assert len(tested) == 4 and tested[-1] >= 95.0, out


def test_unknown_model_names_close_matches(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["resnet2O", "--steps", "1"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "unknown model 'resnet2O'" in err and "resnet20" in err and "Traceback" not in err


def test_unusable_image_size_is_reported(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["inception_v3", "--steps", "1"])  # 224, the default, is too small for its auxiliary head
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "inception_v3 fails on 224x224 inputs" in err and "--image-size" in err


def test_documented_sizes_come_from_the_docstrings():
    def factory() -> nn.Module:
        """Wants a 299x299 input."""

    class Model(nn.Module):
        """Its 55x55 maps need 227x227 inputs."""

    assert train.documented_sizes(factory, Model()) == ["227", "299"]


@pytest.mark.parametrize(("name", "size"), [("resnet20", 32), ("nin_cifar100", 32), ("resnet18", 224)])
def test_default_image_size(name, size):
    factory = train.find_factories()[name]
    assert train.default_image_size(factory, factory()) == size


def test_side_outputs_add_to_the_loss():
    criterion = nn.CrossEntropyLoss()
    targets = torch.tensor([0, 2])
    main, aux = torch.randn(2, 3), torch.randn(2, 3)
    expected = criterion(main, targets) + 0.3 * criterion(aux, targets)
    torch.testing.assert_close(train.compute_loss((main, aux, None), targets, criterion), expected)
    torch.testing.assert_close(train.compute_loss(main, targets, criterion), criterion(main, targets))


def test_factory_arguments_on_the_command_line(capsys):
    assert train.factory_argument("memory_efficient=true") == ("memory_efficient", True)
    assert train.factory_argument("dropout=0.2") == ("dropout", 0.2)
    with pytest.raises(SystemExit):
        train.main(["resnet20", "--set", "memory_efficient=true", "--steps", "1"])
    assert "resnet20 has no argument memory_efficient; it takes num_classes" in capsys.readouterr().err


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    for default in ("per process (default: 32)", "(default: synthetic)", "SGD's learning rate (default: 0.1)",
                    f"on this machine (default: {train.default_workers()})", "(default: cosine)"):
        assert default in out
    assert "(default: None)" not in out and "(default: [])" not in out


def test_workers_default_to_the_cpus_available(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)  # 3 of the machine's CPUs
    assert train.default_workers() == 3
    assert train.build_parser().parse_args(["resnet20"]).workers == 3
    assert train.build_parser().parse_args(["resnet20", "--workers", "0"]).workers == 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: two training processes share them
    assert train.default_workers() == 1
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert train.default_workers() == 4


@pytest.fixture
def without_tqdm(monkeypatch) -> ModuleType:
    """examples/train.py as if the examples extra, and so tqdm, were not installed."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    module = load_train()
    assert module.tqdm is None
    return module


def test_without_tqdm_progress_is_one_line_an_epoch(without_tqdm, capsys):
    bar = without_tqdm.progress(8, "epoch 2/3", disable=False)
    for loss in ("2.5000", "2.2500"):
        bar.set_postfix(loss=loss, lr="0.1", refresh=False)
        bar.update(4)
    bar.close()
    without_tqdm.progress(8, "epoch 2/3", disable=True).close()  # ranks other than 0
    assert capsys.readouterr().out == "epoch 2/3: 8 img, loss=2.2500, lr=0.1\n"
    if train.tqdm is not None:  # installed: its bar
        assert type(train.progress(8, "epoch 1/1", disable=True)).__name__ == "tqdm"


@pytest.mark.slow  # torch's first optimizer imports torch._dynamo: seconds
def test_trains_without_tqdm(without_tqdm, monkeypatch, capsys):
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    without_tqdm.main(["resnet20", *"--synthetic-size 8 --batch-size 4 --steps 1 --workers 0".split()])
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "(no progress bar without tqdm: pip install '.[examples]')"
    assert re.fullmatch(r"epoch 1/1: 4 img, loss=\d+\.\d{4}, lr=0\.1", out[2]), out


def test_image_folders_without_torchvision_say_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["resnet20", "--data", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "reading an image folder needs torchvision: pip install '.[examples]'" in err and "Traceback" not in err


def test_a_spec_file_trains_by_its_path(tmp_path, monkeypatch, capsys):
    """A user's own spec is a first-class model: path.arch:variant, no build into the checkout."""
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "mine.arch"
    path.write_text("network Mine(num_classes = 10, width = 8) {\n    input 3 x 16 x 16\n"
                    "    conv1 = conv(width, 3, padding = 1); relu\n    adaptive_avgpool(1); flatten\n"
                    "    fc = linear(num_classes)\n}\nvariant mine = Mine()\nvariant wide = Mine(width = 16)\n")
    checkpoint = tmp_path / "ckpt.pt"
    train.main([f"{path}:wide", *"--data synthetic --image-size 16 --batch-size 4 --steps 2 --workers 0".split(),
                "--output", str(checkpoint)])
    state = torch.load(checkpoint)["model"]
    assert state["conv1.weight"].shape == (16, 3, 3, 3)  # the variant asked for, not the first
    capsys.readouterr()
    with pytest.raises(SystemExit):
        train.main([f"{path}:wid", "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("mine.arch has no variant 'wid': did you mean wide? (its variants: mine, wide)"), err


def test_a_bad_name_gives_one_line_with_three_suggestions(capsys):
    with pytest.raises(SystemExit):
        train.main(["resnet5", "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "did you mean resnet50, " in err and err.count(",") + err.count(" or ") == 2 and len(err) < 200
