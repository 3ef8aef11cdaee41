"""A network with taps as a backbone: its ``forward_taps`` method, and the ``<Net>Features`` class that
keeps the layers up to the last tap and returns the feature maps (timm's ``features_only``).

``forward_taps`` runs ``forward``'s code up to the last tap and collects the tensor at each tap. A seq
that holds taps is run layer by layer through its children (``self.features.denseblock1(x)``), which is
what ``nn.Sequential`` does; side outputs are left out. A block with taps has a ``forward_taps`` of its own,
which the caller's calls in place of the block.
"""

from __future__ import annotations

from ...errors import SpecError
from ...lang import nodes as n
from . import ir
from .context import ClassContext
from .emit import plain, static_name
from .emit_forward import ForwardEmitter
from .irbuild import prune_lets


class PartEmitter(ForwardEmitter):
    """Writes part of a network's forward, its side outputs left out (``forward_taps``, and timm's
    ``forward_features`` and ``forward_head``)."""

    def __init__(self, ctx: ClassContext):
        super().__init__(ctx)
        self.sides_from = {}

    def fwd_one(self, stmt: n.Stmt, var: str, fresh: bool, w: list, taps: dict | None,
                dest: str | None = None) -> tuple[str, bool]:
        if isinstance(stmt, n.Side):
            return var, fresh
        return super().fwd_one(stmt, var, fresh, w, taps, dest)


