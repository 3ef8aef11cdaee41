"""The data sets examples/train.py trains on: synthetic images, scikit-learn's digits, image folders.

Each is a torch Dataset of (3 x size x size image, label) pairs; the digits and image folders also have
a ``classes`` list and may come with a test set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

DIGITS_TEST_EVERY = 5  # one image in five, by a shuffle fixed once for all runs, is the digits' test set


class SyntheticImages(Dataset):
    """``size`` normalised random images with random labels, the same in every process for a given seed."""

    def __init__(self, size: int, image_size: int, num_classes: int, seed: int) -> None:
        self.image_size, self.seed = image_size, seed
        self.labels = torch.randint(num_classes, (size,), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return torch.randn(3, self.image_size, self.image_size, generator=generator), int(self.labels[index])


class Digits(Dataset):
    """scikit-learn's 1,797 handwritten digits (8 x 8, grey levels 0 to 16, shipped inside its package, so no
    download), upscaled bilinearly to ``image_size``, normalised by the upscaled training images' mean and
    standard deviation, the grey copied to three channels. ``split`` is "train" (1,437 images) or "test" (360):
    the test images are every fifth of a shuffle that is the same in every run, whatever the seed."""

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str, image_size: int) -> None:
        from sklearn.datasets import load_digits  # only --data digits needs scikit-learn

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
        labels = torch.tensor(digits.target)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        is_test = torch.zeros(len(labels), dtype=torch.bool)
        is_test[order[::DIGITS_TEST_EVERY]] = True
        upscaled = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
        mean, std = upscaled[~is_test].mean(), upscaled[~is_test].std()
        chosen = is_test if split == "test" else ~is_test
        self.images = ((upscaled[chosen] - mean) / std).expand(-1, 3, -1, -1).contiguous()
        self.labels = labels[chosen]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])


def image_folders(path: Path) -> tuple[Dataset, Dataset | None]:
    """DIR/train/<class>/* (and DIR/val/<class>/* or DIR/test/<class>/* as the test set), else DIR/<class>/*."""
    from torchvision import datasets  # only image folders need torchvision

    if not (path / "train").is_dir():
        return datasets.ImageFolder(path), None
    test = next((path / name for name in ("val", "test") if (path / name).is_dir()), None)
    return datasets.ImageFolder(path / "train"), datasets.ImageFolder(test) if test is not None else None


def image_transform(image_size: int, train: bool) -> Callable:
    """Random crops and flips for training; for testing, the centre crop of the image resized by 8/7."""
    from torchvision import transforms

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's channel statistics
    if train:
        crop = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    else:
        crop = [transforms.Resize(image_size * 8 // 7), transforms.CenterCrop(image_size)]
    return transforms.Compose([*crop, transforms.ToTensor(), transforms.Normalize(mean, std)])


def folder_transforms(train: Dataset, test: Dataset | None, image_size: int) -> None:
    train.transform = image_transform(image_size, train=True)
    if test is not None:
        test.transform = image_transform(image_size, train=False)
