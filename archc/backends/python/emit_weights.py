"""A network's initialisation rules (``init`` statements, see ``initrules``) as the end of its ``__init__``:
one pass over ``self.modules()``, as torchvision writes it, so the same tensors are drawn in the same
order as there.

Each kind of layer the rules reach has one branch (``isinstance(m, nn.Conv2d)``; kinds with the same
rules share one, as torchvision's ``(nn.Conv2d, nn.Linear)``); in it, each parameter's rules are tried
from the most specific: the layers that per-layer rules name (collected before the loop, e.g. every
Bottleneck's ``bn3``), the layers of a block that has its own rule for the kind, then the network's
rule for the kind. A condition on the network's parameters (``zero_init_residual``) stays an ``if``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SpecError
from ...lang import nodes as n
from ...sema.exprfold import free_names
from ...sema.initrules import INITIALISERS, PARAMETERS, entries
from . import ir
from .emit import Namespace, symbol, through_lets
from .helpers import HELPERS, helper_bases
from .lower import lower


def _sizes(m: ir.Node) -> dict[str, ir.Node]:
    """What a rule's argument names mean in the generated loop, over ``m``, the layer."""
    weight = ir.Attr(m, "weight")
    sizes: dict[str, ir.Node] = {
        "fan_in": ir.call(ir.Attr(ir.Index(weight, ir.Const(0)), "numel")),
        "fan_out": ir.BinOp("*", ir.Index(ir.Attr(weight, "shape"), ir.Const(0)),
                            ir.call(ir.Attr(ir.Index(weight, ir.Tuple((ir.Const(0), ir.Const(0)))), "numel"))),
    }
    for size in ("in_channels", "out_channels", "kernel_size", "groups", "in_features", "out_features",
                 "num_features", "normalized_shape"):
        sizes[size] = ir.Attr(m, size)
    return sizes


@dataclass
class _Rule:
    stmt: n.Init
    kind: str | None
    block: str | None  # the block whose instances it reaches (its own body's rule, or Block.layer in the network)
    path: tuple[str, ...]
    param: str
    rank: tuple  # higher is tried first
    owner: str | None  # the block whose body holds the statement, None for the network
    conds: list[n.Expr]  # the statement's condition and those of the ifs around it, all of which must hold


def weight_init_body(ctx, program, module_classes: dict[str, list[str]], kinds_of: dict, block_order: list[str],
                     optional: dict[str, set[str]] | None = None) -> list[ir.Node]:
    """The lines that end the network's ``__init__``: ``ctx`` is its ClassContext, ``module_classes`` the torch
    classes each op kind's layers have in its variants, ``kinds_of`` (block, layer path) -> op kind,
    ``block_order`` the blocks from the outermost to the innermost (an inner block's rule wins) and
    ``optional`` the parameters some layers of a kind lack (a conv without bias)."""
    return rules_pass(ctx, _collect(ctx.d, program, block_order), module_classes, kinds_of, optional)


