"""archc lift on timm's patterns, each in a tiny module made here: it round-trips (the text compiled, the
original's state_dict loaded strictly, identical eval outputs), and the same text with the pattern written wrongly
is refused by the proof."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from archc.lifting import LiftError, lift
from archc.lifting.roundtrip import verify


def _proven_and_refused_when(model: nn.Module, x: torch.Tensor, right: str, wrong: str) -> str:
    """The lifted text (proven by ``lift``); with ``right`` written as ``wrong`` the proof fails."""
    text = lift(model.eval(), x)
    assert right in text, text
    with pytest.raises(LiftError):
        verify(text.replace(right, wrong, 1), model, x)
    return text


class SPP(nn.Module):
    """CSPNeXt's spatial pyramid pooling: the items of a list of pools, each applied to the same map."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 1)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (3, 5, 7))
        self.conv2 = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.poolings], dim=1))


def test_items_of_a_list_without_weights_applied_side_by_side():
    torch.manual_seed(0)
    text = _proven_and_refused_when(nn.Sequential(SPP()), torch.randn(1, 4, 8, 8),
                                    "poolings_1 = maxpool(5, stride = 1, padding = 2)",
                                    "poolings_1 = maxpool(3, stride = 1, padding = 1)")
    assert "concat {" in text and "poolings_2 = maxpool(7" in text


class SkipInit(nn.Module):
    """NF-Net's block end: the residual branch scaled in place by a scalar gain of its own, then read again."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.skipinit_gain = nn.Parameter(torch.tensor(0.75))
        self.alpha = 0.2

    def forward(self, x):
        out = self.conv(x)
        out.mul_(self.skipinit_gain)
        return out * self.alpha + x


def test_in_place_scaling_by_a_scalar_parameter_of_its_own():
    torch.manual_seed(0)
    text = _proven_and_refused_when(nn.Sequential(SkipInit()), torch.randn(1, 4, 8, 8),
                                    "skipinit_gain(conv(x)) * 0.2", "conv(x) * 0.2")
    assert "skipinit_gain = learned_scale([], init = 0.75)" in text


class InPlaceOnInput(nn.Module):
    def forward(self, x):
        y = x.mul_(2.0)
        return x + y


def test_in_place_change_of_an_input_read_again_stays_refused():
    with pytest.raises(LiftError, match=r"changes a tensor in place \('mul_'\) and reads it again after"):
        lift(nn.Sequential(nn.Conv2d(3, 3, 1), InPlaceOnInput()).eval(), torch.randn(1, 3, 4, 4))


class TokensBack(nn.Module):
    """PVT's stage end: tokens normed, given a list argument (the grid), reshaped to the grid and permuted to a map;
    fx flattens a forward traced with a list argument, its output a list of one tensor."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)

    def forward(self, x, size: list):
        x = self.norm(x)
        return x.reshape(x.shape[0], size[0], size[1], -1).permute(0, 3, 1, 2).contiguous()


class Pyramid(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 2, stride=2)
        self.back = TokensBack()
        self.conv = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        x = self.proj(x)
        size = [x.shape[2], x.shape[3]]
        return self.conv(self.back(x.flatten(2).transpose(1, 2), size))


def test_tokens_reshaped_to_the_grid_and_permuted_are_to_map():
    torch.manual_seed(0)
    _proven_and_refused_when(Pyramid(), torch.randn(1, 3, 12, 8), "to_map(6, 4)", "to_map(4, 6)")


class Fourier(nn.Module):
    """XCiT's stem: patches as tokens, plus timm's Fourier position encoding (built from the grid's sizes alone,
    ``pos_embed(B, H, W)``, no tensor in), then attention's output permuted back (a permute of unnamed axes)."""

    def __init__(self):
        super().__init__()
        xcit = pytest.importorskip("timm.models.xcit")
        self.proj = nn.Conv2d(3, 8, 4, stride=4)
        self.pos_embed = xcit.PositionalEncodingFourier(hidden_dim=8, dim=8)
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        b = x.shape[0]
        x = self.proj(x)
        h, w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        x = x + self.pos_embed(b, h, w).reshape(b, -1, x.shape[1]).permute(0, 2, 1)
        q, k, v = self.qkv(x).reshape(b, h * w, 3, 2, 4).permute(2, 0, 3, 4, 1).unbind(0)
        y = nn.functional.scaled_dot_product_attention(q, k, v)  # b x heads x d x N
        return y.permute(0, 3, 1, 2).reshape(b, h * w, 8)


def test_a_fourier_position_table_built_from_sizes_alone():
    torch.manual_seed(0)
    text = _proven_and_refused_when(nn.Sequential(Fourier()), torch.randn(1, 3, 16, 12),
                                    "(narrow(t, 1, 3, 1) + 1e-06)", "(narrow(t, 1, 3, 1) + 1e-05)")
    assert "coordinates(x, (1, 1, 4), 3)" in text and "sin(" in text and "cos(" in text
    assert "transpose(transpose(scaled_dot_product_attention" in text  # b x N x heads x d, as transposes


