"""Statements for specgen that combine constructs the way people write them: arithmetic in arguments, scales
and conditions; quoted names with dashes under conditions; conditional shortcuts with quoted names and rules
of their own; ``let``s read by ``__init__`` and by ``forward``; learned scales made in loops; long channel
sums; forward-only ops with computed arguments; names that the generated code uses too.

``Mix`` is a mixin of ``specgen.Gen``: its ``s_*`` methods take and give tensor types as ``Gen``'s do.
"""

from __future__ import annotations

from specgen_expr import Exprs

from archc.ops.fused import FUSABLE

# names that the generated code also uses, each where archc accepts it (else the spec would only be rejected)
SHADOW_LAYERS = ["channels", "x", "identity", "Tensor", "channels_last", "y", "h", "relu", "conv",
                 "features_only", "out_indices", "m", "init", "block", "gate", "tap", "ensemble", "features"]
# (disjoint from SHADOW_CLASSES: a parameter named like a block is refused)
SHADOW_PARAMS = ["out_channels", "ensemble", "tap", "y", "h", "m", "block", "gate", "init", "List"]
SHADOW_LETS = ["channels", "channels_last", "forward", "training", "y", "h", "m", "features", "init"]
# ("math" is refused wherever the generated module imports math, for ceil, floor or log: left out)
SHADOW_CLASSES = ["channels", "forward", "training", "features"]
# class names the generated code itself needs: refused (a located error), so written rarely
RESERVED_CLASSES = ["self", "in_channels", "out_channels", "x", "channels_last", "identity"]
LONG = "a-long-descriptive-setting-name-that-takes-most-of-a-line-by-itself-and-then-some-more"


