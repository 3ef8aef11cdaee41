"""archc lift on maps cut into groups of tokens and put back (torchvision's MaxViT partitions), in a tiny network made
here: a module that holds nothing and moves the map's values as the language's ``partition`` does is that op, a
window partition whose groups and tokens are swapped after it is the grid partition, and the proof fails with the
other kind or size written; a module that moves the values otherwise is not a partition."""

from __future__ import annotations

import pytest
import torch
from test_lift_patterns import _proven_and_refused_when
from torch import nn
from torchvision.models.maxvit import PartitionAttentionLayer

from archc.lifting import LiftError, lift
from archc.lifting.windows import partition_leaf


def _net() -> nn.Module:
    """An 8 x 8 map through attention within 4 x 4 windows, then within a 4 x 4 grid of positions 2 apart."""
    torch.manual_seed(0)
    layers = [PartitionAttentionLayer(16, 8, 4, kind, (8, 8), 2, nn.GELU, nn.LayerNorm, 0.0, 0.0, 0.0)
              for kind in ("window", "grid")]
    return nn.Sequential(nn.Conv2d(3, 16, 1), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def test_window_and_grid_partitions_are_the_languages():
    x = torch.randn(1, 3, 8, 8)
    text = _proven_and_refused_when(_net(), x, '"1" = PartitionAttentionLayer("window"',
                                    '"1" = PartitionAttentionLayer("grid"')
    assert "partition(x, 4, kind = kind)" in text and "departition(" in text and "SwapAxes" not in text, text


class _Transposed(nn.Module):
    """WindowPartition with each window's rows and columns swapped: no partition of the language."""

    def forward(self, x, p):
        B, C, H, W = x.shape
        return x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 5, 3, 1).reshape(B, H // p * W // p, p * p, C)


def test_a_module_that_moves_values_otherwise_is_no_partition():
    x = torch.randn(1, 16, 8, 8)
    assert partition_leaf(_Transposed(), "p", ((x, 4), {})) is None
    net = _net()
    net[1].partition_op = _Transposed()
    with pytest.raises(LiftError, match="relative_attention needs G groups"):
        lift(net.eval(), torch.randn(1, 3, 8, 8))


class _Windows(nn.Module):
    """DaViT's spatial attention, channels last: the map cut into 4 x 4 windows folded into the batch (timm's
    window_partition, (N G) x 16 x C), attention within each (timm's DaViT WindowAttention, traced with N G rows),
    and the windows put back (window_reverse)."""

    def __init__(self, dim: int = 16, ws: int = 4, how: str = "davit"):
        super().__init__()
        from timm.models import davit, swin_transformer

        self.ws, self.tiny_vit = ws, how == "tiny_vit"
        self.norm = nn.LayerNorm(dim)
        if how == "swin":  # Swin's, unshifted: its relative position bias, a table of every sample, is the mask
            self.attn = swin_transformer.WindowAttention(dim, num_heads=2, window_size=ws)
        else:
            self.attn = davit.WindowAttention(dim, (ws, ws), num_heads=2)

    def forward(self, x):
        from timm.models.davit import window_partition, window_reverse

        B, C, H, W = x.shape
        x = self.norm(x.permute(0, 2, 3, 1))
        ws, nH, nW = self.ws, H // self.ws, W // self.ws
        if self.tiny_vit:  # TinyViT's: the batch size times the windows' count, and the batch first back
            x = x.view(B, nH, ws, nW, ws, C).transpose(2, 3).reshape(B * nH * nW, ws * ws, C)
            x = self.attn(x).view(B, nH, nW, ws, ws, C).transpose(2, 3).reshape(B, H, W, C)
            return x.permute(0, 3, 1, 2)
        windows = window_partition(x, (self.ws, self.ws)).view(-1, self.ws * self.ws, C)
        windows = self.attn(windows).view(-1, self.ws, self.ws, C)
        return window_reverse(windows, (self.ws, self.ws), H, W).permute(0, 3, 1, 2)


@pytest.mark.parametrize("how", ["davit", "tiny_vit", "swin"])
def test_windows_folded_into_the_batch_are_groups_of_tokens(how):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 1), _Windows(how=how), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 4))
    right = "partition(permute(norm(permute(x, (0, 2, 3, 1))), (0, 3, 1, 2)), 4)"
    text = _proven_and_refused_when(net, torch.randn(1, 3, 8, 8), right, right[:-1] + ', kind = "grid")')
    assert "block WindowAttention() (x: 4 x 16 x 16)" in text and "reshape(qkv(x), (4, 16, 3, 2, 8))" in text, text
    assert ("lookup(" in text) == (how == "swin"), text


class _TokensBack(nn.Module):
    """A map through normalised tokens and back, as DaViT's blocks give it: ``x.transpose(1, 2).view(B, C, H, W)``,
    a map whose memory is channels last (its batch's stride that of one position's channels)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        B, C, H, W = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).view(B, C, H, W)


def test_a_sum_whose_order_sets_its_layout_is_written_in_that_order():
    """DaViT's ConvPosEnc, ``x + act(proj(x))`` on such a map: the conv's output is contiguous, so the sum's layout
    is the first tensor's; written as a residual (the branch first) the pool after it rounded otherwise on
    davit_tiny (2.7e-7, tried), so it is written in the original's order."""
    from timm.models.davit import ConvPosEnc

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 96, 1), _TokensBack(96), ConvPosEnc(96), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    text = lift(net.eval(), torch.randn(1, 3, 7, 7))
    assert "let y = x + act(proj(x))" in text, text


@pytest.mark.slow
def test_davit_tiny_round_trips():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("davit_tiny").eval()
    text = lift(model, torch.randn(1, 3, 224, 224))
    assert "partition(permute(" in text and "let y = x + act(proj(x))" in text


class _Mixed(nn.Module):
    """Windows folded into the batch, then mixed across it (a mean over the B x G rows), or each window's rows and
    columns swapped before its tokens are read: no partition of the language."""

    def __init__(self, swapped: bool):
        super().__init__()
        self.swapped = swapped

    def forward(self, x):
        from timm.models.davit import window_partition

        B, C, H, W = x.shape
        windows = window_partition(x.permute(0, 2, 3, 1), (4, 4))
        if self.swapped:
            return windows.transpose(1, 2).reshape(-1, 16, C).softmax(-1)
        return windows.view(-1, 16, C).mean(0, keepdim=True).view(B, 4, 4, C)


@pytest.mark.parametrize("swapped, message", [
    (False, "'mean' of windows folded into the batch cannot be written"),
    (True, "moves windows folded into the batch otherwise than into the language's partition")])
def test_folded_windows_read_otherwise_are_refused_with_the_module_path(swapped, message):
    net = nn.Sequential(nn.Conv2d(3, 8, 1), _Mixed(swapped))
    with pytest.raises(LiftError, match=r"1 \(_Mixed\): " + message):
        lift(net.eval(), torch.randn(1, 3, 8, 8))


def test_folded_windows_on_the_meta_device_are_refused():
    net = nn.Sequential(nn.Conv2d(3, 16, 1), _Windows()).to("meta")
    with pytest.raises(LiftError, match="1 \\(_Windows\\): folds windows into the batch on the meta device"):
        lift(net.eval(), torch.randn(1, 3, 8, 8, device="meta"))
