"""A spec's inference form, written as a spec: the tree rewrite behind ``archc build --deploy`` and ``archc.deploy``.

Four rewrites, each driven by the op registry and the graphs rather than by any network:

- a layer whose kind is the identity in eval (``eval_identity``: dropout, stochastic depth) is left out, and so
  is a residual's ``stochastic_depth``;
- a layer whose kind folds into the kind of the layer just before it (``folds_into``: a batch norm after a conv
  or a linear) is left out, and the layer before it gets a bias: the weights are folded when a trained model is
  deployed (``convert.py``);
- a residual whose instances all sum linear branches that fit one conv (``terms.py``) becomes its body's conv, with
  a bias;
- an activation that a conv or linear layer can apply as it writes its output (``post_op``) is left out after one,
  and the layer becomes its fused kind (``fuses_into``: ``conv_act``, ``linear_act``) with that activation; a layer
  whose fused kind keeps its weights in oneDNN's layout (``packs``: ``conv_act``) becomes it without one too.

A fold needs the two to be consecutive steps of one sequential body (a block's, a seq's, a residual's), the first
unconditional and read by nothing else (no ``from NAME`` names it). Initialisation rules are dropped: a deployed
model's weights come from the trained one. Blocks with named tensors are kept as written (their dropout is
functional, the identity in eval). Statements keep their spans: the rewritten conv is the statement it was, so
``plan.py`` can match the two graphs node by node.
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass, field

from ..lang import nodes as n
from ..lang.loader import Program
from ..ops import REGISTRY
from .terms import MERGES_INTO

DROPPED_RESIDUAL_ARGS = ("stochastic_depth", "mode")


@dataclass
class Rewrites:
    """What the rewrite did, by statement span (the same in both programs)."""

    folded: dict[n.Span, n.Span] = field(default_factory=dict)  # the absorbing layer -> the layer folded into it
    removed: set[tuple[n.Span, str]] = field(default_factory=set)  # (span, kind) of each layer left out
    merged: set[n.Span] = field(default_factory=set)  # the residuals whose branches became their body's conv
    sums: set[n.Span] = field(default_factory=set)  # the convs (and linears) whose weights are built, not copied
    fused: dict[n.Span, str] = field(default_factory=dict)  # a layer that took in the activation after it -> its kind


def deploy_program(program: Program, merge: set[n.Span] = frozenset(),
                   held: dict[n.Span, str] | None = None, same: set[n.Span] = frozenset()) -> tuple[Program, Rewrites]:
    """The inference form of ``program`` (a new tree; the original is untouched) and what changed. ``merge``: the
    residuals whose instances all sum linear branches that fit one conv (``terms.mergeable``); ``held``: the layers
    that call an op a parameter holds, and that op in every instance (``bn1 = norm_layer``: batchnorm), rewritten
    as that op written out; ``same``: the layers padded "same" in some instance, which no fused kind takes."""
    rw = _Rewriter(merge, held or {}, same)
    blocks = {name: rw.definition(b) for name, b in program.blocks.items()}
    networks = {name: rw.definition(net) for name, net in program.networks.items()}
    note = textwrap.fill("The inference form (archc build --deploy): batch norms folded into the conv or linear "
                         "before them, linear branches summed into one conv, activations fused into the conv before "
                         "them, dropout and stochastic depth left out. "
                         "archc.deploy(model) fills it from a trained model.", 76)
    header = program.main.header
    header = f"{header}\n\n{note}" if "\n\n" in header or not header else f"{header}\n\n\n{note}"
    main = dataclasses.replace(program.main, header=header)
    new = dataclasses.replace(program, blocks=blocks, networks=networks, main=main,
                              modules=[main if m is program.main else m for m in program.modules])
    return new, rw.done


def _kind(stmt) -> str | None:
    """The registry kind a layer statement names directly (a block or a parameter holding an op: None)."""
    if isinstance(stmt, n.Layer) and stmt.func in REGISTRY:
        return stmt.func
    return None


def _own_class(stmt) -> bool:
    """A layer given an argument that needs a class of its own (linear's zero_bias): deploy leaves it as it is."""
    kind = _kind(stmt)
    if kind is None:
        return False
    given = {*REGISTRY[kind].positional[:len(stmt.arguments.args)], *(k for k, _, _ in stmt.arguments.kwargs)}
    return bool(given & REGISTRY[kind].arg_modules.keys())


class _Rewriter:
    def __init__(self, merge: set[n.Span], held: dict[n.Span, str], same: set[n.Span] = frozenset()):
        self.merge = merge
        self.held = held
        self.same = same
        self.originals: dict[n.Span, n.Layer] = {}  # the held ops' statements written out, as they were
        self.done = Rewrites()
        self.protected: set[str] = set()  # layer names read by ``from NAME``: their output is needed as it is
        self.results: set[int] = set()  # the statements that merged residuals became: nothing more folds into them
        self.positions = False  # inside a seq that names layers by their positions

    def definition(self, d):
        if isinstance(d, n.BlockDef) and d.signature is not None:
            return d  # named tensors: kept as written
        self.protected = {s.source for s in d.walk() if isinstance(s, (n.Side, n.Shortcut)) and s.source}
        body = self.written_out(_without_inits(d.body))
        return dataclasses.replace(d, body=[self.packed(s) for s in self.sequence(body)])

    def written_out(self, body: list) -> list:
        """``body`` with each layer that calls a held op as that op (``bn1 = batchnorm``)."""
        out = []
        for stmt in body:
            if isinstance(stmt, n.Layer) and stmt.span in self.held:
                self.originals[stmt.span] = stmt
                stmt = dataclasses.replace(stmt, func=self.held[stmt.span])
            else:
                changed = {f.name: self.written_out(value) if isinstance(value, list) else self.written_out([value])[0]
                           for f in dataclasses.fields(stmt) for value in [getattr(stmt, f.name)]
                           if f.name in _BODIES and value}
                stmt = dataclasses.replace(stmt, **changed) if changed else stmt
            out.append(stmt)
        return out

    def packed(self, stmt):
        """``stmt`` with each layer left of a kind whose fused kind packs its weights (a conv) as that kind, without
        an activation: its weights are kept in oneDNN's layout too. A held op written out that did not fold is
        as written again (``bn1 = norm_layer``), so it keeps the arguments its value gives (``eps``)."""
        if isinstance(stmt, n.Layer) and stmt.span in self.originals:
            return self.originals[stmt.span]
        if isinstance(stmt, n.Layer):
            kind = _kind(stmt)
            fused = kind and REGISTRY[kind].fuses_into
            if not fused or not REGISTRY[fused].packs or stmt.span in self.same:
                return stmt
            self.done.fused[stmt.span] = fused
            return dataclasses.replace(stmt, func=fused)
        changed = {f.name: [self.packed(s) for s in value] if isinstance(value, list) else self.packed(value)
                   for f in dataclasses.fields(stmt) for value in [getattr(stmt, f.name)]
                   if f.name in _BODIES and value}
        return dataclasses.replace(stmt, **changed) if changed else stmt

    # A body whose statements run one after another (the output of each is the input of the next).
    def sequence(self, body: list) -> list:
        out: list = []
        left_out = None
        for stmt in body:
            if isinstance(stmt, n.Init) or _inits_only(stmt):
                continue
            kind = _kind(stmt)
            if kind is not None and REGISTRY[kind].eval_identity:
                self.done.removed.add((stmt.span, kind))
                left_out = left_out or stmt
                out += [_identity(stmt, True)] if self.positions else []
                continue
            if kind is not None and out and self._folds(out[-1], stmt):
                out[-1] = self._absorb(out[-1], stmt)
                self.done.removed.add((stmt.span, kind))
                out += [_identity(stmt, True)] if self.positions else []
                continue
            if kind is not None and out and self._fuses(out[-1], stmt):
                out[-1] = self._fuse(out[-1], stmt)
                self.done.removed.add((stmt.span, kind))
                out += [_identity(stmt, True)] if self.positions else []
                continue
            out.append(self.statement(stmt))
        return out or ([_identity(left_out)] if left_out is not None else [])  # what was left out: the input

    # A statement inside: its own bodies rewritten.
    def statement(self, stmt):
        if isinstance(stmt, n.Seq) and not self.positions and _names_positions(stmt):
            self.positions = True  # what leaves stays as an identity, so that the layers keep their numbers
            try:
                return dataclasses.replace(stmt, body=self.sequence(stmt.body))
            finally:
                self.positions = False
        if isinstance(stmt, (n.Seq, n.Gate)):
            return dataclasses.replace(stmt, body=self.sequence(stmt.body))
        if isinstance(stmt, n.Residual):
            args = stmt.arguments
            kwargs = [kw for kw in args.kwargs if kw[0] not in DROPPED_RESIDUAL_ARGS]
            shortcut = stmt.shortcut and dataclasses.replace(stmt.shortcut, body=self.sequence(stmt.shortcut.body))
            body = self.sequence(stmt.body)
            if stmt.span in self.merge:
                merged = self._merged(stmt, body, shortcut)
                if merged is not None:
                    return merged
            return dataclasses.replace(stmt, arguments=dataclasses.replace(args, kwargs=kwargs), body=body,
                                       shortcut=shortcut)
        if isinstance(stmt, n.For):
            return dataclasses.replace(stmt, body=self.sequence(stmt.body))
        if isinstance(stmt, n.If):
            return dataclasses.replace(stmt, body=self.sequence(stmt.body),
                                       orelse=self.sequence(stmt.orelse) if stmt.orelse else [])
        if isinstance(stmt, (n.Concat, n.Ensemble, n.Dense)):  # members side by side: each one on its own
            return dataclasses.replace(stmt, **{_members(stmt): [self.member(s) for s in _member_list(stmt)]})
        return stmt

    def member(self, stmt):
        """A member of a concat or an ensemble: a layer left out becomes the identity (the member stays)."""
        kind = _kind(stmt)
        if kind is not None and REGISTRY[kind].eval_identity:
            self.done.removed.add((stmt.span, kind))
            return _identity(stmt)
        if isinstance(stmt, (n.For, n.If)):  # its statements are members too
            return dataclasses.replace(stmt, body=[self.member(s) for s in stmt.body],
                                       **({"orelse": [self.member(s) for s in stmt.orelse]}
                                          if isinstance(stmt, n.If) else {}))
        return self.statement(stmt)

    def _merged(self, stmt: n.Residual, body: list, shortcut: n.Shortcut | None):
        """The residual as its body's one conv, with a bias, if body and shortcut are linear statements."""
        if stmt.cond is not None or any(k not in ("when", *DROPPED_RESIDUAL_ARGS) for k, _, _ in stmt.arguments.kwargs):
            return None
        if shortcut is not None and (shortcut.cond is not None or shortcut.source is not None):
            return None
        main = _conv_like(body)
        short = [] if shortcut is None else shortcut.body
        if main is None or not (not short or _conv_like(short) is not None or _kind(short[0]) == "batchnorm"
                                and len(short) == 1 and short[0].cond is None):
            return None
        self.done.merged.add(stmt.span)
        self.done.removed.add((stmt.span, "add"))
        for old in [] if stmt.shortcut is None else stmt.shortcut.body:
            self.done.removed.update((s.span, s.func) for s in old.walk() if isinstance(s, n.Layer))
        with_bias = _with_bias(main, n.Const(True, main.span))
        self.done.sums.add(main.span)
        result = with_bias if body[0] is main else dataclasses.replace(body[0], body=[with_bias])
        self.results.add(id(result))
        return result

    def _folds(self, before, stmt: n.Layer) -> bool:
        if id(before) in self.results or before.span in self.done.folded:  # one norm a layer
            return False
        first = _kind(before)
        return (first is not None and first in REGISTRY[stmt.func].folds_into and before.cond is None
                and not _named(before, self.protected) and "bias" in REGISTRY[first].positional
                and not _own_class(before))

    def _fuses(self, before, stmt: n.Layer) -> bool:
        """An activation written without arguments, name or condition, after a layer that can apply it as it
        writes its output (and whose own output nothing else reads), or after a seq that ends in one."""
        if REGISTRY[stmt.func].post_op is None or stmt.target is not None or stmt.cond is not None \
                or stmt.arguments.args or stmt.arguments.kwargs:
            return False
        while isinstance(before, n.Seq) and before.cond is None and before.body \
                and not _named(before, self.protected):  # its last layer gives its output
            before = before.body[-1]
        first = _kind(before)
        return (first is not None and REGISTRY[first].fuses_into is not None and before.cond is None
                and not _named(before, self.protected) and before.span not in self.same and not _own_class(before))

    def _fuse(self, layer, act: n.Layer):
        """``layer`` as its fused kind, with ``act`` as its activation (in a seq: its last layer)."""
        if isinstance(layer, n.Seq):
            return dataclasses.replace(layer, body=[*layer.body[:-1], self._fuse(layer.body[-1], act)])
        kind = REGISTRY[layer.func].fuses_into
        self.done.fused[layer.span] = kind
        arguments = layer.arguments
        kwargs = [*arguments.kwargs, ("activation", n.Const(act.func, act.span), act.span)]
        return dataclasses.replace(layer, func=kind, arguments=dataclasses.replace(arguments, kwargs=kwargs))

    def _absorb(self, layer: n.Layer, folded: n.Layer) -> n.Layer:
        """``layer`` with a bias wherever ``folded`` is there to give it one."""
        self.done.folded[layer.span] = folded.span
        self.done.sums.add(layer.span)
        if folded.cond is None:
            return _with_bias(layer, n.Const(True, folded.span))
        given = _given_bias(layer)
        if isinstance(given, n.Const) and given.value is True:
            return layer  # it has a bias already
        return _with_bias(layer, n.BinOp("or", given, folded.cond, folded.span))


_BODIES = ("body", "branches", "orelse", "shortcut")  # the fields of a statement that hold statements


def _given_bias(layer: n.Layer) -> n.Expr:
    """A conv's or linear's ``bias`` argument as written, or its default."""
    at = REGISTRY[layer.func].positional.index("bias")
    if len(layer.arguments.args) > at:
        return layer.arguments.args[at]
    default = n.Const(REGISTRY[layer.func].args.model_fields["bias"].default, layer.span)
    return next((e for k, e, _ in layer.arguments.kwargs if k == "bias"), default)


def _with_bias(layer: n.Layer, on: n.Expr) -> n.Layer:
    """``layer`` with ``bias = on``: in its place if given by position, else as a keyword (none where it is the
    default's true)."""
    at = REGISTRY[layer.func].positional.index("bias")
    args = list(layer.arguments.args)
    kwargs = [kw for kw in layer.arguments.kwargs if kw[0] != "bias"]
    if len(args) > at:
        args[at] = on
    elif not (isinstance(on, n.Const) and on.value is REGISTRY[layer.func].args.model_fields["bias"].default):
        kwargs.append(("bias", on, on.span))
    return dataclasses.replace(layer, arguments=dataclasses.replace(layer.arguments, args=args, kwargs=kwargs))


def _conv_like(body: list) -> n.Layer | None:
    """The conv (or linear) a rewritten body is: one unconditional such layer, alone or alone in a seq."""
    if len(body) != 1:
        return None
    stmt = body[0]
    if isinstance(stmt, n.Seq) and stmt.cond is None and len(stmt.body) == 1:
        stmt = stmt.body[0]
    if _kind(stmt) in MERGES_INTO and stmt.cond is None:
        return stmt
    return None


def _names_positions(seq: n.Seq) -> bool:
    """Whether a seq names some of its layers by number (``"3" = conv(...)``): unnamed ones count from those."""
    return any(isinstance(s, (n.Layer, n.Seq)) and s.target is not None and s.target.quoted for s in seq.walk()
               if s is not seq)


def _without_inits(body: list) -> list:
    """``body`` without its initialisation rules, at every depth (a concat's branches too): a deployed model takes
    its weights from the trained one, and a rule would name a parameter of a kind the layer no longer is."""
    out = []
    for stmt in body:
        if isinstance(stmt, n.Init) or _inits_only(stmt):
            continue
        changed = {f.name: _without_inits(value) if isinstance(value, list) else (_without_inits([value]) or [value])[0]
                   for f in dataclasses.fields(stmt) for value in [getattr(stmt, f.name)]
                   if f.name in _BODIES and value}
        out.append(dataclasses.replace(stmt, **changed) if changed else stmt)
    return out


def _inits_only(stmt) -> bool:
    """A conditional or loop that only sets initialisation rules."""
    if not isinstance(stmt, (n.If, n.For)):
        return False
    return all(isinstance(s, n.Init) or _inits_only(s) for s in [*stmt.body, *getattr(stmt, "orelse", [])])


def _named(layer: n.Layer, names: set[str]) -> bool:
    return layer.target is not None and any(isinstance(p, str) and p in names for p in layer.target.parts)


def _members(stmt) -> str:
    return "branches" if isinstance(stmt, n.Concat) else "body"


def _member_list(stmt) -> list:
    return getattr(stmt, _members(stmt))


def _identity(layer: n.Layer, in_its_place: bool = False) -> n.Layer:
    """An identity where ``layer`` was; ``in_its_place``: under its name and condition, so that the layers around
    keep their positions."""
    target, cond = (layer.target, layer.cond) if in_its_place else (None, None)
    return n.Layer(target, "identity", layer.func_span, n.Arguments([], []), cond, layer.span)
