"""Fused kinds: a layer and the activation after it, as one op. ``archc.deploy`` writes them where an activation
follows a conv or a linear layer (``fuses_into`` of the layer's kind, ``post_op`` of the activation's): in
inference on the CPU, oneDNN applies the activation as the layer writes its output, one pass over the tensor
instead of two. A user may write them too. The weights are the layer's, under its names, so a trained layer's
state_dict loads into its fused form.
"""

from __future__ import annotations

from typing import Literal

from ..sema.layout import TensorType
from .base import BOTH, INPUT, REGISTRY, OpKind, PadPair, Saves, _register
from .conv import ConvArgs, _conv_label, _conv_macs, _conv_make, _conv_params, _conv_run, _conv_shape
from .norm import LinearArgs, _linear_make, _linear_run, _linear_shape

# the activations a conv can apply as it writes (each activation's entry says how, in post_op)
FUSABLE = tuple(name for name, kind in REGISTRY.items() if kind.post_op is not None)


class ConvActArgs(ConvArgs):
    padding: PadPair = 0  # not "same": oneDNN's conv pads evenly (archc.deploy leaves such a conv as it is)
    # the names, from the registry; none: the layer alone (a deployed conv still keeps its weights packed)
    activation: Literal[FUSABLE] | None = None  # type: ignore[valid-type]


class LinearActArgs(LinearArgs):
    activation: Literal[FUSABLE] | None = None  # type: ignore[valid-type]


def _then_activation(run):
    """The layer's meaning, then its activation's (with the activation's default arguments)."""

    def fused(m, a: dict, t: TensorType, xs: list, training: bool):
        y = run(m, a, t, xs, training)
        if a["activation"] is None:
            return y
        act = REGISTRY[a["activation"]]
        return act.run(None, act.args().model_dump(), t, [y], training)

    return fused


def _saves(a: dict, inputs: tuple, output: tuple) -> Saves:
    return BOTH if a["activation"] is not None else INPUT  # with an activation, its input too (as large as the output)


def _keeps(a: dict) -> bool:
    """The activation's backward reads its output (relu, sigmoid, tanh): so does the fused op's."""
    return a.get("activation") is not None and REGISTRY[a["activation"]].keeps_output


def _then(a: dict) -> str:
    return "" if a["activation"] is None else f", {a['activation']}"


_register(OpKind(
    "conv_act", ConvActArgs, _conv_shape, module="_ConvAct2d", in_arg=True, channels_from="out_channels",
    params=_conv_params, macs=_conv_macs, make=_conv_make, run=_then_activation(_conv_run),
    doc=f"a conv and the activation after it ({', '.join(FUSABLE)}), if any, computed together in inference on the "
        "CPU, with the weights kept in oneDNN's layout for the input's size",
    label=lambda a: _conv_label(a) + _then(a), saves=_saves, packs=True, keeps_output_if=_keeps))
_linear = REGISTRY["linear"]
_register(OpKind(
    "linear_act", LinearActArgs, _linear_shape, layouts=_linear.layouts, module="_LinearAct", in_arg=True,
    channels_from="out_features", params=_linear.params, macs=_linear.macs, make=_linear_make,
    run=_then_activation(_linear_run),
    doc=f"a linear layer and the activation after it ({', '.join(FUSABLE)}), if any, computed together in inference "
        "on the CPU",
    label=lambda a: f"linear {a['out_features']}{_then(a)}", saves=_saves, keeps_output_if=_keeps))
