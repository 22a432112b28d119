"""Cost volumes: normalised (cosine) correlation and group-wise correlation, loop and vectorised forms.

Disparity d compares left pixel x with right pixel x - d; entries with x < d are zero. The group-wise volume
is laid out N x G x H x W x D (disparity LAST): the 3x3x3 Conv3d that follows does not care about the order
of its spatial axes, and with batch 1 PyTorch only takes oneDNN's fast Conv3d path when N*C*dim2*dim3 is large
(N x G x D x H x W at 1/4 res of 240x320 fell back to `slow_conv3d`, 5-10x slower).
`method`: "loop" (one slice per disparity, cat) or "unfold" (one unfold over the padded right features);
"auto" uses DEFAULT_METHOD, the faster of the two measured on this CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from stereo_studio.models.layers import warp_right

DEFAULT_METHOD = "loop"
METHODS = ("loop", "unfold")


def _check(left: torch.Tensor, right: torch.Tensor, groups: int, method: str) -> str:
    if left.shape != right.shape:
        raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} features differ")
    if left.shape[1] % groups:
        raise ValueError(f"{left.shape[1]} feature channels do not split into {groups} groups")
    method = DEFAULT_METHOD if method == "auto" else method
    if method not in METHODS:
        raise ValueError(f"unknown cost volume method '{method}' (loop, unfold, auto)")
    return method


def _shift_product(left: torch.Tensor, right: torch.Tensor, d: int) -> torch.Tensor:
    """left * right shifted right by d pixels, zero where x < d (all zero when d >= width); no branch on the
    width, so a traced (ONNX) graph stays right at widths below the disparity range too."""
    if d == 0:
        return left * right
    return left * F.pad(right, (d, 0))[..., : left.shape[-1]]


def _shifted_reduce(left: torch.Tensor, right: torch.Tensor, d: int, reduce: Callable) -> torch.Tensor:
    """`reduce` (over dim 1 after `regroup`) of left * right shifted right by d pixels; zero where x < d (all
    zero when d >= width).

    Only the overlap is multiplied and only the reduced result is zero-padded (padding the C-channel right
    features cost more than the products on the small student). No branch on the width, so a traced (ONNX)
    graph stays right at widths below the disparity range too."""
    if d == 0:
        return reduce(left * right)
    width = left.shape[-1]
    return F.pad(reduce(left[..., d:] * right[..., :-d]), (d, 0))[..., :width]


def _windows(right: torch.Tensor, disparities: int) -> torch.Tensor:
    """N x C x H x W x D view: [..., x, d] = right[..., x - d] (zero when x < d)."""
    return F.pad(right, (disparities - 1, 0)).unfold(3, disparities, 1).flip(-1)


def correlation_volume(
    left: torch.Tensor, right: torch.Tensor, disparities: int, normalize: bool = True, method: str = "auto"
) -> torch.Tensor:
    """N x D x H x W correlation: cosine similarity in [-1, 1] when `normalize` (sum over unit-length
    features), else the mean product over channels. (A mean of cosine terms would shrink the volume by the
    channel count and leave it too weak for the aggregation to learn from: measured, training stalled.)"""
    method = _check(left, right, 1, method)
    if normalize:
        left, right = F.normalize(left, dim=1), F.normalize(right, dim=1)
    reduce = torch.sum if normalize else torch.mean
    if method == "loop":
        def channel_reduce(p: torch.Tensor) -> torch.Tensor:
            return reduce(p, 1, keepdim=True)

        slices = [_shifted_reduce(left, right, d, channel_reduce) for d in range(disparities)]
        return torch.cat(slices, dim=1)
    return reduce(left.unsqueeze(-1) * _windows(right, disparities), 1).permute(0, 3, 1, 2).contiguous()


def groupwise_correlation_volume(
    left: torch.Tensor, right: torch.Tensor, groups: int, disparities: int, method: str = "auto"
) -> torch.Tensor:
    """N x G x H x W x D group-wise correlation (GwcNet): mean product within each of G channel groups."""
    method = _check(left, right, groups, method)
    n, c, h, w = left.shape
    if method == "loop":
        # the whole shifted product, then the groups: grouping first, or reducing only the overlap, made
        # Torch-Pruning's dependency search on the teacher run for minutes (a zero-width reshape breaks ONNX)
        slices = [
            _shift_product(left, right, d).view(n, groups, c // groups, h, w).mean(2).unsqueeze(-1)
            for d in range(disparities)
        ]
        return torch.cat(slices, dim=-1)
    prod = left.unsqueeze(-1) * _windows(right, disparities)
    return prod.view(n, groups, c // groups, h, w, disparities).mean(2)


def local_groupwise_correlation(left: torch.Tensor, right: torch.Tensor, disp: torch.Tensor, radius: int,
                                groups: int) -> torch.Tensor:
    """A cost volume around a disparity estimate (a cascade's finer stage): for each offset o in
    -radius..radius, the G-group correlation of `left` with `right` sampled at x - (disp + o) (bilinear).
    N x C x H x W features, `disp` N x 1 x H x W in pixels of this resolution -> N x (2 radius + 1) G x H x W,
    offsets major; fp32."""
    n, c, h, w = left.shape
    if right.shape != left.shape or c % groups:
        raise ValueError(f"features {tuple(left.shape)} / {tuple(right.shape)} do not fit {groups} groups")
    left = left.float()
    slices = []  # one warp per offset (a batched repeat of `right` confused Torch-Pruning's graph)
    for offset in range(-radius, radius + 1):
        product = left * warp_right(right, disp.float() + offset)
        slices.append(product.view(n, groups, c // groups, h, w).mean(dim=2))
    return torch.cat(slices, dim=1)
