"""The lifting pipeline: capture, blocks, printing, and the round trip that proves the text."""

from __future__ import annotations

import re

from . import ir
from .blocks import BlockDef, _Walk, make_defs
from .capture import capture
from .errors import LiftError
from .names import Names
from .write import Printer


def _instances(part, out: list) -> list:
    """The parts that become blocks, children before their parents (the root left out)."""
    for _, child in getattr(part, "children", []):
        _instances(child, out)
        if isinstance(child, ir.Dag) or (isinstance(child, ir.Seq) and child.cls is not None):
            out.append(child)
    return out


def variant_name(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    name = re.sub(r"\W", "_", name).strip("_") or "model"
    return name if name[0].isalpha() else "m_" + name


def lift_unchecked(model, example_input, name: str | None = None, header: str = "") -> str:
    """The spec text for ``model`` as it runs on ``example_input`` (one sample's batch or more), not yet proven."""
    return _lift_text(model, example_input, name, header)[0]


def _lift_text(model, example_input, name: str | None, header: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """The text, and each block's module (its first instance's path and class) by the block's name."""
    if example_input.dim() < 2:
        raise LiftError("the example input needs a batch dimension first")
    root = capture(model, example_input)
    if isinstance(root, ir.Leaf):
        raise LiftError(f"the model is a single {type(model).__name__} layer: there is nothing to lift")
    names = Names()
    net = names.block(type(model).__name__)
    defs = make_defs(_instances(root, []), names)
    walk = _Walk(defs)
    _, template = walk.body(root)
    printer = Printer(defs)
    blocks: list[BlockDef] = []
    for d in defs.values():
        if d not in blocks:
            blocks.append(d)
    parts = [header.rstrip() + "\n"] if header else []
    for d in blocks:
        parts.append(printer.block_text(d) + "\n")
    root_def = BlockDef(name=net, kind="", template=template, exprs=list(walk.values))
    printer.block = root_def
    net_lines = printer.network_text(net, template, tuple(example_input.shape[1:]))
    parts.append("\n".join(net_lines) + "\n")
    parts.append(f"variant {name or variant_name(type(model).__name__)} = {net}()\n")
    from ..lang.format import format_source  # the canonical layout: long lines wrapped as `archc fmt` wraps them

    modules = {d.name: (d.template.path, d.template.cls or "") for d in blocks}
    modules[net] = ("", type(model).__name__)
    return format_source("\n".join(parts), "lifted.arch"), modules


def lift(model, example_input, name: str | None = None, header: str = "") -> str:
    """The spec text for ``model``, proven: it compiles, the model's weights load into the built network strictly,
    and its eval outputs on ``example_input`` are identical. A ``LiftError`` otherwise."""
    from .roundtrip import verify

    text, modules = _lift_text(model, example_input, name, header)
    verify(text, model, example_input, modules=modules)
    return text
