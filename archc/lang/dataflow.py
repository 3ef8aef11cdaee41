"""A dataflow block's body, lowered: which statements declare modules, which lets compute tensors, and the
operations each such let is made of, one a step (``nodes.Flow``).

``block Fuse(c) (fine, coarse) -> out { ... }`` names its tensors. In its body ``NAME = layer`` (or a named
``seq``, or a block call) *declares* a module, made in ``__init__`` and applied later by name; ``let NAME = ...``
binds a compile-time value as anywhere, or, where the expression reads a tensor, computes a tensor: a declared
module applied to tensors (``proj(coarse)``), a parameter-free op applied to one (``relu(x)``,
``upsample(x, scale = 2)``), ``+ - * / **`` between tensors or with numbers, and unary ``-``.

Everything here is decided from the text, in statement order: it runs while parsing, so both the elaborator
and the code generator read the same steps. Intermediate values are keyed ``NAME%k``; the first operand of an
operation shares the operation's key, as a person reuses one local along a chain.
"""

from __future__ import annotations

import dataclasses

from ..errors import SpecError, did_you_mean
from . import nodes as n
from .dataflow_loops import LoopLowering

ARITH = ("+", "-", "*", "/", "**")
COMPARE = ("==", "!=", "<", "<=", ">", ">=")  # of tensors, or a tensor and a number: a tensor of booleans


def lower_block(block: n.BlockDef) -> None:
    """Fill ``block.signature`` with the body's steps; every misuse is a located error."""
    sig = block.signature
    assert sig is not None
    if block.sequential:
        raise SpecError("a seq block (= seq) cannot name its tensors: an nn.Sequential has one input", sig.span,
                        hint="drop '= seq', or the signature")
    _Lowering(block, sig).run()


