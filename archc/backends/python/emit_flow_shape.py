"""What ``__init__`` knows of a dataflow block's value: an expression or None per axis, its layout, and its
features."""

from __future__ import annotations

from ...lang import nodes as n
from ...sema.layout import feature_axis


class _Shape:
    """What __init__ knows of a value's sizes: an expression or None per axis (``axes``; None when not even the
    rank is known), its layout, and its features (the size its modules read); ``known``: the features where
    nothing was elaborated (a library of blocks), so that neither layout nor rank is known."""

    def __init__(self, layout: str | None, axes: tuple | None, known: n.Expr | None = None):
        self.layout = layout
        self.axes = tuple(axes) if axes is not None else None
        if layout is not None and self.axes is not None and len(self.axes) != len(layout):
            self.axes = None
        self.known = known

    @classmethod
    def of(cls, layout: str | None, features: n.Expr) -> _Shape:
        """A value of which only the features are known (an input, say)."""
        if layout is None:
            return cls(None, None, features)
        axes = [None] * len(layout)
        axes[feature_axis(layout)] = features
        return cls(layout, tuple(axes))

    @property
    def features(self) -> n.Expr | None:
        return self.features_in(self.layout)

    def features_in(self, layout: str | None) -> n.Expr | None:
        """The features as a module reads them in ``layout`` (a map's channels, where unnamed axes are read as
        one)."""
        if self.axes is None or layout is None or len(layout) != len(self.axes):
            return self.known
        return self.axes[feature_axis(layout)]

    def then(self, layout: str | None, features: n.Expr, seen) -> _Shape:
        """The value a module or an op makes of this one, of ``features``: its other axes are this one's where
        every use saw them kept."""
        if layout is None or self.axes is None or self.layout is None or len(layout) != len(self.layout):
            return _Shape.of(layout, features)
        fa = feature_axis(layout)
        kept = bool(seen) and all(len(ins[0].shape) == len(out.shape) and all(
            a == b for i, (a, b) in enumerate(zip(ins[0].shape, out.shape)) if i != fa) for ins, out in seen)
        axes = list(self.axes) if kept else [None] * len(layout)
        axes[fa] = features
        return _Shape(layout, tuple(axes))
