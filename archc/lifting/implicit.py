"""The forms on one implicit tensor: a forward printed as statements, with the language's structured constructs
where its graph has their shape: a chain, and around one node that joins branches from one tensor, a
``residual`` (a sum), a ``gate`` (the tensor times a chain of it) or a ``concat`` (branches concatenated on the
channels), with a chain before and after."""

from __future__ import annotations

from ..ops.base import REGISTRY
from . import ir

INDENT = "    "
# ops that stand only in the lets of a block with named tensors
PRIMITIVES = {"reshape", "unflatten", "flatten_dims", "transpose", "select", "narrow", "sum", "amax", "vector_norm",
              "matmul", "scaled_dot_product_attention", "cat", "stack", "sin", "cos", "normalize", "coordinates"}
_OPERATORS = {"+", "-", "*", "/", "**", "neg"}


class ImplicitForms:
    """Printer's methods for the implicit path (the printer gives ``declaration``, ``leaf``, ``then_lines``,
    ``seq_lines``, ``text`` and ``block``)."""

    def implicit_lines(self, dag: ir.Dag) -> list[str] | None:
        """The forward as statements on one implicit tensor, or None where it has no such form."""
        if len(dag.inputs) != 1:
            return None
        if dag.dense:  # the members, each on the concatenation of the input and those before
            return ["dense {"] + self.seq_lines(dag.children, 1) + ["}"]
        n_in = len(dag.inputs)

        def back(k: int) -> tuple[list[int], int]:
            """The chain of single-input nodes that ends at value k, in forward order, and where it starts."""
            out = []
            while k >= n_in:
                nd = dag.nodes[k - n_in]
                tensors = ir.refs_in(nd.args)
                if nd.fn in _OPERATORS or len(tensors) != 1 or isinstance(nd.args[0], list):
                    break
                out.append(k)
                k = tensors[0].index
            return out[::-1], k

        post, join = back(dag.output.index)
        if join < n_in:
            parts, split = [("", post)], join
        else:
            found = self._join(dag.nodes[join - n_in], back)
            if found is None:
                return None
            kind, chains, split = found
            pre, start = back(split) if split >= n_in else ([], split)
            if start != 0:
                return None
            parts = [("", pre), *((kind, chain) for chain in chains), ("", post)]
        covered = sum(len(chain) for _, chain in parts) + (join >= n_in)
        uses = dag.uses()
        if covered != len(dag.nodes) or any(uses.get(k, 0) != 1 for k in range(n_in, n_in + len(dag.nodes))
                                            if k != split):
            return None
        return self._print_parts(dag, parts)

    def _join(self, nd: ir.Node, back):
        """(kind, the branches' chains, the tensor they start from) where ``nd`` joins branches of one tensor."""
        if nd.fn == "cat" and isinstance(nd.args[0], list) and self.block.expr(nd.args[1]) == 1:
            operands = nd.args[0]
            kind = "concat"
        elif nd.fn in ("+", "*") and all(isinstance(a, ir.Ref) for a in nd.args):
            operands = list(nd.args)
            kind = "residual" if nd.fn == "+" else "gate"
        else:
            return None
        chains = [back(a.index) for a in operands]
        starts = {start for _, start in chains}
        common = 0  # the branches' common start (XCiT's x + pos(x), x = patch_embed(input)): cut from each
        while len(starts) == 1 and all(len(c) > common for c, _ in chains) and \
                len({c[common] for c, _ in chains}) == 1:
            common += 1
        if common:
            start = chains[0][0][common - 1]
            chains = [(c[common:], start) for c, _ in chains]
            starts = {start}
        if len(starts) != 1:
            return None
        bodies = [chain for chain, _ in chains]
        if kind == "residual":
            if not any(bodies) or (nd.in_order and not bodies[0]):  # the shortcut first, where the order matters
                return None
            bodies.sort(key=lambda c: not c)  # the body first, the shortcut (maybe the identity) second
        if kind == "gate":
            if sum(1 for c in bodies if c) != 1:
                return None
            bodies = [c for c in bodies if c]
        return kind, bodies, starts.pop()

    def _print_parts(self, dag: ir.Dag, parts: list) -> list[str] | None:
        n_in = len(dag.inputs)
        kids = dict(dag.children)
        calls: dict[str, int] = {}
        for nd in dag.nodes:
            if nd.fn == "call":
                calls[nd.child] = calls.get(nd.child, 0) + 1
        lines: list[str] = []
        branches: list[list[str]] = []
        for i, (kind, chain) in enumerate(parts):
            only = dag.nodes[chain[0] - n_in] if len(chain) == 1 else None
            if kind == "residual" and lines and lines[-1] == "}" and parts[i - 1][0] == "residual":  # the shortcut
                if not chain:
                    continue
                head = "} shortcut {"
                if only is not None and only.child in self.block.conditions:
                    head = f"}} shortcut if {self.text(self.block.conditions[only.child])} {{"  # the projection
                    body = (self.declaration(only.child, kids[only.child], conditional=False), 1)
                else:
                    body = self._chain(dag, chain, kids, calls)
                    if body is None:
                        return None
                lines[-1] = head
                lines += [INDENT + x for x in body[0]] + ["}"]
                continue
            body = self._chain(dag, chain, kids, calls)
            if body is None:
                return None
            statements, count = body
            if kind == "concat":
                if count == 0:
                    branches.append(["identity"])
                elif count == 1:
                    branches.append(statements)
                else:
                    branches.append(["seq {"] + [INDENT + x for x in statements] + ["}"])
                if i + 1 < len(parts) and parts[i + 1][0] == "concat":
                    continue
                lines += ["concat {"] + [INDENT + x for b in branches for x in b] + ["}"]
                branches = []
            elif kind in ("residual", "gate"):
                lines += [f"{kind} {{"] + [INDENT + x for x in statements] + ["}"]
            else:
                lines += statements
        return lines

    def _chain(self, dag: ir.Dag, chain: list[int], kids: dict, calls: dict):
        """The statements of a chain (lines) and how many statements they are; None where one has no form here."""
        n_in = len(dag.inputs)
        lines, count = [], 0
        for k in chain:
            stmt = self.statement(dag.nodes[k - n_in], kids, calls)
            if stmt is None:
                return None
            lines += stmt[0]
            count += stmt[1]
        return lines, count

    def statement(self, nd: ir.Node, kids: dict, calls: dict) -> tuple[list[str], int] | None:
        """A node as statements on the implicit tensor (lines, and how many statements), or None."""
        if nd.fn == "call":
            part = kids[nd.child]
            if isinstance(part, ir.Leaf) and not part.stateful and (calls[nd.child] > 1 or _formless(part)):
                return [self.leaf(part)], 1
            then, before = self.then_lines(part, nd.child), self.before_lines(part)
            return before + self.declaration(nd.child, part) + then, 1 + len(then) + len(before)
        rest = [a for a in nd.args if not isinstance(a, (ir.Ref, list))]
        if nd.fn == "flatten_dims" and [self.block.expr(a) for a in rest] == [1, -1]:
            return ["flatten"], 1  # the layer: flatten_dims is for named tensors
        if nd.fn == "select" and self.block.expr(rest[0]) == 1 and len(nd.shape) == 1:
            return [f"select_token({self.text(rest[1])})"], 1  # one token of a sequence
        # a slice keeps its tensor's layout, so it stands as a statement too (ViT's pooling after its prefix
        # tokens, ``narrow(1, 5, 256)``; MixNet's channel groups, each a branch of a concat)
        if (nd.fn in PRIMITIVES and nd.fn != "narrow") or nd.fn not in REGISTRY:
            return None
        return [self.op_call(nd.fn, rest)], 1


def _formless(leaf: ir.Leaf) -> bool:
    """An op with no module form (a forward-only template): it is written where it is applied, unnamed."""
    return isinstance(leaf.op, str) and REGISTRY[leaf.op].module is None