def rules_pass(ctx, rules: list[_Rule], module_classes: dict[str, list[str]], kinds_of: dict,
               optional: dict[str, set[str]] | None = None) -> list[ir.Node]:
    """One pass over ``self.modules()`` that draws ``rules`` (``weight_init_body``'s, or a block's own rules
    drawn 'when made', at the end of its ``__init__``)."""
    optional = optional or {}
    if not rules:
        return []
    ns = Namespace(set(ctx.params) | ctx.locals)
    # the loop's layer and block: never a parameter that the conditions read
    m, b = ir.Name(ns.create("m")), ir.Name(ns.create("b"))
    common = _common_condition(rules, ctx)
    sets: dict[tuple, ir.Assign] = {}  # the layers a block's (or Block.layer) rule reaches, collected first

    def membership(rule: _Rule) -> _Test:
        """The test that a module is what a per-layer or block rule reaches."""
        if rule.block is None:  # a layer of the network itself
            return _Test(members=(_access(ir.Name("self"), rule.path),))
        key = (rule.block, rule.path, rule.kind)
        if key not in sets:
            name = ir.Name(ns.create("_".join([rule.block.lower(), *(rule.path or [rule.kind or "layers"])])))
            test = _block_test(rule, b, ctx)
            modules = ir.call(ir.attr("self.modules"))
            if rule.kind is not None:
                value: ir.Node = ir.Comp("set", m, ((b, modules, (test,)), (m, ir.call(ir.Attr(b, "modules")), ())))
            else:
                value = ir.Comp("set", _access(b, rule.path), ((b, modules, (test,)),))
            cond = _network_cond(rule, ctx, skip=common)
            sets[key] = ir.Assign(name, value if cond is None else ir.IfExp(cond, value, ir.call("set")))
        return _Test(conds=(ir.Compare(("in",), (m, sets[key].target)),))

    kinds = {}
    tensors: list[ir.Node] = []  # the network's learned tensors: drawn before the loop, as timm draws them
    for rule in rules:
        if rule.kind is None and rule.block is None and _names_tensor(rule, kinds_of):
            path = (*rule.path, rule.param) if rule.param else rule.path
            cond = _network_cond(rule, ctx, skip=common)
            draws = tuple(ir.Expr(_call(rule, "", ctx, _access(ir.Name("self"), path), item))
                          for item in entries(rule.stmt.rule))
            tensors += [ir.If(cond, draws)] if cond is not None else draws
            continue
        kind = rule.kind or kinds_of.get((rule.block, rule.path)) or kinds_of.get((None, rule.path))
        if kind is None:
            raise SpecError(f"no layer '{'.'.join(rule.path)}' to initialise in any variant", rule.stmt.span)
        kinds.setdefault(kind, []).append(rule)
    branches: list[tuple[list[str], list[ir.Node]]] = []  # (classes, body)
    for kind, kind_rules in kinds.items():
        body: list[ir.Node] = []
        # a list rule draws in turn: every parameter its first entry, then every parameter its second, ...
        for draw in range(max(len(entries(r.stmt.rule)) for r in kind_rules)):
            for param in PARAMETERS[kind]:
                chain = sorted((r for r in kind_rules if r.param == param), key=lambda r: r.rank, reverse=True)
                steps = _chain(chain, param, membership, ctx, common, m, draw)
                if steps and param in optional.get(kind, ()):  # some of these layers have no such parameter
                    steps = [ir.If(ir.Compare(("is not",), (ir.Attr(m, param), ir.Const(None))), tuple(steps))]
                last = body[-1] if body else None
                if len(steps) == 1 and isinstance(steps[0], ir.If) and not steps[0].orelse \
                        and isinstance(last, ir.If) and not last.orelse and last.test == steps[0].test:
                    body[-1] = ir.If(last.test, last.body + steps[0].body)  # the parameter before's test: one if
                else:
                    body += steps
        classes = sorted(set(module_classes.get(kind, [])))
        if not classes or not body:
            continue
        for other in branches:  # same rules for another kind: one branch, as torchvision writes (Conv2d, Linear)
            if other[1] == body:
                other[0].extend(classes)
                break
        else:
            branches.append((classes, body))
    if not branches:  # the rules reach no layer this network has
        return [ir.If(common, tuple(tensors))] if tensors and common is not None else tensors
    chain: tuple = ()
    branches = _subclasses_first(branches)
    for classes, body in reversed(branches):
        kinds_test = ir.attr(classes[0]) if len(classes) == 1 else ir.Tuple(tuple(ir.attr(c) for c in classes))
        chain = (ir.If(ir.call("isinstance", m, kinds_test), tuple(body), chain),)
    loop = ir.For(m, ir.call(ir.attr("self.modules")), chain)
    read = ir.reads(loop)
    out: tuple = (*tensors, *[s for s in sets.values() if s.target.id in read], loop)
    if common is not None:  # every rule holds only if (init_weights): the whole pass is conditional
        out = (ir.If(common, out),)
    return out


def _names_tensor(rule: _Rule, kinds_of: dict) -> bool:
    """Whether a rule of the network names a learned tensor (no layer of that path, and no parameter)."""
    if not rule.param:
        return True
    layer_params = {p for params in PARAMETERS.values() for p in params}
    return (None, rule.path) not in kinds_of and rule.param not in layer_params


def _subclasses_first(branches: list[tuple[list[str], list[ir.Node]]]) -> list[tuple[list[str], list[ir.Node]]]:
    """The branches in an order where a helper class is tested before a torch class it derives from
    (``_WSConv2d``, an ``nn.Conv2d``), whose branch would otherwise take its layers too."""
    ordered: list[tuple[list[str], list[ir.Node]]] = []
    for classes, body in branches:
        bases = {base for c in classes if c in HELPERS for base in helper_bases(c)}
        at = next((i for i, (other, _) in enumerate(ordered) if bases & set(other)), len(ordered))
        ordered.insert(at, (classes, body))
    return ordered


