"""Small definitions a generated module carries where it uses them: the primitives torch has no
function or module for. Each is written out only in a module whose code calls it, so a generated
file still imports only torch and holds nothing it does not use."""

from __future__ import annotations

import re

HELPERS = {
    "_checkpointed": '''def _checkpointed(layer: nn.Module, features: list[Tensor]) -> Tensor:
    """``layer`` on the concatenation of ``features``, keeping only ``features`` for backward, where
    the concatenation and ``layer`` run again: a dense member's memory-efficient mode.
    """

    def run(*inputs: Tensor) -> Tensor:
        return layer(torch.cat(inputs, 1))

    return torch.utils.checkpoint.checkpoint(run, *features, use_reentrant=False)''',
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
    "_ceil": '''def _ceil(x: float) -> int:
    """The least integer >= x (math.ceil, without importing math)."""
    return -int(-x // 1)''',
    "_floor": '''def _floor(x: float) -> int:
    """The greatest integer <= x (math.floor, without importing math)."""
    return int(x // 1)''',
    "_sqrt": '''def _sqrt(x: float) -> float:
    """The square root of x, correctly rounded as math.sqrt's (without importing math)."""
    return torch.tensor(x, dtype=torch.float64, device="cpu").sqrt().item()''',
    "_log": '''def _log(x: float, base: float | None = None) -> float:
    """The natural logarithm of x, or its logarithm to ``base`` (math.log, without importing math)."""
    value = torch.tensor(x, dtype=torch.float64, device="cpu").log().item()
    return value if base is None else value / torch.tensor(base, dtype=torch.float64, device="cpu").log().item()''',
}


def used_helpers(text: str) -> list[str]:
    """The helpers ``text`` calls (or constructs), in a fixed order."""
    return [text_ for name, text_ in HELPERS.items() if re.search(rf"(?<![\w.]){name}\(", text)]