class TapsEmitter(PartEmitter):
    """Builds the body of ``forward_taps``: a network's returns its feature maps; a block's (one whose taps become
    its caller's) returns its output and the tensors at its taps as they are, which the network makes maps of."""

    def __init__(self, ctx: ClassContext):
        super().__init__(ctx)
        self.holders = n.tap_holders(ctx.d.body, ctx.tapped)
        self.inlined = False  # inside a seq run child by child
        # the seqs whose last tap is the network's last (a block runs to its output)
        self.final = final_path(ctx.d.body, self.holders) if ctx.is_network else set()
        self.features = ir.Name(self.fwd_ns.create("features"))
        self.size: ir.Name | None = None  # the input's height and width, for the taps on tokens
        self.block_taps: ir.Name | None = None  # the tensors at the taps of a block with taps, and one of them
        self.tap: ir.Name | None = None

    def emit(self) -> list[ir.Node]:
        body: list[ir.Node] = [ir.Assign(self.features, ir.List(()), annotation="list[Tensor]")]
        stmts = upto_last_tap(self.ctx.d.body, self.holders) if self.ctx.is_network else self.ctx.d.body
        var, _ = self.fwd_body(stmts, "x", False, body, None)
        if self.size is not None:
            body.insert(0, ir.Assign(self.size, ir.Index(ir.attr("x.shape"), ir.Slice(ir.const(-2)))))
        body.append(ir.Return(self.features if self.ctx.is_network else ir.Tuple((ir.Name(var), self.features))))
        return self.hoist(prune_lets(body))

    def fwd_one(self, stmt: n.Stmt, var: str, fresh: bool, w: list, taps: dict | None,
                dest: str | None = None) -> tuple[str, bool]:
        if isinstance(stmt, n.Tap):
            w.append(ir.Expr(ir.call(ir.Attr(self.features, "append"), self._tapped(stmt, var))))
            return var, False
        if self.inlined:
            self._check_inlined(stmt)
        if isinstance(stmt, n.Seq) and stmt.target is not None and stmt in self.holders:
            return self._inline(stmt, var, w, dest or var)
        if isinstance(stmt, n.Layer) and stmt in self.holders:
            return self._tapped_block(stmt, var, w, dest or var)
        return super().fwd_one(stmt, var, fresh, w, taps, dest)

    def _tapped_block(self, stmt: n.Layer, var: str, w: list, dest: str) -> tuple[str, bool]:
        """``x, taps = self.encoder.forward_taps(x)``: a block whose taps are this class's, its tensors at them
        kept (by a network, as maps: tokens through ``_token_map``)."""
        self.block_taps = self.block_taps or ir.Name(self.fwd_ns.create("taps"))
        taps = self.block_taps
        call = ir.call(ir.Attr(self._module_ref(stmt.target, var), "forward_taps"), ir.Name(var))
        w.append(ir.Assign(ir.Tuple((ir.Name(dest), taps)), call, self._shape(stmt)))
        tokens = {t.layout == "LD" for tap in block_taps(self.blocks[stmt.func], self.blocks, self.ctx.tapped)
                  for t, _ in self.ctx.info.get(tap)}
        if not self.ctx.is_network or tokens == {False}:
            w.append(ir.Expr(ir.call(ir.Attr(self.features, "extend"), taps)))
        elif tokens == {True}:
            self.tap = self.tap or ir.Name(self.fwd_ns.create("tap"))
            tap = self.tap
            w.append(ir.For(tap, taps, (ir.Expr(ir.call(ir.Attr(self.features, "append"), self._token_map(tap))),)))
        else:
            raise SpecError(f"the taps of {stmt.func} mark both tokens and maps, which a network calling it gives "
                            "apart", stmt.span, hint=f"tap {stmt.func}'s tokens or its maps, not both")
        return dest, False

    def _tapped(self, stmt: n.Tap, var: str) -> ir.Node:
        """The map at a tap: the tensor itself, or tokens as the map of their grid (``_token_map``); in a block,
        the tensor (the network that calls the block makes the maps)."""
        if not self.ctx.is_network or not any(t.layout == "LD" for t, _ in self.ctx.info.get(stmt)):
            return ir.Name(var)
        return self._token_map(ir.Name(var))

    def _token_map(self, tokens: ir.Node) -> ir.Node:
        self.size = self.size or ir.Name(self.fwd_ns.create("size"))
        info = ir.Index(ir.attr("self.feature_info"), ir.call("len", self.features))
        return ir.call("_token_map", tokens, self.size, ir.Index(info, ir.const("reduction")))

    def _inline(self, stmt: n.Seq, var: str, w: list, dest: str) -> tuple[str, bool]:
        owner, inlined = self.owner, self.inlined
        self.owner, self.inlined = self._module_ref(stmt.target, var), True
        body = upto_last_tap(stmt.body, self.holders) if stmt in self.final else stmt.body
        try:
            if dest == var:
                return self.fwd_body(body, var, False, w, None)
            return self._fwd_into(body, var, False, w, dest, None)
        finally:
            self.owner, self.inlined = owner, inlined

    def _check_inlined(self, stmt: n.Stmt) -> None:
        """A child of an nn.Sequential is reached by its name; an unnamed one only by a number."""
        if isinstance(stmt, n.Seq) and stmt.target is None and _makes_modules(stmt.body):
            raise SpecError("a seq that holds a tap runs its layers one by one: it cannot hold an unnamed seq",
                            stmt.span, hint="name the inner seq")
        kind = self._kind(stmt) if isinstance(stmt, n.Layer) else None
        if isinstance(stmt, n.Layer) and stmt.target is None and (
                stmt.func in self.blocks or stmt.func in self.block_params or stmt.func in self.ctx.networks
                or stmt.func in self.ctx.op_params or kind is None or kind.has_params
                or (kind.functional is None and kind.template is None)):
            raise SpecError(f"a seq that holds a tap runs its layers one by one, by name: name this {stmt.func}",
                            stmt.span, hint="give the layer a name, or tap outside the seq")

    def _kind(self, stmt: n.Layer):
        from ...ops import REGISTRY

        return REGISTRY.get(stmt.func)


def _makes_modules(stmts) -> bool:
    return any(isinstance(s, (n.Layer, n.Seq, n.Concat, n.Residual, n.Dense, n.Gate, n.Ensemble, n.For, n.If))
               for s in stmts)


def block_taps(block: n.BlockDef, blocks: dict[str, n.BlockDef], tapped: frozenset[str],
               seen: frozenset[str] = frozenset()) -> list[n.Tap]:
    """The taps a block's call gives its caller: its own, and those of the blocks with taps it calls."""
    found: list[n.Tap] = []
    for s in block.walk():
        if isinstance(s, n.Tap):
            found.append(s)
        elif isinstance(s, n.Layer) and s.func in tapped and s.func not in seen | {block.name}:
            found += block_taps(blocks[s.func], blocks, tapped, seen | {block.name})
    return found


def upto_last_tap(stmts: list[n.Stmt], holders: set[int]) -> list[n.Stmt]:
    """The statements up to the last that is, or holds, a tap: what runs after it feeds no feature map."""
    last = max((i for i, s in enumerate(stmts) if isinstance(s, n.Tap) or s in holders), default=-1)
    return stmts[:last + 1]


