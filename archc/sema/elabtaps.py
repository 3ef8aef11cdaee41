"""Taps as elaboration sees them: a tap marks the tensor of the main path where it stands as one of the
network's feature maps, and a block whose body holds taps, called as a step of the main path, continues that
path, its taps the network's. A mixin of ``elaborate.Elaborator``."""

from __future__ import annotations

from ..errors import SpecError
from ..lang import nodes as n
from .graph import Tap
from .layout import TensorType
from .scope import Frame, Tensor
from .taps import has_taps_of


class TapElaboration:
    """Elaborator methods for taps and for the calls of blocks that hold them."""

    def call_block(self, stmt: n.Layer, block: n.BlockDef, pos, kw, frame: Frame, x) -> Tensor:
        if block.name not in self.tapped:
            return super().call_block(stmt, block, pos, kw, frame, x)
        if stmt.func != block.name:
            raise SpecError(f"{stmt.func} holds {block.name}, a block with taps: it is called by its own name",
                            stmt.func_span, hint=f"write {block.name}(...) here")
        if not frame.main and any(self.graph.scopes[p].block in self.program.networks for p in frame.scope.path):
            return super().call_block(stmt, block, pos, kw, frame, x)  # in a network called as a layer: its own
        if not frame.main or self.step is not stmt or self.nested != 1:  # (the loader finds these first)
            raise SpecError(f"{block.name} {has_taps_of(block, self.tapped)}, so it is called as a step of the "
                            "network's main path, not here", stmt.func_span,
                            hint=f"call {block.name} where a tap could stand")
        saved = self.reduction, self.nested, self.tap_holders
        self.entering = (block.body, self.memo)  # ``body`` marks the block's frame as the main path's
        self.memo, self.nested, self.tap_holders = None, 0, n.tap_holders(block.body, self.tapped)
        try:
            return super().call_block(stmt, block, pos, kw, frame, x)
        finally:
            if self.entering is not None:  # the body never ran
                self.memo = self.entering[1]
            self.entering = None
            self.reduction, self.nested, self.tap_holders = saved  # the call is one step: its stride counts once

    def _Tap(self, stmt: n.Tap, frame: Frame, x: Tensor) -> Tensor:
        if not frame.main:
            return x  # a network called as a layer (an ensemble's member): its taps are its own
        if x.type.layout not in ("CHW", "HWC", "LD"):
            raise SpecError(f"a tap marks a feature map (C x H x W) or tokens; the tensor here is {x.info().kind}",
                            stmt.span, hint="tap before the layers that flatten or pool the map away")
        if stmt.target is not None:
            name = frame.scope.child(self.target_name(stmt.target, frame, x, dotted=True))
        elif frame.last_named is not None and frame.last_named[1] == x.node:
            name = frame.last_named[0]
        else:
            raise SpecError("this tap needs a name: the tensor here is not the output of a named layer", stmt.span,
                            hint="write 'tap NAME', or name the layer before it")
        if name in self.graph.taps:
            raise SpecError(f"tap '{name}' is defined twice", stmt.span)
        if self.reduction is None:
            raise SpecError("the stride up to this tap is unknown: a layer before it flattens the map", stmt.span)
        if x.type.layout == "LD":
            self._token_grid(stmt, x.type)
        self.graph.taps[name] = Tap(name, x.node, self.reduction, stmt.span)
        return x

    def _token_grid(self, stmt: n.Tap, tokens: TensorType) -> None:
        """A tap on tokens gives the map of the last h·w of them, h and w the input's height and width over the
        reduction: there must be that many."""
        inp = self.graph.node(self.graph.input)
        if inp.layout != "CHW":
            raise SpecError("a tap on tokens needs a C x H x W input, whose grid the tokens follow", stmt.span)
        h, w = inp.shape[1] // self.reduction, inp.shape[2] // self.reduction
        if not 0 < h * w <= tokens.shape[0]:
            raise SpecError(f"a tap on tokens makes a {h} x {w} map of the last {h * w} tokens (the input over the "
                            f"reduction {self.reduction}); there are {tokens.shape[0]}", stmt.span)
