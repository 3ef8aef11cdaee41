"""Small definitions a generated module carries where it uses them: the primitives torch has no
function or module for. Each is written out only in a module whose code calls it, so a generated
file imports only torch (and math) and holds nothing it does not use."""

from __future__ import annotations

import ast
from functools import cache

from ...ops import REGISTRY
from ...ops.fused import FUSABLE
from .helpersindex import INDEX_HELPERS
from .helpersnumeric import NUMERIC_HELPERS
from .helperspad import PAD_HELPERS
from .helperswindow import PARTITION_HELPERS, WINDOW_HELPERS

HELPERS = {
    "_token_map": '''def _token_map(tokens: Tensor, size: list[int], reduction: int) -> Tensor:
    """Tokens at a tap as the map timm's ``forward_intermediates`` makes of them: the last h x w tokens (the
    class token and other prefix tokens dropped) as an N x D x h x w map, h and w the input's height and width
    over the tap's reduction.
    """
    h, w = size[0] // reduction, size[1] // reduction
    return tokens[:, tokens.shape[1] - h * w:].reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)''',
    "_checkpointed": '''def _checkpointed(layer: nn.Module, features: list[Tensor]) -> Tensor:
    """``layer`` on the concatenation of ``features``, keeping only ``features`` for backward, where
    the concatenation and ``layer`` run again: a dense member's memory-efficient mode.
    """

    def run(*inputs: Tensor) -> Tensor:
        return layer(torch.cat(inputs, 1))

    return torch.utils.checkpoint.checkpoint(run, *features, use_reentrant=False)''',
    "_checkpoint_stage": '''def _checkpoint_stage(stage: nn.Module, x: Tensor) -> Tensor:
    """``stage(x)`` keeping only its input for backward, where it runs again; a sequence keeps the input of
    each of its modules instead (so backward never holds more than one of them at a time).
    """
    if isinstance(stage, nn.Sequential):
        for module in stage:
            x = torch.utils.checkpoint.checkpoint(module, x, use_reentrant=False)
        return x
    return torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)''',
    "_stochastic_depth": '''def _stochastic_depth(x: Tensor, p: float, mode: str, training: bool) -> Tensor:
    """In training, zero ``x`` with probability ``p`` per sample ("row") or for the whole batch
    ("batch"), scaling what survives by 1 / (1 - p); ``x`` itself in eval or when ``p`` is 0.
    """
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    size = [x.shape[0]] + [1] * (x.dim() - 1) if mode == "row" else [1] * x.dim()
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
    if keep > 0.0:
        noise.div_(keep)
    return x * noise''',
    "_FeatureInfo": '''class _FeatureInfo:
    """timm's FeatureInfo: the channels, reduction and name of each tap, and which of them (``out_indices``) a
    backbone returns; ``channels()`` and the like list those, ``channels(i)`` gives tap i's.
    """

    def __init__(self, info: list[dict], out_indices: tuple[int, ...] | None = None) -> None:
        self.info = info
        indices = range(len(info)) if out_indices is None else out_indices
        if not all(isinstance(i, int) and -len(info) <= i < len(info) for i in indices):
            raise ValueError(f"out_indices {tuple(indices)}: this network has {len(info)} taps, 0 to {len(info) - 1}")
        self.out_indices = tuple(i % len(info) for i in indices)

    def get(self, key: str, idx: int | list[int] | tuple[int, ...] | None = None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (list, tuple)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: list[str] | None = None, idx: list[int] | None = None) -> list[dict]:
        chosen = [self.info[i] for i in (self.out_indices if idx is None else idx)]
        return [dict(d) if keys is None else {k: d[k] for k in keys} for d in chosen]

    def channels(self, idx: int | list[int] | None = None):
        return self.get("num_chs", idx)

    def reduction(self, idx: int | list[int] | None = None):
        return self.get("reduction", idx)

    def module_name(self, idx: int | list[int] | None = None):
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)''',
    "_trunc_normal_tf_": '''def _trunc_normal_tf_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                     b: float = 2.0) -> Tensor:
    """Fill ``tensor`` from N(0, 1) truncated to [a, b], then scaled by ``std`` and shifted by ``mean`` (timm's
    and TensorFlow's truncated normal), drawn by inverting the normal's distribution function.
    """
    with torch.no_grad():
        low, high = (1 + math.erf(a / math.sqrt(2.0))) / 2, (1 + math.erf(b / math.sqrt(2.0))) / 2
        tensor.uniform_(2 * low - 1, 2 * high - 1)
        tensor.erfinv_()
        tensor.mul_(math.sqrt(2.0))
        tensor.clamp_(min=a, max=b)
        return tensor.mul_(std).add_(mean)''',
    "_trunc_normal_timm_": '''def _trunc_normal_timm_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                       b: float = 2.0) -> Tensor:
    """Fill ``tensor`` from N(mean, std^2) truncated to [a, b], drawn by inverting the normal's distribution
    function, as timm's trunc_normal_ draws it.
    """
    with torch.no_grad():
        low = (1 + math.erf((a - mean) / std / math.sqrt(2.0))) / 2
        high = (1 + math.erf((b - mean) / std / math.sqrt(2.0))) / 2
        tensor.uniform_(2 * low - 1, 2 * high - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        return tensor.clamp_(min=a, max=b)''',
    "_channel_shuffle": '''def _channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` equal groups: group-major order becomes channel-major."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)''',
    "_Permute": '''class _Permute(nn.Module):
    """``torch.permute`` as a module, for a place that needs one (an nn.Sequential)."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return torch.permute(x, self.dims)''',
    "_LayerNorm2d": '''class _LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W map: normalised channels-last, then back."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)''',
    "_RMSNorm2d": '''class _RMSNorm2d(nn.RMSNorm):
    """RMSNorm over the channels of an N x C x H x W map: normalised channels-last, then back."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.rms_norm(x, self.normalized_shape, self.weight, self.eps)
        return x.permute(0, 3, 1, 2)''',
    "_WSConv2d": '''class _WSConv2d(nn.Conv2d):
    """A conv with scaled weight standardisation (Brock et al., 2021): each output channel's weights less their
    mean, over the root of their variance plus ``eps``, times a learned ``gain`` and gamma / sqrt(fan-in).
    """

    def __init__(self, *args, gamma: float = 1.0, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                              (self.gain * self.scale).view(-1), training=True, momentum=0.0, eps=self.eps)
        return F.conv2d(x, weight.reshape_as(self.weight), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)''',
}