class Hierarchy(nn.Module):
    """Res2Net's hierarchy: each part of the channels added to the output of the conv before, then convolved by
    the next item of a list (never one after another), and an unused ``sp = spx[0]`` that fx still computes."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(2, 2, 3, padding=1) for _ in range(2))

    def forward(self, x):
        spx = torch.split(x, 2, 1)
        sp = spx[0]
        out = []
        for i, conv in enumerate(self.convs):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = conv(sp)
            out.append(sp)
        return torch.cat(out + [spx[-1]], 1)


def test_items_of_a_list_applied_out_of_order_are_its_members():
    torch.manual_seed(0)
    text = _proven_and_refused_when(nn.Sequential(nn.Conv2d(3, 6, 1), Hierarchy()), torch.randn(1, 3, 8, 8),
                                    "convs[1](", "convs[0](")
    assert "convs.0 = conv(2, 3, padding = 1)" in text and "convs.1 = conv(2, 3, padding = 1)" in text


def test_timms_rms_norms_are_rmsnorm():
    norm = pytest.importorskip("timm.layers.norm")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 1), norm.RmsNorm2d(16, eps=1e-6), nn.Flatten(), norm.RmsNorm(576))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
    text = _proven_and_refused_when(model, torch.randn(1, 3, 6, 6), "rmsnorm(eps = 1e-06)", "rmsnorm(eps = 0.01)")
    assert text.count("rmsnorm(eps = 1e-06)") == 2


class LatentPool(nn.Module):
    """timm's attention pooling (SigLIP's head): learned latent queries expanded over the batch and projected,
    attending to the tokens."""

    def __init__(self):
        super().__init__()
        self.latent = nn.Parameter(torch.randn(1, 2, 8))
        self.q = nn.Linear(8, 8)
        self.kv = nn.Linear(8, 16)

    def forward(self, x):
        b, n, c = x.shape
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 2, 2, 4).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return y.transpose(1, 2).reshape(b, 2, c)[:, 0]


def test_a_parameter_expanded_over_the_batch_into_a_child_is_learned():
    torch.manual_seed(0)
    text = _proven_and_refused_when(nn.Sequential(nn.Linear(4, 8), LatentPool()), torch.randn(2, 5, 4),
                                    "q(select(latent(x), 1, 0))", "q(narrow(x, 1, 0, 2))")
    assert "latent = learned((1, 2, 8))" in text


def test_a_named_sequence_of_convs_padded_for_their_input_is_a_block():
    """NF-Net's stem: timm's 'same' convs in an nn.Sequential of named layers; the pads before them have no module
    form, which no seq can hold, so the sequence is a block of its own named after it, its layers' names kept."""
    same = pytest.importorskip("timm.layers.conv2d_same")
    torch.manual_seed(0)
    stem = nn.Sequential(OrderedDict(conv1=same.Conv2dSame(3, 4, 3, stride=2), act=nn.ReLU(),
                                     conv2=same.Conv2dSame(4, 4, 3, stride=2)))
    model = nn.Sequential(OrderedDict(stem=stem, head=nn.Conv2d(4, 2, 1)))
    text = _proven_and_refused_when(model, torch.randn(1, 3, 8, 8), "zero_pad((0, 1, 0, 1))\n    conv1",
                                    "zero_pad((1, 0, 1, 0))\n    conv1")
    assert "block Stem() {" in text and "stem = Stem()" in text


class PadWithOnes(nn.Module):
    """EfficientViT's linear attention: its values padded with a column of ones (tokens, not a map)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.out = nn.Linear(9, 4)

    def forward(self, x):
        return self.out(nn.functional.pad(self.fc(x), (0, 1), mode="constant", value=1.0))


class PadChannelsLast(nn.Module):
    """Swin's padding to whole windows: a channels-last map padded at the bottom and right."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = nn.functional.pad(self.fc(x.permute(0, 2, 3, 1)), (0, 0, 0, 1, 0, 1))
        return x.permute(0, 3, 1, 2)


def test_a_pad_with_another_constant_than_zero_or_of_no_map_is_constant_pad():
    torch.manual_seed(0)
    _proven_and_refused_when(nn.Sequential(PadWithOnes()), torch.randn(1, 5, 4),
                             "constant_pad((0, 1), value = 1.0)", "constant_pad((0, 1), value = 0.0)")
    _proven_and_refused_when(nn.Sequential(nn.Conv2d(3, 4, 1), PadChannelsLast(), nn.Conv2d(4, 2, 1)),
                             torch.randn(1, 3, 5, 5), "constant_pad((0, 0, 0, 1, 0, 1))",
                             "constant_pad((0, 0, 1, 0, 1, 0))")


class TokensOnTheirGrid(nn.Module):
    """EdgeNeXt's transposed-attention block: tokens reshaped to their grid, channels last (``x.reshape(B, H, W,
    C)``), for a norm and an MLP, then permuted back to a map."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 2, stride=2)
        self.fc = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.mlp = nn.Linear(8, 8)
        self.conv = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        x = self.proj(x)
        b, c, h, w = x.shape
        t = self.fc(x.flatten(2).transpose(1, 2)).reshape(b, h, w, c)
        return self.conv(self.mlp(self.norm(t)).permute(0, 3, 1, 2))


def test_tokens_reshaped_to_their_grid_channels_last_are_to_map_and_permute():
    torch.manual_seed(0)
    text = _proven_and_refused_when(nn.Sequential(TokensOnTheirGrid()), torch.randn(1, 3, 8, 12),
                                    "to_map(4, 6)", "to_map(6, 4)")
    assert "to_map(4, 6)\n    permute((0, 2, 3, 1))\n    norm = layernorm" in text
