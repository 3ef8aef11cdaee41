"""The statements that combine branches, as elaboration sees them: concat, gate, dense, residual and
ensemble. A mixin of ``elaborate.Elaborator``, which holds the statements of one path."""

from __future__ import annotations

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from .layout import TensorType
from .scope import Frame, Tensor, show
from .values import type_name


class StructureElaboration:
    """Elaborator methods for the statements that join several tensors into one."""

    def _Concat(self, stmt: n.Concat, frame: Frame, x: Tensor) -> Tensor:
        if not stmt.branches:
            raise SpecError("concat needs at least one branch", stmt.span)
        outs: list[Tensor] = []
        self._concat_branches(stmt.branches, frame, x, outs)
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

    def _concat_branches(self, stmts: list[n.Stmt], frame: Frame, x: Tensor, outs: list[Tensor]) -> None:
        """Each statement is a branch fed the concat's input; for, if and let only arrange them (a loop gives a
        branch per statement per iteration, as a dense gives members), and a branch switched off by its
        condition leaves the concat."""
        for s in stmts:
            if isinstance(s, n.Let):
                self.stmt(s, frame, x)
            elif isinstance(s, n.If):
                self._concat_branches(s.body if self._truth(s.cond, frame, x) else s.orelse, frame, x, outs)
            elif isinstance(s, n.For):
                for _ in self.iterate(s, frame, x):
                    self._concat_branches(s.body, frame, x, outs)
            elif getattr(s, "cond", None) is None or isinstance(s, n.Side) or self._truth(s.cond, frame, x):
                outs.append(self.stmt(s, frame, x))

    def _Gate(self, stmt: n.Gate, frame: Frame, x: Tensor) -> Tensor:
        gate = self.body(stmt.body, frame, x)
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
        features = [x]
        self._dense_members(stmt.body, frame, features, stmt)
        if len(features) == 1:
            raise SpecError("dense needs at least one member", stmt.span)
        return self._concat(features, frame, stmt.span)

    def _dense_members(self, stmts: list[n.Stmt], frame: Frame, features: list[Tensor], dense: n.Dense) -> None:
        """Each member reads the concatenation of everything before it; for, if and let only arrange them."""
        for s in stmts:
            if isinstance(s, (n.For, n.If, n.Let, n.Side)):
                if isinstance(s, n.Side):
                    raise SpecError("a side output cannot be a member of a dense", s.span)
                if isinstance(s, n.Let):
                    self.stmt(s, frame, features[0])
                elif isinstance(s, n.If):
                    branch = s.body if self._truth(s.cond, frame, features[0]) else s.orelse
                    self._dense_members(branch, frame, features, dense)
                else:
                    for _ in self.iterate(s, frame, features[0]):
                        self._dense_members(s.body, frame, features, dense)
                continue
            inp = features[0] if len(features) == 1 else self._concat(features, frame, s.span)
            out = self.stmt(s, frame, inp)
            if out is inp:  # skipped by its condition, or failed (already reported)
                continue
            if out.type.layout != "CHW" or out.shape[1:] != features[0].shape[1:]:
                raise SpecError(f"a dense member must keep the input's height and width, but this one gives "
                                f"{out.type.describe()}", s.span,
                                hint="every member is concatenated with the input (check strides and padding)",
                                follows_shapes=True)
            features.append(out)

    def _concat(self, parts: list[Tensor], frame: Frame, span: n.Span) -> Tensor:
        t = TensorType((sum(p.shape[0] for p in parts), *parts[0].shape[1:]))
        node = self.add_node(frame, None, "concat", {}, parts, t, span)
        return Tensor(node.id, t)

    def _Residual(self, stmt: n.Residual, frame: Frame, x: Tensor) -> Tensor:
        opts = self.residual_options(stmt, frame, x)
        taps: dict[str, tuple[Tensor, bool]] = {}
        body_out = self.body(stmt.body, frame, x, taps)
        if not opts.get("when", True):
            return body_out  # this instance adds nothing: the body alone
        short = x
        sc = stmt.shortcut
        if sc is not None and (sc.cond is None or self._truth(sc.cond, frame, x)):
            start = x
            if sc.source is not None:
                if sc.source not in taps:
                    raise SpecError(f"'{sc.source}' is not a named layer of this residual's body", sc.source_span,
                                    hint=did_you_mean(sc.source, taps, otherwise="name the layer whose output the shortcut reads"))
                start, plain = taps[sc.source]
                if not plain:
                    raise SpecError(f"the shortcut reads '{sc.source}', whose name is interpolated", sc.source_span,
                                    hint="a shortcut reads a layer named plainly in the residual's body")
            short = self.body(sc.body, frame, start)
        if body_out.type != short.type:
            raise SpecError(f"residual branch gives {body_out.type.describe()} but the shortcut gives "
                            f"{short.type.describe()}", stmt.span, hint=_residual_hint(body_out.type, short.type, sc),
                            follows_shapes=True)
        args = {k: v for k, v in opts.items() if k != "when"}
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
        members: list[Tensor] = []
        self._ensemble_members(stmt.body, frame, x, members)
        if len(members) < 2:
            raise SpecError("an ensemble needs at least two members", stmt.span)
        types = {m.type for m in members}
        if any(m.type.layout != "F" for m in members) or len(types) > 1:
            got = ", ".join(m.type.describe() for m in members)
            raise SpecError(f"an ensemble averages class scores: its members must give the same flat features, got "
                            f"{got}", stmt.span, follows_shapes=True)
        node = self.add_node(frame, None, "ensemble", {}, members, members[0].type, stmt.span)
        return Tensor(node.id, members[0].type)

    def _ensemble_members(self, stmts: list[n.Stmt], frame: Frame, x: Tensor, members: list[Tensor]) -> None:
        """Each member is a named network or block call on the ensemble's input; for, if and let arrange them."""
        for s in stmts:
            if isinstance(s, n.Let):
                self.stmt(s, frame, x)
            elif isinstance(s, n.If):
                if s.cond is not None and self._truth(s.cond, frame, x):
                    self._ensemble_members(s.body, frame, x, members)
                else:
                    self._ensemble_members(s.orelse, frame, x, members)
            elif isinstance(s, n.For):
                for _ in self.iterate(s, frame, x):
                    self._ensemble_members(s.body, frame, x, members)
            elif isinstance(s, n.Layer) and s.target is not None and (
                    s.func in self.program.networks or s.func in self.program.blocks):
                out = self.stmt(s, frame, x)
                if out is not x:  # skipped by its condition, or failed (already reported)
                    members.append(out)
            else:
                raise SpecError("an ensemble's members are named network or block calls (member = Net(...))", s.span)


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
