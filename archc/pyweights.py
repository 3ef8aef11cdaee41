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

import re
from dataclasses import dataclass

from . import nodes as n
from .errors import SpecError
from .exprfold import free_names, to_python
from .initrules import INITIALISERS, PARAMETERS
from .pyemit import Namespace, symbol, through_lets

# What a rule's argument names mean in the generated loop, over ``{m}``, the layer.
SIZES = {
    "fan_in": "{m}.weight[0].numel()",
    "fan_out": "({m}.weight.shape[0] * {m}.weight[0, 0].numel())",  # printed where an atom stands: parenthesised
    **{size: "{m}." + size for size in ("in_channels", "out_channels", "kernel_size", "groups", "in_features",
                                        "out_features", "num_features", "normalized_shape")},
}


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


def weight_init_lines(ctx, program, module_classes: dict[str, list[str]], kinds_of: dict, block_order: list[str],
                      depth: int, optional: dict[str, set[str]] | None = None) -> list[str]:
    """The lines that end the network's ``__init__``: ``ctx`` is its ClassContext, ``module_classes`` the torch
    classes each op kind's layers have in its variants, ``kinds_of`` (block, layer path) -> op kind,
    ``block_order`` the blocks from the outermost to the innermost (an inner block's rule wins) and
    ``optional`` the parameters some layers of a kind lack (a conv without bias)."""
    optional = optional or {}
    rules = _collect(ctx.d, program, block_order)
    if not rules:
        return []
    ns = Namespace(set(ctx.params) | ctx.locals)
    m, b = ns.create("m"), ns.create("b")  # the loop's layer and block: never a parameter the conditions read
    common = _common_condition(rules, ctx)
    lines: list[str] = []
    sets: dict[tuple, str] = {}

    def membership(rule: _Rule) -> str:
        """The test that a module is what a per-layer or block rule reaches."""
        if rule.block is None:  # a layer of the network itself
            return f"{m} is self{_access(rule.path)}"
        key = (rule.block, rule.path, rule.kind)
        if key not in sets:
            name = ns.create("_".join([rule.block.lower(), *(rule.path or [rule.kind or "layers"])]))
            test = _block_test(rule, b, ctx.blocks[rule.block])
            if rule.kind is not None:
                expr = f"{{{m} for {b} in self.modules() if {test} for {m} in {b}.modules()}}"
            else:
                expr = f"{{{b}{_access(rule.path)} for {b} in self.modules() if {test}}}"
            cond = _network_cond(rule, ctx, skip=common)
            lines.append(f"{name} = {expr}" + (f" if {cond} else set()" if cond else ""))
            sets[key] = name
        return f"{m} in {sets[key]}"

    kinds = {}
    for rule in rules:
        kind = rule.kind or kinds_of.get((rule.block, rule.path)) or kinds_of.get((None, rule.path))
        if kind is None:
            raise SpecError(f"no layer '{'.'.join(rule.path)}' to initialise in any variant", rule.stmt.span)
        kinds.setdefault(kind, []).append(rule)
    branches: list[tuple[list[str], list[str]]] = []  # (classes, body lines)
    for kind, kind_rules in kinds.items():
        body: list[str] = []
        for param in PARAMETERS[kind]:
            chain = sorted((r for r in kind_rules if r.param == param), key=lambda r: r.rank, reverse=True)
            lines_ = _chain(chain, param, membership, ctx, common, m)
            if lines_ and param in optional.get(kind, ()):  # some of these layers have no such parameter
                lines_ = [f"if {m}.{param} is not None:"] + ["    " + line for line in lines_]
            if len(lines_) == 2 and body[-2:-1] == lines_[:1] and lines_[0].startswith("if "):
                body.append(lines_[1])  # the same test as the parameter before: one if for both
            else:
                body += lines_
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
        return []
    loop = [f"for {m} in self.modules():"]
    for i, (classes, body) in enumerate(branches):
        test = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
        loop.append(f"    {'if' if i == 0 else 'elif'} isinstance({m}, {test}):")
        loop += ["        " + line for line in body]
    text = "\n".join(loop)
    lines = [line for line in lines if re.search(rf"\b{re.escape(line.split(' = ', 1)[0])}\b", text)]
    out = lines + loop
    if common is not None:  # every rule holds only if (init_weights): the whole pass is conditional
        out = [f"if {common}:"] + ["    " + line for line in out]
    return ["    " * depth + line for line in out]


def _collect(network: n.NetworkDef, program, block_order: list[str]) -> list[_Rule]:
    """Every init statement of the network and of the blocks it uses, with its precedence."""
    from .initrules import classify

    out: list[_Rule] = []
    owners = [(None, network.body)] + [(b, program.blocks[b].body) for b in block_order]
    for index, (owner, body) in enumerate(owners):
        for order, (stmt, conds) in enumerate(_inits(body, [])):
            kind, block, path, param = classify(stmt, program.blocks, PARAMETERS)
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


