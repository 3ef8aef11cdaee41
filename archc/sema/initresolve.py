"""Which ``init`` rule reaches each parameter of each layer, and the values its arguments take there.

Every layer's parameters are matched against the rules met while elaborating (one per block instance that
holds an ``init`` statement): a rule for a layer by its path, for ``Block.layer`` in every instance of the
block, or for an op kind within a block instance (or the network). The most specific wins (``_rank``). The rules
are indexed by what a layer must have for them to reach it -- its path, its last name, or an enclosing scope and
its kind -- so a network of thousands of layers and tens of rules looks at only the rules that can match.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import SpecError, did_you_mean
from ..lang import nodes as n
from ..ops import REGISTRY
from .expr import Evaluator
from .exprfold import free_names
from .graph import OpNode
from .initrules import (
    INITIALISERS,
    LAYER_NAME_SET,
    Resolved,
    Rule,
    _argument_exprs,
    argument_spans,
    as_call,
    check_arguments,
    check_constant,
    check_dimensions,
    entries,
)
from .layout import TensorType


def layer_sizes(node: OpNode) -> dict[str, object]:
    """The sizes of a layer that a rule's arguments may read, as its kind says (a learned tensor has none)."""
    kind = REGISTRY.get(node.op)
    if node.learned or kind is None or kind.init_sizes is None:
        return {}
    return kind.init_sizes(node.args, node.in_shapes[0], TensorType(node.shape, node.layout))


def node_parameters(node: OpNode) -> tuple[str, ...]:
    """The parameters a layer's module has, as its kind says (a conv without bias has no bias)."""
    if node.learned:  # a learned tensor: the rule sets the tensor itself
        return ("",)
    kind = REGISTRY.get(node.op)
    if kind is None or not kind.init_params:
        return ()
    return kind.init_params if kind.init_has is None else kind.init_has(node.args)


def evaluate_rule(rule: Rule, node: OpNode, budget) -> Resolved:
    """What initialises the parameter: the last entry, each one before it checked (``before``, its draws)."""
    sizes = layer_sizes(node)
    _check_sizes_read(rule, node.op, sizes)
    ev = Evaluator({**rule.env, **sizes}, budget=budget)
    *before, last = [_evaluate(rule, item, node, ev) for item in entries(rule.rule)]
    last.before = before
    return last


def _evaluate(rule: Rule, item: n.Expr, node: OpNode, ev: Evaluator) -> Resolved:
    call = _call_of(item)
    if call is None:
        value = ev(item)
        check_constant(value, item.span)
        return Resolved(None, {"val": value}, rule.stmt)
    init = INITIALISERS[call.func.name]
    check_dimensions(init.name, node.op, rule.param, call.span, _tensor_dims(node) if node.learned else None)
    args = {key: ev(expr) for key, expr in _exprs_of(call).items()}
    try:  # a rule reaches many layers with the same values: each set is checked once
        _check_once(init.name, call, tuple(args.items()))
    except TypeError:  # a value that does not hash (a list): checked here
        check_arguments(init.name, args, argument_spans(call), call.span)
    return Resolved(init.name, args, rule.stmt)


def _tensor_dims(node: OpNode) -> int:
    """How many dimensions a learned tensor has (a token's: 1 x count x D)."""
    shape = node.args.get("shape")
    return 3 if shape is None else len(shape) if isinstance(shape, (tuple, list)) else 1


# A rule is resolved for every layer it reaches (tens of thousands in the deepest networks): what depends on
# its AST alone is worked out once per node.
@lru_cache(maxsize=4096)
def _call_of(rule: n.Expr) -> n.Call | None:
    return as_call(rule)


@lru_cache(maxsize=4096)
def _exprs_of(call: n.Call) -> dict[str, n.Expr]:
    return _argument_exprs(call)


@lru_cache(maxsize=4096)
def _names_of(rule: n.Expr) -> frozenset[str]:
    return frozenset(free_names(rule))


@lru_cache(maxsize=16384)
def _check_once(name: str, call: n.Call, args: tuple) -> None:
    check_arguments(name, dict(args), argument_spans(call), call.span)


