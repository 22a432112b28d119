"""Shared building blocks: conv-BN-ReLU stacks, residual blocks, input normalisation, padding helpers."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# ImageNet statistics: the networks take [0, 1] RGB and normalise inside.
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


def conv_bn(
    in_ch: int, out_ch: int, k: int = 3, stride: int = 1, dilation: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv2d (no bias) + BatchNorm2d (+ ReLU); 'same' padding for odd kernels."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv3d_bn(in_ch: int, out_ch: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """3x3x3 Conv3d (no bias) + BatchNorm3d (+ ReLU)."""
    layers: list[nn.Module] = [
        nn.Conv3d(in_ch, out_ch, 3, stride, padding=1, bias=False),
        nn.BatchNorm3d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (same width in and out), optional dilation."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(channels, channels, dilation=dilation)
        self.conv2 = conv_bn(channels, channels, dilation=dilation, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x)


class InputNorm(nn.Module):
    """[0, 1] RGB -> ImageNet-normalised input (fixed constants, not saved in the state dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(RGB_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _channels_last_inference(x):
            return self._rows_affine(x)
        return (x - self.mean) / self.std

    def _rows_affine(self, x: torch.Tensor) -> torch.Tensor:
        """The same normalisation on a channels-last tensor, as one multiply-add over its pixel rows.
        Broadcasting the 3-channel constants over channels-last memory runs an inner loop of 3 elements:
        254 us per 240x320 view against 31 us this way (bf16 and fp32 alike)."""
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n * h, w * c)  # a view: channels-last memory is N, H, W, C
        scale = (1.0 / self.std).reshape(c).repeat(w)
        shift = (-self.mean / self.std).reshape(c).repeat(w)
        return torch.addcmul(shift, rows, scale).view(n, h, w, c).permute(0, 3, 1, 2)


def _channels_last_inference(x: torch.Tensor) -> bool:
    """A 4-D channels-last tensor outside autograd and tracing (where the plain formula is kept)."""
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()  # (one channel or one pixel: both layouts are the same memory)
        and not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
    )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom and right of N x C x H x W so H and W are multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def both_views(extractor: nn.Module, left: torch.Tensor, right: torch.Tensor) -> tuple[Any, Any]:
    """`extractor` applied to each view. In inference (eval mode, no autograd) the two views run as one batch:
    fewer, larger convolutions, faster on a 2-core CPU, and identical results since BatchNorm then uses its
    running statistics. In training each view keeps its own BatchNorm batch statistics, and with autograd on
    (Torch-Pruning traces the graph so) each view runs alone: its graph cannot follow a batch split.
    Tensor outputs, or tuples of them, are split back per view."""
    training = any(m.training for m in extractor.modules())  # e.g. BatchNorm alone in train mode
    if training or torch.is_grad_enabled() or left.shape != right.shape:
        return extractor(left), extractor(right)
    both = extractor(torch.cat([left, right], dim=0))
    if isinstance(both, torch.Tensor):
        return tuple(both.chunk(2, dim=0))
    halves = [t.chunk(2, dim=0) for t in both]
    return tuple(h[0] for h in halves), tuple(h[1] for h in halves)


