"""Loops, lists of tensors and container members in a dataflow block's body: a mixin of ``dataflow._Lowering``.

``for i in range(n) { ... }`` among the statements is unrolled where the block is made, ``i`` a compile-time
value in each iteration. A let in its body may rebind a tensor (one defined before the loop, or by the previous
iteration), so each tensor the body binds keeps its own key across iterations: a let whose value is another
tensor's key is copied into it. A module declared in a loop is a member of a container named by the loop's
variable, ``convs.{i} = conv(...)``, and applied in the same loop as ``convs[i](x)``; outside loops a member's key
is written out (``heads.cls``, applied as ``heads["cls"](x)``).

A list of tensors is ``[a, b]``, ``[]`` (a let of an empty list that a loop then extends) or two lists joined with
``+``; ``xs[i]`` is one of its tensors, and ``cat(xs, dim)`` (or ``stack``) takes it whole.
"""

from __future__ import annotations

from ..errors import SpecError
from . import nodes as n


class LoopLowering:
    """Needs ``sig``, ``tensors``, ``defined``, ``used``, ``applied``, ``later``, ``loops``, ``containers`` and the
    lowering's ``statement``, ``value``, ``call``, ``_fresh``, ``_new_name``, ``_reads_tensors``, ``_no_tensors``."""

    # ------------------------------------------------------------ loops

    def loop(self, stmt: n.For) -> None:
        names = n.pattern_names(stmt.var)
        if len(names) != 1 or not isinstance(stmt.var, str):
            raise SpecError("a loop in a block with named tensors binds one name", stmt.span,
                            hint="'for i in range(n) { ... }'")
        var = names[0]
        if var in self.tensors or var in self.sig.decls or var in self.containers:
            raise SpecError(f"'{var}' is a tensor or module of this block, so it cannot be a loop's variable",
                            stmt.span, hint="name the loop's variable otherwise, 'i'")
        self._no_tensors(stmt.iterable, "a loop's range")
        copies = []
        for name, let in self._loop_tensors(stmt).items():
            if name in self.empties and name not in self.tensors:  # 'let outs = []' before the loop: a list
                self.empty_list(self.empties.pop(name), [])
            if name in self.tensors:  # carried from before the loop, into a key of its own
                if self.tensors[name] != name:
                    copies.append((name, self.tensors[name]))
                    self.used.add(name)
            else:
                self._new_name(name, let.span)
            self.tensors[name] = name
            self.rebound.add(name)
        for name, let in list(self.aliases.items()):  # 'let b = a' before a loop that rebinds a: b keeps a's value
            if self.tensors.get(name) in self.rebound and name not in self.rebound:
                self.sig.lets[let].append(n.Flow(name, "copy", (self.tensors[name],), None, let.span))
                self.tensors[name] = name
                del self.aliases[name]
        self.sig.loops[stmt] = tuple(copies)
        self.loops.append(stmt)
        for inner in stmt.body:
            self.statement(inner)
        self.loops.pop()

    def _loop_tensors(self, stmt: n.For) -> dict[str, n.Let]:
        """The names a loop's body (and the loops in it) binds to tensors, each with its first let: a let reads a
        tensor, applies a module, or extends a list, given what is a tensor before the loop and in the body."""
        lets = [s for s in stmt.walk() if isinstance(s, n.Let)]
        declared = [s.target for s in stmt.walk() if isinstance(s, (n.Layer, n.Seq)) and s.target is not None]
        modules = set(self.sig.decls) | set(self.containers) | {t.parts[0].split(".")[0] for t in declared
                                                                 if isinstance(t.parts[0], str)}
        tensors, found = set(self.tensors) | set(self.empties), {}
        grew = True
        while grew:
            grew = False
            for let in lets:
                reads = any(isinstance(e, n.Var) and e.name in tensors or isinstance(e, n.Call) and (
                    isinstance(e.func, n.Var) and e.func.name in modules or
                    isinstance(e.func, n.Index) and isinstance(e.func.value, n.Var) and e.func.value.name in modules)
                    for e in let.value.walk())
                for name in let.names if reads else ():
                    if name not in tensors:
                        tensors.add(name)
                        found.setdefault(name, let)
                        grew = True
                    elif name in self.tensors or name in self.empties:
                        found.setdefault(name, let)
        return {name: let for name, let in found.items()}

    def _own_key(self, name: str, key: str, span: n.Span, steps: list[n.Flow]) -> str:
        """A tensor a loop rebinds is kept under its own name: a let that only names another tensor copies it."""
        if name in self.rebound and key != name:
            steps.append(n.Flow(name, "copy", (key,), None, span))
            return name
        return key

    # ------------------------------------------------------------ container members

    def member(self, target: n.Target) -> str:
        """A dotted declaration's key, ``convs.{i}`` (in a loop over i) or ``heads.cls`` (outside loops)."""
        head, *rest = target.parts
        container, key = head.split(".", 1)
        loop = self.loops[-1] if self.loops else None
        var = loop.var if loop is not None else None
        if "." in key or any(isinstance(p, str) and "." in p for p in rest):
            raise SpecError(f"'{target.text}' is a path through containers, which a block with named tensors does "
                            "not declare: its members have one key", target.span,
                            hint="declare 'convs.{i}' or 'heads.cls' here, or nest containers in a block without "
                                 "named tensors ('stages.{s}.blocks.{i} = ...')")
        if loop is not None and not (key == "" and len(rest) == 1 and isinstance(rest[0], n.Var)
                                     and rest[0].name == var):
            raise SpecError(f"a module declared in a loop is named by the loop's variable alone, "
                            f"'{container}.{{{var}}}'", target.span,
                            hint="one module an iteration, applied in the same loop as "
                                 f"'{container}[{var}](x)'")
        if loop is None and (rest or "." in key or not key):
            raise SpecError("a member declared outside loops has its key written out, 'heads.cls' or 'convs.0'",
                            target.span, hint="declare it in a loop, 'for i in range(n) { convs.{i} = ... }'")
        if container in self.defined and container not in self.containers:
            raise SpecError(f"'{container}' is a tensor or module here, so '{target.text}' cannot make it a "
                            "container", target.span, notes=[("defined here", self.defined[container])])
        self.containers.setdefault(container, target.span)
        self.defined.setdefault(container, target.span)
        name = f"{container}.{{{var}}}" if loop is not None else f"{container}.{key}"
        self.decl_loop[name] = loop
        return name

    def member_of(self, e: n.Index) -> str:
        """The declaration ``convs[i]`` (``heads["cls"]``, ``convs[0]``) applies."""
        container, index = e.value.name, e.index
        if isinstance(index, n.Var) and any(loop.var == index.name for loop in self.loops):
            name = f"{container}.{{{index.name}}}"
        elif isinstance(index, n.Num) and isinstance(index.value, int):
            name = f"{container}.{index.value}"
        elif isinstance(index, n.Str):
            name = f"{container}.{index.value}"
        else:
            raise SpecError(f"a member of '{container}' is picked by the variable of the loop that declares it, or "
                            "by its key written out", index.span, hint=f"'{container}[i]', 'heads[\"cls\"]'")
        if name not in self.sig.decls:
            known = ", ".join(d for d in self.sig.decls if d.startswith(container + "."))
            raise SpecError(f"no module '{name}' is declared", e.span, hint=f"the members declared: {known}")
        return name

    def in_its_loop(self, name: str, span: n.Span) -> None:
        """A module is applied once: in the loop that declares it (once an iteration), else outside loops."""
        home = self.decl_loop.get(name)
        here = self.loops[-1] if self.loops else None
        if home is not here:
            where = "in every iteration of a loop" if home is None else "outside the loop that declares it"
            raise SpecError(f"module '{name}' would be applied {where}, but a module of a block is applied once",
                            span, hint="declare a member a loop's iteration in that loop, 'convs.{i} = ...', "
                                       "and apply it there, 'convs[i](x)'")

    # ------------------------------------------------------------ lists of tensors

    def is_list(self, e: n.Expr) -> bool:
        if isinstance(e, n.Var):
            return e.name in self.sig.lists
        if isinstance(e, n.ListExpr):
            return not e.tuple
        if isinstance(e, n.BinOp) and e.op == "+":
            return self.is_list(e.left) or self.is_list(e.right)
        return False

    def empty_list(self, stmt: n.Let, steps: list[n.Flow]) -> None:
        """``let outs = []`` that a loop extends with tensors: an empty list of tensors."""
        steps.append(n.Flow(stmt.name, "list", (), None, stmt.span))
        self.sig.lets[stmt] = steps
        self.sig.lists.add(stmt.name)
        self.tensors[stmt.name] = stmt.name

    def list_value(self, e: n.Expr, dest: str, steps: list[n.Flow]) -> str:
        """``[a, b]`` or ``xs + [c]``: a "list" step, each source a tensor or a list."""
        if isinstance(e, n.ListExpr):
            srcs = [self.value(item, self._fresh(), steps) for item in self._items(e)]
        else:
            if e.op != "+" or not (self.is_list(e.left) and self.is_list(e.right)):
                raise SpecError("a list of tensors is joined to another list only, by '+'", e.span,
                                hint="'xs + [t]' appends the tensor t")
            srcs = []
            for side in (e.left, e.right):  # a literal's tensors inline: 'xs + [t]' is one list step
                if isinstance(side, n.ListExpr):
                    srcs += [self.value(item, self._fresh(), steps) for item in self._items(side)]
                else:
                    srcs.append(self.value(side, self._fresh(), steps))
        steps.append(n.Flow(dest, "list", tuple(srcs), None, e.span))
        self.sig.lists.add(dest)
        return dest

    def _items(self, e: n.ListExpr) -> list[n.Expr]:
        for item in e.items:
            if self.is_list(item):
                raise SpecError("a list of tensors holds tensors, not lists", item.span, hint="join two lists with '+'")
            if not self._reads_tensors(item):
                raise SpecError("a list of tensors holds tensors only", item.span)
        return e.items

    def item(self, e: n.Index, dest: str, steps: list[n.Flow]) -> str:
        """``xs[i]``: one tensor of a list, at a position known where the block is made."""
        if not self.is_list(e.value):
            raise SpecError("only a list of tensors is indexed here; a part of a tensor is taken by an op", e.span,
                            hint="'narrow(x, dim, start, length)', 'select(x, dim, index)'")
        self._no_tensors(e.index, "an index")
        src = self.value(e.value, self._fresh(), steps)
        steps.append(n.Flow(dest, "item", (src,), None, e.span, index=e.index))
        return dest
