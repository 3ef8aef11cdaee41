"""The op registry's Python forms (``template``, ``call``, ``functional``, ``module``, ``ctor_extra``...) as IR.

A registry entry writes its forward form as Python text over placeholders (``"{x}.mean([2, 3])"``); it is
parsed once, with the standard library's ``ast``, into an IR tree whose placeholders are plain names, and the
emitters put their argument trees in with ``ir.substitute``. No generated text is ever formatted or patched.
"""

from __future__ import annotations

import ast
from functools import cache

from . import ir

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
           ast.Pow: "**", ast.MatMult: "@", ast.BitOr: "|"}
_UNARY = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not"}


@cache
def expression(text: str, placeholders: tuple[str, ...] = ()) -> ir.Node:
    """A registry expression as IR: ``{name}`` placeholders become the plain names ``name``."""
    return _from_ast(ast.parse(text.format(**{p: p for p in placeholders}), mode="eval").body)


@cache
def arguments(texts: tuple[str, ...]) -> tuple[tuple, tuple]:
    """Extra call arguments written as text (``"1"``, ``"training=self.training"``): (positional, keyword)."""
    call = ast.parse(f"f({', '.join(texts)})", mode="eval").body
    return tuple(_from_ast(a) for a in call.args), tuple((k.arg, _from_ast(k.value)) for k in call.keywords)


def _from_ast(e: ast.expr) -> ir.Node:
    if isinstance(e, ast.Name):
        return ir.Name(e.id)
    if isinstance(e, ast.Constant):
        return ir.const(e.value)
    if isinstance(e, ast.Attribute):
        return ir.Attr(_from_ast(e.value), e.attr)
    if isinstance(e, ast.Call):
        return ir.Call(_from_ast(e.func), tuple(_from_ast(a) for a in e.args),
                       tuple((k.arg, _from_ast(k.value)) for k in e.keywords))
    if isinstance(e, ast.Subscript):
        return ir.Index(_from_ast(e.value), _from_ast(e.slice))
    if isinstance(e, ast.Slice):
        return ir.Slice(*(None if x is None else _from_ast(x) for x in (e.lower, e.upper, e.step)))
    if isinstance(e, ast.Tuple):
        return ir.Tuple(tuple(_from_ast(i) for i in e.elts))
    if isinstance(e, ast.List):
        return ir.List(tuple(_from_ast(i) for i in e.elts))
    if isinstance(e, ast.BinOp):
        return ir.BinOp(_BINOPS[type(e.op)], _from_ast(e.left), _from_ast(e.right))
    if isinstance(e, ast.UnaryOp):
        operand = _from_ast(e.operand)
        if isinstance(e.op, ast.USub) and isinstance(operand, ir.Const):
            return ir.const(-operand.value)
        return ir.Unary(_UNARY[type(e.op)], operand)
    if isinstance(e, ast.Starred):
        return ir.Starred(_from_ast(e.value))
    if isinstance(e, ast.IfExp):
        return ir.IfExp(_from_ast(e.test), _from_ast(e.body), _from_ast(e.orelse))
    raise ValueError(f"a registry form uses Python the code generator does not build: {ast.dump(e)}")


__all__ = ["arguments", "expression"]
