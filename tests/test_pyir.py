"""The code generator's IR prints what it means: random expression trees, printed, parse back (with Python's
own parser) into the same tree; long statements break into the same Python; analyses see every name."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archc.backends.python import ir, irprint

BINOPS = ["+", "-", "*", "/", "//", "%", "**", "and", "or"]
CMPOPS = ["==", "!=", "<", "<=", ">", ">=", "is", "is not", "in", "not in"]
_PY_BIN = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "//": ast.FloorDiv, "%": ast.Mod, "**": ast.Pow}
_PY_CMP = {"==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE, "is": ast.Is,
           "is not": ast.IsNot, "in": ast.In, "not in": ast.NotIn}


def leaves():
    return st.one_of(
        st.sampled_from(["x", "out", "self", "channels"]).map(ir.Name),
        st.integers(0, 1000).map(ir.Const),
        st.floats(0, 1e6, allow_nan=False).map(ir.Const),
        st.sampled_from(["a", 'q"uote', "back\\slash", "tab\t"]).map(ir.Const),
        st.sampled_from([True, False, None]).map(ir.Const),
    )


def extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(BINOPS), children, children).map(lambda t: ir.BinOp(*t)),
        st.tuples(st.sampled_from(["-", "+", "not"]), children).map(lambda t: ir.Unary(*t)),
        st.tuples(st.lists(st.sampled_from(CMPOPS), min_size=1, max_size=3), st.data()).flatmap(
            lambda t: st.lists(children, min_size=len(t[0]) + 1, max_size=len(t[0]) + 1).map(
                lambda ops, cmp=t[0]: ir.Compare(tuple(cmp), tuple(ops)))),
        st.tuples(children, children, children).map(lambda t: ir.IfExp(*t)),
        st.tuples(children, st.sampled_from(["shape", "weight"])).map(lambda t: ir.Attr(*t)),
        st.tuples(children, st.lists(children, max_size=2)).map(lambda t: ir.Call(t[0], tuple(t[1]))),
        st.tuples(children, children).map(lambda t: ir.Index(*t)),
        st.lists(children, max_size=3).map(lambda xs: ir.Tuple(tuple(xs))),
        st.lists(children, max_size=3).map(lambda xs: ir.List(tuple(xs))),
    )


TREES = st.recursive(leaves(), extend, max_leaves=12)


def to_python_ast(e: ir.Node) -> ast.AST:
    """The tree as Python's own AST (the oracle of what it should print)."""
    if isinstance(e, ir.Name):
        return ast.Name(e.id, ast.Load())
    if isinstance(e, ir.Const):
        return ast.Constant(e.value)
    if isinstance(e, ir.BinOp) and e.op in ("and", "or"):
        op = ast.And() if e.op == "and" else ast.Or()
        return ast.BoolOp(op, [to_python_ast(e.left), to_python_ast(e.right)])
    if isinstance(e, ir.BinOp):
        return ast.BinOp(to_python_ast(e.left), _PY_BIN[e.op](), to_python_ast(e.right))
    if isinstance(e, ir.Unary):
        op = {"-": ast.USub, "+": ast.UAdd, "not": ast.Not}[e.op]()
        return ast.UnaryOp(op, to_python_ast(e.operand))
    if isinstance(e, ir.Compare):
        return ast.Compare(to_python_ast(e.operands[0]), [_PY_CMP[o]() for o in e.ops],
                           [to_python_ast(x) for x in e.operands[1:]])
    if isinstance(e, ir.IfExp):
        return ast.IfExp(to_python_ast(e.test), to_python_ast(e.body), to_python_ast(e.orelse))
    if isinstance(e, ir.Attr):
        return ast.Attribute(to_python_ast(e.value), e.attr, ast.Load())
    if isinstance(e, ir.Call):
        return ast.Call(to_python_ast(e.func), [to_python_ast(a) for a in e.args], [])
    if isinstance(e, ir.Index):
        return ast.Subscript(to_python_ast(e.value), to_python_ast(e.index), ast.Load())
    if isinstance(e, ir.Tuple):
        return ast.Tuple([to_python_ast(i) for i in e.items], ast.Load())
    if isinstance(e, ir.List):
        return ast.List([to_python_ast(i) for i in e.items], ast.Load())
    raise TypeError(type(e))