class _Lowering(LoopLowering):
    def __init__(self, block: n.BlockDef, sig: n.Signature):
        self.block, self.sig = block, sig
        self.tensors: dict[str, str] = {}  # tensor name -> key of its value
        self.defined: dict[str, n.Span] = {}  # every name a statement or input defined, for the messages
        self.used: set[str] = set()  # tensor names read
        self.applied: dict[str, n.Span] = {}  # declared module -> where a let applied it
        self.later = _names_defined(block.body)
        self.let: n.Let | None = None
        self.several: n.Call | None = None  # the op call a let of several names names the tensors of
        self.count = 0
        self.loops: list[n.For] = []  # the loops around the statement being lowered
        self.containers: dict[str, n.Span] = {}  # a container of declared members -> where first named
        self.decl_loop: dict[str, n.For | None] = {}  # a declared member -> the loop that declares it
        self.rebound: set[str] = set()  # tensors a loop's body binds: each keeps its own key
        self.empties: dict[str, n.Let] = {}  # value lets of '[]', which a loop may extend with tensors
        self.aliases: dict[str, n.Let] = {}  # a let that names another tensor's value, not a value of its own

    def run(self) -> None:
        sig = self.sig
        for name in sig.inputs:
            if name in self.defined:
                raise SpecError(f"input '{name}' is named twice", sig.span)
            if name in {p.name for p in self.block.params}:
                raise SpecError(f"'{name}' names both a parameter and an input", sig.span, hint="rename one")
            self.defined[name] = sig.span
            self.tensors[name] = name
        for stmt in self.block.body:
            self.statement(stmt)
        if len(set(sig.outputs)) != len(sig.outputs):
            raise SpecError("an output is named twice", sig.span)
        for output in sig.outputs:
            if output in sig.lists:
                raise SpecError(f"the output '{output}' is a list of tensors", self.defined.get(output, sig.span),
                                hint=f"give a tensor, 'cat({output}, 1)'")
            if output not in self.tensors:
                raise SpecError(f"the output '{output}' is never computed", sig.span,
                                hint=f"compute it in the body: 'let {output} = ...'")
        returned = {self.tensors[o] for o in sig.outputs}
        for name, stmt in sig.decls.items():
            if name not in self.applied:
                raise SpecError(f"module '{name}' is declared but never applied", stmt.span,
                                hint=f"apply it to a tensor in a let: 'let y = {name}(x)'; or remove it")
        for name in [*sig.inputs, *(name for let in sig.lets for name in let.names)]:
            if name not in self.used and name not in sig.outputs and self.tensors.get(name) not in returned:
                what = "input" if name in sig.inputs else "tensor"
                raise SpecError(f"{what} '{name}' is never used", self.defined[name],
                                hint="use it, or remove it" if what == "tensor" else "use it, or drop it from the inputs")
        sig.keys = dict(self.tensors)

    # ------------------------------------------------------------ statements

    def statement(self, stmt: n.Stmt) -> None:
        if isinstance(stmt, (n.Layer, n.Seq)) and stmt.target is not None:
            self.declare(stmt)
        elif isinstance(stmt, n.Let):
            self.let_(stmt)
        elif isinstance(stmt, n.For):
            self.loop(stmt)
        elif isinstance(stmt, n.Init):
            pass
        else:
            what = type(stmt).__name__.lower()
            what = {"layer": "an unnamed layer", "seq": "an unnamed seq"}.get(what, f"a {what}")
            raise SpecError(f"{what} in a block with named tensors: it has no implicit input here", stmt.span,
                            hint="declare modules ('NAME = layer', 'NAME = seq { ... }', 'NAME = Block(...)') and "
                                 "apply them in lets ('let y = NAME(x)'); for branches and loops, call a block")

    def declare(self, stmt: n.Layer | n.Seq) -> None:
        for e in stmt.walk():
            if isinstance(e, n.Var):
                self._reads_tensors(e)  # says what is used before it is defined
        target = stmt.target
        if target.dotted:
            name = self.member(target)
        elif not target.is_plain or target.quoted:
            raise SpecError("a module declared here needs a plain name, or a container's member ('convs.{i}'): "
                            "lets apply it by that name", target.span)
        else:
            name = "".join(target.parts)
            if self.loops:
                raise SpecError(f"module '{name}' is declared in a loop, which makes one an iteration", target.span,
                                hint=f"name each by the loop's variable, '{name}.{{{self.loops[-1].var}}} = ...', "
                                     f"and apply it as '{name}[{self.loops[-1].var}](x)'")
        self._new_name(name, target.span)
        self._no_tensors(stmt, "the declaration of a module")
        self.sig.decls[name] = stmt

    def let_(self, stmt: n.Let) -> None:
        source = _shape_of(stmt.value)
        if source is not None and source.name in self.tensors:
            self.sizes(stmt, source)
            return
        if not self._reads_tensors(stmt.value):
            if stmt.more:
                raise SpecError("a let of several names takes the outputs of a block that gives several", stmt.span)
            if stmt.name in self.tensors or stmt.name in self.sig.decls:
                self._new_name(stmt.name, stmt.span)  # says where it was defined
            self._no_tensors(stmt, "a let")
            self.defined.setdefault(stmt.name, stmt.span)
            if isinstance(stmt.value, n.ListExpr) and not stmt.value.items and not stmt.value.tuple:
                self.empties[stmt.name] = stmt
            return
        for name in stmt.names:
            if not (self.loops and name in self.rebound):
                self._new_name(name, stmt.span)
        self.let, self.count = stmt, 0
        steps: list[n.Flow] = []
        if stmt.more:
            value = stmt.value
            func = value.func.name if isinstance(value, n.Call) and isinstance(value.func, n.Var) else None
            if func not in self.sig.decls and not _gives_several(func):
                raise SpecError(f"{len(stmt.names)} names take the outputs of a declared block that gives as many",
                                value.span, hint=f"'let {', '.join(stmt.names)} = m(x)', with m declared above, or "
                                                 f"an op that gives several, 'split(x, sizes, dim)'")
            self.several = value  # the call whose several tensors the let names
            self.call(value, value.func.name, stmt.name, steps)
            steps[-1] = dataclasses.replace(steps[-1], dests=tuple(stmt.names))
            self.sig.lets[stmt] = steps
            for name in stmt.names:
                self.tensors[name] = name
            return
        key = self._own_key(stmt.name, self.value(stmt.value, stmt.name, steps), stmt.span, steps)
        self.sig.lets[stmt] = steps
        self.tensors[stmt.name] = key
        if key != stmt.name:  # another tensor's value: a loop that rebinds that tensor copies it here first
            self.aliases[stmt.name] = stmt
        if key in self.sig.lists:
            self.sig.lists.add(stmt.name)

    def sizes(self, stmt: n.Let, source: n.Var) -> None:
        """``let h, w, c = x.shape``: values that the forward reads from the tensor as it runs (the checker knows
        them for the input it checks with)."""
        self.sig.shapes[stmt] = self._tensor(source.name, source.span)
        for name in stmt.names:
            if name in self.tensors or name in self.sig.decls:
                self._new_name(name, stmt.span)  # says where it was defined
            self.defined.setdefault(name, stmt.span)

    def _new_name(self, name: str, span: n.Span) -> None:
        if name in self.defined:
            raise SpecError(f"'{name}' is already defined in this block", span,
                            notes=[("first defined here", self.defined[name])],
                            hint="every tensor and module of a block with named tensors has a name of its own")
        if name in self.sig.inputs:
            raise SpecError(f"'{name}' is an input of this block", span)
        self.defined[name] = span

    # ------------------------------------------------------------ expressions

    def _reads_tensors(self, e: n.Expr) -> bool:
        """Whether ``e`` reads a tensor or applies a declared module."""
        for node in e.walk():
            if isinstance(node, n.Var) and node.name in self.later and node.name not in self.defined:
                raise SpecError(f"'{node.name}' is used before it is defined", node.span,
                                hint="move its definition above this statement")
            if isinstance(node, n.Var) and node.name in self.tensors:
                return True
            if isinstance(node, n.Call) and isinstance(node.func, n.Var) and node.func.name in self.sig.decls:
                return True
            if isinstance(node, n.Call) and isinstance(node.func, n.Index) and isinstance(node.func.value, n.Var) \
                    and node.func.value.name in self.containers:
                return True
        return False

    def _no_tensors(self, node: n.Node, what: str | None = None) -> None:
        """``node`` reads values only: no tensor, no ``in``/``out``; ``what`` reads it (None: an op's argument)."""
        for sub in node.walk():
            if isinstance(sub, n.TensorRef):
                raise SpecError(f"'{sub.which}' has no meaning in a block with named tensors", sub.span,
                                hint=f"the inputs are named ({', '.join(self.sig.inputs)}); a size comes in as a parameter")
            if isinstance(sub, n.Var) and sub.name in self.tensors and what is not None:
                raise SpecError(f"'{sub.name}' is a tensor, which {what} cannot read", sub.span,
                                hint="pass the size as a block parameter")
            if isinstance(sub, n.Var) and sub.name in self.tensors:
                raise SpecError(f"'{sub.name}' is a tensor where a value is expected", sub.span,
                                hint="an op takes its tensor first; its other arguments are values")

    def _fresh(self) -> str:
        self.count += 1
        return f"{self.let.name}%{self.count}"

    def _tensor(self, name: str, span: n.Span) -> str:
        if name in self.tensors:
            self.used.add(name)
            return self.tensors[name]
        if name in self.sig.decls:
            raise SpecError(f"'{name}' is a module: apply it to a tensor, '{name}(x)'", span)
        raise SpecError(f"unknown tensor '{name}'", span,
                        hint=did_you_mean(name, self.tensors, otherwise=f"the tensors here: {', '.join(self.tensors)}"))

    def value(self, e: n.Expr, dest: str, steps: list[n.Flow]) -> str:
        """Lower the tensor expression ``e``, its result keyed ``dest``; gives the key that holds it (an existing
        tensor's own key where ``e`` only names it)."""
        if isinstance(e, n.Var):
            return self._tensor(e.name, e.span)
        if isinstance(e, n.Call) and isinstance(e.func, n.Var):
            return self.call(e, e.func.name, dest, steps)
        if isinstance(e, n.Call) and isinstance(e.func, n.Index) and isinstance(e.func.value, n.Var) \
                and e.func.value.name in self.containers:
            return self.call(e, self.member_of(e.func), dest, steps)
        if isinstance(e, n.Index):
            return self.item(e, dest, steps)
        if isinstance(e, n.ListExpr) and not e.tuple or isinstance(e, n.BinOp) and self.is_list(e):
            return self.list_value(e, dest, steps)
        if isinstance(e, n.BinOp) and e.op in ARITH + COMPARE:
            left, right = self._reads_tensors(e.left), self._reads_tensors(e.right)
            srcs = []
            for side, is_tensor in ((e.left, left), (e.right, right)):
                if is_tensor:
                    srcs.append(self.value(side, dest if not any(isinstance(s, str) for s in srcs) else self._fresh(),
                                           steps))
                else:
                    self._no_tensors(side)
                    srcs.append(side)
            steps.append(n.Flow(dest, "arith", tuple(srcs), None, e.span, op=e.op))
            return dest
        if isinstance(e, n.IfExp):
            return self.choice(e, dest, steps)
        if isinstance(e, n.UnaryOp) and e.op in ("-", "+"):
            src = self.value(e.operand, dest, steps)
            if e.op == "+":
                return src
            steps.append(n.Flow(dest, "neg", (src,), None, e.span))
            return dest
        raise SpecError("a tensor takes part in an expression that cannot compute tensors", e.span,
                        hint="tensors are computed by applying modules and ops, and by + - * / ** between tensors "
                             "and numbers")

    def choice(self, e: n.IfExp, dest: str, steps: list[n.Flow]) -> str:
        """``a if cond else b`` over tensors: the condition a value, decided where the block is made; a module may
        be applied in each branch, as only one runs."""
        self._no_tensors(e.cond, "a condition")
        before, after, keys, branches = dict(self.applied), {}, [], []
        for branch in (e.then, e.orelse):
            if not self._reads_tensors(branch):
                raise SpecError("each branch of a conditional tensor gives a tensor", branch.span,
                                hint="'a if flag else b', a and b tensors (an identity: the tensor's name)")
            self.applied, inner = dict(before), []
            keys.append(self.value(branch, self._fresh(), inner))
            branches.append(tuple(inner))
            after.update(self.applied)
        self.applied = after
        steps.append(n.Flow(dest, "if", tuple(keys), None, e.span, cond=e.cond, branches=tuple(branches)))
        return dest

    def call(self, e: n.Call, func: str, dest: str, steps: list[n.Flow]) -> str:
        if func in self.sig.decls:
            if e.kwargs:
                raise SpecError(f"module '{func}' takes tensors only, not keyword arguments", e.span)
            if not e.args:
                raise SpecError(f"module '{func}' is applied to nothing", e.span, hint=f"'{func}(x)'")
            if func in self.applied:
                raise SpecError(f"module '{func}' is applied twice: a module of a block is applied once",
                                e.func.span, notes=[("applied here first", self.applied[func])],
                                hint="declare a second module for the second use")
            self.in_its_loop(func, e.func.span)
            self.applied[func] = e.func.span
            srcs = []
            for i, arg in enumerate(e.args):
                if not self._reads_tensors(arg):
                    raise SpecError(f"module '{func}' is applied to tensors only; this argument is none",
                                    arg.span, hint="pass layer arguments where the module is declared")
                srcs.append(self.value(arg, dest if i == 0 else self._fresh(), steps))
            steps.append(n.Flow(dest, "apply", tuple(srcs), self.sig.decls[func], e.span, op=func))
            return dest
        if func in self.later:
            raise SpecError(f"module '{func}' is applied before it is declared", e.func.span,
                            hint="declare the module above the let that applies it")
        from ..ops import REGISTRY  # (the registry imports no part of the language)

        kind = REGISTRY.get(func)
        if kind is None:
            raise SpecError(f"'{func}' is not an op, so it cannot be applied to a tensor here", e.func.span,
                            hint=did_you_mean(func, REGISTRY, otherwise="blocks are declared ('NAME = Block(...)') "
                                                                        "and applied by name ('NAME(x)')"))
        if kind.has_params or kind.call is not None:
            raise SpecError(f"{func} has parameters (or is called with more than its input): declare it, then apply it",
                            e.func.span, hint=f"'NAME = {func}(...)' above, then 'NAME(x)' here")
        if kind.outputs is not None and e is not self.several:
            raise SpecError(f"{func} gives several tensors: name each one", e.span,
                            hint=f"'let a, b = {func}(...)', as many names as it gives")
        if kind.operands:  # where(m, t, 0.0): each operand a tensor or a number
            tensors, rest, kwargs = self._operands(e, func, kind.operands)
        else:
            tensors, rest = self._tensor_args(e, func, kind.inputs, kind.optional_inputs)
            kwargs = []
        for arg in [*rest, *(v for _, v in e.kwargs)]:
            self._no_tensors(arg)
        srcs = tuple(self.value(t, dest if i == 0 and not self.is_list(t) else self._fresh(), steps)
                     for i, t in enumerate(tensors))
        kwargs += [(k, v, v.span) for k, v in e.kwargs]
        layer = n.Layer(None, func, e.func.span, n.Arguments(list(rest), kwargs),
                        None, e.span, applied=True)
        steps.append(n.Flow(dest, "op", srcs, layer, e.span))
        return dest

    def _tensor_args(self, e: n.Call, func: str, inputs: int, optional: int = 0) -> tuple[list[n.Expr], list[n.Expr]]:
        """An op's tensor arguments (the first ``inputs`` positional ones, and up to ``optional`` more that read
        tensors; 0: a list, the first) and the rest."""
        if inputs == 0 and e.args and not isinstance(e.args[0], n.ListExpr) and self.is_list(e.args[0]):
            tensors, rest = [e.args[0]], e.args[1:]  # a list of tensors, whole
        elif inputs == 0:
            if not e.args or not isinstance(e.args[0], n.ListExpr) or not e.args[0].items:
                raise SpecError(f"'{func}' takes a list of tensors first", e.span, hint=f"'{func}([a, b], dim)'")
            tensors, rest = list(e.args[0].items), e.args[1:]
        else:
            more = 0
            while more < optional and len(e.args) > inputs + more and self._reads_tensors(e.args[inputs + more]):
                more += 1
            tensors, rest = e.args[:inputs + more], e.args[inputs + more:]
        if len(tensors) < max(inputs, 1) or not all(self._reads_tensors(t) for t in tensors):
            what = "a tensor as its first argument" if inputs == 1 else \
                f"{inputs} tensors as its first arguments" if inputs else "tensors in its list"
            raise SpecError(f"'{func}' is applied to {what}", e.span,
                            hint="the tensors first, then the op's own arguments")
        return tensors, list(rest)

    def _operands(self, e: n.Call, func: str, operands: tuple[str, ...]) -> tuple[list, list, list]:
        """An op whose operands are each a tensor or a number (``where(m, t, 0.0)``): the tensors, in order, and
        the numbers as the op's arguments of the operands' names."""
        if len(e.args) != len(operands) or e.kwargs and any(k in operands for k, _ in e.kwargs):
            raise SpecError(f"'{func}' takes {len(operands)} operands, {', '.join(operands)}, each a tensor or a number",
                            e.span, hint=f"'{func}({', '.join(operands)})'")
        tensors, kwargs = [], []
        for name, arg in zip(operands, e.args):
            if self._reads_tensors(arg):
                tensors.append(arg)
            else:
                kwargs.append((name, arg, arg.span))
        if not tensors or not self._reads_tensors(e.args[0]):
            raise SpecError(f"'{func}' takes a tensor as its first operand", e.args[0].span if e.args else e.span)
        return tensors, [], kwargs


