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
import difflib
import fnmatch
import importlib
import os
import re
import types
import warnings
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

from ..lang.files import did_you_mean_spec
from .backbones import refuse_features
from .pretrained import pretrained_cfg

PACKAGE = "archc.models"


def list_models(filter: str | Sequence[str] = "", module: str = "", pretrained: bool = False,
                exclude_filters: str | Sequence[str] = "", features_only: bool = False) -> list[str]:
    """The variants archc can create, as timm lists its models: those matching any fnmatch pattern of ``filter``
    (``"resnet*"``, or a list of patterns), of the spec file ``module`` (``"resnet"``), and none of
    ``exclude_filters``; with ``features_only``, only the backbones (``create_model(name, features_only=True)``
    works for them: their networks have taps; not an ensemble, whose members are the backbones). Sorted as timm sorts (numbers by value: resnet18 before
    resnet101). The shipped models come first, then the variants of the specs on the search path
    (``ARCHC_SPEC_PATH`` and the ``archc.specs`` entry points). archc ships no pretrained weights:
    ``pretrained=True`` lists none."""
    if pretrained:
        return []
    index = {**_user_index(), **_index()}  # a shipped name wins over a user's spec
    names = list(index)
    if features_only:
        names = [n for n in names if n in _backbones() or (n not in _index() and n in _user_backbones())]
    include = [p for p in _patterns(filter) if p]
    if include:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in include)]
    exclude = [p for p in _patterns(exclude_filters) if p]
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude)]
    if module:
        names = [n for n in names if Path(str(index[n])).stem == module]
    return sorted(names, key=_natural_key)


def create_model(name: str, pretrained: bool = False, **kwargs):
    """A new ``nn.Module``: a shipped variant (``"resnet50"``), a variant of a spec on the search path, or a spec
    file itself (``"path/to/net.arch:variant"``, or ``"path/to/net.arch"`` for its first variant); its factory
    is given ``kwargs`` (``num_classes=10``, ``features_only=True``). Imports torch."""
    if pretrained:
        raise ValueError(f"archc has no pretrained weights for '{name}': create the model with pretrained=False "
                         "and load a state_dict into it (torchvision's load strictly where it has the network)")
    factory = model_entrypoint(name)
    refuse_features(name, factory, kwargs)
    _refuse_fixed(name, factory, kwargs)
    model = factory(**kwargs)
    cfg = pretrained_cfg(name) if name in _index() else None  # a shipped name: its reference's data config
    if cfg is not None:
        if "num_classes" in kwargs:
            cfg["num_classes"] = kwargs["num_classes"]
        model.pretrained_cfg = model.default_cfg = cfg  # (timm's two names for it)
    return model


def _refuse_fixed(name: str, factory, kwargs: dict) -> None:
    """A ``TypeError`` that says why, for an argument the network takes but the variant fixes (``se_ratio`` for
    regnet_x_400mf): the parameters that tell a network's variants apart are theirs (docs/language.md)."""
    import inspect

    taken = inspect.signature(factory).parameters
    net = inspect.signature(factory).return_annotation
    if isinstance(net, str):
        net = getattr(inspect.getmodule(factory), net, None)
    fixed = [k for k in kwargs if k not in taken and net is not None and k in inspect.signature(net).parameters]
    if fixed:
        raise TypeError(f"{name}() fixes '{fixed[0]}': it is one of the parameters that tell {net.__name__}'s "
                        f"variants apart, so it is the variant's, not an argument (build {net.__name__}(...) "
                        "for another value)")


def model_entrypoint(name: str):
    """The factory ``create_model`` calls for ``name`` (timm's ``model_entrypoint``): a function whose signature
    and docstring are the variant's. Imports torch; a spec file or a user's spec is compiled (and cached)."""
    path, _, variant = name.rpartition(":") if ":" in name else (name, "", "")
    if path.endswith(".arch") or ("/" in path and did_you_mean_spec(path)):  # a spec's path, or a near miss of one
        return _from_spec(Path(path), variant or None)
    index = _index()
    if name in index:
        return getattr(importlib.import_module(f"{PACKAGE}.{index[name]}"), name)
    users = _user_index()
    if name in users:
        return _from_spec(users[name], name)
    raise ValueError(f"unknown model '{name}': {suggest(name, [*index, *users])}")


