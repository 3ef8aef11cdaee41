"""Printing a lifted model as spec text: the block definitions (children first), the network and its variant.
Everything is decided before this module (``blocks``): it only prints templates, with each slot written as
its literal or its parameter."""

from __future__ import annotations

from ..ops.base import REGISTRY
from . import ir
from .blocks import BlockDef, Call, OpValue, Param, Slot, _key
from .errors import LiftError
from .implicit import ImplicitForms, _formless
from .names import KEYWORDS, Names, member, plain

INDENT = "    "
_BINARY = {"+", "-", "*", "/", "**"}



def literal(v) -> str:
    if isinstance(v, OpValue):
        return v.op
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise LiftError(f"the value {v} cannot be written in a spec")
        return repr(v)
    if isinstance(v, str):
        if any(c in v for c in '"\\\n') or not v.isprintable():
            raise LiftError(f"the string {v!r} cannot be written in a spec")
        return f'"{v}"'
    if isinstance(v, tuple) and not v:
        return "[]"  # the empty shape (a scalar learned tensor's): the language writes no empty tuple
    if isinstance(v, tuple):
        return "(" + ", ".join(literal(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    raise LiftError(f"the value {v!r} ({type(v).__name__}) cannot be written in a spec")


def target(name: str) -> str:
    return name if plain(name) or member(name) else literal(name)


def applied(name: str) -> str:
    """A child applied to tensors: by its name, or a container's member by its index (``convs[0]``)."""
    m = member(name)
    return f"{m[0]}[{m[1]}]" if m else target(name)


class Printer(ImplicitForms):
    def __init__(self, defs: dict[int, BlockDef]):
        self.defs = defs
        self.block: BlockDef | None = None

    def text(self, e) -> str:
        if isinstance(e, tuple) and any(isinstance(x, Slot) for x in e):
            return "(" + ", ".join(self.text(x) for x in e) + ("," if len(e) == 1 else "") + ")"
        if isinstance(e, Slot):
            e = self.block.expr(e)
        if isinstance(e, Param):
            return e.name if e.times == 1 else f"{e.times} * {e.name}"
        return literal(e)

    def differs(self, e, default) -> bool:
        if isinstance(e, tuple) and any(isinstance(x, Slot) for x in e):
            return True
        if isinstance(e, Slot):
            e = self.block.expr(e)
        return isinstance(e, Param) or _key(e) != _key(default)

    def op_call(self, op: str, values: list, tensors: list[str] | None = None) -> str:
        """``op(tensors, required, name = value)``: required fields by position, the others where they differ
        from the default."""
        parts = list(tensors or [])
        for (f, info), e in zip(REGISTRY[op].args.model_fields.items(), values):
            if info.is_required():
                parts.append(self.text(e))
            elif self.differs(e, info.default):
                parts.append(f"{f} = {self.text(e)}")
        return f"{op}({', '.join(parts)})" if parts else op

    def leaf(self, leaf: ir.Leaf, tensors: list[str] | None = None) -> str:
        if isinstance(leaf.op, Slot):  # an activation that is a parameter, or one written by name
            name = self.text(leaf.op)
            return f"{name}({', '.join(tensors)})" if tensors else name
        return self.op_call(leaf.op, list(leaf.args.values()), tensors)

    def call(self, c: Call) -> str:
        return f"{c.block.name}(" + ", ".join(self.text(a) for a in c.args) + ")"

    # ------------------------------------------------------------------ sequences

    def seq_lines(self, children: list, depth: int) -> list[str]:
        """A sequence's children, one statement each; a run of calls of one block that differ at most in the
        first is one ``for`` loop (``2 if i == 0 else 1``)."""
        numbered = [n for n, _ in children] == [str(i) for i in range(len(children))]
        items: list = []  # lines, or (block name, argument texts) for an unnamed call
        for name, part in children:
            if isinstance(part, ir.Seq):
                body = self.seq_lines(part.children, depth + 1)
                head = "seq {" if numbered else f"{target(name)} = seq {{"
                items.append([head] + body + ["}"])
            elif isinstance(part, Call):
                items.append((part.block.name, tuple(self.text(a) for a in part.args), None if numbered else name))
            else:
                stmt = self.leaf(part) if isinstance(part, ir.Leaf) else self.call(part)
                then = self.before_lines(part) + self.then_lines(part, name)
                if then and numbered:
                    raise LiftError(f"{part.path}: a layer that applies others after it cannot sit in a numbered "
                                    "sequence: they would take numbers of their own")
                items.append(self.before_lines(part) + [stmt if numbered else f"{target(name)} = {stmt}"] +
                             self.then_lines(part, name))
        lines: list[str] = []
        i = 0
        while i < len(items):
            if not isinstance(items[i], tuple):
                lines += items[i]
                i += 1
                continue
            offset = 0 if _numbered_name(items[i][2], 0, 0) else 1
            pattern = _numbered_name(items[i][2], offset, offset)
            j = i + 1
            while j < len(items) and isinstance(items[j], tuple) and items[j][0] == items[i][0] and \
                    (j == i + 1 or items[j][1] == items[i + 1][1]) and \
                    (items[j][2] is None if pattern is None else
                     _numbered_name(items[j][2], j - i + offset, offset) == pattern):
                j += 1
            run = items[i:j]
            if len(run) >= 3 or (len(run) == 2 and run[0][1] == run[1][1]):
                first, rest = run[0][1], run[-1][1]
                args = [a if a == b else _first_or(a, b) for a, b in zip(first, rest)]
                named = "" if pattern is None else f"{pattern} = "
                lines += [f"for i in range({len(run)}) {{", f"{INDENT}{named}{run[0][0]}({', '.join(args)})", "}"]
            else:
                lines += [(f"{target(n)} = " if n else "") + f"{b}({', '.join(a)})" for b, a, n in run]
            i = j
        return [INDENT + line for line in lines]

    # ------------------------------------------------------------------ dataflow

    def declaration(self, name: str, part, conditional: bool = True) -> list[str]:
        cond = self.block.conditions.get(name) if conditional else None
        suffix = f" if {self.text(cond)}" if cond is not None else ""
        if isinstance(part, ir.Seq):
            return [f"{target(name)} = seq {{"] + self.seq_lines(part.children, 1) + ["}" + suffix]
        stmt = self.leaf(part) if isinstance(part, ir.Leaf) else self.call(part)
        return [f"{target(name)} = {stmt}{suffix}"]

    def held(self, owner: str, t: ir.Leaf) -> str | None:
        """The name of a layer that a module applies after itself where a parameter holds it (``bn_act`` for
        ``bn``'s ``act``): an op held in a parameter is a module, so it is declared by name; None otherwise."""
        if isinstance(t.op, Slot) and isinstance(self.block.expr(t.op), Param):
            return target(f"{owner}_{t.path.rsplit('.', 1)[-1]}")
        return None

    def then_lines(self, part, owner: str) -> list[str]:
        """The layers a module applies after itself, as statements on the implicit tensor."""
        out = []
        for t in part.then if isinstance(part, ir.Leaf) else []:
            name = self.held(owner, t)
            out.append(self.leaf(t) if name is None else f"{name} = {self.leaf(t)}")
        return out

    def held_declarations(self, owner: str, part) -> list[str]:
        """The declarations of the layers held in parameters that a module applies after itself (named tensors)."""
        out = []
        for t in part.then if isinstance(part, ir.Leaf) else []:
            name = self.held(owner, t)
            if name is not None:
                out.append(f"{name} = {self.leaf(t)}")
        return out

    def before_lines(self, part) -> list[str]:
        return [self.leaf(t) for t in part.before] if isinstance(part, ir.Leaf) else []

    def then_applied(self, part, owner: str, text: str) -> str:
        """``text`` (a tensor) with the layers a module applies after itself applied to it."""
        for t in part.then if isinstance(part, ir.Leaf) else []:
            name = self.held(owner, t)
            text = self.leaf(t, [text]) if name is None else f"{name}({text})"
        return text

    def before_applied(self, part, text: str) -> str:
        for t in part.before if isinstance(part, ir.Leaf) else []:
            text = self.leaf(t, [text])
        return text

    def dag_lines(self, dag: ir.Dag, taken: set[str]) -> tuple[list[str], str]:
        """The declarations and lets of a forward; the output's name."""
        kids = dict(dag.children)
        calls: dict[str, int] = {}
        for nd in dag.nodes:
            if nd.fn == "call":
                calls[nd.child] = calls.get(nd.child, 0) + 1
        declared = {n for n, p in dag.children if not (isinstance(p, ir.Leaf) and not p.stateful
                                                       and (calls[n] > 1 or _formless(p)))}
        lines = []
        for name, part in dag.children:
            if name in declared:
                lines += self.declaration(name, part) + self.held_declarations(name, part)
        uses = dag.uses()
        texts = [Names.fresh(x, taken) for x in dag.inputs]  # each value's name, or its expression if inlined
        operators: set[int] = set()  # values whose inlined expression is an operator: parenthesised as operands
        out_name = texts[dag.output.index] if dag.output.index < len(dag.inputs) else None
        for k, nd in enumerate(dag.nodes, start=len(dag.inputs)):
            expr = self.node(nd, texts, operators, kids, declared)
            if k == dag.output.index:
                out_name = Names.fresh("y", taken)
                lines.append(f"let {out_name} = {expr}")
                texts.append(out_name)
            elif uses.get(k, 0) == 1:
                texts.append(expr)
                if nd.fn in _BINARY or nd.fn == "neg":
                    operators.add(k)
            else:
                name = Names.fresh(nd.name or "t", taken)
                lines.append(f"let {name} = {expr}")
                texts.append(name)
        return lines, out_name

    def node(self, nd: ir.Node, texts: list[str], operators: set[int], kids: dict, declared: set[str]) -> str:
        """A node's expression, without parentheses around it (its users add them where they must)."""
        def ref(a):
            if isinstance(a, ir.Ref):
                return texts[a.index]
            return "[" + ", ".join(texts[r.index] for r in a) + "]"

        def operand(x):
            if isinstance(x, ir.Ref):
                return f"({texts[x.index]})" if x.index in operators else texts[x.index]
            value = self.block.expr(x) if isinstance(x, Slot) else x
            text = self.text(x)
            if (isinstance(value, Param) and value.times != 1) or \
                    (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0):
                return f"({text})"
            return text

        tensors = [ref(a) for a in nd.args if isinstance(a, (ir.Ref, list))]
        rest = [a for a in nd.args if not isinstance(a, (ir.Ref, list))]
        if nd.fn == "call":
            part = kids[nd.child]
            if nd.child in declared:
                ins = [self.before_applied(part, t) for t in tensors]
                return self.then_applied(part, nd.child, f"{applied(nd.child)}({', '.join(ins)})")
            return self.leaf(part, tensors)
        if nd.fn in _BINARY:
            a, b = (operand(x) for x in nd.args)
            return f"{a} {nd.fn} {b}"
        if nd.fn == "neg":
            return f"-{operand(nd.args[0])}"
        return self.op_call(nd.fn, rest, tensors)

    # ------------------------------------------------------------------ whole specs

    def block_text(self, d: BlockDef) -> str:
        self.block = d
        t = d.template
        params = ", ".join(d.params)
        if d.kind == "seq":
            return "\n".join([f"block {d.name}({params}) = seq {{"] + self.seq_lines(t.children, 1) + ["}"])
        implicit = self.implicit_lines(t)
        if implicit is not None:
            return "\n".join([f"block {d.name}({params}) {{"] + [INDENT + line for line in implicit] + ["}"])
        bad = [n for n, _ in t.children if not plain(n) and not member(n)]
        if bad:
            raise LiftError(f"{t.path or 'the model'} ({t.cls}): its child '{bad[0]}' has a name that a spec can "
                            "only write in quotes, and its forward needs named tensors, which apply children by "
                            "plain names")
        taken = {n for n, _ in t.children} | set(d.params) | set(REGISTRY) | KEYWORDS | set(b.name for b in
                                                                                       self.defs.values())
        ins = [Names.fresh(x, set(taken)) for x in t.inputs]
        lines, out = self.dag_lines(t, taken)
        sized = [f"{x}: " + " x ".join(_dim(d.expr(e), self.text(e)) for e in sizes) if sizes else x
                 for x, sizes in zip(ins, getattr(t, "sizes", None) or [()] * len(ins))]
        head = f"block {d.name}({params}) ({', '.join(sized)}) -> {out} {{"
        return "\n".join([head] + [INDENT + line for line in lines] + ["}"])

    def network_text(self, name: str, root, input_shape: tuple[int, ...]) -> list[str]:
        lines = [f"input {' x '.join(map(str, input_shape))}"]
        if isinstance(root, ir.Seq):
            for cname, part in root.children:  # the layers a layer applies before and after it too, unnamed
                lines += self.before_lines(part) + self.declaration(cname, part) + self.then_lines(part, cname)
            return [f"network {name}() {{"] + [INDENT + x for x in lines] + ["}"]
        body = self.implicit_lines(root) if not root.sides else self.implicit_lines(_without_sides(root))
        if body is None:
            raise LiftError(f"the model's own forward ({root.cls}) is not a chain of layers and blocks, with at most "
                            "a residual: a network whose top level branches otherwise cannot be written yet")
        lines += body
        kids = dict(root.children)
        for side, source in root.sides:  # heads in training only, on an earlier child's output
            part = kids[side]
            if isinstance(part, ir.Seq):
                raise LiftError(f"the side output '{side}' is a sequence: only a block or a layer can be written")
            head = self.leaf(part) if isinstance(part, ir.Leaf) else self.call(part)
            lines.append(f"{target(side)} = side {head} from {target(source)}")
        return [f"network {name}() {{"] + [INDENT + x for x in lines] + ["}"]


def _numbered_name(name: str | None, n: int, offset: int) -> str | None:
    """The pattern ``layer{i}`` (``layer{i + 1}`` with offset 1) where ``name`` holds the number ``n`` once
    (``encoder_layer_3`` for 3), else None."""
    if name is None or name.count(str(n)) != 1 or not plain(name.replace(str(n), "n")):
        return None
    head, _, tail = name.partition(str(n))
    if (head and head[-1].isdigit()) or (tail and tail[0].isdigit()):
        return None
    return f"{head}{{i + {offset}}}{tail}" if offset else f"{head}{{i}}{tail}"


def _without_sides(dag: ir.Dag) -> ir.Dag:
    return ir.Dag(dag.cls, dag.path, [(n, p) for n, p in dag.children if n not in dict(dag.sides)], dag.inputs,
                  dag.input_shapes, dag.nodes, dag.output, dag.sizes, dag.dense)


def _first_or(first: str, rest: str) -> str:
    """An argument that is ``first`` in a loop's first iteration and ``rest`` after it."""
    if (first, rest) == ("true", "false"):
        return "i == 0"
    if (first, rest) == ("false", "true"):
        return "i != 0"
    return f"{first} if i == 0 else {rest}"


def _dim(expr, text: str) -> str:
    """A size in an input's signature: parenthesised where it is a multiple (``(2 * c) x h``)."""
    return f"({text})" if isinstance(expr, Param) and expr.times != 1 else text
