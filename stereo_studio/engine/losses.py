"""Losses for supervised training and distillation, all computed in fp32.

- `gt_loss`: smooth-L1 to ground truth on valid pixels with 0 < gt < max_disp;
- `teacher_loss`: L1 to the teacher's disparity (DTPnet's best setting), optionally masked;
- `FeatureProjector`: 1x1 convolutions mapping named student features to the teacher's channel counts, trained
  jointly with the student, scored by MSE (feature-level distillation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stereo_studio.errors import StereoStudioError


def gt_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None,
            max_disp: float) -> torch.Tensor:
    """Smooth-L1 between `pred` and `gt` (N x 1 x H x W or N x H x W) over valid pixels below `max_disp`."""
    pred = pred.float().reshape(gt.shape[0], -1)
    gt = gt.float().reshape(gt.shape[0], -1)
    mask = torch.isfinite(gt) & (gt > 0) & (gt < max_disp)
    if valid is not None:
        mask &= valid.reshape(gt.shape[0], -1).bool()
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return F.smooth_l1_loss(pred[mask], gt[mask], reduction="mean")


def teacher_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 between the student's and the teacher's disparity (optionally on `mask` pixels only)."""
    diff = (pred.float() - target.float()).abs()
    if mask is None:
        return diff.mean()
    mask = mask.reshape(diff.shape).bool()
    if not bool(mask.any()):
        return diff.sum() * 0.0
    return diff[mask].mean()


def parse_feature_pairs(names: list[str], student: dict, teacher: dict) -> list[tuple[str, str]]:
    """Resolve feature names ("name" or "student_name:teacher_name"); empty = every name both models share."""
    if not names:
        pairs = [(n, n) for n in student if n in teacher]
        if not pairs:
            raise StereoStudioError(
                f"feature distillation: student features {sorted(student)} and teacher features "
                f"{sorted(teacher)} share no name; name the pairs as student:teacher"
            )
        return pairs
    pairs = []
    for item in names:
        s_name, _, t_name = item.partition(":")
        t_name = t_name or s_name
        if s_name not in student:
            raise StereoStudioError(f"feature distillation: the student has no feature '{s_name}' "
                                    f"(it has {', '.join(sorted(student))})")
        if t_name not in teacher:
            raise StereoStudioError(f"feature distillation: the teacher has no feature '{t_name}' "
                                    f"(it has {', '.join(sorted(teacher))})")
        pairs.append((s_name, t_name))
    return pairs


class FeatureProjector(nn.Module):
    """One 1x1 conv per (student, teacher) feature pair; `forward` returns the mean MSE over the pairs."""

    def __init__(self, pairs: list[tuple[str, str]], student_channels: dict[str, int],
                 teacher_channels: dict[str, int]) -> None:
        super().__init__()
        self.pairs = list(pairs)
        self.proj = nn.ModuleDict(
            {self._key(s, t): nn.Conv2d(student_channels[s], teacher_channels[t], 1) for s, t in self.pairs}
        )

    @staticmethod
    def _key(s: str, t: str) -> str:
        return f"{s}__to__{t}".replace(".", "_")

    def forward(self, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for s, t in self.pairs:
            target = teacher[t].float()
            proj = self.proj[self._key(s, t)](student[s])
            if proj.shape[-2:] != target.shape[-2:]:
                proj = F.interpolate(proj, size=target.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.mse_loss(proj.float(), target)
            total = loss if total is None else total + loss
        assert total is not None
        return total / len(self.pairs)