def final_path(body: list[n.Stmt], holders: set[int]) -> set[int]:
    """The named seqs that hold the network's last tap last, each in the one before: what follows the last
    tap in them runs after every feature map is made (in a loop, everything runs again)."""
    path: set[int] = set()
    stmts = upto_last_tap(body, holders)
    while stmts and isinstance(stmts[-1], n.Seq):
        path.add(stmts[-1])
        stmts = upto_last_tap(stmts[-1].body, holders)
    return path


def head_names(body: list[n.Stmt], holders: set[int]) -> list[str]:
    """The modules of the network's own body that the features class drops: those of the statements after
    the last tap, and the side outputs' heads."""
    kept = upto_last_tap(body, holders)
    names: list[str] = []

    def collect(stmts, sides_only: bool) -> None:
        for s in stmts:
            if isinstance(s, n.Side):
                names.append(plain(s.target))
            elif sides_only:  # (a side head in a loop or conditional may be missing: it stays)
                if isinstance(s, n.Seq) and s.target is None:
                    collect(s.body, True)
            elif getattr(s, "cond", None) is not None:  # a conditional statement's modules may be missing:
                continue  # they stay (unused), as those of loops and ifs do
            elif isinstance(s, (n.Layer, n.Seq)) and s.target is not None:
                if static_name(s) is not None:
                    names.append(static_name(s))
            elif isinstance(s, (n.Concat, n.Residual, n.Dense, n.Gate, n.Ensemble, n.Seq)):
                inner = list(getattr(s, "body", None) or getattr(s, "branches", None) or [])
                shortcut = getattr(s, "shortcut", None)
                # a shortcut is made only where its residual may add (`when`) and its own condition holds
                when = isinstance(s, n.Residual) and (len(s.arguments.args) > 1 or
                                                      any(k == "when" for k, _, _ in s.arguments.kwargs))
                if shortcut is not None and shortcut.cond is None and not when:
                    inner += shortcut.body
                collect(inner, False)

    collect(kept, True)
    collect(body[len(kept):], False)
    return list(dict.fromkeys(name for name in names if name))


FEATURES_SUFFIX = "Features"
OUT_INDICES = "out_indices: tuple[int, ...] | None = None"


def taps_method(lines: list[str]) -> dict:
    return {"signature": "def forward_taps(self, x: Tensor) -> list[Tensor]:",
            "doc": "The feature map at every tap, in the order of ``self.feature_info``.", "lines": lines}


def features_class(net: n.NetworkDef, signature: str, params: list[str], heads: list[str]) -> dict:
    """``<Net>Features(<Net>)``: the same constructor (and ``out_indices``), the head dropped, and a forward
    that returns the feature maps of the taps ``out_indices`` picks (all by default)."""
    call = ", ".join(f"{p}={p}" for p in params)
    init = [f"        super().__init__({call})"]
    if heads:
        init.append(f"        del {', '.join(f'self.{h}' for h in heads)}  # the head, after the last tap")
    init.append("        self.feature_info = _FeatureInfo(self.feature_info, out_indices)")
    forward = ["        features = self.forward_taps(x)",
               "        return [features[i] for i in self.feature_info.out_indices]"]
    doc = (f"{net.name} as a backbone (timm's ``features_only``): ``forward`` returns the feature maps of\n"
           f"    the taps that ``out_indices`` picks (all of them by default); ``feature_info`` gives their\n"
           f"    channels, reductions and names. The layers after the last tap are dropped.\n    ")
    return {"name": net.name + FEATURES_SUFFIX, "base": net.name, "init": init, "forward": forward,
            "returns": "list[Tensor]", "signature": signature, "doc": doc, "methods": []}


def factory_call(net: str, args: list[str], local: str, wrap) -> str:
    """The factory's construction: the features class when ``features_only`` is asked for."""
    plain_call = wrap(f"{local} = {net}", args, "", "        ")
    features_call = wrap(f"{local} = {net}{FEATURES_SUFFIX}", [*args, "out_indices=out_indices"], "", "        ")
    return ("    if out_indices is not None and not features_only:\n"
            "        raise ValueError(\"out_indices picks feature maps: pass features_only=True too\")\n"
            "    if features_only:\n" + features_call + "\n    else:\n" + plain_call)