def _check_sizes_read(rule: Rule, op: str, sizes: dict) -> None:
    """A rule's arguments read a layer size only where the layer has it (no ``fan_in`` of a batchnorm)."""
    read = _names_of(rule.rule)
    if not read & LAYER_NAME_SET:
        return
    both = sorted(read & LAYER_NAME_SET & set(rule.env))
    if both:  # the generated pass would read the layer's, the checker the parameter's: neither guess is safe
        raise SpecError(f"'{both[0]}' is both a name defined here and a layer size that a rule may read",
                        _name_span(rule.rule, both[0]), hint=f"rename the parameter or let '{both[0]}'")
    missing = sorted(read & LAYER_NAME_SET - set(sizes) - set(rule.env))
    if missing:
        raise SpecError(f"'{missing[0]}' is not a size of a {op} layer", _name_span(rule.rule, missing[0]),
                        hint=f"a {op} rule may read: {', '.join(sizes)}")


def _name_span(e: n.Expr, name: str) -> n.Span:
    for node in e.walk():
        if isinstance(node, n.Var) and node.name == name:
            return node.span
    return e.span


def _located(exc: SpecError, rule: Rule, node: OpNode, param: str, scopes: dict) -> SpecError:
    """Say which layer the failing rule was initialising, and through which block calls (its values may come
    from their arguments)."""
    exc.add_note(f"initialising '{'.'.join(filter(None, [node.name, param]))}', made here", node.span)
    parts = rule.scope.split(".") if rule.scope else []
    for i in range(len(parts), 0, -1):
        info = scopes.get(".".join(parts[:i]))
        if info is not None and info.kind == "block":
            exc.add_note(f"in block {info.block}, called here", info.span)
    return exc


def resolve(rules: list[Rule], nodes: list[OpNode], scopes: dict, budget) -> dict[str, dict[str, Resolved]]:
    """The rule of every parameter of every layer that one reaches: by module path, then parameter."""
    out: dict[str, dict[str, Resolved]] = {}
    by_path = {node.name: node for node in nodes if node.name is not None}
    for rule in rules:  # LAYER.name where that is a learned tensor's path: the tensor
        full = ".".join(filter(None, [rule.scope, *rule.path, rule.param]))
        if rule.kind is None and rule.block is None and rule.param and full in by_path and by_path[full].learned:
            rule.path, rule.param = (*rule.path, rule.param), ""
    index = _Index(rules)
    done: dict[tuple, Resolved] = {}  # a rule's values for the names it reads: most layers it reaches share them
    for node in nodes:
        if node.name is None:
            continue
        params = node_parameters(node)
        if not params:
            continue
        for param in params:
            best = index.best_of_kind(node, param)
            for rule in index.candidates(node, param):
                rank = _rank(rule, node, scopes)
                if rank is not None and (best is None or (not rule.stmt.made, rank) > best[0]):
                    best = ((not rule.stmt.made, rank), rule)
            if best is not None:
                best[1].used = True
                try:
                    out.setdefault(node.name, {})[param] = index.evaluated(best[1], node, budget, done)
                except SpecError as exc:
                    raise _located(exc, best[1], node, param, scopes) from None
    for rule in rules:  # a layer rule must name a layer that is there
        if rule.kind is None and rule.block is None:
            path = ".".join(filter(None, [rule.scope, *rule.path]))
            if path not in by_path:
                what = "learned tensor" if not rule.param else "layer"
                raise SpecError(f"there is no {what} '{'.'.join(rule.path)}' here to initialise", rule.stmt.span,
                                hint=did_you_mean(path, by_path))
            if not rule.param and not by_path[path].learned:
                raise SpecError(f"'{'.'.join(rule.path)}' is a {by_path[path].op} layer: name its parameter",
                                rule.stmt.span, hint=f"its parameters: {', '.join(node_parameters(by_path[path]))}")
            if rule.param not in node_parameters(by_path[path]):
                raise SpecError(f"'{'.'.join(rule.path)}' ({by_path[path].op}) has no parameter '{rule.param}'",
                                rule.stmt.span)
    return out


