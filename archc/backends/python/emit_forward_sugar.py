"""``forward`` of a generated class, continued: a concat's, gate's or dense's steps as ``lang/dataflow_sugar.py``
lowers them -- each run of statements into a local named for what it computes (an arranged concat's branches
appended to a list), then the join. A mixin of ``emit_forward.ForwardEmitter``."""

from __future__ import annotations

import os
import string

from ...lang import nodes as n
from ...lang.dataflow_sugar import IN, lowered
from . import ir
from .emit import creates_modules, plain
from .emit_forward_merge import MergeForward


class SugarForward(MergeForward):
    """ForwardEmitter methods for the steps a concat, gate or dense lowers to."""

    def fwd_sugar(self, stmt: n.Concat | n.Gate | n.Dense, var: str, w: list, dest: str, taps,
                  sugar=None) -> tuple[str, bool]:
        """A concat's, gate's or dense's steps (``lang/dataflow_sugar.py``, or ``sugar``): each run into a local
        named for what it computes (a concat's identity branch is the input itself), then the join of them (a
        dense member's input, the concatenation before it, where the member reads it)."""
        sugar = sugar or lowered(stmt)
        local = {IN: var}
        joined: dict[str, ir.Node] = {}
        for step in sugar.steps:
            if step.kind == "join":
                parts = [ir.Name(local[s]) for s in step.srcs]
                listed = parts[0] if step.srcs[0] in ("branches%", "features%") else ir.List(tuple(parts))  # (a list)
                value = ir.BinOp("*", *parts) if step.op == "mul" else ir.call("torch.cat", listed, ir.Const(1))
                if step.dest == sugar.output:
                    self._assign(w, dest, value, stmt)
                else:
                    joined[step.dest] = value
                continue
            src, body = step.srcs[0], step.body
            if step.kind == "grow":  # a dense's list of feature maps, each member appending to it
                local[step.dest] = self.fwd_grow(stmt, local[src], w, taps)
            elif step.kind == "each":  # the branches a concat's for/if/let arrange, appended to a list
                local[step.dest] = self.fwd_ns.create("branches")
                w.append(ir.Assign(ir.Name(local[step.dest]), ir.List(())))
                self.fwd_branches(body, local[src], ir.Name(local[step.dest]), w, taps)
            elif step.op == "gate":  # the gate's body, into ``scale``
                local[step.dest] = self._fwd_into(body, local[src], False, w, self.fwd_ns.create("scale"), taps)[0]
            elif src in joined:
                local[step.dest] = self._fwd_on(body[0], joined[src], var, w, taps)
            elif isinstance(body[0], n.Layer) and body[0].func == "identity" and body[0].cond is None:
                local[step.dest] = local[src]
            else:
                into = self._local_for(body[0], isinstance(stmt, n.Dense))
                local[step.dest] = self.fwd_stmt_into(body[0], local[src], w, into, taps)[0]
        return dest, True

    def _fwd_on(self, stmt: n.Stmt, value: ir.Node, var: str, w: list, taps) -> str:
        """A statement on the value of an expression (a dense member on the concatenation before it): a module
        called on it, else the statement on a local that holds it."""
        out = self._local_for(stmt, True)
        if isinstance(stmt, (n.Layer, n.Seq)) and stmt.target is not None and \
                creates_modules(stmt, self.blocks, self.block_params):
            self._assign(w, out, ir.Call(self._module_ref(stmt.target, var), (value,)), stmt)
            return out
        inputs = self.fwd_ns.create("inputs")
        w.append(ir.Assign(ir.Name(inputs), value))
        return self.fwd_stmt_into(stmt, inputs, w, out, taps)[0]

    def _local_for(self, stmt: n.Stmt, member: bool) -> str:
        """A local for a branch's output, or a dense member's (``new_features`` where it has no name)."""
        name = _branch_name(stmt)
        return self.fwd_ns.create("new_features" if member and name == "branch" else name)

    def checkpoints(self, stmt: n.Dense, var: str) -> bool:
        """Whether a dense may checkpoint its members (its ``checkpoint`` not false where the constants decide)."""
        return any(self.fwd_expr(value, var) != ir.Const(False) for _, value, _ in stmt.arguments.kwargs)

    def fwd_branches(self, stmts, var: str, parts: ir.Name, w: list, taps) -> None:
        """A concat's branches as a list each appends its output to: loops and conditions arrange them."""
        self.fwd_arranged(stmts, var, w, taps, lambda s, into: self._fwd_branch(s, var, parts, into, taps))

    def _fwd_branch(self, s: n.Stmt, var: str, parts: ir.Name, w: list, taps) -> None:
        if isinstance(s, (n.Layer, n.Seq)) and s.target is not None and \
                creates_modules(s, self.blocks, self.block_params):  # a module of its own: called in place
            out: ir.Node = ir.Call(self._module_ref(s.target, var), (ir.Name(var),))
        elif isinstance(s, n.Layer) and s.func == "identity" and s.cond is None:
            out = ir.Name(var)
        else:
            steps: list[ir.Node] = []
            local, _ = self.fwd_stmt_into(s, var, steps, self.fwd_ns.create(_branch_name(s)), taps)
            out = ir.Name(local)
            if len(steps) == 1 and isinstance(steps[0], ir.Assign) and steps[0].target == out:
                out, steps = steps[0].value, []  # one call: appended as it is
            w.extend(steps)
        w.append(ir.Expr(ir.call(ir.Attr(parts, "append"), out), self._shape(s)))


def _branch_name(stmt) -> str:
    """A local name for a concat branch's output: its own name, else what its layers are called."""
    own = plain(getattr(stmt, "target", None))
    if own:
        return own
    if isinstance(stmt, n.Seq):
        names = [x for x in (plain(getattr(s, "target", None)) for s in stmt.body) if x]
        if len(names) == 1:
            return _without_number(names[0]) or names[0]
        if names:
            prefix = os.path.commonprefix(names).rstrip("_")
            if prefix.isidentifier() and len(prefix) > 1:
                return prefix
    return "branch"


def _without_number(name: str) -> str:
    """``branch3x3`` of ``branch3x3_2a``, ``conv`` of ``conv_1``: the name less a trailing ``_<digits>``, which
    a letter may follow."""
    stem = name[:-1] if name[-1:] and name[-1] in string.ascii_lowercase else name
    i = len(stem)
    while i and stem[i - 1].isdecimal():
        i -= 1
    if i == len(stem) or not i or stem[i - 1] != "_":
        return name
    return stem[:i - 1]
