"""The statements that combine branches, as elaboration sees them: concat, gate, dense, residual and
ensemble. A residual, a gate, a concat and a dense run the steps they lower to (``lang/dataflow_sugar.py``) on
the dataflow path (``elabflow``); here are the checks of their joins and of a dense's grown list, the walk of
what for/if/let arrange (an arranged concat's branches, an arranged dense's members, an ensemble's), and
ensembles, which are walked as written. A mixin of ``elaborate.Elaborator``, which holds the statements of one
path."""

from __future__ import annotations

from contextlib import closing

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from ..lang.dataflow_sugar import IN, Sugar, lowered
from .layout import TensorType
from .scope import Frame, Tensor, show
from .values import type_name


class StructureElaboration:
    """Elaborator methods for the statements that join several tensors into one."""

    def _Concat(self, stmt: n.Concat, frame: Frame, x: Tensor) -> Tensor:
        if not stmt.branches:
            raise SpecError("concat needs at least one branch", stmt.span)
        sugar = lowered(stmt)
        return _output(sugar, x, self.flow_steps(sugar.steps, frame, {}, {IN: x}, x, set()))

    def _join_branches(self, stmt: n.Concat, frame: Frame, outs: list[Tensor]) -> Tensor:
        if not outs:
            raise SpecError("every branch of this concat is switched off here", stmt.span,
                            hint="a branch whose condition is false leaves the concat: keep at least one")
        if any(o.type.layout != "CHW" for o in outs):
            got = ", ".join(o.type.describe() for o in outs if o.type.layout != "CHW")
            raise SpecError(f"concat needs C x H x W branches, got {got}", stmt.span, follows_shapes=True)
        if len({o.shape[1:] for o in outs}) > 1:
            sizes = ", ".join(f"{o.shape[1]}x{o.shape[2]}" for o in outs)
            raise SpecError(f"concat branches have different spatial sizes: {sizes}", stmt.span,
                            hint="every branch must keep the same height and width (check strides and padding)",
                            follows_shapes=True)
        return self._concat(outs, frame, stmt.span)

    def no_source(self, step: n.Flow, frame: Frame) -> None:
        """A shortcut reads a layer its residual's body does not name plainly."""
        names: dict[str, bool] = {}
        for s in step.layer.body:
            if isinstance(s, (n.Layer, n.Seq)) and s.target is not None and (s.cond is None or
                                                                              self._truth(s.cond, frame, frame.block_input)):
                names[self.target_name(s.target, frame, frame.block_input)] = s.target.is_plain
        if step.op in names:
            raise SpecError(f"the shortcut reads '{step.op}', whose name is interpolated", step.span,
                            hint="a shortcut reads a layer named plainly in the residual's body")
        raise SpecError(f"'{step.op}' is not a named layer of this residual's body", step.span,
                        hint=did_you_mean(step.op, names, otherwise="name the layer whose output the shortcut reads"))

    def join(self, step: n.Flow, frame: Frame, srcs: list[Tensor]) -> Tensor:
        """A "join" step: the node that joins a structured statement's tensors, checked as the statement says."""
        stmt = step.layer
        if step.op == "add":
            return self._join_residual(stmt, frame, *srcs)
        if step.op == "mul":
            return self._join_gate(stmt, frame, *srcs)
        if step.op == "concat":
            return self._join_branches(stmt, frame, srcs)
        if step.srcs[0] != "features%":  # (a grown list was checked as it grew)
            self._check_member(srcs[-1], srcs[0], stmt.body[len(srcs) - 2])
        return self._concat(srcs, frame, stmt.span)

    def _leaves(self, stmts: list[n.Stmt], frame: Frame, x: Tensor):
        """The statements that ``for``, ``if`` and ``let`` arrange (a concat's branches, a dense's members, an
        ensemble's), each given as it is reached: a let bound (an init rule kept), a loop's body once an iteration (``x`` is what its
        expressions read as ``in``/``out``). A generator: what each one computes is elaborated by its statement's
        own loop, so a recursion through a loop opens no more Python frames than through a seq."""
        for s in stmts:
            if isinstance(s, (n.Let, n.Init)):  # (an init rule is no branch: forward writes none for it)
                self.stmt(s, frame, x)
            elif isinstance(s, n.If):
                yield from self._leaves(s.body if self._truth(s.cond, frame, x) else s.orelse, frame, x)
            elif isinstance(s, n.For):
                for _ in self.iterate(s, frame, x):
                    yield from self._leaves(s.body, frame, x)
            else:
                yield s

    def _Gate(self, stmt: n.Gate, frame: Frame, x: Tensor) -> Tensor:
        sugar = lowered(stmt)
        return _output(sugar, x, self.flow_steps(sugar.steps, frame, {}, {IN: x}, x, set()))

    def _join_gate(self, stmt: n.Gate, frame: Frame, gate: Tensor, x: Tensor) -> Tensor:
        if gate is x:
            raise SpecError("a gate's body must compute something from its input", stmt.span)
        g, t = gate.type, x.type
        fits = g.layout == t.layout and all(a in (1, b) for a, b in zip(g.shape, t.shape))
        if not fits:
            raise SpecError(f"the gate gives {g.describe()}, which does not broadcast over its input {t.describe()}",
                            stmt.span, hint="a gate's body gives the input's shape or, like squeeze-and-excitation, "
                                            "C x 1 x 1 (pool, 1x1 convs back to the input's channels, a sigmoid)",
                            follows_shapes=True)
        node = self.add_node(frame, None, "mul", {}, [gate, x], t, stmt.span)
        return Tensor(node.id, t)

    def _Dense(self, stmt: n.Dense, frame: Frame, x: Tensor) -> Tensor:
        pos, kw = self.call_args(stmt.arguments, frame, x)
        if pos or any(k != "checkpoint" for k, _, _ in kw):
            raise SpecError("dense takes only 'checkpoint = ...'", stmt.span)
        if kw and not isinstance(kw[0][1], bool):
            raise SpecError(f"checkpoint must be true or false, got {type_name(kw[0][1])}", kw[0][2])
        if x.type.layout != "CHW":
            raise SpecError(f"dense needs a C x H x W input, got {x.type.describe()}", stmt.span, follows_shapes=True)
        sugar = lowered(stmt)
        return _output(sugar, x, self.flow_steps(sugar.steps, frame, {}, {IN: x}, x, set()))

    def member_input(self, member: n.Stmt, frame: Frame, features: list[Tensor]) -> Tensor:
        """What a member of a dense's "grow" step reads: the concatenation of the feature maps so far."""
        if isinstance(member, n.Side):
            raise SpecError("a side output cannot be a member of a dense", member.span)
        return features[0] if len(features) == 1 else self._concat(features, frame, member.span)

    def grow(self, member: n.Stmt, features: list[Tensor], inp: Tensor, out: Tensor) -> None:
        """A member's output joins the list, checked; a member skipped by its condition (or failed, which is
        reported) gave its input back and adds nothing."""
        if out is not inp:
            self._check_member(out, features[0], member)
            features.append(out)

    @staticmethod
    def grown_list(step: n.Flow, features: list[Tensor]) -> tuple[Tensor, ...]:
        if len(features) == 1:
            raise SpecError("dense needs at least one member", step.span)
        return tuple(features)

    @staticmethod
    def _check_member(out: Tensor, x: Tensor, member: n.Stmt) -> None:
        if out.type.layout != "CHW" or out.shape[1:] != x.shape[1:]:
            raise SpecError(f"a dense member must keep the input's height and width, but this one gives "
                            f"{out.type.describe()}", member.span,
                            hint="every member is concatenated with the input (check strides and padding)",
                            follows_shapes=True)

    def _concat(self, parts: list[Tensor], frame: Frame, span: n.Span) -> Tensor:
        t = TensorType((sum(p.shape[0] for p in parts), *parts[0].shape[1:]))
        node = self.add_node(frame, None, "concat", {}, parts, t, span)
        return Tensor(node.id, t)

    def _Residual(self, stmt: n.Residual, frame: Frame, x: Tensor) -> Tensor:
        self.residuals.append(self.residual_options(stmt, frame, x))  # (the sum reads them: the innermost's)
        sugar = lowered(stmt)
        try:
            return _output(sugar, x, self.flow_steps(sugar.steps, frame, {}, {IN: x}, x, set()))
        finally:
            self.residuals.pop()

    def _join_residual(self, stmt: n.Residual, frame: Frame, body_out: Tensor, short: Tensor) -> Tensor:
        if body_out.type != short.type:
            raise SpecError(f"residual branch gives {body_out.type.describe()} but the shortcut gives "
                            f"{short.type.describe()}", stmt.span,
                            hint=_residual_hint(body_out.type, short.type, stmt.shortcut), follows_shapes=True)
        args = {k: v for k, v in self.residuals[-1].items() if k != "when"}
        node = self.add_node(frame, None, "add", args, [body_out, short], body_out.type, stmt.span)
        return Tensor(node.id, body_out.type)

    def residual_options(self, stmt: n.Residual, frame: Frame, x: Tensor) -> dict[str, object]:
        pos, kw = self.call_args(stmt.arguments, frame, x)
        allowed = ("scale", "when", "stochastic_depth", "mode")
        if pos:
            raise SpecError("residual takes only keyword arguments: " + ", ".join(allowed), stmt.span)
        opts: dict[str, object] = {}
        for key, value, span in kw:
            if key not in allowed:
                raise SpecError(f"residual has no argument '{key}'", span,
                                hint=did_you_mean(key, allowed, otherwise="its arguments: " + ", ".join(allowed)))
            ok = {
                "scale": isinstance(value, (int, float)) and not isinstance(value, bool),
                "when": isinstance(value, bool),
                "stochastic_depth": isinstance(value, (int, float)) and not isinstance(value, bool)
                and 0 <= value <= 1,
                "mode": value in ("row", "batch"),
            }[key]
            if not ok:
                want = {"scale": "a number", "when": "true or false", "stochastic_depth": "a probability in [0, 1]",
                        "mode": '"row" or "batch"'}[key]
                raise SpecError(f"{key} must be {want}, got {show(value)}", span)
            opts[key] = value
        if "mode" in opts and "stochastic_depth" not in opts:
            raise SpecError("mode is stochastic depth's: give stochastic_depth too", stmt.span)
        return opts

    def _Ensemble(self, stmt: n.Ensemble, frame: Frame, x: Tensor) -> Tensor:
        members: list[Tensor] = []  # named network or block calls on the ensemble's input
        with closing(self._leaves(stmt.body, frame, x)) as leaves:
            for s in leaves:
                if not (isinstance(s, n.Layer) and s.target is not None and (
                        s.func in self.program.networks or s.func in self.program.blocks)):
                    raise SpecError("an ensemble's members are named network or block calls (member = Net(...))",
                                    s.span)
                out = self.stmt(s, frame, x)
                if out is not x:  # skipped by its condition, or failed (already reported)
                    members.append(out)
        if len(members) < 2:
            raise SpecError("an ensemble needs at least two members", stmt.span)
        types = {m.type for m in members}
        if any(m.type.layout != "F" for m in members) or len(types) > 1:
            got = ", ".join(m.type.describe() for m in members)
            raise SpecError(f"an ensemble averages class scores: its members must give the same flat features, got "
                            f"{got}", stmt.span, follows_shapes=True)
        node = self.add_node(frame, None, "ensemble", {}, members, members[0].type, stmt.span)
        return Tensor(node.id, members[0].type)


def _output(sugar: Sugar, x: Tensor, values: dict) -> Tensor:
    """A structured statement's result, once its steps (``lang/dataflow_sugar.py``) ran on its input ``x`` (called
    by the statement itself, not in between: a recursion through it opens no more Python frames than a seq's);
    the input where a step failed (what failed is reported)."""
    out = values.get(sugar.output)
    return x if out is None else out


def _residual_hint(body: TensorType, short: TensorType, sc: n.Shortcut | None) -> str:
    if sc is not None:
        return "the shortcut must produce the body's shape"
    if body.layout == short.layout == "CHW" and body.shape[1:] == (1, 1) and short.shape[1:] != (1, 1):
        return ("a C x 1 x 1 body that should scale its input is a gate: 'gate { ... }' multiplies the input by "
                "what its body computes")
    if body.layout == short.layout and body.shape[1:] != short.shape[1:]:
        return ("the body changes the height and width (a stride?): give the residual a shortcut that does too, "
                "'shortcut if ... { conv(..., stride = ...); batchnorm }'")
    return "add a projection shortcut: 'shortcut if ... { conv(...); batchnorm }'"
