"""The spec generator's signals and volumes: a network whose input is a C x L signal or a C x D x H x W volume,
through the 1-D or 3-D convolutions and pools, batch norm, activations and dropout (a mixin of ``specgen.Gen``);
and the transposed convolutions of every rank (on maps too), which enlarge them. The spatial sizes ride in ``T.h``
(a signal's length; a volume's height), ``T.w`` and ``T.d``."""

from __future__ import annotations

import math

UP = {"CL": "conv_transpose1d", "CHW": "conv_transpose", "CDHW": "conv_transpose3d"}
DOWN = {"CL": "conv1d", "CHW": "conv", "CDHW": "conv3d"}


def up_size(n: int, k: int, s: int, p: int, op: int, d: int) -> int:
    """A transposed conv's output size along an axis of ``n``."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


class NdMix:
    def nd_start(self):
        """The input: its type and how the network writes it."""
        from specgen import T

        if self.chance(50):
            t = T("CL", self.choose(1, 6), self.choose(3, 24))
            return t, f"{t.c} x {t.h}"
        t = T("CDHW", self.choose(1, 4), self.choose(2, 7), self.choose(2, 7), self.choose(1, 5))
        return t, f"{t.c} x {t.d} x {t.h} x {t.w}"

    def nd_spatial(self, t) -> list[int]:
        return {"CL": [t.h], "CHW": [t.h, t.w]}.get(t.layout, [t.d, t.h, t.w])

    def nd_typed(self, t, c: int, sizes: list[int]):
        from specgen import T

        if t.layout in ("CL", "CHW"):
            return T(t.layout, c, *sizes)
        d, h, w = sizes
        return T("CDHW", c, h, w, d)

    def up_conv(self, t, numbered: bool):
        """A transposed conv on a map, a signal or a volume: alone, where the result stays small, or in a residual
        with a conv of the same stride that takes it back down to the input's size (where some kernel does)."""
        sizes = self.nd_spatial(t)
        k, s, d = self.choose(1, 4), self.pick([1, 2, 2, 3]), self.pick([1, 1, 2])
        op = self.choose(0, max(s, d) - 1) if self.chance(97) else max(s, d)  # too large: a located error
        p = self.choose(0, (d * (k - 1) + op) // 2)  # crops at most what the kernel adds: no side is empty
        c = self.choose(1, 8)
        groups = self.pick([g for g in (1, 2, 3) if t.c % g == 0 and c % g == 0])
        outs = [up_size(n, k, s, p, op, d) for n in sizes]
        args = f"{k}, {s}, padding = {p}, output_padding = {op}, groups = {groups}, bias = {self.pick(['true', 'false'])}"
        if d != 1 or self.chance(20):
            args += f", dilation = {d}"
        up = f"{self.name('up')} = {UP[t.layout]}({c}, {args})"
        downs = [(kd, pd) for kd in range(1, 5) for pd in range(kd // 2 + 1)
                 if all((m + 2 * pd - kd) // s + 1 == n for m, n in zip(outs, sizes))]
        if not numbered and downs and (self.chance(50) or math.prod(outs) > 400):
            kd, pd = self.pick(downs)
            down = f"{self.name('down')} = {DOWN[t.layout]}({t.c}, {kd}, {s}, padding = {pd})"
            return [f"residual {{ {up}; {self.pick(['relu', 'gelu', 'tanh'])}; {down} }}"], t
        if math.prod(outs) > 400:  # too large to run quickly: stride 1, the size kept
            up = f"{self.name('up')} = {UP[t.layout]}({c}, 3, padding = 1, groups = {groups})"
            return [up], self.nd_typed(t, c, sizes)
        return [up], self.nd_typed(t, c, outs)

    def nd_conv(self, t, numbered: bool):
        rank = 1 if t.layout == "CL" else 3
        c = self.choose(1, 12)
        k = self.pick([1, 3]) if min(self.nd_spatial(t)) >= 3 else 1
        s = self.pick([1, 1, 2])
        groups = self.pick([g for g in (1, 2, 3) if t.c % g == 0 and c % g == 0])
        sizes = [(n + 2 * (k // 2) - k) // s + 1 for n in self.nd_spatial(t)]
        bias = self.pick(["true", "false"])
        return [f"{self.name('conv')} = conv{rank}d({c}, {k}, {s}, padding = {k // 2}, groups = {groups}, "
                f"bias = {bias})"], self.nd_typed(t, c, sizes)

    def nd_pool(self, t, numbered: bool):
        rank = 1 if t.layout == "CL" else 3
        sizes = self.nd_spatial(t)
        kind = self.pick(["max", "avg", "adaptive", "lp"]) if min(sizes) >= 2 else "adaptive"
        if kind == "adaptive":
            size = self.pick([1, 2])
            return [f"adaptive_{self.pick(['avg', 'max'])}pool{rank}d({size})"], self.nd_typed(t, t.c, [size] * len(sizes))
        ceil = self.pick(["true", "false"])
        if kind == "lp":  # stride defaults to the kernel size, as for the others
            kind = f"lppool{rank}d({self.pick([1, 2, 4])}, "
        else:
            kind = f"{kind}pool{rank}d("
        out = [-(-(n - 2) // 2) + 1 if ceil == "true" else (n - 2) // 2 + 1 for n in sizes]
        out = [o - ((o - 1) * 2 >= n) if ceil == "true" else o for o, n in zip(out, sizes)]
        return [f"{self.named(numbered, 'pool') if self.chance(30) else ''}{kind}2, ceil_mode = {ceil})"], \
            self.nd_typed(t, t.c, out)

    def nd_statement(self, t, numbered: bool):
        kind = self.pick(["conv", "conv", "pool", "pool", "bn", "norm", "act", "drop", "up"])
        if kind == "conv":
            return self.nd_conv(t, numbered)
        if kind == "up":
            return self.up_conv(t, numbered)
        if kind == "pool":
            return self.nd_pool(t, numbered)
        if kind == "bn":
            return [f"{self.named(numbered, 'bn')}batchnorm(eps = 0.001)"], t
        if kind == "norm":  # over the positions of a signal or a volume: a group's, an instance's, across channels
            groups = self.pick([g for g in (1, 2, 3) if t.c % g == 0])
            options = [f"{self.named(numbered, 'gn')}groupnorm({groups}, eps = 0.001)", f"lrn({self.choose(1, 4)})"]
            if min(self.nd_spatial(t)) >= 2:
                options.append(f"{self.named(numbered, 'inorm')}instancenorm(affine = {self.pick(['true', 'false'])})")
            return [self.pick(options)], t
        if kind == "act":
            return self.s_act(t, 0, numbered)
        return self.s_drop(t, 0, numbered)

    def nd_head(self, t) -> str:
        rank = 1 if t.layout == "CL" else 3
        return self.pick(["flatten", f"adaptive_avgpool{rank}d(1); flatten", f"adaptive_maxpool{rank}d(1); flatten"])
