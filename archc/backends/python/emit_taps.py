"""A network's taps in its generated ``__init__``: ``self.feature_info``, timm's list of the channels,
reduction and name of each feature map, and the stride of the main path that the reductions follow. A block
with taps has its own, from its input; the class that calls it takes its entries, renamed and reduced.

The main path is the network's body and the seqs, loops and conditionals in it that hold a tap; any
other statement there (a layer, a branch, a seq without a tap) is one step, whose stride is its input's
height over its output's. Outside loops and conditionals the strides are multiplied out here; from the
first loop or conditional that changes the stride on, a local ``reduction`` carries them, as timm's
models carry ``net_stride``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.taps import step_stride, stride_name
from . import ir
from .irbuild import interpolated, read_attribute

SPAN = n.Span("<generated>", 0, 0, 0, 0)


UNSURE = ["<depends on a condition>"]  # last_named where branches or a condition decide it


@dataclass
class TapState:
    reduction: int | None = 1  # multiplied out so far; None: the local ``reduction`` holds it
    main: bool = True  # emitting a statement of the main path (not inside a step)
    prefix: list = field(default_factory=list)  # name parts of the opened named seqs around
    last_named: list | None = None  # name parts of the last named step here (UNSURE: it depends on a condition)


class TapTracker:
    def __init__(self, body: list[n.Stmt], info, lower, local, tapped: frozenset[str] = frozenset(),
                 options: frozenset[str] = frozenset()):
        """``tapped``: the blocks whose taps become their caller's (``sema.taps.tapped_blocks``); ``options``: the
        names a caller may set (the network's ``option`` parameters and the lets that read them)."""
        self.info = info
        self.options = options
        self.holders = n.tap_holders(body, tapped)
        self.holders |= self._varying(body)
        last = max((i for i, s in enumerate(body) if isinstance(s, n.Tap) or s in self.holders), default=-1)
        self.after_last = {s for s in body[last + 1:]}  # the network's head: its strides matter to no tap
        self.lower = lower  # an expression of the spec -> its IR in __init__
        self.local = local  # a free local name for the running reduction, made when first needed
        self.var: str | None = None
        self.entry: str | None = None  # the loop variable over a tapped block's feature_info
        self.state = TapState()

    def _varying(self, stmts: list[n.Stmt]) -> set:
        """The ifs, loops and seqs of the main path whose runs change the stride differently (a patch embedding
        per patch size, a stage whose first block halves the map but not in the first stage): their own
        statements are the steps, each multiplying the reduction by its own stride as it runs."""
        found = set()
        for s in stmts:
            inner = [*getattr(s, "body", []), *getattr(s, "orelse", [])]
            if s in self.holders:
                found |= self._varying(inner)
            elif isinstance(s, (n.If, n.For, n.Seq)) and len({step_stride(a, b) or 1 for a, b in self.info.get(s)}) > 1 \
                    and not (isinstance(s, n.Seq) and self._named_stride(s)):
                found |= {s} | self._varying(inner)
        return found

    def snapshot(self) -> TapState:
        return replace(self.state, prefix=list(self.state.prefix))

    def restore(self, state: TapState) -> None:
        self.state = state

    def _named_stride(self, stmt: n.Stmt, among=None) -> str | None:
        """The name of a number the step reads (of ``among``) that equals its stride in every run, if there is one."""
        shapes, reads = self.info.get(stmt), self.info.get(("names", stmt))
        runs = list(zip([step_stride(a, b) or 1 for a, b in shapes], reads))
        return stride_name(runs, among) if len(reads) == len(shapes) else None

    def factor(self, stmt: n.Stmt) -> int | str:
        """A step's stride: a number, the same in every run of it (in every loop iteration and variant), or the
        name of a number the step reads that equals its stride in every run (a patch embedding's ``patch_size``)."""
        if stmt in self.after_last:
            return 1
        strides = {step_stride(a, b) or 1 for a, b in self.info.get(stmt)}
        if len(strides) == 1 and self.options:  # the same in every variant, but a caller's option may change it
            name = self._named_stride(stmt, self.options)
            if name is not None:
                return name
        if len(strides) <= 1:
            return strides.pop() if strides else 1
        name = self._named_stride(stmt)
        if name is None:
            raise SpecError(f"this step changes the stride by {' or '.join(map(str, sorted(strides)))} in "
                            "different runs, and no number it reads is its stride in every run, so the reductions "
                            "of the taps after it cannot be written", stmt.span,
                            hint="pass the stride as a parameter the step reads (stride = patch_size), tap before "
                                 "it, or write the runs of different strides as statements of their own")
        return name

    def strides_inside(self, stmt: n.Stmt) -> bool:
        """Whether a loop or conditional changes the main path's stride (so its runs decide the reduction)."""
        if n.is_step(stmt, self.holders):
            return self.factor(stmt) != 1
        return any(self.strides_inside(s) for s in [*getattr(stmt, "body", []), *getattr(stmt, "orelse", [])])

    def before(self, stmt: n.Stmt, body: list) -> None:
        """Before a statement that may run zero or many times: from here on, a local carries the reduction."""
        branches = isinstance(stmt, (n.For, n.If)) or getattr(stmt, "cond", None) is not None
        if self.state.main and self.state.reduction is not None and branches and self.strides_inside(stmt):
            self.var = self.var or self.local("reduction")
            body.append(ir.Assign(ir.Name(self.var), ir.const(self.state.reduction)))
            self.state.reduction = None

    def enter(self, stmt: n.Stmt) -> bool:
        """Start a statement; True if it is a step of the main path (its inside is not)."""
        s = self.state
        if not s.main:
            return False
        if n.is_step(stmt, self.holders):
            s.main = False
            return True
        if isinstance(stmt, n.Seq) and stmt.target is not None:
            s.prefix.append(stmt.target)
        return False

    def leave(self, stmt: n.Stmt, step: bool, body: list) -> None:
        s = self.state
        if step:
            s.main = True
            factor = self.factor(stmt)
            if isinstance(factor, str):  # a parameter's value: from here on, a local carries the reduction
                value = self.lower(n.Var(factor, stmt.span))
                if s.reduction is None:
                    body.append(ir.AugAssign(ir.Name(self.var), "*", value))
                else:
                    self.var = self.var or self.local("reduction")
                    total = value if s.reduction == 1 else ir.BinOp("*", ir.const(s.reduction), value)
                    body.append(ir.Assign(ir.Name(self.var), total))
                    s.reduction = None
            elif factor != 1 and s.reduction is None:
                body.append(ir.AugAssign(ir.Name(self.var), "*", ir.const(factor)))
            elif factor != 1:
                s.reduction *= factor
        elif isinstance(stmt, n.Seq) and stmt.target is not None and s.main:
            s.prefix.pop()
        if s.main and isinstance(stmt, (n.Layer, n.Seq)) and stmt.target is not None:
            # a layer under a condition may be skipped: the last named one is then the one before it
            s.last_named = [*self._parts(s.prefix), *stmt.target.parts] if stmt.cond is None else UNSURE

    def join(self, then: TapState) -> None:
        """After an if whose branches were emitted from the same state (``then`` is where the first ended,
        this tracker where the second did): a name they disagree on is no longer known."""
        if then.last_named != self.state.last_named:
            self.state.last_named = UNSURE

    def _parts(self, targets: list[n.Target]) -> list:
        return [part for t in targets for part in [*t.parts, "."]]

    def statement(self, stmt: n.Tap, channels: ir.Node) -> ir.Node:
        """``self.feature_info.append(dict(num_chs=..., reduction=..., module=...))`` for a tap."""
        s = self.state
        parts = [*self._parts(s.prefix), *stmt.target.parts] if stmt.target is not None else s.last_named
        if parts is None:  # in a branch no variant takes, so the elaborator never saw it
            raise SpecError("this tap needs a name: no named layer comes before it", stmt.span,
                            hint="write 'tap NAME'")
        if parts is UNSURE:
            raise SpecError("this tap needs a name: which named layer comes before it depends on a condition",
                            stmt.span, hint="write 'tap NAME'")
        name = interpolated(n.Target(parts, SPAN), self.lower)
        reduction = ir.Name(self.var) if s.reduction is None else ir.const(s.reduction)
        entry = ir.call("dict", num_chs=channels, reduction=reduction, module=name)
        return ir.Expr(ir.call("self.feature_info.append", entry))

    def nested(self, stmt: n.Layer, owner: ir.Node) -> ir.Node:
        """After the call of a block with taps (a module of ``owner``): its ``feature_info`` entries as this
        class's, named by the call's path and with the reduction before the call multiplied in."""
        s = self.state
        if stmt.target.is_plain:
            module = read_attribute(owner, "".join(stmt.target.parts))
        else:
            module = ir.call("getattr", owner, interpolated(stmt.target, self.lower))
        self.entry = self.entry or self.local("info")
        entry = ir.Name(self.entry)
        reduction: ir.Node = ir.Index(entry, ir.const("reduction"))
        if s.reduction is None:
            reduction = ir.BinOp("*", ir.Name(self.var), reduction)
        elif s.reduction != 1:
            reduction = ir.BinOp("*", ir.const(s.reduction), reduction)
        prefix = interpolated(n.Target([*self._parts(s.prefix), *stmt.target.parts, "."], SPAN), self.lower)
        name = ir.BinOp("+", prefix, ir.Index(entry, ir.const("module")))
        append = ir.call("self.feature_info.append", ir.call("dict", entry, reduction=reduction, module=name))
        return ir.For(entry, ir.Attr(module, "feature_info"), (ir.Expr(append),))


def option_names(definition) -> frozenset[str]:
    """A network's ``option`` parameters and the lets of its body that read them (directly or through such lets):
    the numbers a factory's caller may change from what every variant gives."""
    found = {p.name for p in definition.params if getattr(p, "option", False)}
    if not found:
        return frozenset()
    for stmt in definition.body:
        if isinstance(stmt, n.Let) and any(isinstance(v, n.Var) and v.name in found for v in stmt.value.walk()):
            found.add(stmt.name)
    return frozenset(found)
