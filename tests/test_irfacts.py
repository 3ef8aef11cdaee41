"""The pass that decides the conditions a generated class already knows (archc/backends/python/irfacts.py), on IR
written as Python: what it simplifies, and what it must leave alone."""

import ast
import textwrap

from archc.backends.python import ir, irfacts, irprint

_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Is: "is",
        ast.IsNot: "is not"}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


def _bool(e: ast.BoolOp) -> ir.Node:
    out = _expr(e.values[0])
    for v in e.values[1:]:
        out = ir.BinOp("and" if isinstance(e.op, ast.And) else "or", out, _expr(v))
    return out


_EXPR = {  # the Python these tests write, as IR
    ast.Name: lambda e: ir.Name(e.id),
    ast.Constant: lambda e: ir.Const(e.value),
    ast.Attribute: lambda e: ir.Attr(_expr(e.value), e.attr),
    ast.Call: lambda e: ir.Call(_expr(e.func), tuple(map(_expr, e.args)),
                                tuple((k.arg, _expr(k.value)) for k in e.keywords)),
    ast.Subscript: lambda e: ir.Index(_expr(e.value), _expr(e.slice)),
    ast.Compare: lambda e: ir.Compare(tuple(_OPS[type(o)] for o in e.ops), tuple(map(_expr, [e.left, *e.comparators]))),
    ast.BoolOp: _bool,
    ast.BinOp: lambda e: ir.BinOp(_BINOPS[type(e.op)], _expr(e.left), _expr(e.right)),
    ast.UnaryOp: lambda e: ir.Unary("not", _expr(e.operand)),
    ast.IfExp: lambda e: ir.IfExp(_expr(e.test), _expr(e.body), _expr(e.orelse)),
    ast.ListComp: lambda e: ir.Comp("list", _expr(e.elt), tuple((_expr(g.target), _expr(g.iter),
                                                                 tuple(map(_expr, g.ifs))) for g in e.generators)),
}


def _expr(e: ast.expr) -> ir.Node:
    return _EXPR[type(e)](e)


def _stmt(s: ast.stmt) -> ir.Node:
    if isinstance(s, ast.Assign):
        return ir.Assign(_expr(s.targets[0]), _expr(s.value))
    if isinstance(s, ast.Expr):
        return ir.Expr(_expr(s.value))
    if isinstance(s, ast.If):
        return ir.If(_expr(s.test), tuple(map(_stmt, s.body)), tuple(map(_stmt, s.orelse)))
    if isinstance(s, ast.For):
        return ir.For(_expr(s.target), _expr(s.iter), tuple(map(_stmt, s.body)))
    if isinstance(s, ast.Raise):
        return ir.Raise(_expr(s.exc))
    raise AssertionError(ast.dump(s))


def _ir(text: str) -> list:
    return [_stmt(s) for s in ast.parse(textwrap.dedent(text)).body]


def _text(body: list) -> str:
    return "\n".join(irprint.print_body(body, 0)) + "\n"


def simplified(init: str, forward: str = "") -> tuple[str, str]:
    new_init, new_forward, _, _ = irfacts.simplify_class(_ir(init), _ir(forward))
    return _text(new_init), _text(new_forward) if forward else ""


def test_a_condition_known_true_or_false_goes_with_its_untaken_branch():
    init, _ = simplified("""
        if version == 1:
            a = 1
            if version == 1:
                b = 2
            if version == 2:
                c = 3
            else:
                c = 4
        """)
    assert init == "if version == 1:\n    a = 1\n    b = 2\n    c = 4\n"


def test_the_else_knows_the_negation_and_only_that():
    # else of version == 1: version != 1 holds; version == 2 does not follow (no domain is assumed)
    init, _ = simplified("""
        if version == 1:
            a = 1
        else:
            if version != 1:
                a = 2
            if version == 1:
                a = 3
            if version == 2:
                a = 4
        if p or q:
            b = 1
        else:
            if p:
                b = 2
            if not q:
                b = 3
        """)
    assert init == ("if version == 1:\n    a = 1\nelse:\n    a = 2\n    if version == 2:\n        a = 4\n"
                    "if p or q:\n    b = 1\nelse:\n    b = 3\n")


def test_a_conditional_expression_whose_condition_is_known_is_its_branch():
    init, _ = simplified("""
        if version == 2:
            layer = nn.Linear(2 if version == 2 else in_channels, 3 if version == 1 else 4)
            other = 5 if width > 2 else 6
        scale = (1 if version == 2 else 0) if version == 2 else 7
        """)
    assert init == ("if version == 2:\n    layer = nn.Linear(2, 4)\n    other = 5 if width > 2 else 6\n"
                    "scale = 1 if version == 2 else 7\n")


def test_a_known_value_decides_other_comparisons_of_it():
    init, _ = simplified("""
        if depth == 3:
            a = 1 if depth > 2 else 2
            b = 1 if depth < 3 else 2
            c = 1 if depth is None else 2
        """)
    assert init == "if depth == 3:\n    a = 1\n    b = 2\n    c = 2\n"


SWIN_LIKE_INIT = textwrap.dedent("""
    self.version = version
    self.table = None
    if version != 1:
        self.table = nn.Parameter(torch.zeros(3))
    self.mlp = None
    if version != 1:
        self.mlp = nn.Sequential(nn.Linear(2, 4))
    """)


