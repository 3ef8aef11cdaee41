"""Train any model in generated/, or any spec, on handwritten digits, an image folder or synthetic data.

The model is a factory from the ``__all__`` of a module in generated/: resnet50,
densenet121, inception_v3, or qualified, resnet.resnet20; or a spec file of your own,
path/to/net.arch (its first variant) or path/to/net.arch:variant; or any name that
archc.list_models() gives (specs in the folders of ARCHC_SPEC_PATH too). From the
repository root:

    python examples/train.py resnet20 --data synthetic --epochs 1 --steps 20
    python examples/train.py resnet20 --data digits --epochs 15
    python examples/train.py resnet50 --data ~/imagenette --epochs 90 --batch-size 64 --output ckpt.pt
    python examples/train.py inception_v3 --image-size 299 --batch-size 8
    torchrun --nproc_per_node 2 examples/train.py resnet20 --data synthetic --batch-size 64
    python examples/train.py densenet121 --set memory_efficient=true --batch-size 64
    python examples/train.py my_specs/net.arch:small --data digits --epochs 5

Under torchrun each process trains on its share of the data with
DistributedDataParallel (gloo on CPU, nccl with CUDA); --batch-size is per
process and --lr is used as given. Rank 0 alone shows progress (the loss
averaged over the processes) and writes --output after every epoch: a dict with
"model" (loads with strict=True), "optimizer", "scheduler", "epoch", "args".

Its extras: pip install '.[examples]' adds a progress bar (tqdm; without it, one line an
epoch), torchvision, which --data DIR needs to read images, and scikit-learn, whose
package holds the digits.

--data synthetic: --synthetic-size random images with random labels, fixed by
--seed. --data digits: scikit-learn's 1,797 8x8 handwritten digits, upscaled to
the input size; one in five is the test set, the same in every run. --data DIR:
an ImageFolder, DIR/train/<class>/* or else DIR/<class>/*, randomly cropped and
resized to the input size, and flipped; DIR/val/<class>/* (or DIR/test), if
there, is the test set, centre-cropped. With a test set, the test accuracy is
printed after every epoch. --num-classes defaults to the data's class count, or
else to the factory's default.

Generated files do not record the input size, so --image-size defaults to 32
for CIFAR-style factories (a default, or fixed, class count of 10 or 100) and to
224 otherwise. A training-mode forward pass checks it before training; if that
fails, the error names any size the model's docstrings give ("299x299 input":
inception_v3's auxiliary head needs 299; alexnet_paper needs 227).

Side outputs: GoogLeNet and Inception-v3 return (logits, aux, ...) in training
mode; the loss is the main output's cross entropy plus 0.3 times each auxiliary
head's, as in the GoogLeNet paper.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

try:
    from tqdm import tqdm
except ModuleNotFoundError as missing:  # an optional extra: train without the progress bar
    if missing.name != "tqdm":
        raise
    tqdm = None

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `import generated`
sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/, for imagedata
from imagedata import Digits, SyntheticImages, folder_transforms, image_folders  # noqa: E402

import archc  # noqa: E402
import generated  # noqa: E402
from archc.zoo.registry import model_entrypoint  # noqa: E402

AUX_WEIGHT = 0.3
EXTRAS = "pip install '.[examples]'"


def find_factories() -> dict[str, Callable[..., nn.Module]]:
    """Every factory function in generated/, by ``name`` and by ``module.name``."""
    factories: dict[str, Callable[..., nn.Module]] = {}
    for info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"generated.{info.name}")
        for name in getattr(module, "__all__", []):
            if inspect.isfunction(factory := getattr(module, name)):
                factories[f"{info.name}.{name}"] = factory
                factories.setdefault(name, factory)  # if two modules share a name: the first's
    return factories


def default_image_size(factory: Callable[..., nn.Module], model: nn.Module) -> int:
    """32 if the factory's default class count (else its model's last layer's width) is CIFAR's, else 224."""
    param = inspect.signature(factory).parameters.get("num_classes")
    if param is not None and isinstance(param.default, int):
        classes = param.default
    else:
        last = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
        classes = last.out_features if isinstance(last, nn.Linear) else last.out_channels
    return 32 if classes in (10, 100) else 224


def probe(model: nn.Module, image_size: int, device: torch.device) -> int:
    """Run two blank images through the model in training mode (side heads too); return its class count.

    The batch-norm running statistics are put back afterwards.
    """
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        with torch.no_grad():
            output = model.train()(torch.zeros(2, 3, image_size, image_size, device=device))
    finally:
        for name, buffer in model.named_buffers():
            buffer.copy_(saved[name])
    return (output[0] if isinstance(output, tuple | list) else output).shape[1]


def documented_sizes(factory: Callable[..., nn.Module], model: nn.Module) -> list[str]:
    """The sizes that the factory's or the model class's docstring names as "<n>x<n> input"."""
    docs = f"{inspect.getdoc(factory)} {inspect.getdoc(type(model))}"
    return sorted(set(re.findall(r"\b(\d+)x\1 input", docs)))


def compute_loss(output: Tensor | tuple[Tensor | None, ...], targets: Tensor, criterion: nn.Module) -> Tensor:
    """The main output's loss plus AUX_WEIGHT times each side output's."""
    if not isinstance(output, tuple | list):
        return criterion(output, targets)
    main, *side = output
    return criterion(main, targets) + sum(AUX_WEIGHT * criterion(aux, targets) for aux in side if aux is not None)


def setup_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """Under torchrun, join the process group and wrap the model in DDP; otherwise return it as is."""
    if "RANK" not in os.environ:
        return model
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def train_step(
    model: nn.Module, images: Tensor, targets: Tensor, criterion: nn.Module, optimizer: torch.optim.Optimizer
) -> Tensor:
    loss = compute_loss(model(images), targets, criterion)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # under DDP this also averages the gradients over the processes
    optimizer.step()
    return loss.detach()


def accuracy(model: nn.Module, test_set: Dataset, args: argparse.Namespace, device: torch.device) -> float:
    """The share of the test images whose top class is the label, in evaluation mode."""
    loader = DataLoader(test_set, batch_size=args.batch_size, num_workers=args.workers)
    model.eval()
    right = 0
    with torch.no_grad():
        for images, targets in loader:
            right += int((model(images.to(device)).argmax(1) == targets.to(device)).sum())
    return right / len(test_set)


class EpochLine:
    """Without tqdm: no progress bar, one line at the end of each epoch (tqdm's methods that main uses)."""

    def __init__(self, total: int, unit: str, desc: str, disable: bool) -> None:
        self.unit, self.desc, self.disable, self.done, self.postfix = unit, desc, disable, 0, {}

    def set_postfix(self, refresh: bool = True, **values: str) -> None:
        self.postfix = values

    def update(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        if not self.disable:
            print(", ".join([f"{self.desc}: {self.done} {self.unit}", *(f"{k}={v}" for k, v in self.postfix.items())]))


def progress(total: int, desc: str, disable: bool):
    """A progress bar in images: tqdm's, or without tqdm an ``EpochLine``."""
    return (tqdm or EpochLine)(total=total, unit="img", desc=desc, disable=disable)


def default_workers() -> int:
    """The CPUs this process may run on, shared among the training processes on this machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))  # torchrun sets LOCAL_WORLD_SIZE


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every option's default, except where it has none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default == []:
            return action.help
        return super()._get_help_string(action)


def factory_argument(text: str) -> tuple[str, object]:
    """``memory_efficient=true`` -> ("memory_efficient", True): Python literals, and true/false/none."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    words = {"true": True, "false": False, "none": None}
    if value.lower() in words:
        return name, words[value.lower()]
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number, bool or other literal") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("model", help="a factory in generated/ (resnet50, resnet.resnet20), a spec file "
                                 "(path/to/net.arch or path/to/net.arch:variant), or any name archc.list_models() gives")
    p.add_argument("--data", default="synthetic", help='"synthetic", "digits" or an image folder')
    p.add_argument("--num-classes", type=int, help="default: the folder's class count, or the factory's default")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", type=factory_argument,
                   help="another factory argument, e.g. memory_efficient=true or aux_logits=false (repeatable)")
    p.add_argument("--image-size", type=int, help="input height and width (default: 32 for CIFAR models, else 224)")
    p.add_argument("--synthetic-size", type=int, default=512, help="images in the synthetic data set")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data")
    p.add_argument("--steps", type=int, help="at most this many steps an epoch, for smoke runs")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=0.1, help="SGD's learning rate")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="SGD's weight decay")
    p.add_argument("--schedule", choices=["cosine", "step"], default="cosine", help="learning rate decay, per epoch")
    p.add_argument("--lr-step", type=int, default=30, help="epochs between tenfold decays with --schedule step")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="data loading processes per training process; by default the CPUs available, shared "
                        "among the training processes on this machine")
    p.add_argument("--seed", type=int, default=0, help="for the initial weights, the synthetic data and the shuffles")
    p.add_argument("--output", help="checkpoint file")
    return p


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data not in ("synthetic", "digits") and importlib.util.find_spec("torchvision") is None:
        parser.error(f"--data {args.data}: reading an image folder needs torchvision: {EXTRAS}")
    if args.data == "digits" and importlib.util.find_spec("sklearn") is None:
        parser.error(f"--data digits: the digits ship with scikit-learn: {EXTRAS}")
    factory = find_factories().get(args.model)
    if factory is None:  # a spec file (net.arch or net.arch:variant), or any name archc.list_models() gives
        try:
            factory = model_entrypoint(args.model)
        except (ValueError, FileNotFoundError, archc.SpecError) as exc:
            parser.error(str(exc).splitlines()[0])
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)

    # Model and data first: a bad option stops every process before any of them waits for the others.
    dataset, test_set = None, None  # the digits are made once the input size is known
    if args.data not in ("synthetic", "digits"):
        dataset, test_set = image_folders(Path(args.data).expanduser())
    takes_num_classes = "num_classes" in inspect.signature(factory).parameters
    if args.num_classes is not None and not takes_num_classes:
        parser.error(f"{args.model} has a fixed number of classes: drop --num-classes")
    data_classes = len(Digits.classes) if args.data == "digits" else len(dataset.classes) if dataset else None
    num_classes = args.num_classes or data_classes
    kwargs = dict(args.set)
    unknown = set(kwargs) - set(inspect.signature(factory).parameters)
    if unknown:
        parser.error(f"{args.model} has no argument {', '.join(sorted(unknown))}; it takes "
                     f"{', '.join(inspect.signature(factory).parameters) or 'none'}")
    if num_classes and takes_num_classes:
        kwargs["num_classes"] = num_classes
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = factory(**kwargs).to(device)
    image_size = args.image_size or default_image_size(factory, model)
    try:
        model_classes = probe(model, image_size, device)
    except (RuntimeError, ValueError) as error:
        sizes = documented_sizes(factory, model)
        hint = f"--image-size {' or '.join(sizes)}, as documented" if sizes else "another --image-size"
        parser.error(
            f"{args.model} fails on {image_size}x{image_size} inputs ({str(error).splitlines()[0]}); try {hint}"
        )
    if data_classes is not None and data_classes > model_classes:
        parser.error(f"{args.data} has {data_classes} classes; {args.model} predicts {model_classes}")
    if args.data == "synthetic":
        dataset = SyntheticImages(args.synthetic_size, image_size, model_classes, args.seed)
    elif args.data == "digits":
        dataset, test_set = Digits("train", image_size), Digits("test", image_size)
    else:
        folder_transforms(dataset, test_set, image_size)

    model = setup_distributed(model, device)
    plain_model = model.module if isinstance(model, DistributedDataParallel) else model
    torch.manual_seed(args.seed + rank)  # but different dropout masks and augmentations
    sampler = DistributedSampler(dataset, seed=args.seed, drop_last=True) if dist.is_initialized() else None
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,  # a last batch of one image would break batch norm
    )
    if (steps := min(len(loader), args.steps or len(loader))) == 0:
        parser.error(
            f"{len(dataset)} images make no full batch of {args.batch_size} in each of {world_size} process(es)"
        )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step, gamma=0.1)
    if rank == 0:
        print(
            f"{args.model}: {sum(p.numel() for p in plain_model.parameters()):,} parameters, "
            f"{image_size}x{image_size} inputs, {model_classes} classes, {len(dataset)} images; "
            f"{world_size} process(es) x {args.batch_size} images on {device}, {steps} steps an epoch"
        )
        if tqdm is None:
            print(f"(no progress bar without tqdm: {EXTRAS})")

    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)  # a new shuffle every epoch, the same in every process
        model.train()
        images_per_step = args.batch_size * world_size
        bar = progress(steps * images_per_step, f"epoch {epoch + 1}/{args.epochs}", disable=rank != 0)
        for _, (images, targets) in zip(range(steps), loader):
            loss = train_step(model, images.to(device), targets.to(device), criterion, optimizer)
            if dist.is_initialized():
                dist.all_reduce(loss)  # gloo has no average: sum, then divide
                loss /= world_size
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.4g}", refresh=False)
            bar.update(images_per_step)
        bar.close()
        scheduler.step()
        if test_set is not None and rank == 0:
            print(f"epoch {epoch + 1}/{args.epochs}: test accuracy {accuracy(plain_model, test_set, args, device):.2%}")
        if args.output and rank == 0:
            state = {"model": plain_model.state_dict(), "optimizer": optimizer.state_dict(), "args": vars(args)}
            state.update(scheduler=scheduler.state_dict(), epoch=epoch + 1)
            output = Path(args.output)
            output.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, output.with_name(output.name + ".tmp"))
            os.replace(output.with_name(output.name + ".tmp"), output)  # never a half-written checkpoint

    if dist.is_initialized():
        dist.barrier()  # every rank done (rank 0 writing the checkpoint) before gloo's connections close
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
