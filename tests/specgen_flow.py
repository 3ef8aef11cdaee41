"""Dataflow blocks for specgen: blocks with named tensors (``block F(c, stride = 1) (x) -> y``) whose lets
combine declared modules, parameter-free ops, ``+ - * / **`` with tensors and numbers, unary minus, a gate that
broadcasts C x 1 x 1 over a map, and blocks of two inputs; declarations stand in a shuffled order, before the
lets that apply them or among them.

``FlowMix`` is a mixin of ``specgen.Gen``. A dataflow block gives ``c`` channels and ceil(H / stride) rows
for any C x H x W input, like the generator's other blocks, so the network can call it anywhere.
"""

from __future__ import annotations

FUNCTIONS = ["relu", "sigmoid", "tanh", "silu", "gelu", "hardswish"]


class FlowMix:
    """``Gen`` provides choose/pick/chance and ``blocks``; ``pairs`` are the two-input blocks written so far."""

    def pair_block(self, index: int) -> list[str]:
        """``block M(c) (p, q) -> r``: two maps of equal size, of any widths, in; c channels out."""
        name = f"M{index}"
        outputs = 2 if self.chance(40) else 1
        self.pairs.append((name, outputs))
        first = self.pick(["mp = conv(c, 1)", "mp = seq { conv(c, 1, bias = false); batchnorm }"])
        if self.blocks and self.chance(40):  # a block of the usual kind, applied to one of the tensors
            first = f"mp = {self.pick(self.blocks)[0]}(c)"
        decls = [first, "mq = conv(c, 3, padding = 1)"]
        if self.chance(50):
            decls.reverse()
        join = self.pick(["mp(p) + mq(q)", "mp(p) * sigmoid(mq(q))", "relu(mp(p) - mq(q) / 2)"])
        if outputs == 2:  # a second output, from the first
            return [f"block {name}(c) (p, q) -> (r, s) {{", *("    " + d for d in decls), f"    let r = {join}",
                    f"    let s = {self.pick(['tanh(r)', 'r * 2', '-r'])}", "}"]
        return [f"block {name}(c) (p, q) -> r {{", *("    " + d for d in decls), f"    let r = {join}", "}"]

    def mixer_block(self, index: int) -> list[str]:
        """``block X(d, n) (x: n x d) -> y``: token mixing as MLP-Mixer's, a linear layer across the n tokens of
        the transposed sequence, sized by the input's stated length (which __init__ knows from nowhere else)."""
        name = f"X{index}"
        self.mixers.append(name)
        mix = self.pick(["transpose(tokens(transpose(norm(x), 1, 2)), 1, 2)",
                         "transpose(tokens(transpose(x, -1, -2)), -1, -2) * 0.5",
                         "transpose(gelu(tokens(transpose(norm(x), 1, 2))), 1, 2)"])
        decls = ["norm = layernorm", "tokens = linear(n)"] if "norm(" in mix else ["tokens = linear(n)"]
        return [f"block {name}(d, n) (x: {self.pick(['n x d', '(n) x (d)'])}) -> y {{",
                *("    " + line for line in decls), f"    let y = x + {mix}", "}"]

    def loop(self, k: int, a: str) -> tuple[str, str]:
        """A ``for`` over lets, as one statement (its lines indented here): Res2Net's hierarchy, each iteration's
        output added to the next one's input and kept in a list, or a tensor from before the loop rebound by each
        iteration; and the value of a let after it."""
        n = self.pick(["2", "3", "c % 2 + 1"])
        after: list[str] = []
        member = self.pick(["conv(c, 3, padding = 1)", "seq { conv(c, 1, bias = false); batchnorm }",
                            "seq { conv(c * 2, 1); glu(1) }"])
        inner = [f"ks{k}.{{i}} = {member}"]
        if self.chance(50):
            before = [f"let outs{k} = []"]
            inner += [f"let h{k} = {a} if i == 0 else h{k} + {a}", f"let h{k} = relu(ks{k}[i](h{k}))",
                      f"let outs{k} = outs{k} + [h{k}]"]
            # (each form reads the list's last tensor, which every earlier one feeds: none is left without a gradient)
            value = self.pick(["JOIN(cat(outs{k} + [{a}], 1))", "sum(stack(outs{k}, 2), 2)",
                               "outs{k}[-1] * 0.5 + outs{k}[0]", "JOIN(cat([outs{k}[0], outs{k}[-1], {a}], 1))",
                               "outs{k}[-1] + unflatten(select(outs{k}[0], 1, 0), 1, (1, -1))"]).format(k=k, a=a)
            if "JOIN" in value:  # a 1x1 conv back to c channels, declared after the loop (it reads its width)
                after = [f"join{k} = conv(c, 1)"]
                value = value.replace("JOIN", f"join{k}")
        else:
            before = [f"let h{k} = {a}"]
            inner += [f"let h{k} = h{k} + {self.pick(FUNCTIONS)}(ks{k}[i](h{k})) / 2"]
            value = f"h{k}"
        lines = [*before, "for i in range(" + n + ") {", *("    " + line for line in inner), "}", *after]
        return "\n    ".join(lines), value

    def flow_block(self, index: int) -> list[str]:
        name = f"F{index}"
        strided = self.chance(60)
        stride = "stride" if strided else "1"
        params = "c, stride = 1" if strided else "c, k = 3"
        decls: list[str] = []
        lets: list[str] = []
        count = [0]

        def module(text: str) -> str:
            count[0] += 1
            m = f"m{count[0]}"
            decls.append(f"{m} = {text}")
            return m

        unused: list[str] = []
        tensors: list[str] = []

        def let(expr: str) -> str:
            t = f"t{len(tensors) + 1}"
            lets.append(f"let {t} = {expr}")
            tensors.append(t)
            unused.append(t)
            return t

        def take() -> str:
            """A tensor to read: one nothing read yet first, so that every let is used."""
            t = unused[0] if unused and self.chance(70) else self.pick(tensors)
            if t in unused:
                unused.remove(t)
            return t

        let(f"{module(f'conv(c, 3, {stride}, padding = 1)')}(x)")
        if self.chance(50):  # a second path from the input
            let(f"{module(self.pick([f'conv(c, 1, {stride})', f'seq {{ conv(c, 1, {stride}, bias = false); batchnorm }}']))}(x)")
        if self.chance(40):
            lets.append(f"let half = {self.pick(['0.5', 'c / (2 * c)', '1 / 2'])}")
        scale = "half" if any(line.startswith("let half") for line in lets) else "0.5"
        for _ in range(self.choose(1, 4)):
            kind = self.pick(["fn", "add", "mul", "scale", "neg", "module", "act", "gate", "pair", "nest", "tensor",
                              "tensor", "join", "choice", "split", "loop", "member", "table", "sizes", "where"])
            if kind == "pair" and not self.pairs:
                kind = "add"
            a = take()
            if kind == "fn":
                let(f"{self.pick(FUNCTIONS)}({a})")
            elif kind in ("add", "mul"):
                op = self.pick(["+", "-"]) if kind == "add" else self.pick(["*", "/"])
                b = take()
                # (a - b at half weight: b may be a + 1, and a - (a + 1) is rounding noise, which a batch norm in
                # training scales up to the output's size, a difference of rounding rather than of meaning)
                let(f"{a} - 0.5 * {b}" if op == "-" else f"{a} {op} {b}" if op != "/" else f"{a} / (2 + sigmoid({b}))")
            elif kind == "scale":
                let(self.pick([f"{a} * {scale}", f"{scale} * {a}", f"{a} / 4", f"1 - {a}", f"{a} + 1"]))
            elif kind == "neg":
                let(f"-{a}")
            elif kind == "module":
                m = module(self.pick(["conv(c, 1)", "seq { batchnorm; relu }", "batchnorm"]))
                let(f"{m}({a})")
            elif kind == "act":
                let(f"{module(self.pick(FUNCTIONS))}({a})")
            elif kind == "gate":
                g = module("conv(c, 1)")
                let(f"{a} * {self.pick(['sigmoid', 'hardsigmoid'])}({g}(adaptive_avgpool({a}, 1)))")
            elif kind == "tensor":  # primitives, back to the map's shape, or to one that broadcasts over it
                let(self.pick([
                    f"{a} - amax({a}, 1, keepdim = true)",
                    f"{a} * sigmoid(unflatten(mean(flatten_dims({a}, 2), 2, keepdim = true), 2, (1, 1)))",
                    f"transpose(tanh(transpose({a}, 2, 3)), -1, -2)",
                    f"{a} + unflatten(select({a}, 1, 0), 1, (1, -1))",
                    f"{a} * narrow({a}, 1, 0, 1)",
                    f"matmul(softmax(matmul({a}, transpose({a}, 2, 3)), dim = -1), {a})",
                    # einsum: a product over the map's rows, a transpose, an implicit (sorted) result
                    f'einsum([softmax(einsum([{a}, {a}], "bchw,bcvw->bchv"), dim = -1), {a}], "bchv,bcvw->bchw")',
                    f'transpose(einsum([{a}], "bchw->bcwh"), 2, 3) + einsum([{a}, {a}], "bchw,bchw->bchw") / 4'
                    f' - einsum([{a}], "bchw")',
                    f"scaled_dot_product_attention({a}, {a}, {a})",
                    f"scaled_dot_product_attention({a}, {a}, {a}, is_causal = true, scale = 0.5)",
                    f"scaled_dot_product_attention({a}, {a}, {a}, dropout_p = 0.1)",
                    f"scaled_dot_product_attention({a}, {a}, {a}, narrow({a}, 1, 0, 1))",  # an additive mask
                    # a boolean mask, true at each row's largest entry at least
                    f"scaled_dot_product_attention({a}, {a}, {a}, narrow({a}, 1, 0, 1) >= amax(narrow({a}, 1, 0, 1), -1,"
                    f" keepdim = true))",
                    f"{a} + unflatten(sum(reshape({a}, (c, -1)), 2, keepdim = true), 2, (1, 1)) / 8",
                    f"flatten_dims(unflatten({a}, 1, (1, c)), 1, 2)",
                    # permute of any rank: five axes, and a map's axes in an order of unnamed axes
                    f"flatten_dims(permute(permute(unflatten({a}, 1, (1, c)), (0, 3, 4, 1, 2)), (0, 3, 4, 1, 2)), 1, 2)",
                    f"permute(tanh(permute({a}, (0, 2, 1, 3))), (0, 2, 1, 3))",
                    f"{a} / (1 + vector_norm({a}, (2, 3), keepdim = true))",  # each channel's L2 norm over the map
                    f"{a} * vector_norm({a}, 1, ord = 1.5, keepdim = true) / 4",
                    f"{a} * sin({a}) + cos(normalize({a}, dim = 1))",
                    # elementwise math (Swin V2's log-spaced coordinates and clamped logit scale)
                    f"sign({a}) * log2(abs({a}) + 1) / 3 + exp(clamp({a}, max = 1.0)) - log(exp(-abs({a})) + 1)"
                    f" * clamp({a}, -1.0, 0.5) + sin({a}) * cos({a}) / 4",  # (sin, cos: rotary embeddings' too)
                    # a table of each channel's index, broadcast over the map; ** of a number and a tensor
                    f"normalize({a}, p = 1.0, dim = -1, eps = 0.01) + 0.9 ** coordinates({a}, (c, 1, 1), 1)",
                    f"{a} + reshape(coordinates({a}, (c,), 1), (c, 1, 1)) / c - sigmoid({a}) ** 2",
                    # rolled along the rows and columns, or cyclically over the channels; padded and narrowed back
                    f"roll({a}, (1, -2), (2, 3)) - 0.5 * roll({a}, 1, -3)",
                    f"narrow(constant_pad({a}, (0, 0, 0, 0, 1, 2), value = 0.5), 1, 1, c)",
                    f"{a} + mean(constant_pad({a}, (2, 1)), 3, keepdim = true)",
                ]))
            elif kind == "table":  # a learned table's rows picked by a fixed index (1 + 2 i - j), over the channels
                table = module(f"learned((4, c), init = {self.pick(['0.5', '-1'])})")
                index = module(self.pick(["lookup(1, (2, 2), (2, -1), 1)", "lookup(1, (2, 2), (2, -1), 1, (2, 2))",
                                          "lookup(1, (2, 2), (2, -1), 1, persistent = false)",  # (timm's)
                                          "lookup(1, (2, 2), (1, 0), 0, absolute = ((1, -1),))"]))  # (LeViT's |i - j|)
                let(f"{a} * sigmoid(unflatten(mean(transpose({index}({table}({a})), 1, 2), 2, keepdim = true), 2, (1, 1)))")
                if self.chance(30):  # Swin V2's fixed table of log-spaced relative coordinates, 3 x 3 x 2 (or 5 x 3 x 2)
                    coords = module(f"relative_coords({self.pick(['2', '(3, 2)'])}{self.pick(['', ', scale = 4.0'])})")
                    let(f"{a} + reshape(mean(flatten_dims({coords}({a}), 1), 1, keepdim = true), (1, 1, 1))")
            elif kind == "sizes":  # sizes read as forward runs: reshapes, rolls, pads and tables of them
                k = len(lets)
                lets.append(f"let ch{k}, hh{k}, ww{k} = {a}.shape")
                let(self.pick([
                    f"{a} + reshape(mean(reshape({a}, (ch{k}, hh{k} * ww{k})), 2, keepdim = true), (ch{k}, 1, 1))",
                    f"roll({a}, (hh{k} // 2, -(ww{k} % 3)), (2, 3)) * 0.5 + {a}",
                    f"narrow(constant_pad({a}, (0, (4 - ww{k} % 4) % 4, 0, hh{k} % 2)), 3, 0, ww{k}) - {a} / 2",
                    f"{a} * where(coordinates({a}, (1, hh{k}, ww{k}), 2) < hh{k} // 2, 1.0, -1.0)",
                    f"{a} + (1.0 if hh{k} > ww{k} else 0.5)",
                ]))
            elif kind == "where":  # comparisons of tensors, or of a tensor and a number; entries picked by them
                form = self.pick(["where({a} > 0, {a}, 0.1 * {a})", "where({a} >= {b}, {a}, {b})",
                                  "{a} * where({a} != {b}, 1.0, 0.5)", "where({a} <= 0.5, 2, {a})",
                                  "where(-{a} < {b}, where({a} == {a}, {b}, 0.0), -1)"])
                b = take() if "{b}" in form else None
                let(form.format(a=a, b=b))
                # a tensor only compared passes no gradient back: it is read in the output too
                only_compared = {"{a} * where({a} != {b}, 1.0, 0.5)": b, "where(-{a} < {b}, where({a} == {a}, {b}, "
                                 "0.0), -1)": a}.get(form)
                if only_compared is not None:
                    unused.append(only_compared)
            elif kind == "split":  # parts of uneven sizes, each a tensor, joined again at once
                p, q = f"p{len(lets)}", f"q{len(lets)}"
                if self.chance(50):
                    lets.append(f"let {p}, {q} = split(cat([{a}, {take()}], 1), [c, c], 1)")
                    let(f"{p} * sigmoid({q})")
                else:  # (c of 1 gives a part of 0: rejected, a located error)
                    lets.append(f"let {p}, {q} = split({a}, [c // 2, c - c // 2], dim = 1)")
                    let(f"cat([{q}, {p}], 1)" if self.chance(50) else f"cat([{p}, {q}], 1) + {take()}")
            elif kind == "choice":  # a tensor of one of two branches, the condition a value of the call
                b = take()
                cond = self.pick(["c > 4", "c % 2 == 0", "true", "stride == 1" if strided else "k == 3"])
                if self.chance(50):
                    let(f"{a} if {cond} else {self.pick([f'relu({b})', f'{b} * 0.5', b])}")
                else:  # a module made only where its branch can run
                    m = module(f"conv(c, 1) if {cond}")
                    let(self.pick([f"{m}({a}) if {cond} else {b}", f"{b} if not ({cond}) else {m}({a}) + 1"]))
            elif kind == "loop":  # a loop of container members: a tensor it rebinds, a list it extends
                text, value = self.loop(len(lets), a)
                lets.append(text)
                let(value)
            elif kind == "member":  # a member of a container, its key written out
                lets.append(f"heads{len(lets)}.main = conv(c, 1)")
                let(f'heads{len(lets) - 1}["main"]({a})')
            elif kind == "join":
                b = take()
                if self.chance(30):
                    let(f"{a} + sum(stack([{a}, {b}], 2), 2) / 2")
                else:
                    m = module("conv(c, 1)")
                    let(self.pick([f"{m}(cat([{a}, {b}], 1))", f"{m}(cat([{a}, {b}, {a}], dim = 1))"]))
            elif kind == "pair":
                pair, outputs = self.pick(self.pairs)
                m = module(f"{pair}(c)")
                if outputs == 2:  # let u, v = m(a, b): both tensors named, both used later
                    t, u = f"t{len(tensors) + 1}", f"t{len(tensors) + 2}"
                    lets.append(f"let {t}, {u} = {m}({a}, {take()})")
                    tensors.extend([t, u])
                    unused.extend([t, u])
                else:
                    let(f"{m}({a}, {take()})")
            else:
                m = module("conv(c, 3, padding = 1)")
                let(f"{self.pick(FUNCTIONS)}({m}({a}) + {a})")
        rest = list(dict.fromkeys(unused))
        out = " + ".join(rest)
        body = list(lets)
        order = list(decls)
        if self.chance(50):  # declared in another order than applied: __init__ keeps the spec's order
            order.reverse()
        if self.chance(40):  # all declared first
            body = order + body
        else:  # each declared somewhere before its first use
            for d in order:
                m = d.split(" = ")[0]
                first = next(i for i, line in enumerate(body) if f"{m}(" in line)
                body.insert(self.choose(0, first), d)
        self.blocks.append((name, strided))
        return [f"block {name}({params}) (x) -> y {{", *("    " + line for line in body), f"    let y = {out}", "}"]
