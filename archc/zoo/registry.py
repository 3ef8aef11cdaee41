"""The shipped networks by name, as timm names its own: ``archc.list_models("resnet*")``,
``archc.create_model("resnet50", num_classes=10)``.

The models come from the generated modules shipped inside archc as ``archc.models``
(``generated/`` in the repository), not from compiling ``specs/`` on first use:

- a first ``create_model`` costs importing torch and one generated module, no compiling (a spec
  takes a second or so to compile, all of ``specs/`` a few seconds), and ``list_models`` reads
  the modules' text without importing torch or any of them;
- their classes have stable names (``archc.models.resnet.ResNet``) that any process with archc
  installed can import, so ``torch.save(model)`` pickles load with no cache, on any machine;
- they stay in sync with ``specs/`` because the tests fail when ``generated/`` is not a fresh build.

``import archc`` stays torch-free: a generated module is imported only by ``create_model``.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import re
from functools import lru_cache
from importlib import resources

from ..errors import did_you_mean

PACKAGE = "archc.models"


def list_models(pattern: str | None = None) -> list[str]:
    """Every shipped variant, or those matching the fnmatch ``pattern`` (``"resnet*"``), sorted as timm
    sorts (numbers by value: resnet18 before resnet101)."""
    names = list(_index())
    if pattern:
        names = fnmatch.filter(names, pattern)
    return sorted(names, key=_natural_key)


def create_model(name: str, pretrained: bool = False, **kwargs):
    """A new ``nn.Module`` of the shipped variant ``name``, its factory given ``kwargs``
    (``num_classes=10``); imports torch."""
    index = _index()
    if name not in index:
        hint = did_you_mean(name, index, otherwise="archc.list_models() names them all")()
        raise ValueError(f"unknown model '{name}': {hint}")
    if pretrained:
        raise ValueError(f"archc has no pretrained weights for '{name}': create the model with pretrained=False "
                         "and load a state_dict into it (torchvision's load strictly where it has the network)")
    module = importlib.import_module(f"{PACKAGE}.{index[name]}")
    return getattr(module, name)(**kwargs)


@lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    """Each variant's name -> the module of ``archc.models`` that holds its factory."""
    try:
        package = resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"No module named '{PACKAGE}': archc is installed without its models (an "
                                  "editable install made before they were added: run pip install -e . again)",
                                  name=PACKAGE) from None
    index: dict[str, str] = {}
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py") and not entry.name.startswith("_"):
            for factory in _factories(entry.read_text(encoding="utf-8")):
                index.setdefault(factory, entry.name[:-3])
    return index


def _factories(source: str) -> list[str]:
    """A generated module's factories: its exported functions (the rest of ``__all__`` are classes)."""
    tree = ast.parse(source)
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = set(ast.literal_eval(node.value))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in exported]


def _natural_key(name: str) -> list[int | str]:
    """timm's sort key: runs of digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]
