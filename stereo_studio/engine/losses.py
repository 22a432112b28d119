"""Losses for supervised training and distillation, all computed in fp32.

- `gt_loss`: smooth-L1 to ground truth on valid pixels with 0 < gt < max_disp;
- `teacher_loss`: L1 to the teacher's disparity (DTPnet's best setting), optionally masked;
- `edge_weights`: per-pixel weights that count the pixels near depth edges more (both losses take them);
- `FeatureProjector`: 1x1 convolutions mapping named student features to the teacher's channel counts, trained
  jointly with the student, scored by MSE (feature-level distillation);
- `PruneReadyRegularizer`: group sparsity over the pruning engine's dependency groups (prune-ready training).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stereo_studio.errors import StereoStudioError

EDGE_JUMP_PX = 1.0  # a depth edge: the disparity changes by more than this per pixel (Sobel / 8)
EDGE_RADIUS_PX = 3  # pixels within this distance of a depth edge are "near" it


def edge_weights(disp: torch.Tensor, valid: torch.Tensor | None, extra: float) -> torch.Tensor:
    """Weights N x 1 x H x W: 1 + `extra` within `EDGE_RADIUS_PX` of a depth edge of `disp`, else 1.

    `disp` is the reference disparity (ground truth, or the teacher's); invalid pixels count as 0, as in
    `models/error_regions.py`, whose "near depth edges" region these are."""
    d = disp.detach().float().reshape(disp.shape[0], 1, *disp.shape[-2:])
    ok = torch.isfinite(d) & (d > 0)
    if valid is not None:
        ok &= valid.reshape(d.shape).bool()
    d = torch.where(ok, d, torch.zeros_like(d))
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=d.device) / 8
    kernels = torch.stack([sobel, sobel.t()]).unsqueeze(1)
    grad = F.conv2d(F.pad(d, (1, 1, 1, 1), mode="replicate"), kernels).abs().sum(1, keepdim=True)
    size = 2 * EDGE_RADIUS_PX + 1
    near = F.max_pool2d((grad > EDGE_JUMP_PX).float(), size, stride=1, padding=EDGE_RADIUS_PX)
    return 1.0 + extra * near


def _weighted_mean(values: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values[mask].mean()
    w = weights.reshape(values.shape)[mask]
    return (values[mask] * w).sum() / w.sum()


def gt_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None,
            max_disp: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Smooth-L1 between `pred` and `gt` (N x 1 x H x W or N x H x W) over valid pixels below `max_disp`
    (a weighted mean with per-pixel `weights`, e.g. `edge_weights`)."""
    pred = pred.float().reshape(gt.shape[0], -1)
    gt = gt.float().reshape(gt.shape[0], -1)
    mask = torch.isfinite(gt) & (gt > 0) & (gt < max_disp)
    if valid is not None:
        mask &= valid.reshape(gt.shape[0], -1).bool()
    if not bool(mask.any()):
        return pred.sum() * 0.0
    if weights is None:
        return F.smooth_l1_loss(pred[mask], gt[mask], reduction="mean")
    return _weighted_mean(F.smooth_l1_loss(pred, torch.where(mask, gt, pred.detach()), reduction="none"),
                          mask, weights)


def teacher_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 between the student's and the teacher's disparity (optionally on `mask` pixels only, weighted
    per pixel by `weights`)."""
    diff = (pred.float() - target.float()).abs()
    if mask is None and weights is None:
        return diff.mean()
    mask = torch.ones_like(diff, dtype=torch.bool) if mask is None else mask.reshape(diff.shape).bool()
    if not bool(mask.any()):
        return diff.sum() * 0.0
    return _weighted_mean(diff, mask, weights)


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


# ---- prune-ready training: group sparsity over the pruning engine's dependency groups --------------------

SPARSITY_METHODS = ("group", "slimmable", "groupnorm", "bn")
SPARSITY_UPDATE_STEPS = 100  # the "group" method re-selects the channels meant to go this often
SPARSITY_RAMP = 0.2  # ... and its strength grows linearly over this fraction of the steps
SHRUNK = 0.05  # a channel counts as shrunk when its group norm is below this x its layer's kept median


class PruneReadyRegularizer:
    """Group-sparsity regularisation that trains a student so that structured pruning costs little.

    Built on the pruning engine's dependency graph of `model`, so it acts on exactly the channel groups
    `prune_model` prunes and never on protected layers (architecture, output layer, groups the graph
    cannot follow). Call `update()` once before training (the loop calls it every `SPARSITY_UPDATE_STEPS`),
    then every step `loss.backward(); reg.regularize(); optimizer.step(); reg.after_step(lr)` (on the
    unwrapped model under DDP: every rank applies the same deterministic change). Methods:

    - "group" (default): group lasso on the channels the engine's plan at `target_ratio` (fraction of MACs
      removed, global ranking by L2 norm) would remove, as a proximal step after the optimizer's: every
      coupled slice of such a channel (its filters, BN scale and shift, the input slices of its readers)
      shrinks so that the channel's norm drops by lr * reg per step, down to exactly zero (the GReg idea:
      regularise what will go; decoupled like AdamW's weight decay, so Adam does not cancel it). The
      channels meant to go are re-selected on the current weights by `update()`; the training loop ramps
      `reg` up over the first `SPARSITY_RAMP` of the steps, so they are chosen on learned weights;
    - "slimmable": "group" (the same channels, the same proximal step at `reg`) plus a second forward and
      backward each step with those channels removed (`masked()`), weighted by the same ramp: the network
      learns to work both whole and pruned (slimmable networks' shared weights; the pruned pass leaves the
      removed channels' gradients and every BatchNorm's running statistics alone: the pruned network keeps
      the whole one's statistics, which measured better than re-estimating them). Costs one more student
      forward and backward a step;
    - "groupnorm": Torch-Pruning's `GroupNormPruner` (the DepGraph paper's method: every group, stronger on
      its less important channels, `reg`, alpha 4);
    - "bn": Torch-Pruning's `BNScalePruner` (Network Slimming: L1 on every BN scale, `reg`).

    `stats()` measures whether it works: per channel its group L2 norm relative to the median norm of the
    channels its layer keeps; for the channels meant to go (the current plan at `target_ratio`) the median
    and 90th percentile of that ratio, and the fractions below `SHRUNK`.
    """

    def __init__(self, model: nn.Module, reg: float = 20.0, target_ratio: float = 0.5,
                 method: str = "group", round_to: int | None = 8) -> None:
        from stereo_studio.engine.pruning import pruning_graph

        if method not in SPARSITY_METHODS:
            raise StereoStudioError(f"unknown sparsity method '{method}' ({', '.join(SPARSITY_METHODS)})")
        if not 0.0 < target_ratio < 1.0:
            raise StereoStudioError(f"target ratio must be in (0, 1), got {target_ratio}")
        self.model, self.reg, self.target_ratio = model, float(reg), float(target_ratio)
        self.method, self.round_to = method, round_to
        self.graph = pruning_graph(model)
        self.selected: dict[str, list[int]] = {}
        self._slices: list[tuple[int, list[tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]]]] = []
        self._pruner = None
        if method not in ("group", "slimmable"):
            self._pruner = self._tp_pruner()

    def _tp_pruner(self) -> Any:
        import torch_pruning as tp

        from stereo_studio.engine.pruning import example_inputs

        ignored = set(self.graph.protected_modules)
        for g in self.graph.groups:  # every layer whose output width a protected group fixes (BNs too)
            if g.info.protected:
                ignored |= {m for m, is_out, _ in g.deps if is_out} | {g.info.module}
        device = next(self.model.parameters()).device
        inputs = tuple(t.to(device) for t in example_inputs((64, 128)))
        kwargs = dict(pruning_ratio=self.target_ratio, ignored_layers=list(ignored), round_to=self.round_to)
        was_training = self.model.training
        self.model.eval()
        try:
            if self.method == "groupnorm":
                importance = tp.importance.GroupMagnitudeImportance(p=2)
                pruner = tp.pruner.GroupNormPruner
                return pruner(self.model, inputs, importance, reg=self.reg, alpha=4, **kwargs)
            importance = tp.importance.BNScaleImportance()
            return tp.pruner.BNScalePruner(self.model, inputs, importance, reg=self.reg, **kwargs)
        finally:
            self.model.train(was_training)

    # ---- the channels meant to go ----------------------------------------------------------------------
    def plan_removed(self) -> dict[str, np.ndarray]:
        """Channels the engine's plan at `target_ratio` would remove now (by L2 norm, global ranking)."""
        graph = self.graph
        plan = graph.plan(self.target_ratio, round_to=self.round_to, criterion="l2")
        return graph.removed_channels(plan.widths, graph.scores("l2"))

    def update(self) -> None:
        """Re-select the channels meant to go ("group") / refresh Torch-Pruning's groups (the others)."""
        if self._pruner is not None:
            self._pruner.update_regularizer()
            return
        self.load_state({name: [int(i) for i in idxs] for name, idxs in self.plan_removed().items()})

    def state(self) -> dict[str, list[int]]:
        """The selected channels (saved in checkpoints, so a resumed run regularises the same ones)."""
        return {k: list(v) for k, v in self.selected.items()}

    def load_state(self, selected: dict[str, list[int]]) -> None:
        from stereo_studio.engine.pruning import coupled_parameters

        self.selected = {k: [int(i) for i in v] for k, v in selected.items()}
        self._slices = []
        for g in self.graph.groups:
            idxs = self.selected.get(g.info.name)
            if g.info.protected or not idxs:
                continue
            self._slices.append((len(idxs), coupled_parameters(self.graph, g.info.name, idxs)))

    # ---- the regulariser -------------------------------------------------------------------------------
    @torch.no_grad()
    def regularize(self) -> None:
        """After backward, before the optimizer step: Torch-Pruning's methods add their term to the
        gradients ("group" does nothing here: see `after_step`)."""
        if self.reg <= 0 or self._pruner is None:
            return
        if self.method == "groupnorm":
            self._pruner.regularize(self.model)
        else:
            self._pruner.regularize(self.model, reg=self.reg)

    @torch.no_grad()
    def after_step(self, lr: float, scale: float = 1.0) -> None:
        """After the optimizer step ("group"): the proximal step of the group lasso on the channels meant to
        go, every coupled slice of channel c times max(0, 1 - lr * reg * scale / ||c||): its norm drops by
        lr * reg * scale per step whatever the optimizer does with gradients (Adam normalises a gradient
        penalty away: with lr 2e-4 each weight moves at most ~2e-4 a step, measured too slow to matter)."""
        step = float(lr) * self.reg * float(scale)
        if step <= 0 or self._pruner is not None:
            return
        for count, params in self._slices:
            norm_sq = torch.zeros(count, dtype=torch.float64)
            for param, dim, idxs, pos in params:
                w = param.detach().index_select(dim, idxs).double().movedim(dim, 0)
                norm_sq.index_add_(0, pos, w.reshape(len(idxs), -1).pow(2).sum(1).cpu())
            factor = (1.0 - step / norm_sq.sqrt().clamp(min=1e-12)).clamp(min=0.0)
            for param, dim, idxs, pos in params:
                f = factor[pos].to(param.device, param.dtype).view(
                    *([1] * dim), -1, *([1] * (param.dim() - dim - 1)))
                param.data.index_copy_(dim, idxs, param.detach().index_select(dim, idxs) * f)

    @contextmanager
    def masked(self) -> Iterator[None]:
        """The model with the channels meant to go removed ("slimmable"): every coupled slice zeroed (what
        pruning removes, so a forward equals the pruned network's), restored on exit together with those
        slices' gradients (a backward inside adds none to them) and every BatchNorm's running statistics."""
        saved = [(param, dim, idxs, param.detach().index_select(dim, idxs).clone(),
                  None if param.grad is None else param.grad.index_select(dim, idxs).clone())
                 for _, params in self._slices for param, dim, idxs, _ in params]
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        stats = [{k: v.clone() for k, v in m.named_buffers(recurse=False) if v is not None} for m in norms]
        try:
            with torch.no_grad():
                for param, dim, idxs, _, _ in saved:
                    param.index_fill_(dim, idxs, 0.0)
            yield
        finally:
            with torch.no_grad():
                for param, dim, idxs, value, grad in saved:
                    param.index_copy_(dim, idxs, value)
                    if param.grad is not None:
                        if grad is None:
                            param.grad.index_fill_(dim, idxs, 0.0)
                        else:
                            param.grad.index_copy_(dim, idxs, grad)
                for m, buffers in zip(norms, stats, strict=True):
                    for k, v in buffers.items():
                        getattr(m, k).copy_(v)

    # ---- is it working? --------------------------------------------------------------------------------
    @torch.no_grad()
    def stats(self) -> dict[str, float]:
        """Group norms of the channels meant to go relative to their layer's kept channels (see the class)."""
        graph = self.graph
        norms = graph.scores("l2")
        going = {k: np.asarray(v) for k, v in self.selected.items()} if self._pruner is None else (
            self.plan_removed())
        rel_go: list[float] = []
        rel_keep: list[float] = []
        rel_all: list[float] = []
        for info in graph.prunable:
            n = norms[info.name]
            drop = np.zeros(len(n), bool)
            drop[going.get(info.name, np.zeros(0, int)).astype(int)] = True
            ref = float(np.median(n[~drop])) if (~drop).any() else float(np.median(n))
            rel = n / max(ref, 1e-12)
            rel_go += rel[drop].tolist()
            rel_keep += rel[~drop].tolist()
            rel_all += rel.tolist()
        go, keep, every = np.asarray(rel_go), np.asarray(rel_keep), np.asarray(rel_all)
        out = {
            "reg": self.reg,
            "target_ratio": self.target_ratio,
            "go_channels": float(len(go)),
            "go_norm_median": float(np.median(go)) if len(go) else 0.0,
            "go_norm_q90": float(np.quantile(go, 0.9)) if len(go) else 0.0,
            "keep_norm_q10": float(np.quantile(keep, 0.1)) if len(keep) else 0.0,
            "go_shrunk": float(np.mean(go < SHRUNK)) if len(go) else 0.0,
            "all_shrunk": float(np.mean(every < SHRUNK)) if len(every) else 0.0,
        }
        return out