@dataclass(frozen=True)
class _Test:
    """A rule's test: the module is one of ``members`` (none: any), and ``conds`` hold."""

    members: tuple = ()
    conds: tuple = ()

    def expr(self, m: ir.Node) -> ir.Node | None:
        parts = list(self.conds)
        if len(self.members) == 1:
            parts.insert(0, ir.Compare(("is",), (m, self.members[0])))
        elif self.members:  # m in (self.conv4, self.conv5): ordered by their paths
            ordered = sorted(set(self.members), key=_path_key)
            parts.insert(0, ir.Compare(("in",), (m, ir.Tuple(tuple(ordered)))))
        test = None
        for part in parts:
            test = part if test is None else ir.BinOp("and", test, part)
        return test

    def either(self, other: _Test, m: ir.Node) -> _Test:
        """One test for two rules that do the same: ``m in (a, b)`` where both only name layers."""
        if self.members and other.members and not self.conds and not other.conds:
            return _Test(members=self.members + other.members)
        return _Test(conds=(ir.BinOp("or", self.expr(m), other.expr(m)),))


def _collect(network: n.NetworkDef, program, block_order: list[str]) -> list[_Rule]:
    """Every init statement of the network and of the blocks it uses, with its precedence."""
    from ...sema.initrules import classify

    out: list[_Rule] = []
    owners = [(None, network.body)] + [(b, program.blocks[b].body) for b in block_order]
    for index, (owner, body) in enumerate(owners):
        for order, (stmt, conds) in enumerate(_inits(body, [])):
            if stmt.made:  # drawn in the class that makes its target (emit_init_made)
                continue
            kind, block, path, param = classify(stmt, program.blocks, PARAMETERS)
            if owner is not None and kind is None and not param:
                raise SpecError("a block's learned tensor is initialised where it is made", stmt.span,
                                hint="add 'when made': the network's pass draws after every module is made")
            if owner is not None and block is not None:
                raise SpecError("a block's init rule names its own layers (Block.layer belongs in a network)",
                                stmt.span)
            rank = (0 if kind is not None else 1, index if owner is not None else -1, order)
            conds = conds + ([stmt.cond] if stmt.cond is not None else [])
            out.append(_Rule(stmt, kind, owner or block, path, param, rank, owner, conds))
    return out


def _inits(stmts, conds: list[n.Expr]) -> list[tuple[n.Init, list[n.Expr]]]:
    """Every init statement of a body, with the conditions of the ifs it stands in."""
    found = []
    for s in stmts:
        if isinstance(s, n.Init):
            found.append((s, conds))
        elif isinstance(s, n.If):
            found += _inits(s.body, conds + [s.cond])
            found += _inits(s.orelse, conds + [n.UnaryOp("not", s.cond, s.cond.span)])
        elif isinstance(s, n.For) and _inits(s.body, []):
            raise SpecError("an init rule inside a for loop: write it once, outside", _inits(s.body, [])[0][0].span)
        else:
            for attr in ("body", "branches"):
                found += _inits(getattr(s, attr, None) or [], conds)
            if isinstance(s, n.Residual) and s.shortcut is not None:
                found += _inits(s.shortcut.body, conds)
    return found


def _chain(chain: list[_Rule], param: str, membership, ctx, common: ir.Node | None, m: ir.Node,
           draw: int = 0) -> list[ir.Node]:
    """``if`` / ``elif`` over a parameter's rules, the most specific first; the last unconditional one is the
    ``else``. Nothing where no rule applies: the default initialisation stays. ``draw`` picks the entry of list
    rules; a rule with fewer entries does nothing then (``pass``, where a less specific rule follows)."""
    steps: list[tuple[_Test | None, ir.Node | None]] = []  # (test, call or None); None: always
    for rule in chain:
        test = _Test()
        if rule.block is not None or rule.kind is None:
            test = membership(rule)
        cond = _network_cond(rule, ctx, skip=common) if rule.block is None else None  # a block's: in its set
        if cond is not None:
            test = _Test(test.members, test.conds + (cond,))
        items = entries(rule.stmt.rule)
        call = _call(rule, param, ctx, m, items[draw]) if draw < len(items) else None
        if not test.members and not test.conds:
            steps.append((None, call))
            break  # an unconditional rule: nothing after it is ever tried
        if steps and steps[-1][1] == call and steps[-1][0] is not None:  # the same rule for several layers
            steps[-1] = (steps[-1][0].either(test, m), call)
        else:
            steps.append((test, call))
    while steps and steps[-1][1] is None:  # nothing to draw after the last rule that has this entry
        steps.pop()
    out: tuple = ()
    for test, call in reversed(steps):
        line = ir.Expr(call) if call is not None else ir.Pass()
        if test is None:
            out = (line,)
        else:
            out = (ir.If(test.expr(m), (line,), out),)
    return list(out)


