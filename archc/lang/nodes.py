"""Typed AST of the .arch language: one small class per grammar rule (the expressions in ``exprnodes``, the base
``Node`` and ``Span`` in ``tree``, all reachable from here).

Every node carries the ``Span`` of the source text it came from, so any later
stage can point an error at the spec line that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .exprnodes import (  # noqa: F401  (the expressions, re-exported: n.Num, n.Expr, ...)
    Attr,
    BinOp,
    Call,
    Compare,
    Const,
    Expr,
    IfExp,
    Index,
    ListComp,
    ListExpr,
    Num,
    Pattern,
    Slice,
    Str,
    TensorRef,
    UnaryOp,
    Var,
    pattern_names,
)
from .tree import Node, Span  # noqa: F401  (re-exported)

# ----------------------------------------------------------------- statements


@dataclass(eq=False)
class Target(Node):
    """A statement's name: plain (``conv1``) or interpolated (``layer{s + 1}``).

    ``parts`` alternates literal text and expressions.
    """

    parts: list[str | Expr]
    span: Span
    quoted: bool = False  # written as a string (``"block1-0"``): need not be a Python identifier

    @property
    def dotted(self) -> bool:
        """A path to a member of a container (``convs.{i}``, ``heads.cls``), written unquoted."""
        return not self.quoted and any("." in p for p in self.parts if isinstance(p, str))

    @property
    def is_plain(self) -> bool:
        """A name that interpolates nothing and is no path: one attribute, the same in every instance."""
        return all(isinstance(p, str) for p in self.parts) and not self.dotted

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{...}" for p in self.parts)


@dataclass(eq=False)
class Arguments(Node):
    args: list[Expr]
    kwargs: list[tuple[str, Expr, Span]]


@dataclass(eq=False)
class Layer(Node):
    """``[name =] op_or_block[(args)] [if cond]``."""

    target: Target | None
    func: str
    func_span: Span
    arguments: Arguments
    cond: Expr | None
    span: Span
    applied: bool = False  # an op applied to tensors in a let (``relu(x)``), made by ``dataflow.py``


@dataclass(eq=False)
class Seq(Node):
    target: Target | None
    body: list[Stmt]
    cond: Expr | None
    span: Span


@dataclass(eq=False)
class Concat(Node):
    branches: list[Stmt]
    cond: Expr | None
    span: Span


@dataclass(eq=False)
class Gate(Node):
    """``gate { body }``: the input multiplied by what the body computes from it (broadcast)."""

    body: list[Stmt]
    cond: Expr | None
    span: Span


@dataclass(eq=False)
class Ensemble(Node):
    """``ensemble { members }``: every member (a network or block call) runs on the input; the result is the
    mean of their softmax outputs, as VGG's and GoogLeNet's evaluations average their networks."""

    body: list[Stmt]
    cond: Expr | None
    span: Span


@dataclass(eq=False)
class Dense(Node):
    """``dense(checkpoint = c) { members }``: each member reads the concatenation of the input and
    every earlier member's output; the result is the concatenation of them all."""

    arguments: Arguments
    body: list[Stmt]
    cond: Expr | None
    span: Span


@dataclass(eq=False)
class Shortcut(Node):
    source: str | None  # ``from NAME``: read a tensor inside the residual body
    source_span: Span | None
    cond: Expr | None
    body: list[Stmt]
    span: Span


@dataclass(eq=False)
class Residual(Node):
    arguments: Arguments  # scale, when, stochastic_depth, mode
    body: list[Stmt]
    shortcut: Shortcut | None
    cond: Expr | None
    span: Span
    shortcut_first: bool = False  # written before the body: its modules are made first (RegNet's proj, then f)


@dataclass(eq=False)
class Side(Node):
    target: Target
    func: str
    func_span: Span
    arguments: Arguments
    cond: Expr | None
    span: Span
    source: str | None = None  # ``from NAME``: the output of an earlier layer of this body, not the current tensor
    source_span: Span | None = None

    @cached_property
    def layer(self) -> Layer:
        """The layer it computes: one node, so every pass (and the shapes recorded for it) sees the same one."""
        return Layer(self.target, self.func, self.func_span, self.arguments, None, self.span)


