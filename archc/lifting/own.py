"""A module's own parameters in its traced forward: its norm computed with them (a subclass of a norm), or a
learned tensor of the language (a scale, an addition, tokens put before a sequence), which becomes a child of the
parameter's name. A mixin of ``lowering._Lowering``, which gives ``own``, ``used_own``, ``layer``, ``refs``,
``shape``, ``add``, ``tensor_node``, ``fail``, ``children`` and ``dag``."""

from __future__ import annotations

from . import ir
from .functions import BINARY


class _Own:
    """A parameter of the module's own, read (``self.layer_scale``)."""

    def __init__(self, name: str):
        self.name = name


class _Viewed(_Own):
    """A vector parameter viewed as C x 1 x 1 (``self.scale.view(-1, 1, 1)``), to scale a map's channels."""


class _Expanded(_Own):
    """Such a parameter expanded over the batch (``self.class_token.expand(n, -1, -1)``)."""


class OwnParameters:
    def own_norm(self, nd, name, args, kwargs, value):
        """``F.layer_norm(x, shape, self.weight, self.bias, eps)`` (or ``F.group_norm``): a subclass of a norm
        computing its base class's op, perhaps between permutes to channels-last and back; ``as_layer`` makes the
        whole module that layer."""
        params = ("normalized_shape", "weight", "bias", "eps") if name == "layer_norm" else \
            ("num_groups", "weight", "bias", "eps")
        v = dict(zip(params, args[1:]), **kwargs)
        weight, bias = v.get("weight"), v.get("bias")
        if not isinstance(args[0], ir.Ref) or not isinstance(weight, _Own) or weight.name != "weight" or \
                not (bias is None or (isinstance(bias, _Own) and bias.name == "bias")) or self.layer is not None:
            self.fail(f"uses its parameters in '{name}' other than as its norm's weight and bias: it cannot be "
                      "written yet")
        if name == "layer_norm" and tuple(v["normalized_shape"]) != self.shape(args[0])[-1:]:
            self.fail("normalises over more than the last dimension: it cannot be written yet")
        eps = v.get("eps", 1e-5)
        if name == "layer_norm":
            self.layer = ("layernorm", {"eps": eps, "elementwise_affine": True, "bias": bias is not None})
        else:
            self.layer = ("groupnorm", {"num_groups": v["num_groups"], "eps": eps, "affine": True,
                                        "bias": bias is not None})
        self.refs[nd] = self.tensor_node("_norm", (args[0],), value)

    def as_layer(self) -> ir.Leaf | None:
        """The module as one layer, where its forward is its own norm (on the last dimension, or on a map's
        channels between permutes to channels-last and back)."""
        if self.layer is None:
            return None
        fns = [(nd.fn, nd.args[1:]) for nd in self.dag.nodes]
        op, args = self.layer
        if fns == [("_norm", ())] or (op == "layernorm" and fns == [("permute", ((0, 2, 3, 1),)), ("_norm", ()),
                                                                      ("permute", ((0, 3, 1, 2),))]):
            if self.dag.children or len(self.dag.inputs) != 1 or self.dag.output.index != len(self.dag.nodes):
                return None
            return ir.Leaf(op=op, args=args, stateful=True, path=self.dag.path)
        self.fail("computes more than its own norm with its parameters: it cannot be written yet")

    def learned(self, nd, name, args, kwargs, own, value):
        """A parameter of the module's own, used as the language's learned tensors use one: multiplied with a
        tensor (``learned_scale``), added to one (``learned_add``), or expanded over the batch and put before a
        sequence (``prepend_token``; several, ``cat([cls, reg, x])``, one after another from the last). The
        parameter becomes a child of that name."""
        tensors = ir.refs_in(args)
        p = self.own.get(own.name)
        if name == "expand" and type(own) is _Own and args[1:] == (ir.BATCH, -1, -1) and p.dim() == 3 and \
                p.shape[0] == 1:
            self.refs[nd] = _Expanded(own.name)
            return
        if name in ("view", "reshape") and type(own) is _Own and tuple(value.shape) == tuple(p.shape):
            self.refs[nd] = own  # a view as the shape it has (timm's Scale on channels-last tensors)
            return
        if name in ("view", "reshape") and type(own) is _Own and p.dim() == 1 and \
                tuple(value.shape) in ((p.shape[0], 1, 1), (1, p.shape[0], 1, 1)):
            self.refs[nd] = _Viewed(own.name)  # a vector of channels viewed as C x 1 x 1, to meet a map's channels
            return
        items = args[0] if name in ("cat", "concat") and args and isinstance(args[0], (list, tuple)) else ()
        if items and len(items) >= 2 and all(isinstance(a, _Expanded) for a in items[:-1]) and \
                isinstance(items[-1], ir.Ref) and kwargs.get("dim", args[1] if len(args) > 1 else 0) in (1, -2) and \
                len(self.shape(items[-1])) == 2:
            x = items[-1]
            for token in reversed(items[:-1]):
                count = self.own[token.name].shape[1]
                length, dim = self.shape(x)
                x = self.learned_child(token, "prepend_token", x, (length + count, dim), count=count)
            self.refs[nd] = x
            return
        if name in BINARY and BINARY[name] in ("*", "+") and type(own) in (_Own, _Viewed) and \
                len(tensors) == 1 and len(args) == 2 and not kwargs:
            op, x = ("learned_scale" if BINARY[name] == "*" else "learned_add"), tensors[0]
            if type(own) is _Viewed:  # the same products with the channels last: permute, scale, permute back
                if len(self.shape(x)) != 3:
                    self.fail(f"applies its parameter '{own.name}' viewed as a map's channels to a tensor that is "
                              "no map")
                shape = self.shape(x)
                x = self.add(ir.Node(fn="permute", args=(x, (0, 2, 3, 1)), shape=(shape[1], shape[2], shape[0])))
                ref = self.learned_child(own, op, x, self.shape(x))
                self.refs[nd] = self.tensor_node("permute", (ref, (0, 3, 1, 2)), value)
                return
            self.refs[nd] = self.learned_child(own, op, x, tuple(value.shape[1:]))
            return
        self.fail(f"uses its parameter '{own.name}' in '{name}', which cannot be written yet (a learned tensor "
                  "may multiply a tensor, be added to one, or be expanded and put before a sequence)")

    def expanded(self, own: _Expanded) -> ir.Ref:
        """A 1 x L x D parameter expanded over the batch and given to a child (timm's attention pooling: its
        latent queries, ``self.q(self.latent.expand(B, -1, -1))``): the language's ``learned`` tensor of that
        shape, on the tensor computed last, its first dimension selected."""
        if not self.dag.inputs:
            self.fail(f"gives its parameter '{own.name}' to a child, with no tensor to read the batch size of")
        x = ir.Ref(len(self.dag.inputs) + len(self.dag.nodes) - 1)
        p = self.own[own.name]
        ref = self.learned_child(own, "learned", x, tuple(p.shape))
        return self.add(ir.Node(fn="select", args=(ref, 1, 0), shape=tuple(p.shape[1:])))

    def learned_child(self, own, op: str, x: ir.Ref, shape: tuple, count: int = 1) -> ir.Ref:
        """The parameter ``own`` as a child of its name, the learned op ``op`` applied to ``x``; its output."""
        p = self.own[own.name]
        if own.name in self.used_own:
            self.fail(f"uses its parameter '{own.name}' more than once: it cannot be written yet")
        self.used_own.add(own.name)
        flat = p.flatten()
        init = flat[0].item() if flat.numel() and not flat.is_meta and bool((flat == flat[0]).all()) else None
        args_ = {"init": init if init is not None else (0.0 if op != "learned_scale" else 1.0)}
        if op == "prepend_token":
            args_["count"] = count
        else:
            args_ = {"shape": tuple(p.shape), **args_}
        leaf = ir.Leaf(op=op, args=args_, stateful=True, path=f"{self.dag.path}.{own.name}".lstrip("."))
        self.dag.children.insert(0, (own.name, leaf))
        self.children[own.name] = leaf
        return self.add(ir.Node(fn="call", args=(x,), child=own.name, shape=tuple(shape)))