def _call(rule: _Rule, param: str, ctx, m: ir.Node, expr: n.Expr) -> ir.Node:
    target = ir.Attr(m, param) if param else m  # a learned tensor: itself
    if isinstance(expr, n.Var) and expr.name in INITIALISERS:
        expr = n.Call(expr, [], [], expr.span)
    if isinstance(expr, n.Call) and isinstance(expr.func, n.Var) and expr.func.name in INITIALISERS:
        init = INITIALISERS[expr.func.name]
        args = tuple(_arg(a, ctx, m, rule) for a in expr.args)
        return ir.Call(ir.attr(init.function), (target, *args), tuple((k, _arg(v, ctx, m, rule)) for k, v in expr.kwargs))
    value = _arg(expr, ctx, m, rule)
    if isinstance(value, ir.Const) and value.value in (0, 1) and not isinstance(value.value, bool):
        return ir.call(ir.attr("nn.init.zeros_" if value.value == 0 else "nn.init.ones_"), target)
    return ir.call(ir.attr("nn.init.constant_"), target, value)


def _arg(e: n.Expr, ctx, m: ir.Node, rule: _Rule) -> ir.Node:
    if rule.owner is not None:  # a block's rule, applied by the network's pass: its instances' values are not there
        block = ctx.blocks[rule.owner]
        e = through_lets(e, block.body)
        read = sorted(free_names(e) & {p.name for p in block.params})
        if read:
            raise SpecError(f"this init rule's arguments read {rule.owner}'s parameter '{read[0]}': the network "
                            "initialises every layer in one pass, where a block's parameters are not known",
                            e.span if e.span.file != "<generated>" else rule.stmt.span,
                            hint="give the argument as a number or a layer size (fan_in, out_channels, ...), or "
                                 "condition the rule on the parameter instead ('init ... = RULE if PARAM > ...')")
    sizes = _sizes(m)
    return lower(ctx.fold(e), lambda name: sizes[name] if name in sizes else ir.attr(name))


def _network_cond(rule: _Rule, ctx, skip: ir.Node | None = None) -> ir.Node | None:
    """A network rule's conditions over the network's parameters (None when they always hold); ``skip`` is one
    already tested around the whole pass."""
    if rule.owner is not None or not rule.conds:
        return None
    test = None
    for c in rule.conds:
        folded = ctx.fold(c)
        if isinstance(folded, n.Const) and folded.value is True:
            continue
        part = lower(folded)
        if part == skip:
            continue
        test = part if test is None else ir.BinOp("and", test, part)
    return test


def _block_test(rule: _Rule, b: ir.Node, ctx) -> ir.Node:
    """Whether ``b`` is an instance of the rule's block for which the rule's conditions hold: over the instance's
    stored parameters and through the block's lets (other names, the builtins and the file's constants, are
    the module's)."""
    test: ir.Node = ir.call("isinstance", b, ir.attr(rule.block))
    if rule.owner is not None:
        block = ctx.blocks[rule.block]
        params = {p.name: symbol(f"{b.id}.{p.name}") for p in block.params}
        for c in rule.conds:
            cond = through_lets(c, block.body, params)
            ctx.referenced |= free_names(cond)  # the module's functions and constants it calls on
            test = ir.BinOp("and", test, lower(cond))
    return test


def _common_condition(rules: list[_Rule], ctx) -> ir.Node | None:
    """A condition every rule of the network (and only the network) holds under: VGG's init_weights."""
    if any(r.owner is not None or not r.conds for r in rules):
        return None
    firsts = [lower(ctx.fold(r.conds[0])) for r in rules]
    return firsts[0] if all(f == firsts[0] for f in firsts) else None


def _path_key(node: ir.Node) -> tuple:
    """A module path built by ``_access``, as a key that sorts it as its text reads."""
    if isinstance(node, ir.Attr):
        return (*_path_key(node.value), (".", node.attr))
    if isinstance(node, ir.Index):
        return (*_path_key(node.value), ("[", str(node.index.value)))
    if isinstance(node, ir.Call):
        return (*_path_key(node.func.value), (".", node.args[0].value))
    return ((".", node.id),)


def _access(owner: ir.Node, path: tuple[str, ...]) -> ir.Node:
    """``owner.conv``, ``[1]``, ``.get_submodule("block1-0")``: a module path below ``owner``."""
    out = owner
    for part in path:
        if part.isdigit():
            out = ir.Index(out, ir.Const(int(part)))
        elif part.isidentifier():
            out = ir.Attr(out, part)
        else:
            out = ir.call(ir.Attr(out, "get_submodule"), ir.Const(part))
    return out