class _Index:
    """The rules by what a layer must have for each to reach it: a kind rule by (parameter, kind, the scope it
    stands in), a ``Block.layer`` rule by (parameter, the layer's last name), a layer rule by (parameter, path).
    Each rule's reads of its block's values are worked out once (``evaluated``)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.kinds: dict[tuple, list[Rule]] = {}
        self.blocks: dict[tuple, list[Rule]] = {}
        self.layers: dict[tuple, list[Rule]] = {}
        for rule in rules:
            if rule.kind is not None:
                self.kinds.setdefault((rule.param, rule.kind, rule.scope), []).append(rule)
            elif rule.block is not None:
                if rule.path:  # (an empty path reaches no layer)
                    last = ".".join(rule.path).rpartition(".")[2]
                    self.blocks.setdefault((rule.param, last), []).append(rule)
            else:
                self.layers.setdefault((rule.param, ".".join(filter(None, [rule.scope, *rule.path]))), []).append(rule)
        self.scoped = {rule.scope for rule in rules if rule.kind is not None}  # the scopes kind rules stand in
        self.around: dict[str, list[str]] = {"": [""] if "" in self.scoped else []}  # path -> those around it
        self.reads: dict[int, tuple] = {}  # id(rule) -> (the names it reads, the block values of those names)
        self.of_kind: dict[tuple, tuple | None] = {}  # (parameter, kind, scope) -> the kind rules' best there

    def best_of_kind(self, node: OpNode, param: str) -> tuple | None:
        """The kind rule that reaches ``node``'s ``param`` most specifically, with its rank (``_rank``), or None:
        the same for every layer of that kind in one scope (a block instance's), so it is found once for them."""
        parent = node.name.rpartition(".")[0]
        key = (param, node.op, parent)
        if key not in self.of_kind:
            best = None
            for scope in self._scopes_around(parent):
                for rule in self.kinds.get((param, node.op, scope), ()):
                    rank = (not rule.stmt.made, (0, rule.depth, rule.order))
                    if best is None or rank > best[0]:
                        best = (rank, rule)
            self.of_kind[key] = best
        return self.of_kind[key]

    def candidates(self, node: OpNode, param: str) -> list[Rule]:
        """The ``Block.layer`` and layer rules that may reach ``node``'s ``param`` (the kind rules: ``best_of_kind``)."""
        last = node.name.rpartition(".")[2]
        return [*self.blocks.get((param, last), ()), *self.layers.get((param, node.name), ())]

    def _scopes_around(self, path: str) -> list[str]:
        """The scopes of kind rules that hold ``path`` or are it: the network's, then the enclosing paths."""
        found = self.around.get(path)
        if found is None:
            outer = self._scopes_around(path.rpartition(".")[0])
            found = self.around[path] = [*outer, path] if path in self.scoped else outer
        return found

    def evaluated(self, rule: Rule, node: OpNode, budget, done: dict) -> Resolved:
        """``evaluate_rule``, once for each rule and the values of the names it reads (what its checks depend on
        included: the layer's kind, which names it has)."""
        reads = self.reads.get(id(rule))
        if reads is None:
            names = sorted(_names_of(rule.rule))
            reads = self.reads[id(rule)] = (names, tuple((k, k in rule.env, rule.env.get(k)) for k in names),
                                            bool(LAYER_NAME_SET.intersection(names)))
        names, values, sized = reads
        sizes = layer_sizes(node) if sized else {}
        key = (id(rule.rule), node.op, values, tuple((k in sizes, sizes.get(k)) for k in names) if sized else ())
        try:
            found = done.get(key)
        except TypeError:  # a value that does not hash (a list): evaluated each time
            return evaluate_rule(rule, node, budget)
        if found is None:
            found = done[key] = evaluate_rule(rule, node, budget)
        return found


def _rank(rule: Rule, node: OpNode, scopes: dict) -> tuple | None:
    """How specifically a ``Block.layer`` or layer ``rule`` reaches ``node`` (higher wins; a kind rule's rank is
    ``(0, depth, order)``, ``_Index.best_of_kind``), or None if it does not."""
    name = node.name
    if rule.block is not None:
        suffix = "." + ".".join(rule.path)
        if not name.endswith(suffix):
            return None
        owner = name[: -len(suffix)]
        info = scopes.get(owner)
        if info is None or info.block != rule.block or not (rule.scope == "" or owner.startswith(rule.scope + ".")):
            return None
    return (1, rule.depth, rule.order)
