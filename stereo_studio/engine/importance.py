"""Per-channel importance of every prunable group, with a selectable criterion.

`CRITERIA_REGISTRY` is the one list of criteria (name, label, whether it needs gradients, whether its scores
compare across layers, and a factory for the scorer); the CLI and the GUI take their choices from it. Every
scorer reads a Torch-Pruning dependency group: for channel c of the group, its *coupled slices* are the
output filter c of every convolution whose output is in the group, the scale (gamma) c of every BatchNorm in
it, and the input slice c of every convolution reading it (biases are not included). Definitions, checked
against hand computations in tests/engine/test_importance.py:

- `l1`: sum of |w| over the coupled slices (the group's L1 norm);
- `l2`: sqrt of the sum of w^2 over the coupled slices (the group's L2 norm);
- `bn`: |gamma| of the group's BatchNorm (the mean over its BatchNorms when a residual couples several);
  a group without BatchNorm falls back to `l1` (flagged in `LayerImportance.fallback`);
- `taylor`: first-order Taylor, sum of |w * dL/dw| over the coupled slices (BN scales included), the gradient
  summed over the calibration batches (an L1 disparity loss, see `accumulate_taylor_grads`);
- `lamp`: LAMP (Lee et al. 2021) on the squared group L2 norms m: with the channels sorted by m ascending,
  score_i = m_i / sum_{j >= i} m_j (the largest channel of a layer scores 1; comparable across layers).

Scores are raw (no normalisation) except LAMP. `channel_importance` returns an `ImportanceReport` a plot draws
directly; `removed(ratio)` gives the channel indices a ratio drops (the same ones `prune_model` drops, from
the same plan), and `display_scores()` a scale that separates channels (their rank in the global ranking).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stereo_studio.errors import StereoStudioError

if TYPE_CHECKING:  # torch loads lazily: the CLI builds its parser (criterion choices) before torch loads
    import torch
    from torch import nn

    from stereo_studio.engine.pruning import PruningGraph, PruningPlan

Scorer = Callable[[Any], "torch.Tensor | None"]


def _handlers() -> tuple[tuple, tuple, tuple]:
    from torch_pruning.pruner import function as tpf

    return (
        (tpf.prune_conv_out_channels, tpf.prune_linear_out_channels, tpf.prune_depthwise_conv_out_channels),
        (tpf.prune_conv_in_channels, tpf.prune_linear_in_channels),
        (tpf.prune_batchnorm_out_channels,),
    )


# ---- coupled slices of a group --------------------------------------------------------------------------


@dataclass
class _Slice:
    kind: str  # "out" (a convolution's output filters), "in" (a reader's input slices) or "bn" (scales)
    values: torch.Tensor  # rows: one per group channel listed in `root_idxs`
    grads: torch.Tensor | None
    root_idxs: list[int]


def _rows(t: torch.Tensor | None, idxs: list[int]) -> torch.Tensor | None:
    return None if t is None else t.detach()[idxs].flatten(1).double()


def coupled_slices(group: Any) -> list[_Slice]:
    """Every parameter slice coupled to the group's channels (see the module docstring)."""
    from torch import nn

    out_fns, in_fns, bn_fns = _handlers()
    out: list[_Slice] = []
    for i, (dep, idxs) in enumerate(group):
        layer, fn = dep.target.module, dep.handler
        root_idxs = list(group[i].root_idxs)
        if not isinstance(layer, nn.Module) or any(r is None for r in root_idxs):
            continue
        idxs = list(idxs)
        if fn in out_fns and isinstance(layer, nn.modules.conv._ConvNd | nn.Linear):
            transposed = getattr(layer, "transposed", False)
            w = layer.weight.transpose(0, 1) if transposed else layer.weight
            g = None if layer.weight.grad is None else (
                layer.weight.grad.transpose(0, 1) if transposed else layer.weight.grad)
            out.append(_Slice("out", _rows(w, idxs), _rows(g, idxs), root_idxs))
        elif fn in in_fns and isinstance(layer, nn.modules.conv._ConvNd | nn.Linear):
            transposed = getattr(layer, "transposed", False)
            w = layer.weight if transposed else layer.weight.transpose(0, 1)
            g = layer.weight.grad
            if g is not None:
                g = g if transposed else g.transpose(0, 1)
            groups = getattr(layer, "groups", 1)
            if isinstance(layer, nn.modules.conv._ConvNd) and groups > 1 and groups != layer.in_channels:
                w = w.repeat(groups, *([1] * (w.dim() - 1)))
                g = None if g is None else g.repeat(groups, *([1] * (g.dim() - 1)))
            out.append(_Slice("in", _rows(w, idxs), _rows(g, idxs), root_idxs))
        elif fn in bn_fns and getattr(layer, "affine", False):
            out.append(_Slice("bn", _rows(layer.weight[:, None], idxs), _rows(
                None if layer.weight.grad is None else layer.weight.grad[:, None], idxs), root_idxs))
    return out


