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
    containers: dict[str, tuple[n.Span, int]] = field(default_factory=dict)  # convs -> (first member's name, members)
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
    elif keyword.iskeyword(name):
        raise SpecError(f"'{name}' is not a valid Python identifier: a reserved word of Python", target.span,
                        hint=f"write it quoted (\"{name}\" = ...) to use it as a state_dict key only")
    elif not name.isidentifier():
        raise SpecError(f"'{name}' is not a valid Python identifier", target.span,
                        hint="write it quoted (\"block1-0\") to use it as a state_dict key only")
    if len(name) > MAX_NAME:
        raise SpecError(f"the name is {len(name)} characters long (limit {MAX_NAME})", target.span)
    if name in RESERVED or name.startswith("_"):
        raise SpecError(f"'{name}' is reserved for the generated code", target.span, hint="choose another name")
    return name


class PathName(str):
    """A dotted name (``convs.0``); ``int_key``: its key is a whole number, given as one (``{i}``, ``0``)."""

    int_key: bool = False


NESTED_HINT = ("make the inner container a block's: 'stages.{s} = Stage(...)', with 'blocks.{i} = ...' in Stage's "
               "body, gives stages.1.blocks.0")


def check_path(target: n.Target, values: list, nested: bool = False) -> PathName:
    """A dotted name from its text and the values it interpolates (ints and strings, one for each ``{...}``): a
    container's name, a '.' and a key (``convs.0``, ``heads.cls``); ``nested``: a tap's, any path of names."""
    segments: list[list] = [[]]
    given = iter(values)
    for p in target.parts:
        if isinstance(p, str):  # the text: its dots separate
            first, *rest = p.split(".")
            segments[-1].append(first)
            segments.extend([part] for part in rest)
        else:
            segments[-1].append(next(given))
    texts = ["".join(map(str, seg)) for seg in segments]
    if not (isinstance(target.parts[0], str) and "." in target.parts[0]):
        raise SpecError(f"'{'.'.join(texts)}': a container's name is written out, not interpolated", target.span,
                        hint="interpolate the key instead: 'convs.{i}'")
    check_name(texts[0], n.Target([texts[0]], target.span))
    for key in texts[1:]:
        if not (key.isidentifier() or key.isdigit()):
            raise SpecError(f"'{'.'.join(texts)}': the key {key!r} is neither a name nor a whole number", target.span,
                            hint="a container's keys are names (heads.cls) or whole numbers (convs.0, convs.{i})")
    if len(texts) > 2 and not nested:
        raise SpecError(f"'{'.'.join(texts)}' names a container in a container", target.span, hint=NESTED_HINT)
    name = PathName(".".join(texts))
    last = [v for v in segments[-1] if v != ""]
    name.int_key = len(last) == 1 and type(last[0]) is int or (texts[-1].isdigit() and all(
        isinstance(v, str) for v in last))
    return name


def claim_member(scope: Scope, name: str, target: n.Target) -> tuple[int, str, bool] | None:
    """Check a new name against the containers of its scope: a dotted name is a container's member, which the
    scope's plain names must not clash with. Gives a member's (position in its container, key, whether the key is
    a whole number), which decides the container's class."""
    if not target.dotted:
        if name in scope.containers:
            raise SpecError(f"'{name}' is a container of modules here ({name}.0, ...) and cannot name a layer too",
                            target.span, notes=[("its first member", scope.containers[name][0])],
                            hint="give the layer another name, or make it a member: '" + name + ".last = ...'")
        return None
    container, key = name.split(".", 1)
    if scope.numbered:
        raise SpecError(f"'{name}' is a dotted name in a named seq, which numbers its own children", target.span,
                        hint="name the seq's children plainly, or write the loop in a block's body")
    if container in scope.names:
        raise SpecError(f"'{container}' is a layer here, so '{name}' cannot make it a container", target.span,
                        notes=[("the layer", scope.names[container])],
                        hint="give the container another name than the layer's")
    span, count = scope.containers.get(container, (target.span, 0))
    scope.containers[container] = (span, count + 1)
    return count, key, getattr(name, "int_key", False)


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


