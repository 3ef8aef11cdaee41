"""Random expression trees of known value for specgen: ``Exprs(choose, env).int_of(7)`` writes an expression that
evaluates to 7, reading the variables of ``env`` (name -> value) and printed with as few parentheses as Python's
precedence allows (and now and then a redundant pair), so that archc's evaluator, folder and printer all meet
ternaries, comparison chains, parenthesised comparisons, ``not``, ``**``, floor division, builtins, functions,
comprehensions, slices and tuples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# precedence levels of the grammar, lowest first
TERN, OR, AND, NOT, CMP, ADD, MUL, NEG, POW, ATOM = range(10)
COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}

# spec-level helper functions: keep(v) is v, bigger(a, b) max(a, b), make_divisible(v) v for a multiple of 8
FUNCTIONS = {
    "keep": "def keep(v, d = 2) {\n    let r = v * d\n    return r // d\n}",
    "bigger": "def bigger(a, b = 0) { return a if a > b else b }",
    "make_divisible": ("def make_divisible(v, divisor = 8) {\n"
                       "    let rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)\n"
                       "    return rounded + divisor if rounded < 0.9 * v else rounded\n}"),
}


@dataclass
class E:
    """An expression: its text, the precedence of its outermost operator, and its value."""

    text: str
    prec: int
    value: object


@dataclass
class Exprs:
    choose: object
    env: dict = field(default_factory=dict)  # variables that may be read, with their values
    functions: set = field(default_factory=set)  # the helper functions the spec must define
    budget: int = 40  # nodes left: expressions stay readable (and the evaluation budget far away)

    def pick(self, options):
        return options[self.choose(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        return self.choose(0, 99) < percent

    def wrap(self, e: E, least: int) -> str:
        """The text of ``e`` as an operand that needs precedence ``least``: parenthesised if lower."""
        if e.prec < least or (e.prec < ATOM and self.chance(8)):
            return f"({e.text})"
        return e.text

    def binary(self, a: E, op: str, b: E, prec: int, value) -> E:
        return E(f"{self.wrap(a, prec)} {op} {self.wrap(b, prec + 1)}", prec, value)

    # ------------------------------------------------------------ integers

    def literal(self, v: int) -> E:
        return E(str(v), ATOM, v) if v >= 0 else E(f"-{-v}", NEG, v)

    def leaf(self, v: int) -> E:
        ints = [k for k, x in self.env.items() if type(x) is int]
        same = [k for k in ints if self.env[k] == v]
        if same and self.chance(60):
            return E(self.pick(same), ATOM, v)
        if ints and self.chance(40) and self.budget > 2:  # read a variable, correct the difference
            k = self.pick(ints)
            d = v - self.env[k]
            return E(f"{k} + {d}" if d >= 0 else f"{k} - {-d}", ADD, v)
        return self.literal(v)

    def int_of(self, v: int, depth: int = 3) -> E:
        self.budget -= 1
        if depth <= 0 or self.budget <= 0 or self.chance(25):
            return self.leaf(v)
        d = depth - 1
        form = self.pick(["add", "sub", "mul", "floordiv", "mod", "if", "if", "minmax", "pow", "neg", "call",
                          "list", "func", "int"])
        if form == "add":
            a = self.choose(-3, 8)
            return self.binary(self.int_of(a, d), "+", self.int_of(v - a, d), ADD, v)
        if form == "sub":
            b = self.choose(0, 6)
            return self.binary(self.int_of(v + b, d), "-", self.int_of(b, d), ADD, v)
        if form == "mul" and v:
            k = self.pick([k for k in range(1, abs(v) + 1) if v % k == 0])
            return self.binary(self.int_of(k, d), "*", self.int_of(v // k, d), MUL, v)
        if form == "floordiv":
            b = self.choose(1, 4)
            return self.binary(self.int_of(v * b + self.choose(0, b - 1), d), "//", self.int_of(b, d), MUL, v)
        if form == "mod" and v >= 0:
            b = v + self.choose(1, 4)
            return self.binary(self.int_of(v + b * self.choose(0, 2), d), "%", self.int_of(b, d), MUL, v)
        if form == "if":
            truth = self.chance(50)
            other = self.int_of(self.choose(-2, 12), d)
            yes, no = (self.int_of(v, d), other) if truth else (other, self.int_of(v, d))
            cond = self.bool_of(truth, d)
            return E(f"{self.wrap(yes, OR)} if {self.wrap(cond, OR)} else {self.wrap(no, TERN)}", TERN, v)
        if form == "minmax":
            fn, other = self.pick([("max", v - self.choose(0, 3)), ("min", v + self.choose(0, 3))])
            return E(f"{fn}({self.int_of(v, d).text}, {self.int_of(other, d).text})", ATOM, v)
        if form == "pow" and v in (1, 4, 8, 9, 16):
            base, exp = {1: (1, 5), 4: (2, 2), 8: (2, 3), 9: (3, 2), 16: (4, 2)}[v]
            return E(f"{self.wrap(self.int_of(base, 0), ATOM)} ** {self.wrap(self.int_of(exp, d), NEG)}", POW, v)
        if form == "neg" and v:
            return E(f"-{self.wrap(self.int_of(-v, d), NEG)}", NEG, v)
        if form == "call" and v >= 0:
            text = self.pick([f"int({v} + 0.5)", f"round({v} + 0.25)", f"ceil({v} - 0.5)", f"floor({v} + 0.75)",
                              f"abs({self.int_of(-v, d).text})", f"round(log({2 ** min(v, 9)}, 2))" if v <= 9 else
                              f"int({v})", f"sum([{self.int_of(v - 1, d).text}, 1])"])
            return E(text, ATOM, v)
        if form == "list" and 0 <= v <= 5:
            items = ", ".join(self.int_of(self.choose(0, 9), 0).text for _ in range(v + self.choose(0, 2)))
            return E(self.pick([f"len([{items}][:{v}])", f"len([{items}][{v} - {v}:{v}])",
                                f"len([i for i in range({v + 2}) if i < {v}])",
                                f"[{self.int_of(v, d).text}, {self.choose(0, 9)}][0]",
                                f"({self.choose(0, 9)}, {self.int_of(v, d).text})[1]",
                                f"sum([a * b for a, b in zip([{v}, 0], [1, 5])])"]), ATOM, v)
        if form == "func" and v >= 0:
            fn = self.pick(["keep", "bigger", "make_divisible"])
            if fn == "make_divisible" and v % 8 == 0 and v:
                self.functions.add(fn)
                return E(f"make_divisible({self.int_of(v, d).text})", ATOM, v)
            if fn != "make_divisible":
                self.functions.add(fn)
                arg = self.int_of(v, d).text
                return E(f"{fn}({arg})" if fn == "keep" or self.chance(50) else f"{fn}({arg}, {v - 1})", ATOM, v)
        if form == "int" and v >= 0:
            return E(f"int({self.wrap(self.int_of(v * 2, d), MUL)} / 2)", ATOM, v)
        return self.leaf(v)

    # ------------------------------------------------------------ booleans

    def bool_of(self, truth: bool, depth: int = 2) -> E:
        self.budget -= 1
        bools = [k for k, x in self.env.items() if type(x) is bool]
        if depth <= 0 or self.budget <= 0 or self.chance(15):
            same = [k for k in bools if self.env[k] == truth]
            if same and self.chance(70):
                return E(self.pick(same), ATOM, truth)
            return self.chain(truth, 0)
        d = depth - 1
        form = self.pick(["chain", "chain", "pair", "not", "andor"])
        if form == "chain":
            return self.chain(truth, d)
        if form == "pair":  # (a < b) == (b < c)
            x, op = self.chance(50), self.pick(["==", "!="])
            y = x == (truth == (op == "=="))
            return E(f"{self.wrap(self.bool_of(x, 0), ADD)} {op} {self.wrap(self.bool_of(y, 0), ADD)}", CMP, truth)
        if form == "not":
            return E(f"not {self.wrap(self.bool_of(not truth, d), NOT)}", NOT, truth)
        op = self.pick(["and", "or"])
        if (op == "and") == truth:  # and true, or false: both operands say so
            a = b = truth
        else:  # one operand at least decides it
            a, b = self.pick([(truth, truth), (truth, not truth), (not truth, truth)])
        prec = AND if op == "and" else OR
        return E(f"{self.wrap(self.bool_of(a, d), prec + 1)} {op} {self.wrap(self.bool_of(b, d), prec + 1)}",
                 prec, truth)

    def chain(self, truth: bool, depth: int) -> E:
        """``a < b <= c``: two or three integers compared, true or false as asked."""
        values = [self.choose(0, 9) for _ in range(self.pick([2, 2, 3]))]
        ops = []
        for a, b in zip(values, values[1:]):
            holding = [op for op, f in COMPARE.items() if f(a, b)]
            ops.append(self.pick(holding))
        if not truth:  # one comparison fails
            i = self.choose(0, len(ops) - 1)
            ops[i] = self.pick([op for op, f in COMPARE.items() if not f(values[i], values[i + 1])])
        parts = [self.wrap(self.int_of(values[0], depth), ADD)]
        for op, v in zip(ops, values[1:]):
            parts += [op, self.wrap(self.int_of(v, depth), ADD)]
        return E(" ".join(parts), CMP, truth)

    # ------------------------------------------------------------ floats

    def float_in(self, lo: float, hi: float) -> E:
        """A float expression with a value in [lo, hi]."""
        floats = [k for k, x in self.env.items() if type(x) is float]
        for _ in range(12):
            e = self.float_try(floats)
            if lo <= e.value <= hi:
                return e
        v = round(lo + (hi - lo) * self.choose(0, 100) / 100, 3)
        return E(repr(float(v)), ATOM, float(v))

    def float_try(self, floats) -> E:
        self.budget -= 1
        a, b = self.choose(1, 9), self.choose(2, 12)
        s = self.pick(floats) if floats else None
        sv = self.env[s] if s else 0.25
        s = s or "0.25"
        form = self.pick(["div", "slope", "slope", "log", "if", "pow", "min"])
        if form == "div":
            return E(f"{self.wrap(self.int_of(a, 1), MUL)} / {self.wrap(self.int_of(b, 1), MUL + 1)}", MUL, a / b)
        if form == "slope":
            return self.pick([E(f"1.0 - {s}", ADD, 1.0 - sv), E(f"{s} * {a}", MUL, sv * a), E(s, ATOM, sv),
                              E(f"{s} / {b}", MUL, sv / b), E(f"1 - {s} / 2", ADD, 1 - sv / 2)])
        if form == "log":
            return E(f"log({a + 1}) / {b}", MUL, math.log(a + 1) / b)
        if form == "if":
            truth = self.chance(50)
            x, y = a / 10, b / 20
            return E(f"{x} if {self.wrap(self.bool_of(truth, 1), OR)} else {y}", TERN, x if truth else y)
        if form == "pow":
            return E(f"0.5 ** {a % 4}", POW, 0.5 ** (a % 4))
        return E(f"min({a / 10}, {s})", ATOM, min(a / 10, sv))


def definitions(functions: set) -> list[str]:
    """The ``def``s a spec needs for the helper functions its expressions call."""
    return [FUNCTIONS[f] for f in sorted(functions)]
