"""Teacher: CoEx / Fast-ACVNet-style stereo net with a group-wise correlation volume and 3D aggregation.

Wider 2D features to 1/4 res, a G-group correlation volume over D4 = max_disp / 4 disparities (rounded up
to even), laid out N x G x H/4 x W/4 x D4 (disparity last: see cost_volume.py), Conv3d+BN+ReLU aggregation
with one small 3D hourglass (stride-2 Conv3d, then ConvTranspose3d), a Conv3d to one channel, fp32
soft-argmin over D4, and RAFT-style convex upsampling x4 with a mask predicted from the left features.
`refine_channels` > 0 adds a residual refinement at 1/2 res (the 1/2-res left features, the disparity and the
warping error of the 1/2-res features: a conv, a residual block, a 1-channel conv that starts at zero, so a
trained teacher given it predicts the same until trained on); 0 (the default) has none.
`cascade_channels` > 0 adds a cascade stage at 1/2 res instead of one warping error: a G-group correlation of
the 1/2-res features over CASCADE_RADIUS px either side of the disparity (2 CASCADE_RADIUS + 1 hypotheses),
aggregated with the left features by a conv and a residual block into logits over the offsets (that conv
starts at zero: uniform logits, offset 0, the same predictions until trained on); the expected offset,
upsampled x2, is added.
`forward(..., return_features=True)` returns (disp, {"left_quarter", "logits" (N x D4 x h x w),
"disp_quarter" (full-res pixels, padded 1/4-res grid)}), the same keys as the student's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stereo_studio.errors import ModelError
from stereo_studio.models.cost_volume import groupwise_correlation_volume, local_groupwise_correlation
from stereo_studio.models.layers import (
    ConvSumBN,
    InputNorm,
    ResBlock,
    both_views,
    conv3d_bn,
    conv_bn,
    convex_upsample,
    pad_to_multiple,
    soft_argmin,
    warp_error,
)
from stereo_studio.models.registry import MIN_MAX_DISP, register_architecture

UPSAMPLE = 4  # 1/4 res -> full res
CASCADE_RADIUS = 3  # the cascade stage's hypotheses: +-3 px at 1/2 res (+-6 px at full res), 7 in all


class TeacherFeatures(nn.Module):
    """Shared extractor to 1/4 res: stride-2 stem + residual block, stride-2 stage + residual blocks."""

    def __init__(self, channels: list[int], blocks: int, keep_half: bool = False) -> None:
        super().__init__()
        c2, c4 = channels
        self.keep_half = keep_half
        self.norm = InputNorm()
        self.stem = conv_bn(3, c2, stride=2)
        self.res2 = ResBlock(c2)
        self.down = conv_bn(c2, c4, stride=2)
        self.res4 = nn.Sequential(*[ResBlock(c4) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        half = self.res2(self.stem(self.norm(x)))
        quarter = self.res4(self.down(half))
        return (half, quarter) if self.keep_half else quarter


class Hourglass3d(nn.Module):
    """One small 3D hourglass: stride-2 Conv3d, a Conv3d, ConvTranspose3d back, skip connection."""

    def __init__(self, channels: int, low_channels: int) -> None:
        super().__init__()
        self.down = conv3d_bn(channels, low_channels, stride=2)
        self.mid = conv3d_bn(low_channels, low_channels)
        self.up = nn.ConvTranspose3d(low_channels, channels, 3, 2, padding=1, output_padding=1, bias=False)
        self.up_bn = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.up_bn(self.up(self.mid(self.down(x)))) + x)


@register_architecture("teacher")
class TeacherNet(nn.Module):
    """Teacher (see module docstring). `config` holds every constructor argument."""

    arch_name = "teacher"

    def __init__(
        self,
        max_disp: int = 64,
        feature_channels: list[int] | tuple[int, ...] = (32, 64),
        feature_blocks: int = 2,
        gwc_channels: int = 64,
        groups: int = 8,
        agg_channels: int = 16,
        hourglass_channels: int = 32,
        agg_layers: int = 2,
        mask_channels: int = 64,
        refine_channels: int = 0,
        cascade_channels: int = 0,
    ) -> None:
        super().__init__()
        if max_disp < MIN_MAX_DISP:
            raise ModelError(f"max_disp must be at least {MIN_MAX_DISP}, got {max_disp}")
        if gwc_channels % groups:
            raise ModelError(f"gwc_channels {gwc_channels} must be a multiple of groups {groups}")
        if len(feature_channels) != 2:
            raise ModelError(f"feature_channels needs 2 widths (1/2, 1/4 res), got {list(feature_channels)}")
        if cascade_channels > 0 and feature_channels[0] % groups:
            raise ModelError(
                f"the cascade stage needs the 1/2-res features ({feature_channels[0]}) in {groups} groups")
        self.config: dict[str, Any] = {
            "arch": "teacher",
            "max_disp": int(max_disp),
            "feature_channels": [int(c) for c in feature_channels],
            "feature_blocks": int(feature_blocks),
            "gwc_channels": int(gwc_channels),
            "groups": int(groups),
            "agg_channels": int(agg_channels),
            "hourglass_channels": int(hourglass_channels),
            "agg_layers": int(agg_layers),
            "mask_channels": int(mask_channels),
            "refine_channels": int(refine_channels),
            "cascade_channels": int(cascade_channels),
        }
        self.max_disp = int(max_disp)
        self.groups = int(groups)
        self.disparities = 2 * math.ceil(max_disp / 8)  # even: the hourglass halves, doubles D4
        self.multiple = 8
        c2, c4 = feature_channels
        self.features = TeacherFeatures([c2, c4], feature_blocks,
                                        keep_half=refine_channels > 0 or cascade_channels > 0)
        self.gwc_proj = nn.Conv2d(c4, gwc_channels, 1)
        layers = [conv3d_bn(groups, agg_channels)]
        layers += [conv3d_bn(agg_channels, agg_channels) for _ in range(agg_layers - 1)]
        self.agg = nn.Sequential(*layers)
        self.hourglass = Hourglass3d(agg_channels, hourglass_channels)
        self.cost_out = nn.Conv3d(agg_channels, 1, 3, padding=1)
        self.mask = nn.Sequential(
            conv_bn(c4, mask_channels), nn.Conv2d(mask_channels, 9 * UPSAMPLE * UPSAMPLE, 1)
        )
        self.refine_out: nn.Conv2d | None = None
        if refine_channels > 0:
            self.refine_in = ConvSumBN([c2, 1, 1], refine_channels)
            self.refine = ResBlock(refine_channels)
            self.refine_out = nn.Conv2d(refine_channels, 1, 3, padding=1)
            nn.init.zeros_(self.refine_out.weight)
            nn.init.zeros_(self.refine_out.bias)
        self.cascade_proj: nn.Conv2d | None = None
        self.cascade_out: nn.Conv2d | None = None
        if cascade_channels > 0:
            hypotheses = 2 * CASCADE_RADIUS + 1
            self.cascade_proj = nn.Conv2d(c2, c2, 1)
            self.cascade_in = ConvSumBN([hypotheses * groups, c2], cascade_channels)
            self.cascade = ResBlock(cascade_channels)
            self.cascade_out = nn.Conv2d(cascade_channels, hypotheses, 3, padding=1)
            nn.init.zeros_(self.cascade_out.weight)
            nn.init.zeros_(self.cascade_out.bias)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return cls().config

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """Keep the grouped-correlation inputs (1/4 res, cascade), the 1-channel cost / refinement outputs,
        the cascade's offset logits and the mask widths."""
        kept = (self.gwc_proj, self.cost_out, self.mask[1], self.refine_out, self.cascade_proj,
                self.cascade_out)
        return [m for m in kept if m is not None]

    def forward(
        self, left: torch.Tensor, right: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h, w = left.shape[-2:]
        left_p, right_p = pad_to_multiple(left, self.multiple), pad_to_multiple(right, self.multiple)
        feat_l, feat_r = both_views(self.features, left_p, right_p)
        if self.features.keep_half:
            (half_l, feat_l), (half_r, feat_r) = feat_l, feat_r
        volume = groupwise_correlation_volume(self.gwc_proj(feat_l), self.gwc_proj(feat_r), self.groups,
                                              self.disparities)
        cost = self.cost_out(self.hourglass(self.agg(volume)))  # N x 1 x h x w x D4
        disp4 = soft_argmin(cost, dim=-1).squeeze(-1)  # fp32, 1/4-res pixels
        disp = convex_upsample(disp4 * UPSAMPLE, self.mask(feat_l).float(), UPSAMPLE)
        if self.cascade_out is not None:
            disp = self._cascaded(disp, half_l, half_r)
        if self.refine_out is not None:
            disp = self._refined(disp, half_l, half_r)
        disp = disp[..., :h, :w]
        if return_features:
            logits = cost.squeeze(1).permute(0, 3, 1, 2)  # N x D4 x h x w, like the student's head
            return disp, {"left_quarter": feat_l, "logits": logits, "disp_quarter": disp4 * UPSAMPLE}
        return disp

    def _cascaded(self, disp: torch.Tensor, half_l: torch.Tensor, half_r: torch.Tensor) -> torch.Tensor:
        """`disp` (full res) plus the expected offset of a cost volume built around it at 1/2 res."""
        disp2 = (F.avg_pool2d(disp, 2) / 2).detach()  # 1/2-res pixels; the coarse estimate is an input only
        volume = local_groupwise_correlation(self.cascade_proj(half_l), self.cascade_proj(half_r), disp2,
                                             CASCADE_RADIUS, self.groups)
        logits = self.cascade_out(self.cascade(self.cascade_in(volume.to(half_l.dtype), half_l))).float()
        return _plus_half_res(disp, soft_argmin(logits) - CASCADE_RADIUS)  # offset 0 for uniform logits

    def _refined(self, disp: torch.Tensor, half_l: torch.Tensor, half_r: torch.Tensor) -> torch.Tensor:
        """`disp` (full res) plus a residual predicted at 1/2 res from the left features and warping error."""
        disp2 = F.avg_pool2d(disp, 2) / 2  # 1/2-res pixels
        # detached: an input signal, not a path to train the features through (as in the student)
        error = warp_error(half_l.detach(), half_r.detach(), disp2.detach())
        refined = self.refine(self.refine_in(half_l, disp2.to(half_l.dtype), error.to(half_l.dtype)))
        return _plus_half_res(disp, self.refine_out(refined).float())


def _plus_half_res(disp: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """`disp` (full res) plus `delta` (1/2-res pixels, on the 1/2-res grid) upsampled x2, kept >= 0."""
    return F.relu(disp + F.interpolate(delta, scale_factor=2, mode="bilinear", align_corners=False) * 2)
