"""The IR printed: Python text from the code generator's trees (``ir``), the only place the generated code's text
is made. One method per node kind (``expr_<Kind>``, ``stmt_<Kind>``); expressions get the parentheses precedence
needs, so a tree means what it prints; a statement longer than 100 columns breaks at the call it ends in, one
argument a line, as a person (or black) breaks it; ``If`` with a lone ``If`` in its ``orelse`` prints as ``elif``.
"""

from __future__ import annotations

import math

from .ir import (
    Arg,
    Assign,
    Attr,
    AugAssign,
    BinOp,
    Call,
    Comp,
    Compare,
    Const,
    Delete,
    Expr,
    For,
    FString,
    FunctionDef,
    If,
    IfExp,
    Index,
    List,
    Name,
    Node,
    Pass,
    Raise,
    Return,
    Slice,
    Stacked,
    Starred,
    Tuple,
    Unary,
)

WIDTH = 100

_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "|": 5, "^": 6, "&": 7, "<<": 8, ">>": 8, "+": 9, "-": 9,
         "*": 10, "/": 10, "//": 10, "%": 10, "@": 10, "unary": 11, "**": 12, "await": 13}
_ATOM = 20


def _prec(e: Node) -> int:
    if isinstance(e, IfExp):
        return 0
    if isinstance(e, BinOp):
        return _PREC[e.op]
    if isinstance(e, Compare):
        return _PREC["cmp"]
    if isinstance(e, Unary):
        return _PREC["not"] if e.op == "not" else _PREC["unary"]
    if isinstance(e, Const) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool) and \
            math.copysign(1, e.value) < 0:
        return _PREC["unary"]
    return _ATOM