def _shape_of(e: n.Expr) -> n.Var | None:
    """The tensor of ``x.shape``, where ``e`` is that."""
    if isinstance(e, n.Attr) and e.name == "shape" and isinstance(e.value, n.Var):
        return e.value
    return None


def _gives_several(func: str | None) -> bool:
    """Whether an op gives several tensors (split)."""
    from ..ops import REGISTRY  # (the registry imports no part of the language)

    kind = REGISTRY.get(func) if func is not None else None
    return kind is not None and kind.outputs is not None


def _names_defined(body: list[n.Stmt]) -> set[str]:
    """The names the body's statements define (its loops' too), and the containers its members name."""
    names = set()
    for stmt in body:
        if isinstance(stmt, n.Let):
            names.update(stmt.names)
        elif isinstance(stmt, (n.Layer, n.Seq)) and stmt.target is not None and stmt.target.is_plain:
            names.add("".join(stmt.target.parts))
        elif isinstance(stmt, (n.Layer, n.Seq)) and stmt.target is not None and stmt.target.dotted:
            names.add(stmt.target.parts[0].split(".")[0])
        elif isinstance(stmt, n.For):
            names |= _names_defined(stmt.body)
    return names


def decl_name(sig: n.Signature, stmt: n.Stmt) -> str:
    """The name a declaration is applied by: its plain name, or a member's ``convs.{i}`` / ``heads.cls``."""
    return next(name for name, decl in sig.decls.items() if decl is stmt)