def test_a_guard_on_an_attribute_made_under_a_known_condition_is_decided():
    # __init__ makes table and mlp exactly where version != 1; the else of version == 1 knows that, so its
    # guards always hold, and the fallback `t = x` they left is overwritten at once: x goes into its reader
    _, forward = simplified(SWIN_LIKE_INIT, """
        if self.version == 1:
            t = x
            if self.table is None:
                t = t + 1
        else:
            t = x
            if self.table is not None:
                t = self.table.expand(t.shape[0], 3)
            if self.mlp is not None:
                t = self.mlp(t)
        """)
    assert forward == ("if self.version == 1:\n    t = x + 1\nelse:\n"
                       "    t = self.table.expand(x.shape[0], 3)\n    t = self.mlp(t)\n")


def test_a_guard_that_holds_tells_its_condition():
    _, forward = simplified(SWIN_LIKE_INIT, """
        if self.mlp is not None:
            y = 1 if self.version == 1 else 2
        """)
    assert forward == "if self.mlp is not None:\n    y = 2\n"


UNDECIDED = """
    if self.version == 1:
        t = x
    else:
        t = x
        if self.table is not None:
            t = self.table.expand(t.shape[0], 3)
    """


def test_a_buffer_a_helper_makes_is_there_where_it_was_registered():
    # _relative_coords_table is typed to return a Tensor: the buffer is not None where version != 1
    _, forward = simplified("""
        self.version = version
        self.register_buffer("coords", None)
        if version != 1:
            self.register_buffer("coords", _relative_coords_table(7, 8.0))
        """, "if self.version != 1:\n    if self.coords is None:\n        raise ValueError()\n    y = self.coords\n")
    assert forward == "if self.version != 1:\n    y = self.coords\n"


def test_what_does_not_follow_is_left_alone():
    assert simplified(SWIN_LIKE_INIT, UNDECIDED)[1] != _text(_ir(UNDECIDED))  # each case below changes one thing
    cases = {
        "the attribute set again in forward": (SWIN_LIKE_INIT, UNDECIDED + "self.table = None\n"),
        "the attribute set twice in __init__": (SWIN_LIKE_INIT + "if width > 2:\n    self.table = None\n", UNDECIDED),
        "set under another condition": (SWIN_LIKE_INIT.replace("if version != 1:\n    self.table",
                                                               "if version == 2:\n    self.table"), UNDECIDED),
        "set where a local decides": (SWIN_LIKE_INIT.replace("if version != 1:\n    self.table",
                                                             "if d != 1:\n    self.table"), UNDECIDED),
        "set to what may be None": (SWIN_LIKE_INIT.replace("nn.Parameter(torch.zeros(3))", "make(3)"), UNDECIDED),
        "the parameter given another value in __init__": ("version = 2\n" + SWIN_LIKE_INIT, UNDECIDED),
        "self.version set from another name": (SWIN_LIKE_INIT.replace("= version\n", "= v\n"), UNDECIDED),
        "set by a name computed": (SWIN_LIKE_INIT + "setattr(self, name, None)\n", UNDECIDED),
        "the parameter given another value in forward": (SWIN_LIKE_INIT, UNDECIDED + "self.version = 2\n"),
        "made under the condition, never set to None (else missing)": (
            "self.version = version\nif version != 1:\n    self.table = nn.Parameter(torch.zeros(3))\n", UNDECIDED),
        "a module made once, then maybe replaced by a name computed": (
            "self.conv = nn.Conv2d(1, 1, 1)\nsetattr(self, name, None)\n",
            "if self.conv is not None:\n    x = self.conv(x)\n"),
    }
    for why, (init, forward) in cases.items():
        assert simplified(init, forward)[1] == _text(_ir(forward)), why


def test_a_module_made_unconditionally_is_there():
    _, forward = simplified("self.conv = nn.Conv2d(1, 1, 1)\n", "if self.conv is not None:\n    x = self.conv(x)\n")
    assert forward == "x = self.conv(x)\n"


def test_a_fact_is_forgotten_when_what_it_reads_changes():
    init, _ = simplified("""
        if n == 1:
            n = n + 1
            a = 1 if n == 1 else 2
        if i == 0:
            ys = [a if i == 0 else b for i in range(3)]
        if len(xs) > 0:
            xs.pop()
            z = 1 if len(xs) > 0 else 2
        if k > 0:
            for m in range(2):
                c = 1 if k > 0 else 2
                k = m - 1
        """)
    _, forward = simplified("self.count = 2\n", """
        if self.count > 0:
            self.count = self.count - 1
            y = 1 if self.count > 0 else 2
        """)
    assert "1 if self.count > 0 else 2" in forward
    for kept in ("1 if n == 1 else 2", "(a if i == 0 else b) for i", "1 if len(xs) > 0 else 2", "1 if k > 0 else 2"):
        assert kept in init


def test_only_an_assignment_overwritten_at_once_is_dropped():
    # t is read before it is given a value again: both stay; u's first value goes (a call's effects never do)
    init, _ = simplified("""
        t = x
        y = t
        t = f(t)
        u = x
        u = g(2)
        v = f(x)
        v = g(v)
        """)
    assert init == "t = x\ny = t\nt = f(t)\nu = g(2)\nv = f(x)\nv = g(v)\n"