@dataclass(eq=False)
class Tap(Node):
    """``tap [NAME]``: the tensor here is one of the network's feature maps (a backbone's stage output). Its
    name is NAME, or else the name of the layer just before."""

    target: Target | None
    span: Span


@dataclass(eq=False)
class For(Node):
    var: Pattern
    iterable: Expr
    body: list[Stmt]
    span: Span


@dataclass(eq=False)
class If(Node):
    cond: Expr
    body: list[Stmt]
    orelse: list[Stmt]
    span: Span


@dataclass(eq=False)
class Let(Node):
    name: str
    value: Expr
    span: Span
    more: list[str] = field(default_factory=list)  # ``let a, b = m(x)``: the names after the first

    @property
    def names(self) -> list[str]:
        return [self.name, *self.more]


@dataclass(eq=False)
class Init(Node):
    """``init TARGET.param = RULE [if cond]``: how a parameter is initialised. TARGET is an op kind (every such
    layer in scope), a layer of this body, or, in a network, ``Block.layer`` (that layer of every instance)."""

    path: list[str]  # the target's parts, the parameter's name last (a learned tensor's path: no parameter)
    rule: Expr  # a number, or a call of an initialiser (normal(0, 0.01))
    cond: Expr | None
    span: Span
    made: bool = False  # 'when made': drawn where its target is made (in __init__), not in the pass after


Stmt = Layer | Seq | Concat | Gate | Ensemble | Dense | Residual | Side | Tap | For | If | Let | Init


def tap_holders(stmts: list[Stmt], tapped: frozenset[str] = frozenset()) -> set[int]:
    """The ids of the seqs, loops and conditionals that hold a tap (taps stand nowhere else), and of the layers
    that call a block of ``tapped`` (a block whose taps become its caller's: its call is a step that taps)."""
    holders: set[int] = set()

    def holds(s) -> bool:
        if isinstance(s, Tap):
            return True
        if isinstance(s, Layer) and s.func in tapped:
            holders.add(s)
            return True
        if not isinstance(s, (Seq, For, If)):
            return False
        inside = [holds(c) for c in [*s.body, *getattr(s, "orelse", [])]]  # every child: nested holders too
        if any(inside):
            holders.add(s)
        return any(inside)

    for s in stmts:
        holds(s)
    return holders


def has_taps(stmts: list[Stmt], tapped: frozenset[str] = frozenset()) -> bool:
    return any(isinstance(s, Tap) for s in stmts) or bool(tap_holders(stmts, tapped))


def is_step(stmt: Stmt, holders: set[int]) -> bool:
    """One step of a network's main path, whose stride counts toward the taps' reductions: anything that
    computes, except a seq, loop or conditional holding a tap (its own statements are the steps)."""
    return not isinstance(stmt, (Let, Init, Tap, Side)) and not (isinstance(stmt, (Seq, For, If)) and stmt in holders)


# ------------------------------------------------------------------ top level


@dataclass(eq=False)
class Param(Node):
    name: str
    default: Expr | None
    span: Span
    option: bool = False  # a network's parameter that every factory takes, a variant's value its default


