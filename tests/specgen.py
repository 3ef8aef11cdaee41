"""Random valid specs for differential soundness testing, in the manner of Csmith: programs built from
the grammar while tracking every tensor's type, so that nearly all of them check, and those that do can
be run and compared with what archc says of them.

``generate(choose)`` writes one spec; ``choose(lo, hi)`` gives an integer in [lo, hi] (hypothesis's
``data.draw(st.integers(lo, hi))`` in the tests, so failures shrink, or ``random.randint`` in a long run).
Blocks are written to give ``c`` channels and ``ceil(H / stride)`` rows for any input, so the network,
whose tensor types are tracked exactly, can call them anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from specgen_expr import Exprs, definitions
from specgen_flow import FlowMix
from specgen_mix import RESERVED_CLASSES, SHADOW_CLASSES, SHADOW_PARAMS, Mix
from specgen_nd import NdMix
from specgen_rec import RecMix

from archc.ops.fused import FUSABLE
from archc.sema.initrules import PARAMETERS

ACTIVATIONS = ["relu", "relu6", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "gelu"]
INITS = ['kaiming_normal(mode = "fan_out", nonlinearity = "relu")', "normal(0, 0.01)", "trunc_normal(std = 0.02)",
         "kaiming_uniform()", "uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))", "xavier_normal()", "0.5"]


@dataclass
class T:
    """A tensor type while generating: layout, features (channels), height, width."""

    layout: str
    c: int
    h: int = 1
    w: int = 1
    d: int = 1  # a volume's depth


@dataclass
class Gen(Mix, FlowMix, NdMix, RecMix):
    choose: object
    lines: list[str] = field(default_factory=list)
    names: int = 0
    blocks: list[tuple[str, bool]] = field(default_factory=list)  # (name, takes a stride)
    flag_shapes: bool = False  # an `if flag` changes a shape: only flag = true is tracked
    tops: list[str] = field(default_factory=list)  # the network's own conv layers, for side ... from
    main: bool = True  # writing the network's own statements (where a tap may stand)
    last: str | None = None  # the line just written
    used: set = field(default_factory=set)  # names taken from the generated code's own, each used once
    fixed: dict = field(default_factory=dict)  # the network's parameters that no variant changes, with values
    loose: dict = field(default_factory=dict)  # those and flag: for conditions that keep the shape
    exprs: Exprs = None
    block_targets: dict = field(default_factory=dict)  # block -> its layers' parameters, for network rules
    pairs: list = field(default_factory=list)  # dataflow blocks of two inputs (specgen_flow)
    mixers: list = field(default_factory=list)  # dataflow blocks of tokens whose input says its sizes

    def __post_init__(self):
        self.exprs = Exprs(self.choose)

    # ------------------------------------------------------------ choices

    def pick(self, options):
        return options[self.choose(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        return self.choose(0, 99) < percent

    def name(self, base: str = "l") -> str:
        self.names += 1
        return f"{base}{self.names}"

    # ------------------------------------------------------------ blocks

    def block(self, index: int) -> list[str]:
        """A block giving ``c`` channels and ceil(H / stride) rows, for any C x H x W input."""
        name = f"B{index}"
        if self.chance(15):  # a class named like a name of the generated code (self, channels, in_channels...)
            names = RESERVED_CLASSES if self.chance(10) else SHADOW_CLASSES
            name = self.pick([n for n in names if n not in self.used] or ["B_" + str(index)])
            self.used.add(name)
        if self.chance(40):
            lines = self.mixed_block(name)
            self.blocks.append((name, True))
            return lines
        if self.chance(15):  # a block that calls itself
            self.blocks.append((name, True))
            return self.recursive_block(name)
        sequential = self.chance(25)
        strided = self.chance(50)
        params = ["c", "stride = 1" if strided else "k = 3", "act = relu" if self.chance(50) else "flag = true"]
        head = f"block {name}({', '.join(params)})" + (" = seq {" if sequential else " {")
        body: list[str] = []
        stride = "stride" if strided else "1"
        if sequential:
            body.append(f"conv(c, 3, {stride}, padding = 1, bias = false)")
            body.append("batchnorm")
            body.append("act" if "act = relu" in params else "relu if flag")
            if self.chance(50):
                body.append(f"seq {{ conv(c, 1); {self.pick(ACTIVATIONS)} }}")
        else:
            kind = self.pick(["residual", "gate", "concat", "plain", "dense", "when", "branches"])
            if kind == "residual":
                shortcut = [f"shortcut if {stride} != 1 or in.channels != c {{",
                            f"    downsample = seq {{ conv(c, 1, {stride}, bias = false); batchnorm }}"]
                inner = [f"    conv1 = conv(c, 3, {stride}, padding = 1, bias = false); bn1 = batchnorm; relu",
                         "    conv2 = conv(c, 3, padding = 1, bias = false); bn2 = batchnorm"]
                if self.chance(50):  # the shortcut written (and made) first
                    body += ["residual " + shortcut[0], shortcut[1], "} {", *inner, "}"]
                else:
                    body += ["residual {", *inner, "} " + shortcut[0], shortcut[1], "}"]
                if self.chance(50):
                    body.append("init bn2.weight = 0" + (" if flag" if "flag = true" in params else "")
                                + (" when made" if self.chance(30) else ""))
            elif kind == "when":
                body.append(f"residual(when = {stride} == 1 and in.channels == c, stochastic_depth = 0.25) {{")
                body.append(f"    block = seq {{ conv(c, 3, {stride}, padding = 1); batchnorm; {self.pick(ACTIVATIONS)} }}")
                body.append("}")
            elif kind == "gate":
                body.append(f"conv = conv(c, 3, {stride}, padding = 1)")
                body.append("gate {")
                body.append("    pool = adaptive_avgpool(1)")
                body.append("    fc1 = conv(max(1, c // 2), 1); relu")
                body.append(f"    fc2 = conv(c, 1); {self.pick(['sigmoid', 'hardsigmoid'])}")
                body.append("}")
            elif kind == "concat":
                body.append("concat {")
                body.append(f"    branch1 = conv(max(1, c // 2), 1, {stride})")
                body.append(f"    branch2 = seq {{ conv(c - max(1, c // 2), 3, {stride}, padding = 1); relu }}")
                body.append("} if c > 1")
                body.append(f"conv_fix = conv(c, 1, {stride}) if c <= 1")
            elif kind == "branches":  # a concat's branches arranged by a loop and conditions on parameters
                body.append("concat {")
                body.append(f"    for j in range(1 + c % 2) {{ part{{j}} = conv(max(1, c // 2), 1, {stride}) }}")
                body.append(f"    rest = seq {{ conv(1, 3, {stride}, padding = 1); relu }} if c > 2")
                body.append(f"    if c % 3 == 0 {{ odd = conv(2, 1, {stride}) }} else {{ even = conv(1, 1, {stride}) }}")
                body.append("}")
                body.append("squeeze = conv(c, 1)")
            elif kind == "dense":
                body.append(f"conv0 = conv(c, 3, {stride}, padding = 1)")
                body.append("dense {")
                if self.chance(50):  # members written out: a dense that lowers to steps (lang/dataflow_sugar.py)
                    body.append("    layer1 = conv(2, 3, padding = 1); seq { relu; maxpool(3, stride = 1, padding = 1) }")
                else:
                    body.append("    for j in range(2) { layer{j + 1} = conv(2, 3, padding = 1) }")
                body.append("}")
                body.append("squeeze = conv(c, 1)")
            else:
                body.append(f"conv = conv(c, 3, {stride}, padding = 1)")
                body.append("bn = batchnorm")
                body.append(self.pick(ACTIVATIONS))
            if "flag = true" in params and self.chance(50):
                body.append("extra = conv(c, 1) if flag")
            if self.chance(30):  # a rule for the block's own convs, drawn in the network's pass or as they are made
                body.append(f"init conv.weight = {self.pick(INITS)}" + (" when made" if self.chance(40) else ""))
            if "act = relu" in params:
                body.append("activation = act" + (" if act != none" if self.chance(50) else ""))
        self.blocks.append((name, strided))
        return [head] + ["    " + line for line in body] + ["}"]

    # ------------------------------------------------------------ network statements

    def statements(self, t: T, depth: int, budget: int, numbered: bool = False) -> tuple[list[str], T]:
        out: list[str] = []
        for _ in range(self.choose(1, budget)):
            lines, t = self.statement(t, depth, numbered)
            out += lines
        return out, t

    def statement(self, t: T, depth: int, numbered: bool) -> tuple[list[str], T]:
        if t.layout == "F":
            return self.flat(t, numbered)
        if t.layout == "HWC":
            if self.main and self.chance(10):
                return self.s_tap(t, depth, numbered)
            return self.channels_last(t, numbered)
        if t.layout == "LD":
            return self.tokens(t, depth, numbered)
        if t.layout in ("CL", "CDHW"):
            return self.nd_statement(t, numbered)
        options = ["conv", "bn", "act", "pool", "ln", "block", "drop", "permute"]
        if self.main and t.h > 0:
            options.append("tap")
        options += ["xconv", "xact", "xact", "xnorm"]
        if not numbered:  # (forward-only forms: not modules of an nn.Sequential)
            options.append("prim")
        if not numbered:
            options += ["xscaled", "xquoted", "xshortcut", "xlet", "xscales", "xforward", "xelif", "xunpack"]
            options.append("to_tokens")  # as often as before the mixed statements came
            options += ["concat", "residual", "gate", "chunk", "shuffle", "scale", "let", "head", "to_tokens",
                        "partition", "branches", "branches"]
        if depth > 0:
            options += ["for", "if", "seq"]
        kind = self.pick(options)
        return getattr(self, "s_" + kind)(t, depth, numbered)

    def named(self, numbered: bool, base: str = "l") -> str:
        return "" if numbered and self.chance(60) else f"{self.name(base)} = "

    def s_conv(self, t, depth, numbered):
        c = self.choose(1, 12)
        if depth == 2 and not numbered:  # a top-level layer: a side output may read it later
            self.tops.append(f"conv{self.names + 1}")
        k = self.pick([1, 3, 5]) if t.h >= 5 and t.w >= 5 else 1
        s = self.pick([1, 1, 2])
        groups = self.pick([g for g in (1, 2, 3, 4) if t.c % g == 0 and c % g == 0])
        h, w = (t.h + 2 * (k // 2) - k) // s + 1, (t.w + 2 * (k // 2) - k) // s + 1
        bias = self.pick(["true", "false"])
        pad = k // 2
        if self.chance(15):  # TensorFlow's: ceil(size / stride), uneven at a stride on an even size or an even kernel
            k, pad = self.pick([k, 2, 4]) if t.h >= 4 and t.w >= 4 else k, '"same"'
            h, w = -(-t.h // s), -(-t.w // s)
        stmts = [f"{self.name('conv')} = {self.pick(['conv', 'conv', 'ws_conv']) if pad != k // 2 else 'conv'}"
                 f"({c}, {k}, {s}, padding = {pad}, groups = {groups}, bias = {bias})"]
        if self.chance(40):  # a norm that archc.deploy folds into the conv
            stmts.append(f"{self.named(numbered, 'bn')}batchnorm(eps = 0.001)")
        return stmts, T("CHW", c, h, w)

    def s_tap(self, t, depth, numbered):
        """A tap: named, or after a named layer named after it (else a located error, a rejection)."""
        return ["tap" if self.chance(30) else f"tap {self.name('tap')}"], t

    def s_bn(self, t, depth, numbered):
        if self.chance(25):
            return self.s_xnorm(t, depth, numbered)
        return [f"{self.named(numbered, 'bn')}batchnorm(eps = 0.001)"], t

    def s_act(self, t, depth, numbered):
        if self.chance(40):  # on any layout
            return self.s_xact(t, depth, numbered)
        return [f"{self.named(numbered, 'act') if self.chance(30) else ''}{self.pick(ACTIVATIONS)}"], t

    def s_drop(self, t, depth, numbered):
        return [f"dropout({self.pick(['0.0', '0.2', '0.5'])})"], t

    def s_pool(self, t, depth, numbered):
        if t.h < 2 or t.w < 2:
            size = self.pick([1, 2])
            return [f"adaptive_avgpool({size})"], T("CHW", t.c, size, size)
        kind = self.pick(["maxpool", "avgpool", "adaptive_maxpool", "upsample", "lppool"])
        if kind == "upsample" and self.chance(60):  # a transposed conv (specgen_nd)
            return self.up_conv(t, numbered)
        if kind == "upsample" and t.h * t.w <= 100:
            mode = self.pick(["", ', mode = "bilinear"', ', mode = "nearest"'])
            return [f"{self.named(numbered, 'up') if self.chance(30) else ''}upsample(2{mode})"], T("CHW", t.c, 2 * t.h,
                                                                                                  2 * t.w)
        if kind == "upsample":
            kind = "maxpool"
        if kind == "adaptive_maxpool":
            return ["adaptive_maxpool(2)"], T("CHW", t.c, 2, 2)
        if kind != "lppool" and self.chance(25):  # TensorFlow's: ceil(size / stride), padded with -inf or zeros
            k, s = self.pick([2, 3]), self.pick([1, 2])
            named = self.named(numbered, 'pool') if self.chance(50) else ''
            return [f'{named}{kind}({k}, {s}, padding = "same")'], T("CHW", t.c, -(-t.h // s), -(-t.w // s))
        ceil = self.pick(["true", "false"])
        h = -(-(t.h - 2) // 2) + 1 if ceil == "true" else (t.h - 2) // 2 + 1
        w = -(-(t.w - 2) // 2) + 1 if ceil == "true" else (t.w - 2) // 2 + 1
        if ceil == "true":
            h -= (h - 1) * 2 >= t.h
            w -= (w - 1) * 2 >= t.w
        if kind == "lppool":  # powers whose roots every sum has (1: a sum pool)
            return [f"lppool({self.pick([1, 2, 4])}, 2, ceil_mode = {ceil})"], T("CHW", t.c, h, w)
        return [f"{kind}(2, stride = 2, ceil_mode = {ceil})"], T("CHW", t.c, h, w)

    def s_ln(self, t, depth, numbered):
        if self.chance(25):
            return self.s_rmsnorm(t, numbered)
        return [f"{self.name('norm')} = layernorm(eps = 0.000001)"], t

    def s_rmsnorm(self, t, numbered):
        """An RMS norm over the features (a map's channels): torch's eps or one computed, with a scale or none."""
        args = [f"eps = {self.x_float(0.000001, 0.1)}"] if self.chance(50) else []
        args += [f"elementwise_affine = {self.x_bool(self.chance(60), self.loose)}"] if self.chance(40) else []
        kind = self.pick(["rmsnorm", "rmsnorm2d"]) if t.layout == "CHW" else "rmsnorm"  # on a map: either class
        return [self.named(numbered, "norm") + (self.wrapped(kind, args) if args else kind)], t

    def s_block(self, t, depth, numbered, among=None):
        name, strided = self.pick(among or self.blocks)
        c = self.choose(1, 10)
        stride = self.pick([1, 2]) if strided else 1
        args = f"{c}, {stride}" if strided else f"{c}"
        return [f"{self.named(numbered, 'b')}{name}({args})"], T("CHW", c, -(-t.h // stride), -(-t.w // stride))

    def s_prim(self, t, depth, numbered):
        """A tensor primitive on the implicit path, where __init__ can follow the width."""
        kind = self.pick(["transpose", "amax", "narrow", "sum"])
        if kind == "transpose":
            return [self.pick(["transpose(2, 3)", "transpose(-1, -2)"])], T("CHW", t.c, t.w, t.h)
        if kind == "amax":
            return ["amax(1, keepdim = true)"], T("CHW", 1, t.h, t.w)
        if kind == "narrow":
            k = self.choose(1, t.c)
            return [f"narrow(1, {t.c - k}, {self.x_int(k)})"], T("CHW", k, t.h, t.w)
        axis = self.pick([2, 3])
        return [f"sum({axis}, keepdim = true)"], T("CHW", t.c, 1 if axis == 2 else t.h, 1 if axis == 3 else t.w)

    def s_head(self, t, depth, numbered):
        if self.chance(50):
            return ["global_avgpool"], T("F", t.c)
        return ["flatten"], T("F", t.c * t.h * t.w)

    def s_permute(self, t, depth, numbered):
        return ["permute([0, 2, 3, 1])"], T("HWC", t.c, t.h, t.w)

    def s_partition(self, t, depth, numbered):
        """A square map into windows or a grid, attention and a per-token MLP there, and back."""
        sizes = [s for s in (1, 2, 3) if t.h == t.w and t.h % s == 0]
        if not sizes:
            return self.s_conv(t, depth, numbered)
        size, kind = self.pick(sizes), self.pick(['"window"', '"grid"'])
        heads = self.pick([h for h in (1, 2, 4) if t.c % h == 0])
        lines = [f"partition({size}, {kind})"]
        if self.chance(50):
            lines.append(f"{self.name('norm')} = layernorm")
        lines.append(f"residual {{ {self.name('rel')} = relative_attention({t.c // heads}, {size}) }}")
        if self.chance(50):
            lines.append(f"{self.name('mlp')} = seq {{ linear({2 * t.c}); gelu; linear({t.c}) }}")
        return lines + [f"departition({size}, {kind})"], t

    def s_to_tokens(self, t, depth, numbered):
        return ["to_tokens"], T("LD", t.c, t.h * t.w)  # h holds the sequence's length L

    def tokens(self, t: T, depth: int, numbered: bool) -> tuple[list[str], T]:
        """A statement on an L x D token sequence (L in ``t.h``)."""
        options = ["ln", "linear", "act", "drop", "flatten", "map", "map", "mean"]
        if not numbered:  # forward-only forms and learned tensors: not modules of an nn.Sequential
            options += ["select", "prepend", "add", "attention", "attention", "residual", "residual"]
        if self.mixers:
            options.append("mixer")
        kind = self.pick(options)
        if kind == "mixer":  # a block whose input says its sizes, L x D, called with this sequence's
            return [f"{self.named(numbered, 'mix')}{self.pick(self.mixers)}({t.c}, {self.x_int(t.h)})"], t
        if kind == "ln":
            return self.s_ln(t, depth, numbered)
        if kind == "linear":
            c = self.pick([4, 6, 8, 12])
            zeroed = f", zero_bias = ({c // 3}, {2 * c // 3})" if self.chance(20) else ""  # (a qkv's keys)
            return [f"{self.name('proj')} = linear({c}{zeroed})"], T("LD", c, t.h)
        if kind == "act":
            return self.s_act(t, depth, numbered)
        if kind == "drop":
            return self.s_drop(t, depth, numbered)
        if kind == "select":
            return [f"select_token({self.choose(0, t.h - 1)})"], T("F", t.c)
        if kind == "flatten":
            return ["flatten"], T("F", t.c * t.h)
        if kind == "mean":  # the tokens averaged (timm's global pool of a token model)
            return [self.pick(["mean(1)", "mean(-2)", "amax(1)"])], T("F", t.c)
        if kind == "map" and not numbered:
            h = self.pick([d for d in range(1, t.h + 1) if t.h % d == 0])
            return [f"to_map({self.x_int(h)}, {self.x_int(t.h // h)})"], T("CHW", t.c, h, t.h // h)
        if kind == "map":
            return self.s_ln(t, depth, numbered)
        if kind == "prepend":
            count = self.pick([1, 1, 2, 4])  # a class token, or register tokens
            extra = f", count = {count}" if count > 1 else ""
            line = f"{self.name('cls')} = prepend_token(init = {self.pick(['0.5', '1', '-2'])}{extra})"
            return [line], T("LD", t.c, t.h + count)
        if kind == "add":
            shape = self.pick([f"(1, {t.h}, {t.c})", f"({t.h}, {t.c})", f"({t.c},)", f"({t.h}, 1)"])
            return [f"{self.name('pos')} = learned_add({shape}, init = {self.pick(['0.25', '0', '1'])})"], t
        if kind == "attention":
            heads = self.pick([h for h in (1, 2, 3, 4) if t.c % h == 0])
            dropout = self.pick(["", ", dropout = 0.1"])
            return [f"{self.name('attn')} = self_attention({heads}{dropout})"], t
        return self.s_residual(t, depth, numbered)

    def s_concat(self, t, depth, numbered):
        a, b = self.choose(1, 6), self.choose(1, 6)
        lines = ["concat {", f"    {self.name('br')} = conv({a}, 1)",
                 f"    seq {{ {self.name('br')} = conv({b}, 3, padding = 1); relu }}"]
        c = a + b
        if self.chance(50):
            lines.append("    identity")
            c += t.c
        if self.chance(30):  # one branch per iteration, and a branch its condition may switch off
            k, count = self.choose(1, 4), self.choose(0, 2)
            lines.append(f"    for i in range({count}) {{ {self.name('rep')}{{i}} = conv({k}, 1) }}")
            c += k * count
            on = self.chance(50)
            lines.append(f"    {self.name('opt')} = conv({k}, 1) if {'1 < 2' if on else '2 < 1'}")
            c += k if on else 0
        return lines + ["}"], T("CHW", c, t.h, t.w)

    def s_residual(self, t, depth, numbered):
        scale = self.pick(["", "(scale = 0.5)", f"(when = {self.pick(['true', 'false', 'flag'])})",
                           "(stochastic_depth = 0.5, mode = \"batch\")"])
        main, self.main = self.main, False
        inner, t2 = self.statements(t, 0, 2)
        self.main = main
        lines = [f"residual{scale} {{", *("    " + line for line in inner)]
        if (t2.layout, t2.c, t2.h, t2.w) != (t.layout, t.c, t.h, t.w):
            if t2.layout != "CHW" or t.layout != "CHW":
                return [], t
            s = max(1, round(t.h / t2.h)) if t2.h else 1
            if (t.h + s - 1) // s != t2.h or (t.w + s - 1) // s != t2.w:
                lines.append(f"    {self.name('fix')} = conv({t.c}, 1)")  # give up on the shape change: undo it
                lines.append(f"    adaptive_avgpool(({t.h}, {t.w}))")
                return lines + ["}"], t
            lines.append(f"}} shortcut {{ {self.name('proj')} = conv({t2.c}, 1, {s}) }}")
            return lines, t2
        return lines + ["}"], t

    def s_branches(self, t, depth, numbered):
        """Linear branches summed (RepVGG, ACNet): archc.deploy merges them into one conv where their kernels fit."""
        c = t.c
        g = self.pick([g for g in (1, 2) if c % g == 0])
        term = {
            "1x1": f"{self.name('b')} = seq {{ conv({c}, 1, groups = {g}, bias = false); batchnorm }}",
            "1x3": f"{self.name('b')} = conv({c}, (1, 3), padding = (0, 1), groups = {g})",
            "bn": f"{self.name('b')} = batchnorm",
            "5x5": f"{self.name('b')} = conv({c}, 5, padding = 2, groups = {g})",  # does not fit: stays
        }
        main = f"{self.name('a')} = seq {{ conv({c}, 3, padding = 1, groups = {g}, bias = false); batchnorm }}"
        when = self.pick(["", "", f"(when = {self.pick(['true', 'false', 'flag'])})"])
        lines = [f"residual{when} {{", "    residual {", f"        {main}", "    } shortcut {",
                 f"        {term[self.pick(list(term))]}", "    }"]
        if self.chance(50):
            return [*lines, "}"], t  # the input itself: an identity kernel
        return [*lines, f"}} shortcut {{ {term[self.pick(list(term))]} }}"], t

    def s_gate(self, t, depth, numbered):
        return ["gate {", "    adaptive_avgpool(1)", f"    {self.name('fc')} = conv({t.c}, 1)", "    sigmoid", "}"], t

    def s_chunk(self, t, depth, numbered):
        if t.c % 2:
            return self.s_conv(t, depth, numbered)
        return ["concat {", "    chunk(2, 0)", f"    seq {{ chunk(2, 1); {self.name('half')} = conv({t.c // 2}, 1) }}",
                "}"], t

    def s_shuffle(self, t, depth, numbered):
        g = self.pick([g for g in (1, 2, 3) if t.c % g == 0])
        return [f"channel_shuffle({g})"], t

    def s_scale(self, t, depth, numbered):
        return [f"{self.name('gamma')} = learned_scale(({t.c}, 1, 1), init = {self.pick(['0.5', '1', '2'])})"], t

    def s_let(self, t, depth, numbered):
        v = self.name("v")
        c = self.choose(1, 8)
        return [f"let {v} = {c} + out.channels // 2", f"{self.name('conv')} = conv({v}, 1)"], \
            T("CHW", c + t.c // 2, t.h, t.w)

    def s_for(self, t, depth, numbered):
        n = self.choose(1, 3)
        c = self.choose(1, 8)
        i = self.name("i")
        if not numbered and self.chance(10):  # nested paths: a list (or a dict) of dicts of lists of dicts
            act, s, j, m = self.pick(ACTIVATIONS), self.name("stages"), self.name("j"), self.choose(1, 2)
            key = self.pick([f"{{{i}}}", f"{{{i} + 1}}"])
            block = f"{s}.{key}.blocks.{{{j}}}"
            tail = f"; {s}.{key}.tail = {act}" if self.chance(50) else ""
            return [f"for {i} in range({n}) {{ for {j} in range({m}) {{ {block}.conv = conv({c}, 1); "
                    f"{block}.act = {act} }}{tail} }}"], T("CHW", c, t.h, t.w)
        if not numbered and self.chance(25):  # dotted names: interleaved containers, a list and a list or a dict
            a, b, act = self.name("convs"), self.name("acts"), self.pick(ACTIVATIONS)
            more = [f"{a}.{n} = conv({c}, 1)"] if self.chance(50) else [f"{b}.last = {act}"] * self.chance(50)
            return [f"for {i} in range({n}) {{ {a}.{{{i}}} = conv({c}, 1); {b}.{{{i}}} = {act} }}", *more], \
                T("CHW", c, t.h, t.w)
        body = f"{self.name('rep')}{{{i}}} = conv({c}, 1)" if not numbered or self.chance(50) else f"conv({c}, 1)"
        return [f"for {i} in range({n}) {{ {body}; {self.pick(ACTIVATIONS)} }}"], T("CHW", c, t.h, t.w)

    def s_if(self, t, depth, numbered):
        a, t1 = self.statements(t, depth - 1, 2, numbered)
        if (t1.layout, t1.c, t1.h, t1.w) != (t.layout, t.c, t.h, t.w):
            self.flag_shapes = True  # a variant with flag = false would see other shapes downstream
            return ["if flag {", *("    " + line for line in a), "}"], t1
        b, t2 = self.statements(t, depth - 1, 1, numbered)
        if (t2.layout, t2.c, t2.h, t2.w) != (t.layout, t.c, t.h, t.w):
            self.flag_shapes = True
            return ["if flag {", *("    " + line for line in a), "}"], t1
        return ["if flag {", *("    " + line for line in a), "} else {", *("    " + line for line in b), "}"], t

    def s_seq(self, t, depth, numbered):
        inner, t2 = self.statements(t, depth - 1, 3, numbered=True)
        if not inner:
            return [], t
        head = f"{self.name('stage')} = seq {{" if not numbered or self.chance(50) else "seq {"
        return [head, *("    " + line for line in inner), "}"], t2

    def channels_last(self, t, numbered):
        kind = self.pick(["linear", "ln", "act", "back", "windows", "windows", "merge"])
        if kind == "linear":
            c = self.choose(1, 12)
            if c > 1 and self.chance(25):  # part of the bias held at zero (Swin V2's keys)
                start = self.choose(0, c - 1)
                return [f"{self.name('fc')} = linear({c}, zero_bias = ({start}, {self.choose(start + 1, c)}))"], \
                    T("HWC", c, t.h, t.w)
            return [f"{self.name('fc')} = linear({c})"], T("HWC", c, t.h, t.w)
        if kind == "windows":  # any window, any shift within it, either version, dropout or not
            size = self.pick([1, 2, 3, (2, 3)]) if not numbered else 2
            wh, ww = size if isinstance(size, tuple) else (size, size)
            shift = self.pick([0, (wh // 2, ww // 2), (wh - 1, 0)])
            heads = self.pick([h for h in (1, 2, 3) if t.c % h == 0])
            version = self.pick([1, 2]) if wh > 1 and ww > 1 else 1  # V2 divides by the window side less one
            drop = self.pick(["", ", attention_dropout = 0.1, dropout = 0.1"])
            return [f"{self.name('attn')} = window_attention({size}, {heads}, {shift}, {version}{drop})"], t
        if kind == "merge" and not numbered:
            return ["patch_merge"], T("HWC", 4 * t.c, -(-t.h // 2), -(-t.w // 2))
        if kind == "ln":
            return [f"{self.name('norm')} = layernorm"], t
        if kind == "act":
            return self.s_act(t, 0, numbered)
        return ["permute([0, 3, 1, 2])"], T("CHW", t.c, t.h, t.w)

    def flat(self, t, numbered):
        kind = self.pick(["linear", "bn", "act", "drop"])
        if kind == "linear":
            c = self.choose(1, 12)
            if self.chance(15):  # the fused form deploy writes: a linear layer and its activation
                act = f', activation = "{self.pick(FUSABLE)}"' if self.chance(75) else ""
                return [f"{self.name('fc')} = linear_act({c}{act})"], T("F", c)
            return [f"{self.name('fc')} = linear({c})"], T("F", c)
        if kind == "bn":
            return [f"{self.name('bn')} = batchnorm"], t
        if kind == "act":
            return self.s_act(t, 0, numbered)
        return ["dropout(0.3)"], t

    # ------------------------------------------------------------ the file

    def spec(self) -> str:
        lines = []
        for i in range(self.choose(0, 3)):
            lines += self.block(i)
        if self.chance(25):  # blocks with named tensors
            if self.chance(50):
                lines += self.pair_block(0)
            for i in range(self.choose(1, 2)):
                lines += self.flow_block(i)
            if self.chance(50):
                lines += self.mixer_block(0)
        if not self.blocks:
            self.blocks.append(("Unit", False))
            lines += ["block Unit(c, k = 3) {", "    conv = conv(c, 3, padding = 1); relu", "}"]
        net, size = self.network_params()
        params = ", ".join(f"{k} = {self.lit(v)}" for k, v in {"flag": True, **self.fixed}.items())
        dims = self.pick([f"{size} x {size}", f"({self.x_int(size)}) x {size}"] + (["res x res"] if "res" in self.fixed else []))
        start, shape = T("CHW", 3, size, size), f"3 x {dims}"
        nd = tokens = False
        if self.chance(8):  # a network of tokens, a signal or a volume
            nd, tokens = (True, False) if self.chance(40) else (False, True)
        if nd:  # a signal or a volume, through the 1-D or 3-D convolutions
            start, shape = self.nd_start()
            body, t = self.nd_conv(start, False)  # a signal is C x L where the first layer takes one
            more, t = self.statements(t, depth=2, budget=5)
            body += more
        else:
            if tokens:  # a network of tokens: L x D in (the generated class sizes its layers by D)
                start = T("LD", self.choose(2, 12), self.choose(1, 9))
                shape = f"{start.h} x {start.c}"
            first: list[str] = []
            flows = [b for b in self.blocks if b[0].startswith("F")]
            if flows and not tokens and self.chance(80):  # a block with named tensors made is a block called
                first, start = self.s_block(start, 2, False, flows)
            body, t = self.statements(start, depth=2, budget=6)
            body = first + body
        if t.layout == "HWC":
            body.append("permute([0, 3, 1, 2])")
            t = T("CHW", t.c, t.h, t.w)
        if t.layout == "LD":
            body.append(self.pick(["select_token(0)", "flatten"]))
            t = T("F", t.c)
        side = False
        if self.chance(6) and t.layout == "CHW":  # an op, not a block, as a side output
            body.append("aux_ln = side layernorm" + (" if flag" if self.chance(50) else ""))
            side = True
        if self.chance(30) and t.layout == "CHW":
            body.append("aux = side Head(num_classes) if flag")
            side = True
        if self.chance(30) and self.tops:  # a side output of an earlier layer, written after the trunk
            body.append(f"aux_from = side Head(num_classes) from {self.pick(self.tops)}")
            side = True
        if "aux = " in "\n".join(body) or "aux_from = " in "\n".join(body):
            lines += ["block Head(num_classes) {", "    global_avgpool", "    fc = linear(num_classes)", "}"]
        act = None
        if self.chance(15):  # an op parameter applied as a named layer, the variant giving another op
            act = self.pick(["gelu", "silu", "relu"])
            body.append("net_act = act")
        if t.layout == "CHW":
            body.append(self.pick(["global_avgpool", "flatten", "adaptive_avgpool(1); flatten"]))
        if t.layout in ("CL", "CDHW"):
            body.append(self.nd_head(t))
        body.append("fc_out = linear(num_classes)")
        body += self.network_rules(body)
        if act is not None:
            params += ", act = relu"
        lines += [f"network {net}({params}) {{", f"    input {shape}", *("    " + line for line in body), "}"]
        shadows = [n for n in SHADOW_CLASSES if n not in self.used and n != net]
        variant = "n" if self.chance(80) or not shadows else self.pick(shadows)
        lines.append(f"variant {variant} = {net}({'' if act is None else f'act = {act}'})")
        if self.chance(40) and not self.flag_shapes:
            lines.append(f"variant n_off = {net}(flag = false)")
        if self.chance(25) and not side and start.layout != "CL":  # the network twice, averaged
            lines += ["network E(num_classes = 5) {", f"    input {shape if start.layout != 'CHW' else f'3 x {size} x {size}'}",
                      "    ensemble {", f"        first = {net}(num_classes = num_classes)",
                      f"        second = {net}(true, num_classes)", "    }", "}", "variant e = E()"]
        return "\n".join(definitions(self.exprs.functions) + lines) + "\n"

    def network_params(self) -> tuple[str, int]:
        """The network's name and input size; its parameters, beside flag, in ``fixed`` (no variant changes them)."""
        net = "N"
        if self.chance(10):
            names = RESERVED_CLASSES if self.chance(10) else SHADOW_CLASSES
            net = self.pick([n for n in names if n not in self.used] or ["Net"])
            self.used.add(net)
        size = self.choose(4, 20)
        self.fixed = {"num_classes": 5, "width": self.choose(1, 12), "slope": self.pick([0.25, 0.5, 0.75]),
                      "proj": self.chance(70)}
        if self.chance(30):
            self.fixed["res"] = size
        if self.chance(40):
            name = self.pick([n for n in SHADOW_PARAMS if n not in self.used])
            self.used.add(name)
            self.fixed[name] = self.choose(1, 9) if self.chance(70) else self.chance(50)
        if len(self.blocks) >= 2 and self.blocks[-1][0][0].isupper() and self.chance(3):
            # a parameter named like a block (refused: it would hide the block), which then goes uncalled
            self.fixed[self.blocks.pop()[0]] = self.choose(1, 9)
        self.loose = {**self.fixed, "flag": True}
        return net, size

    def network_rules(self, body: list[str]) -> list[str]:
        """Rules for kinds, for the network's own layers and for layers of blocks, some under conditions."""
        def cond():
            return f" if {self.x_bool(self.chance(50), self.loose)}" if self.chance(40) else ""
        rules = [f"init {self.pick(['conv', 'linear'])}.weight = {self.pick(INITS + [self.rule()])}{cond()}"
                 for _ in range(self.choose(0, 2))]
        if self.chance(30):
            rules.append("init batchnorm.weight = 1" + (" if flag" if self.chance(50) else ""))
        if self.chance(30):  # any kind whose module holds parameters (those the network lacks reach nothing)
            kind = self.pick(sorted(PARAMETERS))
            rules.append(f"init {kind}.{self.pick(PARAMETERS[kind])} = {self.pick(['0.5', 'normal(std = 0.02)'])}")
        ups = sorted(set(re.findall(r"\b(conv_transpose(?:1d|3d)?)\(", "\n".join(body))))
        if ups and self.chance(50):  # fans of a transposed weight (in x out / groups x kernel)
            rules.append(f"init {self.pick(ups)}.weight = {self.pick(INITS)}{cond()}")
        if self.tops and self.chance(30):
            rules.append(f"init {self.pick(self.tops)}.weight = {self.rule()}{cond()}")
        called = {b for b in self.block_targets if re.search(rf"\b{b}\(", "\n".join(body))}
        targets = sorted(f"{b}.{t}" for b in called for t in self.block_targets[b])
        if targets and self.chance(50):
            rules.append(f"init {self.pick(targets)} = {self.rule()}{cond()}")
        return rules


def generate(choose) -> str:
    return Gen(choose).spec()