def _fused(cls: str, base: str, what: str, onednn: str, call: str, weight: str = "self.weight", extra: str = "") -> str:
    """A fused layer's class (``_ConvAct2d``, ``_LinearAct``), its tables read off the registry: each fusable
    activation's oneDNN post-op, and the function that computes it where the layer runs on its own. ``weight``: the
    weights the oneDNN call takes, made by a method of ``extra``."""
    post_ops = "".join(f'        "{name}": ("{k.post_op[0]}", {list(k.post_op[1])}, "{k.post_op[2]}"),\n'
                       for name in FUSABLE for k in [REGISTRY[name]])
    functions = "".join(f'        "{name}": {REGISTRY[name].functional},\n' for name in FUSABLE)
    return f'''class {cls}({base}):
    """A {what} and the activation after it, if any. In inference on the CPU (float32, no gradients, not
    compiling), oneDNN applies the activation as the layer writes its output: one pass over the tensor
    instead of two. Elsewhere, the layer and then the activation.
    """

    POST_OPS = {{
        None: ("none", [], ""),
{post_ops}    }}
    FUNCTIONS = {{
{functions}    }}

    def __init__(self, *args, activation: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.activation = activation
        self.onednn = {onednn}
        self.packed = None

    def forward(self, x: Tensor) -> Tensor:
        if (self.onednn and not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.compiler.is_compiling()):
            attr, scalars, algorithm = self.POST_OPS[self.activation]
            return {call.format(weight=weight)}
        x = super().forward(x)
        return x if self.activation is None else self.FUNCTIONS[self.activation](x){extra}'''


HELPERS["_ConvAct2d"] = _fused(
    "_ConvAct2d", "nn.Conv2d", "conv", 'torch.backends.mkldnn.is_available() and self.padding_mode == "zeros"',
    "torch.ops.mkldnn._convolution_pointwise(\n"
    "                x, {weight}, self.bias, self.padding, self.stride, self.dilation, self.groups,\n"
    "                attr, scalars, algorithm,\n"
    "            )", weight="self.packed_weight(x)", extra='''

    def packed_weight(self, x: Tensor) -> Tensor:
        """The weights in oneDNN's blocked layout for inputs of x's size: made on the first such input, and again
        when the size or the weights change (an inference copy beside the parameter, which stays as it is)."""
        key = (tuple(x.shape), self.weight.data_ptr(), self.weight._version)
        if self.packed is None or self.packed[0] != key:
            weight = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, self.padding, self.stride, self.dilation, self.groups, list(x.shape)
            )
            self.packed = (key, weight)
        return self.packed[1]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "packed": None}  # oneDNN's copy cannot be saved: it is made again when needed''')
HELPERS["_LinearAct"] = _fused(
    "_LinearAct", "nn.Linear", "linear layer", "torch.backends.mkldnn.is_available()",
    "torch.ops.mkldnn._linear_pointwise(x, {weight}, self.bias, attr, scalars, algorithm)")
HELPERS.update(WINDOW_HELPERS)
HELPERS.update(PARTITION_HELPERS)
HELPERS.update(NUMERIC_HELPERS)
HELPERS.update(PAD_HELPERS)
HELPERS.update(INDEX_HELPERS)


def used_helpers(names: set[str]) -> list[str]:
    """The helpers the generated code names (and those they name), in a fixed order."""
    wanted = {name for name in names if name in HELPERS}
    pending = list(wanted)
    while pending:
        for name in helper_names(pending.pop()) & HELPERS.keys() - wanted:
            wanted.add(name)
            pending.append(name)
    return [name for name in HELPERS if name in wanted]


@cache
def helper_names(name: str) -> frozenset[str]:
    """The names a helper's code reads (``torch``, ``F``, other helpers), and ``torch.utils.checkpoint`` if it
    calls through it: parsed from the helper's own source."""
    found = set()
    for node in ast.walk(ast.parse(HELPERS[name])):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr == "checkpoint" and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "utils" and isinstance(node.value.value, ast.Name) and node.value.value.id == "torch":
            found.add(CHECKPOINT)
    return frozenset(found)


CHECKPOINT = "torch.utils.checkpoint"


@cache
def helper_bases(name: str) -> tuple[str, ...]:
    """The classes a helper class derives from, as its source writes them (``nn.Conv2d``)."""
    return tuple(ast.unparse(base) for node in ast.parse(HELPERS[name]).body if isinstance(node, ast.ClassDef)
                 for base in node.bases)
