"""What the emitters of one class share (``ClassContext``) and what the classes tell each other
(``ClassInfo``, ``StmtInfo``): imported by every emitter, importing none."""

from __future__ import annotations

import builtins
import keyword
from collections import Counter
from dataclasses import dataclass, field

from ...errors import SpecError
from ...lang import nodes as n
from ...lang.loader import GENERATED_LOCALS
from ...sema.expr import BUILTINS, Evaluator
from ...sema.exprfold import fold, free_names, is_literal
from ...sema.scope import RESERVED
from ...sema.taps import tapped_blocks
from ...sema.values import OpRef
from .containers import container_kinds
from .emit import FIXED_NAMES, bound_names, input_features, nested_bodies, symbol, through_lets


@dataclass
class ClassInfo:
    """What a caller needs to know about a generated block class."""

    name: str
    out_formula: n.Expr | None  # output channels over the parameters and in_channels, if expressible
    out_formulas: list[n.Expr] | None = None  # a block with several outputs: each one's, if expressible


@dataclass
class StmtInfo:
    """Shapes seen for each statement in every elaboration: (input, output) pairs; and what the classes write."""

    shapes: dict[n.Stmt, list[tuple[tuple[int, ...], tuple[int, ...]]]] = field(default_factory=dict)
    # whether the generated code runs each statement's op in place (an activation built or called with
    # inplace=True, a residual's ``out += identity``), by the statement's span: the one record of that choice,
    # which ``archc stats`` reads (``Spec.in_place``) to count what makes no tensor
    in_place: dict[n.Span, bool] = field(default_factory=dict)
    # the spans of the layers whose padding is "same" (TensorFlow's) in some use: built as the kind's same_module
    same_padded: frozenset = frozenset()

    def get(self, stmt) -> list:
        return self.shapes.get(stmt, [])


class ClassContext:
    """What ``__init__`` and ``forward`` emission share about one class. ``infos`` gives the classes it calls."""

    def __init__(self, definition: n.BlockDef | n.NetworkDef, blocks: dict[str, n.BlockDef],
                 constants: dict[str, object], stmt_info: StmtInfo, infos, block_params: set[str],
                 op_params: dict[str, str] | None = None, named: set[str] = frozenset(), networks: dict | None = None,
                 network_unused=None):
        self.d = definition
        self.is_network = isinstance(definition, n.NetworkDef)
        self.blocks = blocks
        self.constants = constants  # the file's lets, functions, blocks and value ops: what names are known to be
        # the file's lets are module constants, read by name (a table appears once, as the spec writes it)
        # (a let named like a local of every class, ``x`` say, is printed as its value instead)
        self.named = {k: symbol(k) for k in named if k in constants and k not in GENERATED_LOCALS}
        self.printing = {k: v for k, v in constants.items() if k not in self.named}
        self.info = stmt_info
        self.infos = infos  # callable: block name -> ClassInfo
        self.params = [p.name for p in definition.params]
        for p in definition.params:
            check_parameter_name(p)
        self.block_params = block_params  # parameters that hold a block class
        # parameters that hold an op's module class (an activation or a norm), and how it is built: "width" (from the
        # input's width), "in_place" (every op it holds may work in place) or "plain"
        self.op_params = op_params or {}
        self.networks = networks or {}  # the file's networks: a layer may call one (an ensemble's member)
        self.network_unused = network_unused or (lambda name: set())  # name -> the parameters its class omits
        self.sequential = isinstance(definition, n.BlockDef) and definition.sequential
        self.tapped = tapped_blocks(blocks)  # blocks whose taps become their caller's
        # a network with taps, or a block with taps: its feature_info and forward_taps
        self.has_taps = (self.is_network or definition.name in self.tapped) and n.has_taps(definition.body, self.tapped)
        self.stored: set[str] = set()  # names forward reads from self
        self.inplace_ok: dict[int, bool] = {}  # stmt -> may this ReLU module work in place
        self.modules_named: set[str] = set()
        self.containers = container_kinds(definition.body, stmt_info)  # dotted names: nn.ModuleList or ModuleDict
        self.referenced: set[str] = set()  # names the generated code reads
        self.when_attributes: dict[n.Residual, str] = {}  # residual -> the attribute holding its condition
        self.hoisted: set[n.Let] = set()  # lets of forward that __init__ computes once (``hoistable``)
        self._let_count = Counter(s.name for s in definition.walk() if isinstance(s, n.Let))
        for s in definition.walk():  # a loop variable of the same name is another binding: never hoisted
            if isinstance(s, n.For):
                self._let_count.update({name: 2 for name in n.pattern_names(s.var)})
        self.let_names = set(self._let_count)
        self._attributes = set(self.params) | _target_names(definition.body) | {"in_channels", "out_channels"}
        # lets and loop variables, and the module's own names (classes, functions, constants) that a generated
        # local would hide: names no generated local may take
        self.locals = bound_names(definition.body) | set(blocks) | set(self.networks) | \
            {k for k, v in constants.items() if not isinstance(v, OpRef)}
        # parameters a condition of this block's init rules reads: the network's initialisation reads them
        self.kept_for_init = {name for cond in _init_conditions(definition.body)
                              for name in free_names(through_lets(cond, definition.body))} & \
            set(self.params) if not self.is_network else set()

    def static_truth(self, e: n.Expr) -> bool | None:
        """The value of a condition when the constants decide it; None when it depends on arguments."""
        try:
            folded = fold(e, self.constants, tensors=lambda ref, attr: None)
        except SpecError:
            return None
        return bool(Evaluator({})(folded)) if is_literal(folded) else None

    def hoistable(self, stmt: n.Let, value: n.Expr, locals_: set[str], construction: set[str]) -> bool:
        """Whether a let of forward could be computed once in __init__, as ``self.<name>``: the body binds its name
        once, its value reads only the constructor's arguments and other lets (never a loop variable nor the running
        tensor), so it is the same in every call, and computing it where forward would not (a shortcut that is off)
        cannot fail: no division but by a nonzero number, no call, no indexing."""
        if stmt in self.hoisted:  # forward_taps meets the let forward hoisted
            return True
        if stmt.name in self._attributes or stmt.name in RESERVED or self._let_count[stmt.name] != 1:
            return False
        free = free_names(value)
        return free <= set(self.params) | self.let_names | construction and not free & locals_ and _total(value)

    def hoist(self, stmt: n.Let) -> bool:
        """__init__ sets ``self.<name>`` where it meets the let (unless another attribute took the name since)."""
        if stmt not in self.hoisted:
            if stmt.name in self._attributes:
                return False
            self.hoisted.add(stmt)
            self._attributes.add(stmt.name)
        return True

    def when_attribute(self, stmt: n.Residual) -> str:
        """The attribute that holds a residual's ``when`` condition, computed in __init__ (torchvision's
        ``use_res_connect``)."""
        if stmt not in self.when_attributes:
            name, i = "use_residual", 0
            while name in self._attributes:
                i += 1
                name = f"use_residual_{i}"
            self._attributes.add(name)
            self.when_attributes[stmt] = name
        return self.when_attributes[stmt]

    def fold(self, e: n.Expr, cur: n.Expr | None = None) -> n.Expr:
        """``e`` for ``__init__``: constants folded, ``in.channels`` the constructor's argument, ``out.channels``
        the channels ``cur`` at this point."""
        def tensors(ref: n.TensorRef, attr: str):
            if attr != "channels":
                raise SpecError(f"'{ref.which}.{attr}' is known only while elaborating; generated code tracks "
                                "channels alone", ref.span, hint="use .channels, or compute the size from parameters")
            if ref.which == "in" and self.is_network:  # the network's input: its channels as the spec gives them
                return self.fold(input_features(self.d))
            if ref.which == "in":
                return symbol("in_channels")
            if cur is None:
                raise SpecError("'out' is not available here", ref.span)
            return cur

        folded = fold(e, self.printing, self.named, tensors=tensors)
        self.referenced |= free_names(folded)
        return folded


