"""Per-channel importance of every prunable group, with a selectable criterion.

Criteria: `l1` / `l2` (group magnitude of all coupled weights), `bn` (|BN scale|, network slimming; groups
without BatchNorm fall back to L1), `taylor` (first-order Taylor |w * dL/dw| accumulated over calibration
batches), `lamp` (LAMP scores, comparable across layers). Scores are raw (not normalised) except LAMP.

`channel_importance` returns an `ImportanceReport` a plot draws directly: per layer a score vector, and
`removed(ratio)` gives the channel indices a ratio would drop (the same ones `prune_model` drops).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch_pruning as tp

from stereo_studio.errors import StereoStudioError

if TYPE_CHECKING:
    from torch import nn

    from stereo_studio.engine.pruning import PruningGraph

CRITERIA = ("l1", "l2", "bn", "taylor", "lamp")


def make_importance(criterion: str) -> tp.importance.Importance:
    """The Torch-Pruning importance object behind a criterion name."""
    if criterion == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)
    if criterion == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2, normalizer=None)
    if criterion == "bn":
        return tp.importance.BNScaleImportance(normalizer=None)
    if criterion == "taylor":
        return tp.importance.GroupTaylorImportance(normalizer=None)
    if criterion == "lamp":
        return tp.importance.LAMPImportance(p=2)
    raise StereoStudioError(f"unknown importance criterion '{criterion}' (choose from {', '.join(CRITERIA)})")


def default_calib_batches(
    n: int = 2, size: tuple[int, int] = (128, 160), max_disp: int = 64, seed: int = 1234
) -> list[tuple[torch.Tensor, ...]]:
    """`n` calibration batches (left, right, disparity, valid) of one synthetic pair each."""
    from stereo_studio.data.synthetic import SyntheticStereo

    ds = SyntheticStereo(height=size[0], width=size[1], max_disp=max_disp, seed=seed, length=max(n, 1))
    return [sample_tensors(ds[i]) for i in range(n)]


def sample_tensors(sample: Any) -> tuple[torch.Tensor, ...]:
    """A `StereoSample` as (left, right, disparity, valid) tensors of batch 1 (images in [0, 1])."""
    left = torch.from_numpy(sample.left).permute(2, 0, 1)[None].float().div(255)
    right = torch.from_numpy(sample.right).permute(2, 0, 1)[None].float().div(255)
    if sample.disparity is None:
        return left, right
    disp = torch.from_numpy(np.nan_to_num(sample.disparity, nan=0.0, posinf=0.0)).float()[None, None]
    valid = torch.from_numpy(np.asarray(sample.valid, bool))[None, None]
    return left, right, disp, valid


def accumulate_taylor_grads(model: nn.Module, calib_batches: Iterable[Sequence[torch.Tensor]]) -> int:
    """Zero the grads, then backpropagate an L1 disparity loss over each batch (eval mode, BN frozen).

    A batch is (left, right, target[, valid]); with no target the model's own detached prediction plus a
    small shift is used, so gradients still say which channels the output depends on. Returns batch count.
    """
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    count = 0
    try:
        with torch.enable_grad():
            for batch in calib_batches:
                left, right = batch[0], batch[1]
                pred = model(left, right)
                if len(batch) >= 3 and batch[2] is not None:
                    target = batch[2].to(pred.dtype)
                    valid = batch[3] if len(batch) >= 4 else torch.isfinite(target) & (target > 0)
                    loss = (pred - target).abs()[valid].mean()
                else:
                    loss = (pred - (pred.detach() + 1.0)).abs().mean()
                loss.backward()
                count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise StereoStudioError("Taylor importance needs at least one calibration batch")
    return count


def group_scores(
    graph: PruningGraph, criterion: str, calib_batches: Sequence[Any] | None = None
) -> dict[str, np.ndarray]:
    """Per-channel scores of every group of `graph` (name -> float64 vector of its output width)."""
    imp = make_importance(criterion)
    fallback = make_importance("l1") if criterion == "bn" else None
    if criterion == "taylor":
        batches = calib_batches if calib_batches is not None else default_calib_batches()
        accumulate_taylor_grads(graph.model, batches)
    out: dict[str, np.ndarray] = {}
    try:
        for g in graph.groups:
            n = g.info.out_channels
            if g.info.protected:  # never pruned; its mapping may be one the graph could not follow
                out[g.info.name] = np.ones(n)
                continue
            group = g.full or graph.DG.get_pruning_group(g.info.module, g.handler, list(range(n)))
            scores = imp(group)
            if scores is None and fallback is not None:
                scores = fallback(group)
            if scores is None:
                scores = torch.ones(n)
            out[g.info.name] = scores.detach().double().cpu().numpy().reshape(-1)[:n]
    finally:
        if criterion == "taylor":
            graph.model.zero_grad(set_to_none=True)
    return out


@dataclass
class LayerImportance:
    """Scores of one layer's output channels; `members` are the coupled layers pruned with it."""

    name: str
    scores: np.ndarray
    protected: bool
    members: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return len(self.scores)


@dataclass
class ImportanceReport:
    """Channel importance of a whole model, for tables and bar plots."""

    criterion: str
    layers: list[LayerImportance]
    round_to: int | None = 8
    seconds: float = 0.0

    def removed(self, ratio: float) -> dict[str, np.ndarray]:
        """Channel indices each unprotected layer would lose at `ratio` (sorted indices)."""
        from stereo_studio.engine.pruning import kept_channels

        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            if layer.protected:
                continue
            keep = kept_channels(layer.channels, ratio, self.round_to)
            n_drop = layer.channels - keep
            if n_drop > 0:
                out[layer.name] = np.sort(np.argsort(layer.scores, kind="stable")[:n_drop])
        return out

    def to_json(self, ratio: float | None = None) -> dict[str, Any]:
        """A JSON-able dict; with `ratio`, each layer also lists the channels that ratio removes."""
        removed = self.removed(ratio) if ratio is not None else {}
        layers = []
        for layer in self.layers:
            entry: dict[str, Any] = {
                "name": layer.name,
                "channels": layer.channels,
                "protected": layer.protected,
                "members": list(layer.members),
                "scores": [float(s) for s in layer.scores],
            }
            if ratio is not None:
                entry["removed"] = [int(i) for i in removed.get(layer.name, [])]
            layers.append(entry)
        return {
            "criterion": self.criterion,
            "round_to": self.round_to,
            "ratio": ratio,
            "seconds": round(self.seconds, 4),
            "layers": layers,
        }


def channel_importance(
    model: nn.Module,
    criterion: str = "l1",
    calib_batches: Sequence[Any] | None = None,
    example_size: tuple[int, int] = (64, 128),
    round_to: int | None = 8,
) -> ImportanceReport:
    """Importance of every channel of every prunable group of `model` (protected groups included, flagged).

    Taylor uses `calib_batches` ((left, right, disparity[, valid]) tensors) or, if None, two synthetic pairs.
    """
    from stereo_studio.engine.pruning import pruning_graph

    make_importance(criterion)  # fail early on a bad name
    t0 = time.perf_counter()
    graph = pruning_graph(model, example_size)
    scores = graph.scores(criterion, calib_batches)
    layers = [
        LayerImportance(g.info.name, scores[g.info.name], g.info.protected, list(g.info.members))
        for g in graph.groups
    ]
    return ImportanceReport(criterion, layers, round_to, time.perf_counter() - t0)