def normal(tree: ast.AST) -> str:
    """Python's dump of an expression, with a negative constant and a unary minus of it made one (the parser's
    and the IR's spellings of -1 differ), and nested boolean operators flattened as the parser builds them."""
    class Flatten(ast.NodeTransformer):
        def visit_BoolOp(self, node):
            self.generic_visit(node)
            values = []
            for v in node.values:
                values += v.values if isinstance(v, ast.BoolOp) and type(v.op) is type(node.op) else [v]
            node.values = values
            return node

    return ast.dump(Flatten().visit(tree))


@settings(max_examples=400, deadline=None)
@given(TREES)
def test_printed_expressions_parse_back_to_the_same_tree(tree):
    printed = irprint.print_expr(tree)
    assert normal(ast.parse(printed, mode="eval").body) == normal(to_python_ast(tree)), printed


@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(TREES)
def test_printed_expressions_parse_back_to_the_same_tree_many(tree):
    test_printed_expressions_parse_back_to_the_same_tree.hypothesis.inner_test(tree)


@pytest.mark.parametrize(("tree", "text"), [
    (ir.BinOp("*", ir.Name("out"), ir.BinOp("-", ir.Const(1.0), ir.attr("self.slope"))), "out * (1.0 - self.slope)"),
    (ir.BinOp("-", ir.Name("a"), ir.BinOp("-", ir.Name("b"), ir.Name("c"))), "a - (b - c)"),
    (ir.BinOp("**", ir.Const(2), ir.Unary("-", ir.Name("x"))), "2 ** -x"),
    (ir.BinOp("**", ir.Unary("-", ir.Const(2)), ir.Const(2)), "(-2) ** 2"),
    (ir.Compare(("==",), (ir.Compare(("<",), (ir.Name("a"), ir.Name("b"))), ir.Name("c"))), "(a < b) == c"),
    (ir.Attr(ir.Const(1), "real"), "(1).real"),
    (ir.Tuple((ir.Name("a"),)), "(a,)"),
    (ir.Index(ir.Name("x"), ir.Tuple((ir.Slice(), ir.Slice(step=ir.Const(2))))), "x[:, ::2]"),
    (ir.Const('say "hi"'), '"say \\"hi\\""'),
    (ir.FString(("w", ir.Name("j"))), 'f"w{j}"'),
    (ir.Comp("set", ir.Name("m"), ((ir.Name("b"), ir.call("self.modules"), (ir.Name("ok"),)),)),
     "{m for b in self.modules() if ok}"),
])
def test_precedence_cases(tree, text):
    assert irprint.print_expr(tree) == text
    assert ast.dump(ast.parse(text, mode="eval")) == ast.dump(ast.parse(irprint.print_expr(tree), mode="eval"))


def test_long_statements_break_at_their_calls_into_the_same_python():
    conv = ir.call("nn.Conv2d", ir.BinOp("+", ir.Name("a_rather_long_name_one"),
                                          ir.BinOp("+", ir.Name("a_rather_long_name_two"), ir.Name("name_three"))),
                   ir.Const(64), kernel_size=ir.Const(3), padding=ir.Const(1), bias=ir.Const(False))
    body = (ir.Assign(ir.attr("self.convolution_with_a_long_name"), conv),
            ir.Expr(ir.call("layers.add_module", ir.Const("stage(1, 2)"), conv)))
    lines = irprint.print_body(body, 2)
    assert all(len(line) <= 100 for line in lines), lines
    text = "\n".join(line[8:] for line in lines)
    reference = "self.convolution_with_a_long_name = " + irprint.print_expr(conv) + "\n" + \
        "layers.add_module(" + '"stage(1, 2)", ' + irprint.print_expr(conv) + ")\n"
    assert ast.dump(ast.parse(text)) == ast.dump(ast.parse(reference))
    # a statement with a shape comment stays on its line, the comment beside all of it
    [line] = irprint.print_body((ir.Assign(ir.Name("x"), conv, comment="N x 64 x 56 x 56"),), 2)
    assert line.endswith(")  # N x 64 x 56 x 56")


