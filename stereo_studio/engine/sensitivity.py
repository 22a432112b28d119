"""Per-layer sensitivity: prune one layer alone at several ratios and measure the accuracy drop.

The table (rows: layer, ratio, epe, delta_epe, macs, params) draws directly as one curve per layer, and
`suggest_plan` turns it into a per-layer ratio plan that meets a MAC budget at the least accuracy cost.
`SensitivityTable.critical()` names the layers whose smallest cut alone costs too much: the pruning plans
spare them (`spare=` of `engine.pruning.plan` / `prune_model`, the GUI's slider). A ratio here is the
fraction of that layer's channels (rounded to the nearest allowed width: `kept` says what was kept). With
`recalibrate`, every row (and the baseline) is measured after re-estimating BatchNorm statistics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from stereo_studio.engine.jobs import Job, Progress
from stereo_studio.errors import StereoStudioError


@dataclass
class SensitivityRow:
    layer: str
    ratio: float
    epe: float
    delta_epe: float
    macs: int
    params: int
    channels: int
    kept: int
    kind: str = "raw"


@dataclass
class SensitivityTable:
    """Rows for every (layer, ratio), plus the unpruned baseline."""

    base_epe: float
    base_macs: int
    base_params: int
    rows: list[SensitivityRow] = field(default_factory=list)
    seconds: float = 0.0

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r.layer for r in self.rows))

    def critical(self, threshold: float = 1.0, min_px: float = 0.5) -> list[str]:
        """Layers whose smallest measured cut alone raises EPE by at least `threshold` x the baseline EPE
        (and at least `min_px` px): the ones a plan should leave whole."""
        out = []
        for layer in self.layers():
            rows = [r for r in self.rows if r.layer == layer and r.kept < r.channels]
            cut = sorted(rows, key=lambda r: r.ratio)
            if cut and cut[0].delta_epe >= max(threshold * self.base_epe, min_px):
                out.append(layer)
        return out

    def curve(self, layer: str) -> tuple[list[float], list[float]]:
        """(ratios, delta_epe) of one layer, ratio-sorted: one line of the plot."""
        rows = sorted((r for r in self.rows if r.layer == layer), key=lambda r: r.ratio)
        return [r.ratio for r in rows], [r.delta_epe for r in rows]

    def to_json(self) -> dict[str, Any]:
        return {
            "base_epe": self.base_epe,
            "base_macs": self.base_macs,
            "base_params": self.base_params,
            "seconds": round(self.seconds, 2),
            "rows": [asdict(r) for r in self.rows],
            "critical": self.critical(),
        }


def sensitivity(
    model_spec: str | nn.Module,
    data: Any = "synthetic",
    ratios: Sequence[float] = (0.25, 0.5, 0.75),
    val_pairs: int = 8,
    size: tuple[int, int] = (240, 320),
    criterion: str = "l1",
    round_to: int | None = 8,
    layers: Sequence[str] | None = None,
    recalibrate: bool = False,
    calib_pairs: int = 8,
) -> Job[SensitivityTable]:
    """For every prunable layer (or `layers`) and ratio, prune that layer alone and measure EPE on
    `val_pairs` validation pairs at `size` (after re-estimating BatchNorm statistics on `calib_pairs` pairs
    of `data` with `recalibrate`). Yields one kind="point" event per row (payload: the row)."""
    from stereo_studio.engine.pruning import macs_params, prune_model, pruning_graph, recalibrate_bn
    from stereo_studio.engine.sweep import (
        accuracy_job,
        calibration_samples,
        relay,
        validation_samples,
    )

    t0 = time.perf_counter()
    model = _load(model_spec)
    graph = pruning_graph(model)
    names = [i.name for i in graph.prunable]
    if layers:
        names = list(dict.fromkeys(graph.root_name(n) for n in layers))  # ModelError names the prunable ones
    total = len(names) * len(ratios) + 1
    yield Progress(0, total, "baseline")
    max_disp = int(getattr(model, "config", {}).get("max_disp", 64))
    samples = validation_samples(data, val_pairs, size, max_disp)
    calib = calibration_samples(data, calib_pairs, size, max_disp, skip=val_pairs) if recalibrate else None
    kind = "recalibrated" if recalibrate else "raw"

    def ready(net: nn.Module) -> nn.Module:
        return recalibrate_bn(net, calib) if calib is not None else net

    acc = yield from relay(accuracy_job(ready(model), samples, "baseline"), 0, total)
    base = acc["epe"]
    yield Progress(0, total, "baseline: MACs")
    cost = macs_params(model, size)
    table = SensitivityTable(base_epe=base, base_macs=cost["macs"], base_params=cost["params"])
    step = 1
    yield Progress(step, total, f"baseline EPE {base:.3f}")
    channels = {i.name: i.out_channels for i in graph.prunable}
    for name in names:
        for ratio in ratios:
            widths = graph.plan_widths(ratios={name: float(ratio)}, round_to=round_to)
            kept = widths[name]
            if kept >= channels[name]:  # rounding keeps everything: no change to measure
                epe, est = base, {"macs": cost["macs"], "params": cost["params"]}
            else:
                pruned = prune_model(
                    model, ratios={name: float(ratio)}, criterion=criterion, round_to=round_to
                )
                yield Progress(step, total, f"{name} @ {ratio:g}")
                job = accuracy_job(ready(pruned), samples, f"{name} @ {ratio:g}")
                acc = yield from relay(job, step, total)
                epe = acc["epe"]
                est = graph.estimate(widths, size)
            row = SensitivityRow(
                name,
                float(ratio),
                epe,
                epe - base,
                int(est["macs"]),
                int(est["params"]),
                channels[name],
                kept,
                kind,
            )
            table.rows.append(row)
            step += 1
            yield Progress(
                step,
                total,
                f"{name} @ {ratio:g}: dEPE {row.delta_epe:+.3f}",
                kind="point",
                metrics={"delta_epe": row.delta_epe},
                payload=row,
            )
    table.seconds = time.perf_counter() - t0
    return table


def _load(model_spec: str | nn.Module) -> nn.Module:
    from stereo_studio.models.storage import load_net

    return load_net(model_spec)


def suggest_plan(
    table: SensitivityTable,
    target_macs_fraction: float = 0.5,
    model: nn.Module | None = None,
    size: tuple[int, int] = (240, 320),
    round_to: int | None = 8,
) -> dict[str, float]:
    """Per-layer ratios reaching `target_macs_fraction` of the baseline MACs at the least summed EPE
    increase: greedily take the step (a layer to its next ratio) that costs the least dEPE per MAC saved.

    MACs of a combined plan are estimated with the model's graph when `model` is given (exact), otherwise by
    adding each layer's own savings (pruning a layer also thins the next layer's input, so this is a bound).
    """
    if not 0.0 < target_macs_fraction <= 1.0:
        raise StereoStudioError(f"target MAC fraction must be in (0, 1], got {target_macs_fraction}")
    target = table.base_macs * target_macs_fraction
    options: dict[str, list[Any]] = {}
    for layer in table.layers():
        options[layer] = sorted((r for r in table.rows if r.layer == layer), key=lambda r: r.ratio)
    graph = None
    if model is not None:
        from stereo_studio.engine.pruning import pruning_graph

        graph = pruning_graph(model)

    def macs_of(plan: Mapping[str, float]) -> float:
        if not plan:
            return float(table.base_macs)
        if graph is not None:
            return float(graph.estimate(graph.plan_widths(ratios=plan, round_to=round_to), size)["macs"])
        return table.base_macs - sum(table.base_macs - _row(options[k], v).macs for k, v in plan.items())

    plan: dict[str, float] = {}
    current = macs_of(plan)
    while current > target:
        best = None
        for layer, rows in options.items():
            now = plan.get(layer, 0.0)
            # the next ratio that removes something: a small one may round to no channel at all (16 * 0.25
            # with widths in multiples of 8), and the layer must still be able to go further
            nxt, saved = None, 0.0
            for row in (r for r in rows if r.ratio > now):
                saved = current - macs_of({**plan, layer: row.ratio})
                if saved > 0:
                    nxt = row
                    break
            if nxt is None:
                continue
            prev_delta = _row(rows, now).delta_epe if now > 0 else 0.0
            cost = max(nxt.delta_epe - prev_delta, 0.0) + 1e-9
            score = cost / saved
            if best is None or score < best[0]:
                best = (score, layer, nxt.ratio, current - saved)
        if best is None:
            break  # every layer is at its largest ratio: the target is out of reach
        _, layer, ratio, current = best
        plan[layer] = ratio
    return plan


def _row(rows: Sequence[SensitivityRow], ratio: float) -> SensitivityRow:
    return next(r for r in rows if abs(r.ratio - ratio) < 1e-9)