class Printer:
    """Prints the IR: one method per node kind (``expr_<Kind>``, ``stmt_<Kind>``)."""

    indent = ""  # of the statement being printed: a stacked call's arguments go one level deeper

    def expr(self, e: Node, minimum: int = 0) -> str:
        text = getattr(self, "expr_" + type(e).__name__)(e)
        return f"({text})" if _prec(e) < minimum else text

    def expr_Name(self, e: Name) -> str:
        return e.id

    def expr_Const(self, e: Const) -> str:
        v = e.value
        if isinstance(v, str):
            plain = all(c.isprintable() for c in v) and not any(c in v for c in "\"\\")
            return f'"{v}"' if plain else _double_quoted(v)
        if v is Ellipsis:
            return "..."
        if isinstance(v, float) and not math.isfinite(v):
            return f'float("{v}")'
        return repr(v)

    def expr_Attr(self, e: Attr) -> str:
        inner = self.expr(e.value, _ATOM)
        if isinstance(e.value, Const) and isinstance(e.value.value, int) and not isinstance(e.value.value, bool):
            inner = f"({inner})"  # 1 .real, not 1.real
        return f"{inner}.{e.attr}"

    def expr_Call(self, e: Call) -> str:
        return f"{self.expr(e.func, _ATOM)}({', '.join(self.arguments(e))})"

    def arguments(self, e: Call) -> list[str]:
        return [self.expr(a) for a in e.args] + [f"{k}={self.expr(v)}" for k, v in e.kwargs]

    def expr_Index(self, e: Index) -> str:
        index = e.index
        if isinstance(index, Tuple) and index.items:
            inner = ", ".join(self.expr(i) for i in index.items) + ("," if len(index.items) == 1 else "")
        else:
            inner = self.expr(index)
        return f"{self.expr(e.value, _ATOM)}[{inner}]"

    def expr_Slice(self, e: Slice) -> str:
        parts = ["" if x is None else self.expr(x, 1) for x in (e.lower, e.upper)]
        text = ":".join(parts)
        return text + ("" if e.step is None else f":{self.expr(e.step, 1)}")

    def expr_Tuple(self, e: Tuple) -> str:
        inner = ", ".join(self.expr(i) for i in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"

    def expr_List(self, e: List) -> str:
        return f"[{', '.join(self.expr(i) for i in e.items)}]"

    def expr_BinOp(self, e: BinOp) -> str:
        p = _PREC[e.op]
        if e.op == "**":  # right-associative; its right side may be a unary minus: 2 ** -x
            return f"{self.expr(e.left, p + 1)} ** {self.expr(e.right, _PREC['unary'])}"
        if e.op in ("and", "or"):  # a and (b and c) is a and b and c, short-circuits included
            return f"{self.expr(e.left, p)} {e.op} {self.expr(e.right, p)}"
        return f"{self.expr(e.left, p)} {e.op} {self.expr(e.right, p + 1)}"

    def expr_Unary(self, e: Unary) -> str:
        if e.op == "not":  # not (a < b): parentheses for the reader where a comparison follows
            inner = self.expr(e.operand, _PREC["not"])
            return f"not ({inner})" if isinstance(e.operand, Compare) else f"not {inner}"
        return f"{e.op}{self.expr(e.operand, _PREC['unary'])}"

    def expr_Compare(self, e: Compare) -> str:
        p = _PREC["cmp"] + 1  # a comparison inside a comparison keeps its parentheses: no chain
        text = self.expr(e.operands[0], p)
        for op, right in zip(e.ops, e.operands[1:]):
            text += f" {op} {self.expr(right, p)}"
        return text

    def expr_IfExp(self, e: IfExp) -> str:
        return f"{self.expr(e.body, 1)} if {self.expr(e.test, 1)} else {self.expr(e.orelse, 0)}"

    def expr_Comp(self, e: Comp) -> str:
        text = self.expr(e.element, 1)
        for target, iterable, conds in e.clauses:
            text += f" for {self.target(target)} in {self.expr(iterable, 1)}"
            text += "".join(f" if {self.expr(c, 1)}" for c in conds)
        return f"[{text}]" if e.kind == "list" else "{" + text + "}"

    def expr_FString(self, e: FString) -> str:
        inner = ""
        for part in e.parts:
            if isinstance(part, str):
                inner += part.replace("{", "{{").replace("}", "}}")
            else:  # braces delimit the expression: it needs no parentheses of its own
                inner += "{" + self.expr(part) + "}"
        if '"' in inner or "\\" in inner:
            raise ValueError(f"an f-string part holds a quote or a backslash: {inner!r}")
        return f'f"{inner}"'

    def expr_Stacked(self, e: Stacked) -> str:
        outer = self.indent
        self.indent = outer + "    "
        items = [self.indent + text + ",\n" for text in self.arguments(e)]
        self.indent = outer
        return self.expr(e.func, _ATOM) + "(\n" + "".join(items) + outer + ")"

    def expr_Starred(self, e: Starred) -> str:
        return "*" + self.expr(e.value, _PREC["|"])  # *(a + b): the star takes an or-expression

    def target(self, e: Node, top: bool = True) -> str:
        """An assignment's or loop's target: ``a, (b, c)`` (an inner tuple keeps its parentheses)."""
        if isinstance(e, Tuple):
            inner = ", ".join(self.target(i, False) for i in e.items)
            return inner if top else f"({inner})"
        return self.expr(e)

    # ------------------------------------------------------------ statements

    def lines(self, body, depth: int) -> list[str]:
        out: list[str] = []
        for s in body:
            out += getattr(self, "stmt_" + type(s).__name__)(s, "    " * depth, depth)
        return out

    def simple(self, indent: str, head: str, value: Node | None, comment: str = "") -> list[str]:
        """``head value  # comment``, broken at ``value``'s last call's arguments if too long; a statement with a
        (shape) comment stays on its line, the comment beside the whole statement."""
        self.indent = indent
        text = head + ("" if value is None else self.expr(value))
        if comment or "\n" in text:  # a stacked call is laid out already
            return [f"{indent}{text}" + (f"  # {comment}" if comment else "")]
        split = self.trailing(value) if len(indent + text) > WIDTH and value is not None else None
        if split is None:
            return [indent + text]
        return self.broken(indent, head + split[0], split[1], "")

    def trailing(self, e: Node) -> tuple[str, Call] | None:
        """The call an expression ends in (``a + f(x, y)``, ``a if c else f(x)``), where a long line breaks, and
        the text before it; None if it ends otherwise (a parenthesised sum breaks nowhere: it would be a tuple)."""
        if isinstance(e, Call):
            return ("", e) if e.args or e.kwargs else None
        if isinstance(e, IfExp):
            inner, before = e.orelse, f"{self.expr(e.body, 1)} if {self.expr(e.test, 1)} else "
        elif isinstance(e, BinOp) and e.op != "**":
            p = _PREC[e.op]
            right_min = p if e.op in ("and", "or") else p + 1
            if _prec(e.right) < right_min:
                return None
            inner, before = e.right, f"{self.expr(e.left, p)} {e.op} "
        elif isinstance(e, Unary) and e.op != "not" and _prec(e.operand) >= _PREC["unary"]:
            inner, before = e.operand, e.op
        else:
            return None
        split = self.trailing(inner)
        return None if split is None else (before + split[0], split[1])

    def broken(self, indent: str, head: str, value: Call, end: str, tail: str = "") -> list[str]:
        """A call one argument a line (an argument that is itself a long call, broken the same way)."""
        out = [f"{indent}{head}{self.expr(value.func, _ATOM)}({tail}"]
        inner = indent + "    "
        items = [(None, a) for a in value.args] + list(value.kwargs)
        for key, arg in items:
            prefix = "" if key is None else f"{key}="
            text = prefix + self.expr(arg)
            split = self.trailing(arg) if len(inner + text) + 1 > WIDTH else None
            if split is not None:
                out += self.broken(inner, prefix + split[0], split[1], ",")
            else:
                out.append(f"{inner}{text},")
        out.append(f"{indent}){end}")
        return out

    def stmt_Assign(self, s: Assign, indent: str, depth: int) -> list[str]:
        annotation = f": {s.annotation}" if s.annotation else ""
        return self.simple(indent, f"{self.target(s.target)}{annotation} = ", s.value, s.comment)

    def stmt_AugAssign(self, s: AugAssign, indent: str, depth: int) -> list[str]:
        return self.simple(indent, f"{self.target(s.target)} {s.op}= ", s.value, s.comment)

    def stmt_Expr(self, s: Expr, indent: str, depth: int) -> list[str]:
        return self.simple(indent, "", s.value, s.comment)

    def stmt_Return(self, s: Return, indent: str, depth: int) -> list[str]:
        if s.value is None:
            return [indent + "return"]
        if isinstance(s.value, Tuple) and s.value.items:
            return [indent + "return " + ", ".join(self.expr(i) for i in s.value.items)]
        return self.simple(indent, "return ", s.value)

    def stmt_Pass(self, s: Pass, indent: str, depth: int) -> list[str]:
        return [indent + "pass"]

    def stmt_Raise(self, s: Raise, indent: str, depth: int) -> list[str]:
        return self.simple(indent, "raise ", s.value)

    def stmt_Delete(self, s: Delete, indent: str, depth: int) -> list[str]:
        return self.simple(indent, "del " + ", ".join(self.expr(t) for t in s.targets), None, s.comment)

    def param(self, p: Arg) -> str:
        if p.annotation is None:
            return p.name if p.default is None else f"{p.name}={self.expr(p.default)}"
        text = f"{p.name}: {self.expr(p.annotation)}"
        return text if p.default is None else f"{text} = {self.expr(p.default)}"

    def header(self, s: FunctionDef, indent: str) -> list[str]:
        """``def name(params) -> returns:``, one parameter a line if the header is over 100 columns."""
        params = [self.param(p) for p in s.params]
        tail = ("" if s.returns is None else f" -> {self.expr(s.returns)}") + ":"
        one = f"{indent}def {s.name}({', '.join(params)}){tail}"
        if len(one) <= WIDTH or not params:
            return [one]
        return [f"{indent}def {s.name}("] + [f"{indent}    {p}," for p in params] + [f"{indent}){tail}"]

    def stmt_FunctionDef(self, s: FunctionDef, indent: str, depth: int) -> list[str]:
        out = self.header(s, indent)
        if s.doc:
            out.append(f'{indent}    """{s.doc}"""')
        return out + self.lines(s.body or (Pass(),), depth + 1)

    def table(self, name: str, value: Node, width: int = 120) -> list[str]:
        """``NAME = value`` at the module's top level; a long list or tuple one row a line, as a paper prints a
        table (a flat one filled to 100 columns)."""
        line = f"{name} = {self.expr(value)}"
        if len(line) <= width or not isinstance(value, (List, Tuple)):
            return [line]
        opening, closing = ("[", "]") if isinstance(value, List) else ("(", ")")
        items = [self.expr(i) for i in value.items]
        if any(isinstance(i, (List, Tuple)) for i in value.items):
            return [f"{name} = {opening}"] + [f"    {item}," for item in items] + [closing]
        rows, row = [], ""
        for item in items:
            if row and len(row) + len(item) + 6 > WIDTH:
                rows.append(row)
                row = ""
            row += f"{item}, "
        rows.append(row)
        return [f"{name} = {opening}"] + [f"    {r.rstrip()}" for r in rows] + [closing]

    def stmt_For(self, s: For, indent: str, depth: int) -> list[str]:
        return [f"{indent}for {self.target(s.target)} in {self.expr(s.iterable)}:"] + \
            self.lines(s.body or (Pass(),), depth + 1)

    def stmt_If(self, s: If, indent: str, depth: int, keyword: str = "if") -> list[str]:
        out = [f"{indent}{keyword} {self.expr(s.test)}:"] + self.lines(s.body or (Pass(),), depth + 1)
        if len(s.orelse) == 1 and isinstance(s.orelse[0], If):  # else: if ... is elif
            return out + self.stmt_If(s.orelse[0], indent, depth, "elif")
        if s.orelse:
            out += [f"{indent}else:"] + self.lines(s.orelse, depth + 1)
        return out


def _double_quoted(text: str) -> str:
    """A string literal in double quotes with Python's escapes."""
    body = repr(text)[1:-1] if repr(text)[0] == '"' else repr(text)[1:-1].replace("\\'", "'").replace('"', '\\"')
    return f'"{body}"'


def print_expr(e: Node) -> str:
    return Printer().expr(e)


def print_body(body, depth: int) -> list[str]:
    return Printer().lines(body, depth)




__all__ = ["WIDTH", "Printer", "print_body", "print_expr"]