class Mix:
    """Mixed statements; ``Gen`` provides choose/pick/chance/name and the network's parameters in ``params``."""

    # ------------------------------------------------------------ names and expressions

    def ident(self, base: str, taken=()) -> str:
        """A fresh name, or now and then one of the generated code's own (each used once a spec)."""
        if self.chance(15):
            free = [s for s in SHADOW_LAYERS if s not in self.used and s not in self.fixed and s not in taken]
            if free:
                name = self.pick(free)
                self.used.add(name)
                return name
        return self.name(base)

    def once(self, key: str, used: set) -> str:
        """``key`` the first time in a scope, then a numbered variant of it."""
        if key in used:
            return f"{key}-{self.name('')}"
        used.add(key)
        return key

    def loop_var(self, taken) -> str:
        classes = {b for b, _ in self.blocks} | self.used
        return self.pick([j for j in ("j", "channels", "y", "m") if j not in taken and j not in classes] or ["j"])

    def x(self, env=None) -> Exprs:
        """An expression writer over ``env`` (the network's fixed parameters unless given)."""
        self.exprs.env = dict(self.fixed if env is None else env)
        self.exprs.budget = 12 if self.chance(70) else 40  # now and then a long one, that must wrap
        return self.exprs

    def x_int(self, v: int, env=None) -> str:
        return self.x(env).int_of(v).text

    def x_bool(self, truth: bool, env=None) -> str:
        return self.x(env).bool_of(truth).text

    def x_float(self, lo: float, hi: float, env=None) -> str:
        return self.x(env).float_in(lo, hi).text

    def wrapped(self, op: str, args: list[str]) -> str:
        """A call, its arguments now and then one a line (newlines inside parentheses do not end a statement)."""
        if self.chance(20):
            return f"{op}(\n        " + ",\n        ".join(args) + ")"
        return f"{op}({', '.join(args)})"

    def rule(self, env=None) -> str:
        """An initialiser with computed arguments; sometimes after a first draw that it overwrites (a list)."""
        one = self.pick([f"normal(0, {self.x_float(0.001, 0.1, env)})", f"trunc_normal(std = {self.x_float(0.01, 0.5, env)})",
                         'kaiming_normal(mode = "fan_out", nonlinearity = "relu")', self.pick(["0", "1", "0.5"]),
                         "uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))", f"xavier_uniform(gain = {self.x_float(0.5, 2, env)})"])
        if self.chance(15):
            return f"[{self.pick(['xavier_uniform()', 'kaiming_uniform()', f'normal(0, {self.x_float(0.01, 1.0, env)})'])}, {one}]"
        return one

    # ------------------------------------------------------------ network statements (a C x H x W map)

    def s_xconv(self, t, depth, numbered):
        c = self.choose(1, 12)
        k = self.pick([1, 3]) if t.h >= 3 and t.w >= 3 else 1
        s = self.pick([1, 1, 2])
        g = self.pick([g for g in (1, 2, 3) if t.c % g == 0 and c % g == 0])
        args = [self.x_int(c), self.x_int(k), self.x_int(s), f"padding = {self.x_int(k // 2)}"]
        if g > 1 or self.chance(30):
            args.append(f"groups = {self.x_int(g)}")
        args.append(f"bias = {self.x_bool(self.chance(50), self.loose)}")
        op = "conv"
        if self.chance(20) and t.c // g * k * k > 1:  # weight standardisation (of more than one weight a filter)
            op = "ws_conv"
            args += [f"gamma = {self.x_float(0.5, 2.0)}", f"eps = {self.pick(['1e-5', '0.0001', '1e-6'])}"]
        elif self.chance(10):  # the fused form deploy writes: the conv and its activation, or the conv alone
            op = "conv_act"
            if self.chance(75):
                args.append(f'activation = "{self.pick(FUSABLE)}"')
        name = "" if numbered and self.chance(50) else f"{self.ident('conv')} = "
        h, w = (t.h - k + 2 * (k // 2)) // s + 1, (t.w - k + 2 * (k // 2)) // s + 1
        return [name + self.wrapped(op, args)], type(t)("CHW", c, h, w)

    def s_xscaled(self, t, depth, numbered):
        args = [f"scale = {self.x_float(-1.0, 2.0)}"]
        if self.chance(40):
            args.append(f"when = {self.x_bool(self.chance(50), self.loose)}")
        if self.chance(30):
            args.append(f"stochastic_depth = {self.x_float(0.0, 0.9)}")
        body = self.pick(["relu", f"{self.ident('conv')} = conv({self.x_int(t.c)}, 1)", "identity"])
        return [f"residual({', '.join(args)}) {{ {body} }}"], t

    def s_xquoted(self, t, depth, numbered):
        """``"proj-1" = conv(8, 1) if proj``: a state_dict key with dashes, under a computed condition."""
        truth = self.chance(60)
        key = f'"proj-{self.name("")}"' if self.chance(60) else f'"{self.name("unit")}-{{{self.x_int(1)}}}"'
        if self.chance(40):  # may change the shape: only a condition on fixed parameters
            c = self.choose(1, 10)
            line = f"{key} = conv({self.x_int(c)}, 1) if {self.x_bool(truth)}"
            return [line], type(t)("CHW", c, t.h, t.w) if truth else t
        if self.chance(50):
            return [f"{key} = seq {{ conv({self.x_int(t.c)}, 1); batchnorm }} if {self.x_bool(truth, self.loose)}"], t
        return [f"{key} = conv({self.x_int(t.c)}, 1) if {self.x_bool(truth, self.loose)}"], t

    def s_xshortcut(self, t, depth, numbered):
        """A residual whose shortcut, quoted and conditional, holds rules of its own."""
        c, s = self.choose(1, 10), self.pick([1, 2])
        changes = c != t.c or s != 1
        cond = self.x_bool(True) if changes else self.x_bool(self.chance(50), self.loose)
        body = [f"    {self.ident('conv')} = conv({self.x_int(c)}, 3, {self.x_int(s)}, padding = 1)", "    relu"]
        short = [f'    "{self.once("shortcut", self.used)}" = seq {{ conv({self.x_int(c)}, 1, {s}); batchnorm }}']
        if self.chance(60):
            short.append(f"    init conv.weight = {self.rule()}" + (f" if {self.x_bool(self.chance(50), self.loose)}"
                                                                       if self.chance(70) else ""))
        if self.chance(50):
            lines = [f"residual shortcut if {cond} {{", *short, "} {", *body, "}"]
        else:
            lines = ["residual {", *body, f"}} shortcut if {cond} {{", *short, "}"]
        return lines, type(t)("CHW", c, -(-t.h // s), -(-t.w // s))

    def s_xlet(self, t, depth, numbered):
        """A let that sets the width through a forward-only op, and one read by a layer too."""
        v = self.choose(0, 6)
        name = self.pick([s for s in SHADOW_LETS if s not in self.used and s not in self.fixed] or ["p"]) \
            if self.chance(30) else self.name("p")
        self.used.add(name)
        lines = [f"let {name} = {self.x_int(v)}"]
        c = t.c + v
        lines.append(self.pick([f"pad_channels(0, {name})", f"pad_channels({name} // 2, {name} - {name} // 2)"]))
        if self.chance(50):
            lines.append(f"{self.ident('conv')} = conv({name} + out.channels - {v}, 1)")
        return lines, type(t)("CHW", c, t.h, t.w)

    def s_xscales(self, t, depth, numbered):
        """``w{j} = learned_scale(...)`` in a loop, over a computed count."""
        j = self.loop_var(self.fixed)
        base = self.name("w")
        n = self.choose(1, 3)
        return [f"for {j} in range({self.x_int(n)}) {{ {base}_{{{j}}} = learned_scale(({self.x_int(t.c)}, 1, 1), "
                f"init = {self.x_float(0.1, 2.0)}) }}"], t

    def s_xforward(self, t, depth, numbered):
        """Forward-only ops with computed arguments (``log`` among them)."""
        kind = self.pick(["dropout", "depth", "lrn", "subsample", "shuffle", "identity", "zero_pad"])
        if kind == "zero_pad":
            p = [self.choose(0, 2) for _ in range(4)]
            return [f"zero_pad(({', '.join(self.x_int(v) for v in p)}))"], type(t)("CHW", t.c, t.h + p[2] + p[3],
                                                                            t.w + p[0] + p[1])
        if kind == "dropout":
            return [f"dropout({self.x_float(0.0, 0.9)})"], t
        if kind == "depth":
            mode = f'"row" if {self.x_bool(self.chance(50), self.loose)} else "batch"'
            return [f"stochastic_depth({self.x_float(0.0, 0.9)}, mode = {mode})"], t
        if kind == "lrn":
            return [f"lrn({self.x_int(self.choose(1, 5))}, alpha = {self.x_float(0.00001, 0.001)})"], t
        if kind == "subsample":
            s = self.pick([1, 2])
            return [f"subsample({self.x_int(s)})"], type(t)("CHW", t.c, -(-t.h // s), -(-t.w // s))
        if kind == "shuffle":
            g = self.pick([g for g in (1, 2, 3) if t.c % g == 0])
            return [f"channel_shuffle({self.x_int(g)})"], t
        return ["identity" if self.chance(50) else f"{self.ident('skip')} = identity"], t

    def s_xelif(self, t, depth, numbered):
        """``if a { } else if b { } else { }``: every arm keeps the shape."""
        arms = [f"{self.ident('conv')} = conv({self.x_int(t.c)}, 1)", "relu", f"dropout({self.x_float(0, 0.5)})"]
        return [f"if {self.x_bool(self.chance(50), self.loose)} {{ {self.pick(arms)} }}"
                f" else if {self.x_bool(self.chance(50), self.loose)} {{ {self.pick(arms)} }}"
                f" else {{ {self.pick(arms)} }}"], t

    def s_xunpack(self, t, depth, numbered):
        """``for i, (a, b) in enumerate(zip(...))``: the last row sets the width."""
        rows = [(self.choose(1, 4), self.choose(1, 3)) for _ in range(self.choose(1, 3))]
        a, b = zip(*rows)
        i = self.name("i")
        return [f"for {i}, (a, b) in enumerate(zip({list(a)}, {list(b)})) {{ {self.name('u')}{{{i}}} = conv(a * b, 1) }}"], \
            type(t)("CHW", rows[-1][0] * rows[-1][1], t.h, t.w)

    # ------------------------------------------------------------ activations and norms with arguments

    def s_xact(self, t, depth, numbered):
        """An activation with computed arguments, on any layout: elementwise, prelu (one slope, or one per
        channel where dimension 1 holds the channels) or softmax over any dimension but the batch."""
        kind = self.pick(["leaky_relu", "elu", "celu", "selu", "mish", "softplus", "hardtanh", "softsign",
                          "tanhshrink", "logsigmoid", "prelu", "softmax", "log_softmax", "softmin", "hardshrink",
                          "softshrink", "threshold", "glu"])
        f = self.x_float
        if kind == "glu" and t.layout in ("CHW", "F") and t.c % 2 == 0:  # half the channels gate the other half
            call = self.pick(["glu(1)", "glu(dim = 1)"] + (["glu"] if t.layout == "F" else []))
            return [self.named(numbered, "glu") + call if self.chance(30) else call], type(t)(t.layout, t.c // 2,
                                                                                                t.h, t.w)
        if kind == "glu":
            kind = "softshrink"
        if kind in ("softmax", "log_softmax", "softmin") and t.layout == "CHW" and self.chance(25):  # over the channels
            return [self.named(numbered, "act") + "softmax2d" if self.chance(30) else "softmax2d"], t
        if kind == "prelu":
            n = t.c if t.layout in ("CHW", "F") and self.chance(50) else 1
            return [f"{self.named(numbered, 'prelu')}prelu({self.x_int(n)}, init = {f(-0.5, 0.5)})"], t
        if kind in ("softmax", "log_softmax", "softmin"):
            rank = len(t.layout)
            dim = self.pick([d for d in range(-rank, rank + 1) if d])
            args = [f"dim = {self.x_int(dim)}" if self.chance(50) else self.x_int(dim)]
        else:
            args = {"leaky_relu": lambda: [f(-0.5, 0.5)], "elu": lambda: [f"alpha = {f(-1.0, 2.0)}"],
                    "celu": lambda: [f"alpha = {f(0.1, 2.0)}"],
                    "softplus": lambda: [f"beta = {f(0.5, 3.0)}", f"threshold = {f(1.0, 20.0)}"][:self.choose(0, 2)],
                    "hardtanh": lambda: [f(-2.0, -0.1), f"max_val = {f(0.1, 2.0)}"],
                    "hardshrink": lambda: [f(0.0, 1.0)][:self.choose(0, 1)],
                    "softshrink": lambda: [f"lambd = {f(0.0, 1.0)}"][:self.choose(0, 1)],
                    "threshold": lambda: [f(-0.5, 0.5), f(-1.0, 1.0)]}.get(kind, list)()
        name = self.named(numbered, "act") if self.chance(30) else ""
        return [name + (self.wrapped(kind, args) if args else kind)], t

    def s_xnorm(self, t, depth, numbered):
        """An instance norm (or a group norm) with computed arguments, on a map of more than one position."""
        if t.h * t.w < 2:
            return self.s_xact(t, depth, numbered)
        if self.chance(15):  # an RMS norm over each position's channels
            return self.s_rmsnorm(t, numbered)
        args = []
        if self.chance(50):
            args.append(f"eps = {self.x_float(0.001, 0.1)}")
        if self.chance(50):
            args.append(f"affine = {self.x_bool(self.chance(50), self.loose)}")
        if self.chance(50):
            args += [f"momentum = {self.x_float(0.0, 1.0)}", f"track_running_stats = {self.x_bool(True, self.loose)}"]
        if self.chance(40):  # group norm: groups that divide the channels
            groups = self.pick([g for g in range(1, t.c + 1) if t.c % g == 0])
            extra = [f"eps = {self.x_float(0.001, 0.1)}"] if self.chance(30) else []
            extra += [f"affine = {self.x_bool(self.chance(70), self.loose)}"] if self.chance(40) else []
            extra += [f"bias = {self.x_bool(self.chance(50), self.loose)}"] if self.chance(30) else []  # a scale only
            return [self.named(numbered, "norm") + self.wrapped("groupnorm", [str(groups), *extra])], t
        if self.chance(15):  # torchvision's LayerNorm2d, the kind a network holds as ConvNeXt's norm_layer
            extra = [f"eps = {self.x_float(0.000001, 0.1)}"] if self.chance(50) else []
            return [self.named(numbered, "norm") + self.wrapped("layernorm2d", extra)], t
        return [self.named(numbered, "norm") + (self.wrapped("instancenorm", args) if args else "instancenorm")], t

    # ------------------------------------------------------------ a block of mixed parts

    def mixed_block(self, name: str) -> list[str]:
        """A block giving ``c`` channels and ceil(H / stride) rows, its extra parameters kept at their defaults."""
        taken = {"c", "stride"}
        extra = {}
        for base, value in (("g", self.choose(1, 4)), ("z", self.chance(50)), ("slope", self.pick([0.25, 0.5, 0.1])),
                            ("tag", LONG)):
            pname = base
            if self.chance(20):  # out_channels is refused (the generated class's attribute): left out
                # a parameter named like a block is refused (it would hide the block): written rarely
                blocks = [b for b, _ in self.blocks if b[0].isupper()] if self.chance(10) else []
                pname = self.pick([s for s in SHADOW_PARAMS + blocks if s not in taken and s != "out_channels"])
            taken.add(pname)
            extra[pname] = value
        g, z, slope, tag = extra
        env = {k: v for k, v in extra.items() if k != tag}
        params = ["c", "stride = 1"] + [f"{k} = {self.lit(v)}" for k, v in extra.items()]
        self.block_used = set()
        self.block_taken = taken
        ce = lambda: self.c_expr(env)  # noqa: E731
        head = self.name("conv")
        k = self.pick([1, 3])
        body = [f"{head} = " + self.wrapped("conv", [ce(), self.x_int(k, env), "stride", f"padding = {self.x_int(k // 2, env)}",
                                                     f"bias = {self.x_bool(True, env)}"])]
        for _ in range(self.choose(1, 3)):
            body += self.part(ce, env, g, z, tag)
        if self.chance(40):
            body.append(f"init conv.weight = {self.rule()} if {self.x_bool(self.chance(50), env)}")
        if self.chance(40):
            body.append(f"init {head}.bias = 0" + (f" if {z}" if self.chance(50) else ""))
        self.block_targets[name] = [f"{head}.weight", f"{head}.bias"]
        head_line = f"block {name}({', '.join(params)})"
        return [head_line + " {", *("    " + line for line in "\n".join(body).split("\n")), "}"]

    @staticmethod
    def lit(v) -> str:
        return ("true" if v else "false") if type(v) is bool else f'"{v}"' if type(v) is str else repr(v)

    def c_expr(self, env) -> str:
        """An expression equal to the block's ``c``, whatever it is."""
        e = lambda v: self.x_int(v, env)  # noqa: E731
        return self.pick(["c", f"c * {e(2)} // 2", f"c + {e(3)} - 3", f"max(c, {e(1)})", f"min(c, c + {e(2)})",
                          f"c if {self.x_bool(self.chance(50), env)} else c", "keep(c)" if self.use_keep() else "c",
                          "c // 2 + (c - c // 2)", "abs(c)", "int(c)", "c ** 1", "(c + 1) - 1"])

    def use_keep(self) -> bool:
        self.exprs.functions.add("keep")
        return True

    def part(self, ce, env, g, z, tag) -> list[str]:
        """Statements that keep ``c`` channels and the map's size."""
        kind = self.pick(["scaled", "quoted", "shortcut", "let", "letfwd", "scales", "concat", "forward", "string",
                          "gate", "dense"])
        n = self.name
        if kind == "scaled":
            when = f", when = {self.x_bool(self.chance(50), env)}" if self.chance(40) else ""
            return [f"residual(scale = {self.x_float(-1.0, 2.0, env)}{when}) {{ {self.pick(['relu', 'silu'])} }}"]
        if kind == "quoted":
            if self.chance(50):
                return [f'"{self.once("proj-1", self.block_used)}" = conv({ce()}, 1) if {z}']
            j = self.loop_var(self.block_taken)
            return [f'for {j} in range({self.x_int(2, env)}) {{ "{n("unit")}-{{{j} + 1}}" = conv({ce()}, 1) if {self.x_bool(self.chance(50), env)} }}']
        if kind == "shortcut":
            body = [f"    {n('conv')} = conv({self.x_int(self.choose(1, 8), env)}, 1); relu", f"    {n('conv')} = conv({ce()}, 3, padding = 1)"]
            short = [f'    "{self.once("shortcut", self.block_used)}" = seq {{ conv({ce()}, 1); batchnorm }}',
                     f"    init conv.weight = {self.rule()} if {z}"]
            cond = self.x_bool(self.chance(50), env)
            if self.chance(50):
                return [f"residual shortcut if {cond} {{", *short, "} {", *body, "}"]
            return ["residual {", *body, f"}} shortcut if {cond} {{", *short, "}"]
        if kind == "let":  # read by __init__ (the conv) and by forward (the padding)
            w = self.pick([w for w in ("w", "channels", "forward", "training")
                           if w not in self.block_taken and w not in self.used and w not in dict(self.blocks)] or ["w"])
            return [f"let {w} = c // {self.x_int(2, env)}", f"{n('conv')} = conv(c - {w}, 1)",
                    f"pad_channels({w} // 2, {w} - {w} // 2)"]
        if kind == "letfwd":  # read by forward alone, and still the block's width
            return ["let p = c // 2", f"{n('conv')} = conv(c - c // 2, 1)", "pad_channels(p, 0)"]
        if kind == "scales":
            j = self.loop_var(self.block_taken)
            w = self.once("w", self.block_used).replace("-", "_")
            return [f"for {j} in range({self.x_int(self.choose(1, 3), env)}) {{ "
                    f"{w}{{{j}}} = learned_scale((c, 1, 1), init = {self.x_float(0.5, 1.5, env)}) }}"]
        if kind == "concat":  # many branches: a long inferred channel sum
            widths = [self.pick(["c // 2 + 1", g, f"max(1, c - {g})", "c", f"{self.x_int(self.choose(1, 5), env)}"])
                      for _ in range(self.choose(4, 10))]
            lines = ["concat {", *(f"    {n('br')} = conv({w}, 1)" for w in widths)]
            if self.chance(50):
                lines.append("    identity")
            return lines + ["}", f"{n('conv')} = conv({ce()}, 1)"]
        if kind == "forward":
            return [self.pick([f"dropout({self.x_float(0.0, 0.9, env)})",
                               f'stochastic_depth({self.x_float(0.0, 0.9, env)}, mode = "row" if {z} else "batch")',
                               f"lrn({self.x_int(3, env)}, alpha = {self.x_float(0.00001, 0.001, env)})"])]
        if kind == "string":  # a long string, compared, and a call written over several lines
            return [f'relu if {tag} != "{LONG}"',
                    self.wrapped("gelu", [f'approximate = "tanh" if {tag} == "{LONG}" else "none"'])]
        if kind == "gate":
            return ["gate {", "    adaptive_avgpool(1)", f"    {n('fc')} = conv(max(1, c // {g}), 1); relu",
                    f"    {n('fc')} = conv({ce()}, 1); hardsigmoid", "}"]
        return [f"dense(checkpoint = {self.x_bool(self.chance(50), env)}) {{",
                f"    for j in range(2) {{ {n('layer')}{{j}} = conv({g}, 3, padding = 1) }}", "}",
                f"{n('conv')} = conv({ce()}, 1)"]