def check_parameter_name(p: n.Param) -> None:
    """A parameter becomes a Python argument (and maybe an attribute) of the generated code."""
    if keyword.iskeyword(p.name) or keyword.issoftkeyword(p.name) or p.name in FIXED_NAMES or p.name in BUILTINS \
            or p.name in dir(builtins) or (p.name in RESERVED and p.name != "out_channels") or p.name.startswith("_"):
        raise SpecError(f"parameter name '{p.name}' is reserved in the generated code", p.span,
                        hint="choose another name")


def _total(e: n.Expr) -> bool:
    """Whether evaluating ``e`` cannot raise: arithmetic, comparisons, conditions and literals, a division only by
    a nonzero number."""
    for x in e.walk():
        if isinstance(x, (n.Call, n.Index, n.Slice, n.ListComp, n.Attr, n.TensorRef)):
            return False
        if isinstance(x, n.BinOp) and x.op in ("/", "//", "%", "**"):
            if x.op == "**" or not (isinstance(x.right, n.Num) and x.right.value != 0):
                return False
    return True


def _init_conditions(stmts) -> list[n.Expr]:
    """The conditions that init rules in a body stand under (their own and their ifs')."""
    found = []
    for s in stmts:
        if isinstance(s, n.Init) and s.cond is not None:
            found.append(s.cond)
        if isinstance(s, n.If) and _has_init(s.body + s.orelse):
            found.append(s.cond)
        for body in nested_bodies(s):
            found += _init_conditions(body)
    return found


def _has_init(stmts) -> bool:
    return any(isinstance(s, n.Init) or any(_has_init(body) for body in nested_bodies(s)) for s in stmts)


def _target_names(stmts) -> set[str]:
    """Every name a body gives its statements, at any depth."""
    names: set[str] = set()
    for s in stmts:
        target = getattr(s, "target", None)
        if target is not None:
            names.add("".join(p for p in target.parts if isinstance(p, str)))
        for body in nested_bodies(s):
            names |= _target_names(body)
    return names


__all__ = ["ClassContext", "ClassInfo", "StmtInfo", "check_parameter_name"]