def suggest(name: str, names: list[str], everything: str = "archc.list_models() names them all") -> str:
    """One line naming the three likeliest models: those the name begins first (``resnet5`` -> resnet50),
    then the closest spellings."""
    ordered = sorted(names, key=_natural_key)
    picks = [n for n in ordered if n.startswith(name)]
    picks += [n for n in difflib.get_close_matches(name, ordered, n=6, cutoff=0.5) if n not in picks]
    picks = picks[:3]
    if not picks:
        return everything
    listed = picks[0] if len(picks) == 1 else ", ".join(picks[:-1]) + " or " + picks[-1]
    return f"did you mean {listed}? ({everything})"


def _from_spec(path: Path, variant: str | None):
    from ..spec import load

    if not path.is_file():
        hint = did_you_mean_spec(path) or (None if path.parent.is_dir() else f"there is no folder {path.parent}")
        raise FileNotFoundError(f"no spec at {path}" + (f": {hint}" if hint else ""))
    spec = load(path)
    variant = variant or spec.default_variant()
    if variant not in spec.variants:
        raise ValueError(f"{path.name} has no variant '{variant}': "
                         f"{suggest(variant, list(spec.variants), 'its variants: ' + ', '.join(spec.variants))}")
    return getattr(spec.python_module(), variant)


def _patterns(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# ---------------------------------------------------------------- the user's specs

ENVIRONMENT = "ARCHC_SPEC_PATH"  # folders of specs, separated as PATH is (os.pathsep)
ENTRY_POINTS = "archc.specs"  # an installed package's folder of specs: a path, or a module whose folder holds them


def spec_folders() -> list[Path]:
    """Where ``list_models`` and ``create_model`` look for a user's specs: ``ARCHC_SPEC_PATH``'s folders, then
    those the installed packages' ``archc.specs`` entry points name."""
    folders = [Path(p) for p in os.environ.get(ENVIRONMENT, "").split(os.pathsep) if p]
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        try:
            target = entry.load()
        except Exception as exc:  # a broken package must not break archc
            warnings.warn(f"archc: the entry point {entry.name} = {entry.value} does not load ({exc})", stacklevel=2)
            continue
        if isinstance(target, types.ModuleType):
            folders += [Path(p) for p in getattr(target, "__path__", [])] or \
                ([Path(target.__file__).parent] if getattr(target, "__file__", None) else [])
        else:
            folders.append(Path(target))
    return folders


def _user_index() -> dict[str, Path]:
    """Each variant of a spec on the search path -> its file (the first file that names it wins)."""
    index: dict[str, Path] = {}
    for folder in spec_folders():
        for path in sorted(folder.glob("*.arch")) if folder.is_dir() else []:
            for variant in _variants(path, path.stat().st_mtime_ns):
                index.setdefault(variant, path)
    return index


@lru_cache(maxsize=256)
def _variants(path: Path, mtime: int) -> dict[str, bool]:
    """A spec's variants, each with whether its network has taps (a backbone), read by parsing the file alone (no
    checking, no torch); none if it does not parse."""
    from ..errors import SpecError
    from ..lang import nodes as n
    from ..lang.parser import parse
    from ..sema.taps import tapped_blocks

    try:
        module = parse(path.read_text(encoding="utf-8"), str(path))
    except (SpecError, OSError, UnicodeDecodeError, RecursionError):
        return {}
    blocks = tapped_blocks({block.name: block for block in module.blocks})  # (those of the files it uses unread)
    tapped = {net.name for net in module.networks if n.has_taps(net.body, blocks)}
    return {v.name: v.network in tapped for v in module.variants}


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


def _factories(source: str, backbones: bool = False) -> list[str]:
    """A generated module's factories: its exported functions (the rest of ``__all__`` are classes); with
    ``backbones``, those that take ``features_only``."""
    tree = ast.parse(source)
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = set(ast.literal_eval(node.value))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in exported and
            (not backbones or any(a.arg == "features_only" for a in node.args.kwonlyargs))]


@lru_cache(maxsize=1)
def _backbones() -> frozenset[str]:
    """The shipped variants whose factories take ``features_only``."""
    package = resources.files(PACKAGE)
    return frozenset(f for entry in package.iterdir() if entry.name.endswith(".py") and not entry.name.startswith("_")
                     for f in _factories(entry.read_text(encoding="utf-8"), backbones=True))


def _user_backbones() -> set[str]:
    """The variants of the user's specs whose networks have taps."""
    return {name for name, path in _user_index().items() if _variants(path, path.stat().st_mtime_ns)[name]}


def _natural_key(name: str) -> list[int | str]:
    """timm's sort key: runs of digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]