def _accumulate(slices: Iterable[_Slice], n: int, per_row: Callable[[_Slice], torch.Tensor | None]) -> (
        torch.Tensor | None):
    import torch

    total = torch.zeros(n, dtype=torch.float64)
    used = 0
    for s in slices:
        value = per_row(s)
        if value is None:
            continue
        total.scatter_add_(0, torch.tensor(s.root_idxs), value)
        used += 1
    return total if used else None


def _width(group: Any) -> int:
    return len(group[0].root_idxs)


def _l1(group: Any) -> torch.Tensor | None:
    return _accumulate(coupled_slices(group), _width(group), lambda s: s.values.abs().sum(1))


def _sq(group: Any) -> torch.Tensor | None:
    return _accumulate(coupled_slices(group), _width(group), lambda s: s.values.pow(2).sum(1))


def _l2(group: Any) -> torch.Tensor | None:
    sq = _sq(group)
    return None if sq is None else sq.sqrt()


def _bn(group: Any) -> torch.Tensor | None:
    slices = [s for s in coupled_slices(group) if s.kind == "bn"]
    total = _accumulate(slices, _width(group), lambda s: s.values.abs().sum(1))
    if total is None:
        return None
    counts = _accumulate(slices, _width(group), lambda s: s.values.new_ones(len(s.root_idxs)))
    return total / counts.clamp(min=1.0)


def _taylor(group: Any) -> torch.Tensor | None:
    def row(s: _Slice) -> torch.Tensor | None:
        return None if s.grads is None else (s.values * s.grads).abs().sum(1)

    return _accumulate(coupled_slices(group), _width(group), row)


def lamp_normalize(m: torch.Tensor) -> torch.Tensor:
    """LAMP scores of magnitudes `m`: sorted ascending, m_i / sum_{j >= i} m_j, returned in channel order."""
    import torch

    values, order = torch.sort(m.double(), stable=True)
    tail = torch.flip(torch.cumsum(torch.flip(values, [0]), 0), [0])
    out = torch.empty_like(values)
    out[order] = values / tail.clamp(min=1e-300)
    return out


def _lamp(group: Any) -> torch.Tensor | None:
    sq = _sq(group)
    return None if sq is None else lamp_normalize(sq)


# ---- the registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One importance criterion. `factory()` returns the scorer: Torch-Pruning group -> per-channel scores
    (float64 tensor) or None when the group has nothing it can score. `comparable`: scores mean the same in
    every layer (the global ranking uses them as they are; others are divided by each layer's mean)."""

    name: str
    label: str
    needs_gradients: bool
    comparable: bool
    description: str
    factory: Callable[[], Scorer]


CRITERIA_REGISTRY: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion("l1", "L1 magnitude", False, False,
                  "sum of |w| over the channel's coupled weights", lambda: _l1),
        Criterion("l2", "L2 magnitude", False, False,
                  "L2 norm of the channel's coupled weights", lambda: _l2),
        Criterion("bn", "BN scale", False, True,
                  "|gamma| of the channel's BatchNorm (network slimming)", lambda: _bn),
        Criterion("taylor", "Taylor", True, False,
                  "sum of |w * dL/dw| over the coupled weights, on calibration pairs", lambda: _taylor),
        Criterion("lamp", "LAMP", False, True,
                  "LAMP: squared L2 norm over the sum of the larger ones in its layer", lambda: _lamp),
    )
}
CRITERIA = tuple(CRITERIA_REGISTRY)


def get_criterion(name: str) -> Criterion:
    """The registry entry of `name` (StereoStudioError naming the known ones otherwise)."""
    try:
        return CRITERIA_REGISTRY[name]
    except KeyError:
        raise StereoStudioError(
            f"unknown importance criterion '{name}' (choose from {', '.join(CRITERIA)})"
        ) from None


def criterion_choices() -> list[tuple[str, str]]:
    """(name, label) of every criterion, for combo boxes."""
    return [(c.name, c.label) for c in CRITERIA_REGISTRY.values()]


def make_importance(criterion: str) -> Scorer:
    """The scorer behind a criterion name (group -> per-channel scores)."""
    return get_criterion(criterion).factory()


# ---- calibration data for gradient criteria --------------------------------------------------------------