def test_an_if_whose_else_is_one_if_prints_as_elif():
    tree = ir.If(ir.Name("a"), (ir.Pass(),), (ir.If(ir.Name("b"), (ir.Return(ir.Name("x")),),
                                                  (ir.Return(ir.Name("y")),)),))
    assert irprint.print_body((tree,), 0) == ["if a:", "    pass", "elif b:", "    return x", "else:", "    return y"]


def test_reads_sees_loads_not_stores_nor_comprehension_targets():
    body = ir.For(ir.Name("i"), ir.call("range", ir.Name("n")), (
        ir.Assign(ir.Name("channels"), ir.BinOp("+", ir.Name("channels"), ir.Name("growth"))),
        ir.Assign(ir.attr("self.conv"), ir.Comp("list", ir.Name("m"), ((ir.Name("m"), ir.Name("ms"), ()),))),
    ))
    assert ir.reads(body) == {"range", "n", "channels", "growth", "self", "ms"}


# ---------------------------------------------------------------- shared building blocks (irbuild, irparse)


def test_prune_lets_drops_unread_chains_and_empty_blocks():
    from archc.backends.python import irbuild

    a, b, c = (ir.Name(v) for v in "abc")
    body = [
        irbuild.let("a", ir.Const(1)),
        irbuild.let("b", ir.BinOp("+", a, ir.Const(1))),  # read only by c, which nothing reads
        ir.For(ir.Name("i"), ir.call("range", a), (irbuild.let("c", ir.BinOp("*", b, ir.Const(2))),)),
        ir.If(ir.Name("flag"), (irbuild.let("d", ir.Const(3)),), (ir.Expr(ir.call("print", ir.Name("e"))),)),
        irbuild.let("e", ir.Attr(ir.Name("self"), "a")),  # self.a is no read of the let a
    ]
    printed = irprint.print_body(irbuild.prune_lets(body, {"e"}), 0)
    assert printed == ["a = 1", "if not flag:", "    print(e)", "e = self.a"]
    # a let that reads itself is not kept alive by its own read
    assert irbuild.prune_lets([irbuild.let("a", ir.BinOp("+", a, ir.Const(1)))]) == []
    # an empty if that an elif follows keeps a pass
    chain = ir.If(ir.Name("p"), (irbuild.let("z", ir.Const(0)),), (ir.If(ir.Name("q"), (ir.Expr(c),)),))
    assert irprint.print_body(irbuild.prune_lets([chain]), 0) == ["if p:", "    pass", "elif q:", "    c"]


def test_interpolated_names_are_literals_fstrings_or_concatenations():
    from archc.backends.python import irbuild
    from archc.lang import nodes as n

    span = n.Span("t", 1, 1, 1, 1)
    lowered = {"i": ir.Name("i"), "k": ir.const(-2), "s": ir.Const("b"), "q": ir.IfExp(ir.Name("p"), ir.Const("x"),
                                                                                      ir.Const("y"))}

    def name(*parts):
        target = n.Target([n.Var(p[0], span) if isinstance(p, tuple) else p for p in parts], span)
        return irprint.print_expr(irbuild.interpolated(target, lambda e: lowered[e.name]))

    assert name("layer", ("k",)) == '"layer-2"'
    assert name("a", ("s",), "_") == '"ab_"'
    assert name("layer", ("i",)) == 'f"layer{i}"'
    assert name("layer", ("q",)) == '"layer" + str("x" if p else "y")'
    assert eval(name("layer", ("q",)), {"p": False}) == "layery"


def test_registry_forms_parse_into_trees_that_print_as_written():
    from archc.backends.python import irparse
    from archc.ops import REGISTRY

    for kind in REGISTRY.values():
        names = ("x", "y", "z", "xs", "param", "module", *kind.positional)
        for text in (kind.template, kind.call):
            if text:
                assert irprint.print_expr(irparse.expression(text, names)) == text.format(**{p: p for p in names})
    args, kwargs = irparse.arguments(("1", "training=self.training"))
    assert args == (ir.Const(1),) and kwargs == (("training", ir.attr("self.training")),)
    tree = ir.substitute(irparse.expression("{x}[:, ::{stride}]", ("x", "stride")), {"x": ir.Name("out"),
                                                                                    "stride": ir.Const(2)})
    assert irprint.print_expr(tree) == "out[:, ::2]"