def soft_argmin(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Expected disparity index under softmax(logits) along `dim`, computed in fp32 (autocast off)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        prob = torch.softmax(logits.float(), dim=dim)
        shape = [1] * prob.dim()
        shape[dim] = prob.shape[dim]
        values = torch.arange(prob.shape[dim], dtype=prob.dtype, device=prob.device).view(shape)
        return (prob * values).sum(dim=dim, keepdim=True)



def windowed_soft_argmin(logits: torch.Tensor, radius: int, dim: int = 1) -> torch.Tensor:
    """`soft_argmin` over each pixel's most likely disparity index and the `radius` indices either side of
    it only. Where a pixel's distribution has two modes (beside a depth edge: foreground and background), the
    full expectation lands between them; this one takes the stronger mode. fp32, autocast off."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.float()
        shape = [1] * logits.dim()
        shape[dim] = logits.shape[dim]
        values = torch.arange(logits.shape[dim], dtype=logits.dtype, device=logits.device).view(shape)
        peak = logits.argmax(dim=dim, keepdim=True).to(logits.dtype)
        logits = logits.masked_fill((values - peak).abs() > radius, float("-inf"))
        return (torch.softmax(logits, dim=dim) * values).sum(dim=dim, keepdim=True)

class ConvSumBN(nn.Module):
    """ReLU(BN(sum_i conv_i(x_i))): a 3x3 conv over several inputs without concatenating them.

    Same maths as one conv over `cat(inputs)`, but Torch-Pruning 1.6 can follow it: a concat of features with
    a computed 1-channel map (e.g. a disparity) gets its channel mapping wrong and blocks pruning.
    """

    def __init__(self, in_channels: list[int], out_ch: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, out_ch, 3, padding=1, bias=False) for c in in_channels)
        self.bn = nn.BatchNorm2d(out_ch)
        self.merged: nn.Conv2d | None = None

    @torch.no_grad()
    def merge(self) -> None:
        """For inference (after the BN was folded): one conv over cat(inputs), faster than thin convs."""
        weight = torch.cat([c.weight for c in self.convs], dim=1)
        merged = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=True)
        merged.weight.copy_(weight)
        merged.bias.zero_()
        for c in self.convs:
            if c.bias is not None:
                merged.bias.add_(c.bias)
        self.merged = merged.to(weight.device, weight.dtype)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.merged is not None:
            return F.relu(self.bn(self.merged(torch.cat(inputs, dim=1))))
        out = self.convs[0](inputs[0])
        for conv, x in zip(self.convs[1:], inputs[1:], strict=True):
            out = out + conv(x)
        return F.relu(self.bn(out))


def convex_upsample(disp: torch.Tensor, mask: torch.Tensor, factor: int,
                    replicate: bool = False) -> torch.Tensor:
    """RAFT convex upsampling: each fine pixel is a softmax-weighted mix of its coarse 3x3 neighbourhood.
    `mask`: N x (9 f f) x h x w logits, channel = neighbour * f * f + row * f + column. `replicate` pads the
    coarse disparity by repeating its border (bilinear's behaviour) instead of with zeros."""
    n, _, h, w = disp.shape
    mask = torch.softmax(mask.view(n, 1, 9, factor, factor, h, w), dim=2)
    if replicate:
        patches = F.unfold(F.pad(disp, (1, 1, 1, 1), mode="replicate"), 3)
    else:
        patches = F.unfold(disp, 3, padding=1)
    up = (mask * patches.view(n, 1, 9, 1, 1, h, w)).sum(dim=2)  # N x 1 x f x f x h x w
    return up.permute(0, 1, 4, 2, 5, 3).reshape(n, 1, h * factor, w * factor)


def bilinear_mask_logits(factor: int) -> torch.Tensor:
    """The (9 f f) mask logits with which `convex_upsample(..., replicate=True)` reproduces bilinear
    interpolation (align_corners=False) up to 1e-6: an exact starting point for a learned upsampling."""
    logits = torch.empty(9, factor, factor)
    for sub_y in range(factor):
        for sub_x in range(factor):
            # the fine pixel's position on the coarse grid, relative to its own coarse pixel
            oy, ox = (sub_y + 0.5) / factor - 0.5, (sub_x + 0.5) / factor - 0.5
            for k in range(9):
                dy, dx = k // 3 - 1, k % 3 - 1
                weight = max(0.0, 1 - abs(oy - dy)) * max(0.0, 1 - abs(ox - dx))
                logits[k, sub_y, sub_x] = math.log(weight + 1e-6)
    return logits.reshape(-1)


def warp_right(right: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """`right` (N x C x H x W) sampled at x - disp (N x 1 x H x W, pixels of this resolution): bilinear,
    border values past the edge, fp32."""
    n, _, h, w = right.shape
    with torch.autocast(device_type=right.device.type, enabled=False):
        cols = torch.arange(w, dtype=torch.float32, device=right.device).view(1, 1, w)
        xs = cols - disp.float().view(n, h, w)
        ys = torch.arange(h, dtype=torch.float32, device=right.device).view(1, h, 1).expand(n, h, w)
        grid = torch.stack([2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1], dim=-1)
        return F.grid_sample(right.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_error(left: torch.Tensor, right: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over channels between `left` and `right` sampled at x - disp (bilinear, border
    values past the edge): N x 1 x H x W, small where `disp` matches the views. `disp` in pixels of this
    resolution; computed in fp32."""
    with torch.autocast(device_type=left.device.type, enabled=False):
        return (left.float() - warp_right(right, disp)).abs().mean(dim=1, keepdim=True)
