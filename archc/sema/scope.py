"""What elaboration keeps while it walks a body: tensors, the scope that names modules, the frame
of a block call; how statement names are checked, and how call arguments bind to parameters."""

from __future__ import annotations

import keyword
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from ..lang.tree import same_ast
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
    inner: dict[str, n.Target] = field(default_factory=dict)  # a container in a container -> the path that made it
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
    """A dotted name (``convs.0``, ``stages.1.blocks.0``); ``int_keys``: whether each key after the container's name
    is a whole number, given as one (``{i}``, ``0``)."""

    int_keys: tuple[bool, ...] = ()


# the attributes of nn.ModuleDict that a key of one would shadow (add_module refuses them)
DICT_ATTRIBUTES = frozenset({"keys", "items", "values", "pop", "clear", "update"})


def path_segments(target: n.Target) -> list[list]:
    """A dotted name as written, split at its dots: the container's name, then each key's text and expressions."""
    segments: list[list] = [[]]
    for p in target.parts:
        if isinstance(p, str):
            first, *rest = p.split(".")
            segments[-1] += [first] if first else []
            segments.extend([part] if part else [] for part in rest)
        else:
            segments[-1].append(p)
    return segments


def check_path(target: n.Target, values: list, nested: bool = False) -> PathName:
    """A dotted name from its text and the values it interpolates (ints and strings, one for each ``{...}``): a
    container's name, then a key for each level of containers, each after a '.' (``convs.0``, ``heads.cls``,
    ``stages.1.blocks.0``); ``nested``: a tap's, any path of names."""
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
        if not nested and (key in RESERVED or key in DICT_ATTRIBUTES or key.startswith("_")):
            raise SpecError(f"'{'.'.join(texts)}': the key '{key}' is reserved: an attribute of the container that "
                            "would hold it (nn.ModuleDict's, or nn.Module's)", target.span, hint="choose another key")
    name = PathName(".".join(texts))

    def int_key(seg: list, text: str) -> bool:
        values = [v for v in seg if v != ""]
        return len(values) == 1 and type(values[0]) is int or (text.isdigit() and all(isinstance(v, str) for v in values))

    name.int_keys = tuple(int_key(seg, text) for seg, text in zip(segments[1:], texts[1:]))
    return name


def claim_member(scope: Scope, name: str, target: n.Target) -> list[tuple[int, int, str, bool]]:
    """Check a new name against the containers of its scope: a dotted name is a member of a container, and of the
    containers above it, which the scope's plain names must not clash with (nor a layer's name with a container's).
    Gives, for each level whose key is new in its container (0: the key after the container's name), its (level,
    position in its container, key, whether the key is a whole number): what decides each container's class."""
    if name in scope.containers:
        raise SpecError(f"'{name}' is a container of modules here ({name}.0, ...) and cannot name a layer too",
                        target.span, notes=[("its first member", scope.containers[name][0])],
                        hint="give the layer another name, or make it a member: '" + name + ".last = ...'")
    if not target.dotted:
        return []
    if scope.numbered:
        raise SpecError(f"'{name}' is a dotted name in a named seq, which numbers its own children", target.span,
                        hint="name the seq's children plainly, or write the loop in a block's body")
    parts = name.split(".")
    for depth in range(1, len(parts)):
        above = ".".join(parts[:depth])
        if above in scope.names:
            raise SpecError(f"'{above}' is a layer here, so '{name}' cannot make it a container", target.span,
                            notes=[("the layer", scope.names[above])],
                            hint="give the container another name than the layer's")
    new = []
    for level in range(len(parts) - 1):
        container, child = ".".join(parts[:level + 1]), ".".join(parts[:level + 2])
        span, count = scope.containers.get(container, (target.span, 0))
        if level == len(parts) - 2 or child not in scope.containers:  # a key new in its container
            new.append((level, count, parts[level + 1], getattr(name, "int_keys", ())[level:level + 1] == (True,)))
            count += 1
        scope.containers[container] = (span, count)
        if level:
            _same_keys(scope, container, level, target)
    return new


def _same_keys(scope: Scope, container: str, level: int, target: n.Target) -> None:
    """A container in a container is named by its keys as written, the same in every path through it: where one
    path writes 'stages.0' and another 'stages.{s}', which statement makes the container is left open."""

    first = scope.inner.setdefault(container, target)
    if first is not target and not same_ast(path_segments(first)[:level + 1], path_segments(target)[:level + 1]):
        def written(t: n.Target) -> str:
            return ".".join("".join(p if isinstance(p, str) else f"{{{p.name}}}" if isinstance(p, n.Var) else "{...}"
                                    for p in seg) for seg in path_segments(t)[:level + 1])

        raise SpecError(f"the container '{container}' is written '{written(target)}' here, but '{written(first)}' "
                        "where it was made", target.span, notes=[("made here", first.span)],
                        hint="write a container in a container the same way in every path through it")


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


