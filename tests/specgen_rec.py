"""Recursive blocks for specgen: a block that calls itself (or calls a block that calls it back) on a decreasing
integer argument, under a condition that ends the recursion: an ``if``/``else``, a conditional layer, a tree of
two calls joined by a concat (as Deep Layer Aggregation's), a call inside a residual, and two blocks that call
each other. Each block gives ``c`` channels and ceil(H / stride) rows, as ``Gen.block``'s do.

``RecMix`` is a mixin of ``specgen.Gen``.
"""

from __future__ import annotations

FORMS = ["if", "cond", "tree", "residual", "mutual", "flow"]


class RecMix:
    def recursive_block(self, name: str) -> list[str]:
        """``block NAME(c, stride = 1, levels = N)``: its first conv takes the stride, then the recursion."""
        form = self.pick(FORMS)
        levels = self.choose(0, 3)
        k = self.pick([1, 3])
        head = [f"block {name}(c, stride = 1, levels = {levels}) {{", f"    conv = conv(c, {k}, stride, padding = {k // 2})"]
        more: list[str] = []
        if form == "if":
            body = ["if levels > 1 {", f"    inner = {name}(c, levels = levels - 1)", "} else {",
                    "    leaf = conv(c, 1); relu", "}"]
        elif form == "cond":
            body = ["relu", f"inner = {name}(c, 1, levels - 1) if levels > 0"]
        elif form == "tree":  # two calls of one level less, their maps joined and projected back to c
            body = ["if levels > 1 {", "    concat {", f"        tree1 = {name}(c, levels = levels - 1)",
                    f"        tree2 = {name}(max(1, c // 2), levels = levels - 1)", "    }",
                    "    root = seq { conv(c, 1, bias = false); batchnorm; relu }", "}"]
        elif form == "residual":
            body = ["residual {", "    bn = batchnorm; relu", f"    inner = {name}(c, levels = levels - 2) if levels > 1",
                    "}"]
        elif form == "mutual":  # NAME -> NAME_r -> NAME ...: the partner takes the level down
            partner = f"{name}_r"
            body = [f"inner = {partner}(c, levels - 1) if levels > 0"]
            more = [f"block {partner}(c, levels = 1) {{", "    bn = batchnorm; relu", f"    back = {name}(c, 1, levels)",
                    "}"]
        else:  # a block with named tensors whose declared self, switched off, passes its input through
            flow = f"{name}_f"
            more = [f"block {flow}(c, levels = 1) (x) -> y {{", "    conv = conv(c, 3, padding = 1)",
                    f"    inner = {flow}(c, levels - 1) if levels > 0", "    let y = relu(inner(conv(x)) + x)", "}"]
            body = [f"flow = {flow}(c, levels)"]
        return [*more, *head, *("    " + line for line in body), "}"]
