"""Student: DTPnet-style real-time stereo net with no 3D convolutions, designed for a 2-core CPU.

Features to 1/4 res (two stride-2 stages), a cosine correlation volume whose D4 = max_disp / 4 disparities are
channels, concatenated with left context features and aggregated by 2D residual blocks (some dilated, plus a
1/8-res branch); a protected head gives D4 logits -> fp32 soft-argmin at 1/4 res -> x2 -> a small residual
refinement at 1/2 res from the 1/2-res left features -> x2 to full res: bilinear, or (`upsample="convex"`) a
convex mix of each pixel's 3x3 half-res neighbourhood with weights predicted by a 1x1 conv from the refinement
features (RAFT's upsampling; it starts as exactly bilinear, so a trained bilinear student can take it on).
`refine_warp`: the refinement also sees where the 1/2-res disparity fails, the mean |left - warped right| of
the 1/2-res features (its conv starts at zero, so a trained student takes it on exactly where it was).
`regression_window` R > 0: the 1/4-res soft-argmin only over the R indices either side of each pixel's peak
(`layers.windowed_soft_argmin`): beside a depth edge it takes the stronger mode instead of a value between the
two surfaces. No weights: any trained student can take it on.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stereo_studio.errors import ModelError
from stereo_studio.models.cost_volume import correlation_volume
from stereo_studio.models.layers import (
    ConvSumBN,
    InputNorm,
    ResBlock,
    bilinear_mask_logits,
    both_views,
    conv_bn,
    convex_upsample,
    pad_to_multiple,
    soft_argmin,
    warp_error,
    windowed_soft_argmin,
)
from stereo_studio.models.registry import MIN_MAX_DISP, register_architecture

UPSAMPLINGS = ("bilinear", "convex")  # the last x2, half to full resolution


class StudentFeatures(nn.Module):
    """Shared extractor: 1/2-res features (kept for refinement) and 1/4-res features; `half_block` False drops
    the residual block at 1/2 res (thin layers at high resolution cost far more time than their MACs say)."""

    def __init__(self, channels: list[int], half_block: bool = True) -> None:
        super().__init__()
        c2, c4 = channels
        self.norm = InputNorm()
        self.stem = conv_bn(3, c2, stride=2)
        self.res2 = ResBlock(c2) if half_block else nn.Identity()
        self.down = conv_bn(c2, c4, stride=2)
        self.res4 = ResBlock(c4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.res2(self.stem(self.norm(x)))
        return half, self.res4(self.down(half))


@register_architecture("student")
class StudentNet(nn.Module):
    """Distill-then-prune student (see module docstring). `config` holds every constructor argument."""

    arch_name = "student"

    def __init__(
        self,
        max_disp: int = 64,
        feature_channels: list[int] | tuple[int, ...] = (16, 32),
        corr_channels: int = 24,
        ctx_channels: int = 16,
        agg_channels: int = 48,
        agg_blocks: int = 2,
        agg_dilations: list[int] | tuple[int, ...] = (1, 2),
        low_res_channels: int = 64,
        refine_channels: int = 16,
        half_block: bool = True,
        refine_block: bool = True,
        upsample: str = "bilinear",
        refine_warp: bool = False,
        regression_window: int = 0,
    ) -> None:
        super().__init__()
        if max_disp < MIN_MAX_DISP:
            raise ModelError(f"max_disp must be at least {MIN_MAX_DISP}, got {max_disp}")
        if len(feature_channels) != 2:
            raise ModelError(f"feature_channels needs 2 widths (1/2, 1/4 res), got {list(feature_channels)}")
        if upsample not in UPSAMPLINGS:
            raise ModelError(f"upsample must be one of {', '.join(UPSAMPLINGS)}, got {upsample!r}")
        if int(regression_window) < 0:
            raise ModelError(f"regression_window must be 0 (off) or a radius > 0, got {regression_window}")
        self.config: dict[str, Any] = {
            "arch": "student",
            "max_disp": int(max_disp),
            "feature_channels": [int(c) for c in feature_channels],
            "corr_channels": int(corr_channels),
            "ctx_channels": int(ctx_channels),
            "agg_channels": int(agg_channels),
            "agg_blocks": int(agg_blocks),
            "agg_dilations": [int(d) for d in agg_dilations],
            "low_res_channels": int(low_res_channels),
            "refine_channels": int(refine_channels),
            "half_block": bool(half_block),
            "refine_block": bool(refine_block),
            "upsample": str(upsample),
            "refine_warp": bool(refine_warp),
            "regression_window": int(regression_window),
        }
        self.regression_window = int(regression_window)
        self.max_disp = int(max_disp)
        self.disparities = math.ceil(max_disp / 4)
        self.multiple = 8 if low_res_channels > 0 else 4
        c2, c4 = feature_channels
        self.features = StudentFeatures([c2, c4], half_block)
        self.corr_proj = nn.Conv2d(c4, corr_channels, 1)
        self.ctx_proj = conv_bn(c4, ctx_channels, k=1)
        self.agg_in = conv_bn(self.disparities + ctx_channels, agg_channels)
        dil = list(agg_dilations) or [1]
        self.agg = nn.Sequential(*[ResBlock(agg_channels, dil[i % len(dil)]) for i in range(agg_blocks)])
        if low_res_channels > 0:
            self.low_down = conv_bn(agg_channels, low_res_channels, stride=2)
            self.low_res = ResBlock(low_res_channels, dilation=2)
            self.low_up = conv_bn(low_res_channels, agg_channels, k=1, relu=False)
        else:
            self.low_down = self.low_res = self.low_up = None
        self.head = nn.Conv2d(agg_channels, self.disparities, 3, padding=1)
        # conv over (1/2-res features, disparity[, warping error])
        self.refine_warp = bool(refine_warp)
        self.refine_in = ConvSumBN([c2, 1, 1] if refine_warp else [c2, 1], refine_channels)
        if refine_warp:
            nn.init.zeros_(self.refine_in.convs[2].weight)
        self.refine = ResBlock(refine_channels) if refine_block else nn.Identity()
        self.refine_out = nn.Conv2d(refine_channels, 1, 3, padding=1)
        self.up_mask = nn.Conv2d(refine_channels, 9 * 4, 1) if upsample == "convex" else None
        if self.up_mask is not None:  # starts as bilinear: the weights learn where to depart from it
            nn.init.zeros_(self.up_mask.weight)
            with torch.no_grad():
                self.up_mask.bias.copy_(bilinear_mask_logits(2))

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return cls().config

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """One logit per disparity, the one-channel residual and the upsampling weights keep their widths."""
        return [m for m in (self.head, self.refine_out, self.up_mask) if m is not None]

    def forward(
        self, left: torch.Tensor, right: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h, w = left.shape[-2:]
        left_p, right_p = pad_to_multiple(left, self.multiple), pad_to_multiple(right, self.multiple)
        (half_l, quarter_l), (half_r, quarter_r) = both_views(self.features, left_p, right_p)
        cost = correlation_volume(self.corr_proj(quarter_l), self.corr_proj(quarter_r), self.disparities)
        x = self.agg(self.agg_in(torch.cat([cost, self.ctx_proj(quarter_l)], dim=1)))
        if self.low_down is not None:
            low = self.low_up(self.low_res(self.low_down(x)))
            x = x + F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.head(x)
        if self.regression_window > 0:
            disp4 = windowed_soft_argmin(logits, self.regression_window)  # fp32, in 1/4-res pixels
        else:
            disp4 = soft_argmin(logits)
        disp2 = F.interpolate(disp4, scale_factor=2, mode="bilinear", align_corners=False) * 2.0
        refine_inputs = [half_l, disp2.to(half_l.dtype)]
        if self.refine_warp:
            # detached: an input signal, not a path to train the features through, and Torch-Pruning's graph
            # then never sees the channel mean (it would block pruning the 1/2-res features)
            error = warp_error(half_l.detach(), half_r.detach(), disp2.detach())
            refine_inputs.append(error.to(half_l.dtype))
        refined = self.refine(self.refine_in(*refine_inputs))
        disp2 = F.relu(disp2 + self.refine_out(refined).float())
        if self.up_mask is not None:
            disp = convex_upsample(disp2 * 2.0, self.up_mask(refined).float(), 2, replicate=True)
        else:
            disp = F.interpolate(disp2, scale_factor=2, mode="bilinear", align_corners=False) * 2.0
        disp = disp[..., :h, :w]
        if return_features:
            feats = {"left_quarter": quarter_l, "left_half": half_l, "cost": cost, "agg": x,
                     "logits": logits, "disp_quarter": disp4 * 4.0}
            return disp, feats
        return disp