@dataclass(eq=False)
class Flow(Node):
    """One operation of a dataflow block: a ``let`` over tensors is lowered to these, one operation each, in the
    order they compute (``dataflow.py``). Tensors are named by keys: a let's name, or ``NAME%k`` for a value
    inside its expression."""

    dest: str
    # "apply": a declared module on srcs; "op": a parameter-free op on srcs[0]; "arith"; "neg"; "if": the value of
    # one of two branches (``a if cond else b``), srcs the key each branch gives; "copy": srcs[0] again (a tensor a
    # loop rebinds keeps its own key); "list": a list of tensors, srcs its items and lists in order; "item": the
    # tensor of the list srcs[0] at ``index``. A structured statement lowered (``dataflow_sugar.py``) adds two:
    # "run": the statements ``body`` applied to srcs[0] in turn, as a seq body applies them to its implicit
    # tensor; "each": a list, the branches that the for/if/let of ``body`` give, each applied to srcs[0]; "grow":
    # a list that starts as [srcs[0]], each member ``body`` gives reading its concatenation and appended (a dense,
    # ``layer``); "join": the statement ``layer`` (residual, gate, concat, dense) joining srcs, ``op`` its graph node
    kind: str
    srcs: tuple  # tensor keys; an "arith" step may have an expression (a number) in place of one of its two
    layer: Layer | Seq | None  # apply: the declaration; op: the op's call with its other arguments
    span: Span
    op: str = ""  # arith: + - * /; apply: the name the declaration is applied by (``proj``, ``convs.{i}``)
    dests: tuple = ()  # apply of a block of several outputs: the key of each (dest is the first)
    cond: Expr | None = None  # if: the condition, a value (no tensor)
    branches: tuple = ()  # if: the steps of each branch, (then, else)
    index: Expr | None = None  # item: the position, a value
    body: tuple | list = ()  # run: the statements it applies (a slice of the statement's own list)


@dataclass(eq=False)
class Signature(Node):
    """A dataflow block's tensors in and out, with what its body lowers to: the steps of each tensor let, and the
    declared modules (``NAME = layer``, made in __init__, applied by a let)."""

    inputs: list[str]
    outputs: list[str]  # one, or several (``-> (a, b)``)
    span: Span
    sizes: list = field(default_factory=list)  # per input: its sizes as written (``x: seq_len x dim``), or None
    # derived from the body (compare=False: not what the source says, but what it means)
    lets: dict = field(default_factory=dict, compare=False)  # tensor Let -> its Flow steps
    keys: dict = field(default_factory=dict, compare=False)  # tensor name (input or let) -> the key of its value
    decls: dict = field(default_factory=dict, compare=False)  # declared module name -> its Layer or Seq statement
    # a For of the body -> the (name, key) pairs that carry a tensor from before the loop into the name's own key
    loops: dict = field(default_factory=dict, compare=False)
    lists: set = field(default_factory=set, compare=False)  # the keys that hold lists of tensors
    shapes: dict = field(default_factory=dict, compare=False)  # a Let of sizes (let h, w = x.shape) -> x's key
    # (walks reach the sizes; the tables are dicts, which a walk passes by: their statements are the body's)


@dataclass(eq=False)
class BlockDef(Node):
    name: str
    params: list[Param]
    body: list[Stmt]
    span: Span
    doc: str = ""
    sequential: bool = False  # ``block B(...) = seq { ... }``: an nn.Sequential whose children are numbered
    # ``block B(...) (a, b) -> y { ... }``: a dataflow block, whose tensors are named (``dataflow.py``)
    signature: Signature | None = None


@dataclass(eq=False)
class NetworkDef(Node):
    name: str
    params: list[Param]
    input: list[Expr]
    input_span: Span
    body: list[Stmt]
    span: Span
    doc: str = ""


@dataclass(eq=False)
class VariantDef(Node):
    name: str
    network: str
    network_span: Span
    arguments: Arguments
    span: Span
    doc: str = ""


@dataclass(eq=False)
class FuncDef(Node):
    """``def name(params) { let ...; return expr }``: a pure helper for expressions."""

    name: str
    params: list[Param]
    lets: list[Let]
    result: Expr
    span: Span


@dataclass(eq=False)
class Use(Node):
    path: str
    span: Span


@dataclass(eq=False)
class Module(Node):
    """One parsed ``.arch`` file."""

    file: str
    source: str
    uses: list[Use] = field(default_factory=list)
    lets: list[Let] = field(default_factory=list)
    funcs: list[FuncDef] = field(default_factory=list)
    blocks: list[BlockDef] = field(default_factory=list)
    networks: list[NetworkDef] = field(default_factory=list)
    variants: list[VariantDef] = field(default_factory=list)
    header: str = ""