def _chain(chain: list[_Rule], param: str, membership, ctx, common: str | None, m: str) -> list[str]:
    """``if`` / ``elif`` over a parameter's rules, the most specific first; the last unconditional one is the
    ``else``. Nothing where no rule applies: the default initialisation stays."""
    steps: list[tuple[str | None, str]] = []  # (test, call); None: always
    for rule in chain:
        tests = []
        if rule.block is not None or rule.kind is None:
            tests.append(membership(rule))
        cond = _network_cond(rule, ctx, skip=common) if rule.block is None else None  # a block's: in its set
        if cond:
            tests.append(cond)
        call = _call(rule, param, ctx, m)
        if not tests:
            steps.append((None, call))
            break  # an unconditional rule: nothing after it is ever tried
        test = " and ".join(tests)
        if steps and steps[-1][1] == call and steps[-1][0] is not None:  # the same rule for several layers
            steps[-1] = (_either(steps[-1][0], test, m), call)
        else:
            steps.append((test, call))
    lines: list[str] = []
    for test, call in steps:
        if test is None:
            lines += ["else:", "    " + call] if lines else [call]
        else:
            lines += [f"{'if' if not lines else 'elif'} {test}:", "    " + call]
    return lines


def _either(a: str, b: str, m: str) -> str:
    """``m is self.conv5`` and ``m is self.conv4`` -> ``m in (self.conv4, self.conv5)``."""
    def members(test: str) -> list[str] | None:
        if test.startswith(f"{m} is "):
            return [test[len(m) + 4:]]
        if test.startswith(f"{m} in (") and test.endswith(")") and " and " not in test:
            return [x.strip() for x in test[len(m) + 5:-1].split(",") if x.strip()]
        return None

    left, right = members(a), members(b)
    if left is not None and right is not None:
        return f"{m} in ({', '.join(sorted(set(left + right)))})"
    return f"{a} or {b}"


def _call(rule: _Rule, param: str, ctx, m: str) -> str:
    expr = rule.stmt.rule
    target = f"{m}.{param}"
    if isinstance(expr, n.Var) and expr.name in INITIALISERS:
        expr = n.Call(expr, [], [], expr.span)
    if isinstance(expr, n.Call) and isinstance(expr.func, n.Var) and expr.func.name in INITIALISERS:
        init = INITIALISERS[expr.func.name]
        args = [_arg(a, ctx, m, rule) for a in expr.args] + [f"{k}={_arg(v, ctx, m, rule)}" for k, v in expr.kwargs]
        return f"{init.function}({', '.join([target] + args)})"
    value = _arg(expr, ctx, m, rule)
    if value in ("0", "0.0"):
        return f"nn.init.zeros_({target})"
    if value in ("1", "1.0"):
        return f"nn.init.ones_({target})"
    return f"nn.init.constant_({target}, {value})"


def _arg(e: n.Expr, ctx, m: str, rule: _Rule) -> str:
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
    folded = ctx.fold(e)
    return to_python(folded, lambda name: SIZES[name].format(m=m) if name in SIZES else name)


def _network_cond(rule: _Rule, ctx, skip: str | None = None) -> str | None:
    """A network rule's conditions, printed over the network's parameters (None when they always hold); ``skip``
    is one already tested around the whole pass."""
    if rule.owner is not None or not rule.conds:
        return None
    texts = [to_python(ctx.fold(c)) for c in rule.conds]
    texts = [t for t in texts if t != "True" and t != skip]
    return " and ".join(f"({t})" if " or " in t else t for t in texts) or None


def _block_test(rule: _Rule, b: str, block: n.BlockDef) -> str:
    """Whether ``b`` is an instance of the rule's block for which the rule's conditions hold: over the instance's
    stored parameters and through the block's lets (other names, the builtins and the file's constants, are
    the module's); one expression tree, so an ``or`` in a condition keeps its parentheses."""
    test: n.Expr = symbol(f"isinstance({b}, {rule.block})")
    if rule.owner is not None:
        params = {p.name: symbol(f"{b}.{p.name}") for p in block.params}
        for c in rule.conds:
            test = n.BinOp("and", test, through_lets(c, block.body, params), c.span)
    return to_python(test)


def _common_condition(rules: list[_Rule], ctx) -> str | None:
    """A condition every rule of the network (and only the network) holds under: VGG's init_weights."""
    if any(r.owner is not None or not r.conds for r in rules):
        return None
    firsts = {to_python(ctx.fold(r.conds[0])) for r in rules}
    return firsts.pop() if len(firsts) == 1 else None


def _access(path: tuple[str, ...]) -> str:
    """``.conv``, ``[1]``, ``.get_submodule("block1-0")``: a module path as Python."""
    out = ""
    for part in path:
        if part.isdigit():
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f".get_submodule({to_python(n.Str(part, n.Span('<generated>', 1, 1, 1, 1)))})"
    return out