def default_calib_batches(
    n: int = 2, size: tuple[int, int] = (128, 160), max_disp: int = 64, seed: int = 1234
) -> list[dict[str, Any]]:
    """`n` calibration batches of one synthetic pair each (`data.batches.sample_to_tensors` dicts)."""
    from stereo_studio.data.batches import sample_to_tensors
    from stereo_studio.data.synthetic import SyntheticStereo

    ds = SyntheticStereo(height=size[0], width=size[1], max_disp=max_disp, seed=seed, length=max(n, 1))
    return [sample_to_tensors(ds[i]) for i in range(n)]


def _batch_parts(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    if isinstance(batch, dict):
        return batch["left"], batch["right"], batch.get("disparity"), batch.get("valid")
    parts = [*batch, None, None]
    return parts[0], parts[1], parts[2], parts[3]


def accumulate_taylor_grads(model: nn.Module, calib_batches: Iterable[Any]) -> int:
    """Zero the grads, then backpropagate an L1 disparity loss over each batch (eval mode, BN frozen).

    A batch is a `sample_to_tensors` dict or a (left, right[, disparity[, valid]]) tuple; with no disparity
    the model's own detached prediction plus a small shift is used, so gradients still say which channels
    the output depends on. Returns the batch count.
    """
    import torch

    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    count = 0
    try:
        with torch.enable_grad():
            for batch in calib_batches:
                left, right, target, valid = _batch_parts(batch)
                pred = model(left, right)
                if target is not None:
                    target = target.to(pred.dtype)
                    if valid is None:
                        valid = torch.isfinite(target) & (target > 0)
                    loss = (pred - target).abs()[valid.bool()].mean()
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
    """Per-channel scores of every group of `graph` (name -> float64 vector of its output width). Groups a
    criterion cannot score (bn without BatchNorm) get L1, listed in `graph.score_fallbacks[criterion]`."""
    entry = get_criterion(criterion)
    scorer = entry.factory()
    if entry.needs_gradients:
        batches = calib_batches if calib_batches is not None else default_calib_batches()
        accumulate_taylor_grads(graph.model, batches)
    out: dict[str, np.ndarray] = {}
    fallbacks: dict[str, str] = {}
    try:
        for g in graph.groups:
            n = g.info.out_channels
            if g.info.protected:  # never pruned; its mapping may be one the graph could not follow
                out[g.info.name] = np.ones(n)
                continue
            group = g.full or graph.DG.get_pruning_group(g.info.module, g.handler, list(range(n)))
            scores = scorer(group)
            if scores is None:
                scores = _l1(group)
                fallbacks[g.info.name] = "l1"
            if scores is None:
                scores = np.ones(n)
                fallbacks[g.info.name] = "none"
            if not isinstance(scores, np.ndarray):
                scores = scores.detach().double().cpu().numpy()
            out[g.info.name] = scores.reshape(-1)[:n]
    finally:
        if entry.needs_gradients:
            graph.model.zero_grad(set_to_none=True)
    graph.score_fallbacks[criterion] = fallbacks
    return out


# ---- the report -----------------------------------------------------------------------------------------


@dataclass
class LayerImportance:
    """Scores of one layer's output channels; `members` are the coupled layers pruned with it."""

    name: str
    scores: np.ndarray
    protected: bool
    members: list[str] = field(default_factory=list)
    reason: str = ""  # why a protected layer is protected
    fallback: str = ""  # the criterion used instead when this one cannot score the layer

    @property
    def channels(self) -> int:
        return len(self.scores)


@dataclass
class ImportanceReport:
    """Channel importance of a whole model, for tables, heat maps and bar plots."""

    criterion: str
    layers: list[LayerImportance]
    round_to: int | None = 8
    seconds: float = 0.0
    graph: Any = field(default=None, repr=False, compare=False)  # the PruningGraph the scores came from
    calib_batches: Any = field(default=None, repr=False, compare=False)

    def plan(self, ratio: float, allocation: str = "global", spare: Iterable[str] = ()) -> PruningPlan:
        """The pruning plan of `ratio` (fraction of MACs removed), the one `prune_model` would use."""
        if self.graph is None:
            raise StereoStudioError("this importance report has no pruning graph to plan with")
        return self.graph.plan(ratio, None, allocation, self.round_to, self.criterion, self.calib_batches,
                               spare)

    def removed(self, ratio: float, allocation: str = "global", spare: Iterable[str] = ()) -> (
            dict[str, np.ndarray]):
        """Channel indices each unprotected layer loses at `ratio` (sorted indices), as `prune_model`."""
        scores = {layer.name: layer.scores for layer in self.layers}
        if self.graph is not None:
            widths = self.plan(ratio, allocation, spare).widths
            return self.graph.removed_channels(widths, scores)
        from stereo_studio.engine.pruning import kept_channels

        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            if not layer.protected:
                n_drop = layer.channels - kept_channels(layer.channels, ratio, self.round_to)
                if n_drop > 0:
                    out[layer.name] = np.sort(np.argsort(layer.scores, kind="stable")[:n_drop])
        return out

    def display_scores(self, mode: str = "rank") -> list[np.ndarray]:
        """Per layer, a [0, 1] value per channel that separates channels (NaN for protected layers):
        "rank" = the channel's place in the global ranking the pruning plan uses (0: goes first, 1: goes
        last; a ratio of channels removed is roughly the channels below it), "layer" = its rank within its
        layer. Raw magnitudes scaled to each layer's maximum crowd near 1 (91-100 % above 0.8 on the
        student), which hides the differences that matter."""
        if mode not in ("rank", "layer"):
            raise StereoStudioError(f"unknown display mode '{mode}' (rank, layer)")
        free = [layer for layer in self.layers if not layer.protected]
        if mode == "rank":
            comparable = get_criterion(self.criterion).comparable
            normed = {
                layer.name: layer.scores / (1.0 if comparable else max(float(layer.scores.mean()), 1e-12))
                for layer in free
            }
            everything = np.sort(np.concatenate(list(normed.values()))) if normed else np.zeros(0)
            denom = max(len(everything) - 1, 1)
        out = []
        for layer in self.layers:
            if layer.protected:
                out.append(np.full(layer.channels, np.nan))
            elif mode == "rank":
                out.append(np.searchsorted(everything, normed[layer.name], side="left") / denom)
            else:
                ranks = np.argsort(np.argsort(layer.scores, kind="stable"), kind="stable")
                out.append(ranks / max(layer.channels - 1, 1))
        return out

    def to_json(self, ratio: float | None = None) -> dict[str, Any]:
        """A JSON-able dict; with `ratio`, each layer also lists the channels that ratio removes and what the
        plan does to it ("removes 8 of 16 (ratio 0.30 -> 0.50 after rounding)"), plus the plan's summary."""
        plan = self.plan(ratio) if ratio is not None and self.graph is not None else None
        removed = self.removed(ratio) if ratio is not None else {}
        layers = []
        for layer in self.layers:
            entry: dict[str, Any] = {
                "name": layer.name,
                "channels": layer.channels,
                "protected": layer.protected,
                "reason": layer.reason,
                "members": list(layer.members),
                "scores": [float(s) for s in layer.scores],
            }
            if layer.fallback:
                entry["fallback"] = layer.fallback
            if ratio is not None:
                entry["removed"] = [int(i) for i in removed.get(layer.name, [])]
                if plan is not None:
                    entry["plan"] = plan.layer(layer.name).describe()
            layers.append(entry)
        doc: dict[str, Any] = {
            "criterion": self.criterion,
            "round_to": self.round_to,
            "ratio": ratio,
            "seconds": round(self.seconds, 4),
            "layers": layers,
        }
        if plan is not None:
            doc["plan"] = {"summary": plan.summary(), "macs_removed": round(plan.macs_removed, 4)}
        return doc


def channel_importance(
    model: nn.Module,
    criterion: str = "l1",
    calib_batches: Sequence[Any] | None = None,
    example_size: tuple[int, int] = (64, 128),
    round_to: int | None = 8,
) -> ImportanceReport:
    """Importance of every channel of every prunable group of `model` (protected groups included, flagged
    with the reason). Criteria that need gradients use `calib_batches` (`sample_to_tensors` dicts or
    (left, right, disparity[, valid]) tuples) or, if None, two synthetic pairs."""
    from stereo_studio.engine.pruning import PLAN_SIZE, pruning_graph

    get_criterion(criterion)  # fail early on a bad name
    t0 = time.perf_counter()
    graph = pruning_graph(model, example_size)
    scores = graph.scores(criterion, calib_batches)
    fallbacks = graph.score_fallbacks.get(criterion, {})
    layers = [
        LayerImportance(
            g.info.name,
            scores[g.info.name],
            g.info.protected,
            list(g.info.members),
            g.info.reason,
            fallbacks.get(g.info.name, ""),
        )
        for g in graph.groups
    ]
    graph.estimate({}, PLAN_SIZE)  # the plan's one counting pass, here in the caller's (worker) thread
    return ImportanceReport(criterion, layers, round_to, time.perf_counter() - t0, graph, calib_batches)
