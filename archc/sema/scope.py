"""What elaboration keeps while it walks a body: tensors, the scope that names modules, the frame
of a block call; how statement names are checked, and how call arguments bind to parameters."""

from __future__ import annotations

import keyword
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from .layout import NAMES, TensorType, is_generic
from .values import TensorInfo
from .values import show as show  # where the elaborator and the diagrams import it from

# Attribute names every generated module has (nn.Module's own, and what the generated code adds):
# a layer, parameter or side output of that name would replace them.
RESERVED = frozenset({
    "self", "torch", "nn", "F", "in_channels", "out_channels", "forward", "training", "super",
    "feature_info", "forward_taps",  # a network with taps has them
} | {
    # nn.Module's public API: a module named after one of these would shadow it
    "add_module", "apply", "bfloat16", "buffers", "children", "compile", "cpu", "cuda", "double", "dump_patches",
    "eval", "extra_repr", "float", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half",
    "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook",
    "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module",
    "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu",
    "zero_grad", "call_super_init", "append", "extend", "insert", "pop", "T_destination",
})
MAX_NAME = 200  # characters in one module name


@dataclass
class Tensor:
    node: str
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    def info(self) -> TensorInfo:
        t = self.type
        if t.layout in ("CHW", "HWC"):
            return TensorInfo(t.size("C"), t.size("H"), t.size("W"), kind=f"{t.describe()} ({t.layout})")
        if t.layout in ("CL", "CDHW"):
            return TensorInfo(t.size("C"), t.size("H"), t.size("W"), length=t.size("L"),
                              kind=f"{t.describe()} ({NAMES[t.layout]})")
        if t.layout == "F":
            return TensorInfo(None, features=t.shape[0], kind="a flat tensor")
        if is_generic(t.layout):
            return TensorInfo(None, features=t.features, kind=NAMES[t.layout])
        # a token's D features are the sequence's channels: what the generated code tracks, as for a map
        return TensorInfo(t.size("D"), features=t.size("D"), length=t.size("L"), kind=NAMES[t.layout])


@dataclass
class Scope:
    """Where new module names go: a block instance or a named seq."""

    prefix: str
    numbered: bool  # a named seq or a seq block: unnamed children are numbered, every child is a module
    path: tuple[str, ...]
    names: dict[str, n.Span] = field(default_factory=dict)
    count: int = 0
    unnamed: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def child(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass
class Frame:
    """One block (or network) body being elaborated."""

    env: dict[str, object]
    scope: Scope
    block_input: Tensor
    where: list[tuple[str, n.Span | None]]  # notes: the call chain
    side: str | None = None
    allow_side: bool = False
    block_path: str = ""  # the module path of the block instance whose body this is ("" for the network)
    outputs: dict[str, Tensor] = field(default_factory=dict)  # plainly named layers of this body, for side ... from
    main: bool = False  # the body of the network being built, or a seq in it: where taps may stand
    last_named: tuple[str, str] | None = None  # (module path, node id) of the last named layer or seq here
    flow: bool = False  # a module declared in a block with named tensors: its result keeps unnamed axes unnamed


def check_name(name: str, target: n.Target) -> str:
    """A statement's name: a state_dict key part, and (unless written quoted) a Python attribute."""
    if target.quoted:
        bad = next((c for c in name if not c.isprintable() or c.isspace() or c in ".\"'\\{}"), None)
        if not name or bad is not None:
            what = "empty" if not name else f"holds {bad!r}"
            raise SpecError(f"the name {name!r} {what}", target.span,
                            hint="a quoted name may hold any printable character but spaces, quotes, braces, "
                                 "backslashes and '.' (which separates state_dict keys)")
    elif not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(f"'{name}' is not a valid Python identifier", target.span,
                        hint="write it quoted (\"block1-0\") to use it as a state_dict key only")
    if len(name) > MAX_NAME:
        raise SpecError(f"the name is {len(name)} characters long (limit {MAX_NAME})", target.span)
    if name in RESERVED or name.startswith("_"):
        raise SpecError(f"'{name}' is reserved for the generated code", target.span, hint="choose another name")
    return name


def signature_bind(params: list[n.Param], args: list, kwargs: list[tuple[str, object, n.Span]],
                   what: str, call_span: n.Span, eval_default) -> dict[str, object]:
    """Bind call arguments to a block's or network's parameters."""
    names = [p.name for p in params]
    if len(args) > len(params):
        raise SpecError(f"{what} takes {len(params)} positional argument{'s' * (len(params) != 1)} but "
                        f"{len(args)} were given", call_span)
    bound = dict(zip(names, args))
    for key, value, span in kwargs:
        if key not in names:
            raise SpecError(f"{what} has no parameter '{key}'", span, hint=did_you_mean(key, names))
        if key in bound:
            raise SpecError(f"{what} got parameter '{key}' twice", span)
        bound[key] = value
    result = {}
    for p in params:
        if p.name in bound:
            result[p.name] = bound[p.name]
        elif p.default is not None:
            result[p.name] = eval_default(p, result)
        else:
            raise SpecError(f"{what} is missing its argument '{p.name}'", call_span)
    return result


