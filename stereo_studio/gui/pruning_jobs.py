"""Worker-side pruning helpers for the Pruning panel (no Qt): a private working copy of the model,
the per-layer plan, live estimates, measured trade-off points (raw, recalibrated, recovered: see
`engine.sweep`), reference points of the opened models, and the jobs behind the panel's actions (sweep,
sensitivity, prune + fine-tune, export). The slider's ratio is the fraction of MACs removed (global
importance ranking); per-layer ratios are fractions of that layer's channels."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from stereo_studio.engine.sweep import Timing

ROUND_TO = 8


@dataclass
class PruneTarget:
    """A deep copy of the model being pruned (never the one the preview runs) and its prunable layers."""

    key: str
    model: Any
    layers: list[Any]  # engine LayerInfo: name, out_channels, protected
    samples: list[Any]
    base: dict[str, float]  # params, macs at the studio size
    calib: list[Any] | None = None  # pairs of the current data for BatchNorm recalibration
    data: Any = "synthetic"


def prepare_target(key: str, model: Any, data: Any, size: tuple[int, int], val_pairs: int = 4) -> PruneTarget:
    """Copy `model`, trace its pruning graph and load the validation pairs used by every point (and the
    pairs BatchNorm recalibration uses)."""
    from stereo_studio.engine.pruning import estimate, prunable_layers
    from stereo_studio.engine.sweep import calibration_samples, validation_samples

    work = copy.deepcopy(model).eval()
    layers = prunable_layers(work)
    max_disp = int(getattr(work, "config", {}).get("max_disp", 64))
    samples = validation_samples(data, val_pairs, size, max_disp)
    calib = calibration_samples(data, size=size, max_disp=max_disp, skip=val_pairs)
    base = estimate(work, size=size)
    return PruneTarget(key, work, layers, samples, {k: float(v) for k, v in base.items()}, calib, data)


def plan_and_estimate(
    target: PruneTarget,
    ratio: float,
    ratios: dict[str, float] | None,
    criterion: str,
    size: tuple[int, int],
    spare: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Kept widths per layer and estimated params / MACs of a plan (analytic, milliseconds once the scores
    are cached), plus what the plan does: per layer "removes k of n (ratio r -> r' after rounding)", the
    achieved fraction of MACs removed and a one-line summary. Layers in `ratios` (per-layer overrides) take
    their own channel ratio, the others share what remains of the MAC target `ratio`; `spare` layers
    (critical in the sensitivity analysis) stay whole."""
    from stereo_studio.engine.pruning import pruning_graph

    graph = pruning_graph(target.model)
    plan = graph.plan(ratio or None, ratios or None, round_to=ROUND_TO, criterion=criterion, spare=spare)
    est = graph.estimate(plan.widths, size)
    return {
        "widths": plan.widths,
        "params": est.get("params"),
        "macs": est.get("macs"),
        "ratio": ratio,
        "ratios": dict(ratios or {}),
        "macs_removed": plan.macs_removed,
        "summary": plan.summary(),
        "layers": {lp.name: lp.describe() for lp in plan.layers},
        "asked": {lp.name: lp.asked for lp in plan.layers},
        "protected": {lp.name: lp.reason for lp in plan.layers if lp.protected},
    }


def measure_kinds(
    target: PruneTarget,
    ratio: float,
    ratios: dict[str, float] | None,
    criterion: str,
    size: tuple[int, int],
    label: str = "",
    recover_steps: int = 0,
    teacher: str | None = None,
    spare: list[str] | tuple[str, ...] = (),
    recalibrate: bool = True,
    raw: Any = None,
):
    """Job: the points of one plan as kind="point" events, each as soon as it is measured: raw, then
    recalibrated (BatchNorm statistics re-estimated on the target's calibration pairs, under a second on
    the student), then recovered (`recover_steps` of distillation from `teacher`, when both are given).
    A point upgrades the earlier one with the same `label` in place (its `kind` says which it is). As in
    `plan_and_estimate`, layers in `ratios` keep their own ratio and the others share the MAC target.
    Without `recalibrate`, the recovery starts from the raw model (a recovery job after the interactive
    raw + recalibrated one: distillation re-learns the statistics anyway); given the plan's `raw` point it is
    not measured again. A recovery registers as training (measurements elsewhere queue or are marked
    contended)."""
    from stereo_studio import runtime
    from stereo_studio.engine.sweep import point_kinds

    steps = recover_steps if teacher else 0
    job = point_kinds(
        target.model,
        ratio or None,
        ratios or None,
        samples=target.samples,
        size=size,
        criterion=criterion,
        round_to=ROUND_TO,
        label=label,
        calib=target.calib if recalibrate else None,
        recover_steps=steps,
        teacher=teacher,
        data=target.data if isinstance(target.data, str) else "synthetic",
        spare=spare,
        raw=raw,
    )
    if steps <= 0:
        return (yield from job)
    with runtime.training_running():
        return (yield from job)


@dataclass
class Reference(Timing):
    """An opened model on the trade-off plot: its median latency (with how it was measured: `Timing`) and
    EPE."""

    label: str
    latency_ms: float
    epe: float
    color: str


def reference_points(entries: list[tuple[str, Any, str]], samples: list[Any], size: tuple[int, int]):
    """Job: latency and EPE of each (key, matcher, colour) with the trade-off plot's protocol (the points'
    accuracy loop for networks, `evaluate` for SGBM / ONNX; `bench.measure_latency` as the points use it,
    never waiting for a training job but marking the value contended), yielded one by one (kind "point")."""
    from stereo_studio.engine.bench import measure_latency
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import Progress
    from stereo_studio.engine.sweep import accuracy

    out = []
    for i, (key, matcher, color) in enumerate(entries):
        model = getattr(matcher, "model", None)
        yield Progress(i, len(entries), f"reference {key}")
        if model is not None and hasattr(model, "parameters"):
            epe = accuracy(model, samples)["epe"]
            lat = measure_latency(model, size, warmup=1, runs=5, max_seconds=1.5, while_training=True)
        else:
            result = yield from evaluate(matcher, samples, warmup=True)
            epe = float(result["epe"])
            lat = measure_latency(matcher, size, warmup=1, runs=5, max_seconds=1.5, while_training=True)
        ref = Reference(key, float(lat["median_ms"]), epe, color, **Timing.of(lat))
        out.append(ref)
        yield Progress(
            i + 1, len(entries), f"{key}: {ref.latency_ms:.1f} ms, EPE {epe:.2f}", kind="point", payload=ref
        )
    return out


def suggest(table: Any, target: PruneTarget, macs_fraction: float, size: tuple[int, int]) -> dict[str, float]:
    """Per-layer ratios from a sensitivity table (engine `suggest_plan`) keeping `macs_fraction` of MACs."""
    from stereo_studio.engine.sensitivity import suggest_plan

    return suggest_plan(
        table, target_macs_fraction=macs_fraction, model=target.model, size=size, round_to=ROUND_TO
    )


# ---- the long jobs of the panel's actions ----------------------------------------------------------------


def sweep_job(
    target: PruneTarget,
    ratios: Any,
    size: tuple[int, int],
    criterion: str,
    recover_steps: int = 0,
    teacher: str | None = None,
    spare: list[str] | tuple[str, ...] = (),
):
    """Job: the engine sweep over `ratios` (fractions of MACs removed) on the target's data: raw and
    recalibrated points of every ratio, then (with a teacher) the recovered ones, as kind="point" events."""
    from stereo_studio.engine.sweep import sweep

    return (
        yield from sweep(
            target.model,
            ratios,
            data=_data_of(target),
            val_pairs=len(target.samples),
            size=size,
            criterion=criterion,
            round_to=ROUND_TO,
            recalibrate=True,
            recover_steps=recover_steps if teacher else 0,
            teacher=teacher,
            spare=spare,
        )
    )


def sensitivity_job(target: PruneTarget, size: tuple[int, int], criterion: str, recalibrate: bool = True):
    """Job: the engine's per-layer sensitivity on the target's data (each cut measured after re-estimating
    BatchNorm statistics with `recalibrate`, so a layer is critical for what it holds, not for broken
    statistics); returns the `SensitivityTable` (its `critical()` layers are spared by the slider's plans)."""
    from stereo_studio.engine.sensitivity import sensitivity

    return (
        yield from sensitivity(
            target.model,
            data=_data_of(target),
            val_pairs=len(target.samples),
            size=size,
            criterion=criterion,
            round_to=ROUND_TO,
            recalibrate=recalibrate,
        )
    )


def prune_job(
    spec: str,
    out: str,
    ratio: float | None,
    ratios: dict[str, float] | None,
    criterion: str,
    steps: int,
    teacher: str | None,
    size: tuple[int, int],
    data: str = "synthetic",
    spare: list[str] | tuple[str, ...] = (),
    recalibrate: int = 8,
):
    """Job: prune `spec` with the panel's plan (MAC target `ratio`, per-layer overrides, spared layers),
    re-estimate its BatchNorm statistics on `recalibrate` pairs, save it to `out` and fine-tune it by
    distillation from `teacher` for `steps` steps (registered as training: measurements queue behind it)."""
    from stereo_studio import runtime
    from stereo_studio.engine.pruning import prune_and_finetune

    job = prune_and_finetune(
        spec,
        out,
        ratio=ratio or None,
        ratios=ratios or None,
        criterion=criterion,
        round_to=ROUND_TO,
        finetune_steps=steps,
        teacher=teacher,
        data=data,
        size=size,
        spare=spare,
        recalibrate=recalibrate,
    )
    if steps <= 0:
        return (yield from job)
    with runtime.training_running():
        return (yield from job)


def export_job(
    model: Any,
    out: str,
    ratio: float | None,
    ratios: dict[str, float] | None,
    criterion: str,
    spare: list[str] | tuple[str, ...] = (),
) -> dict:
    """Prune `model` (a copy) with the plan, then export it to ONNX (`engine.export`)."""
    from stereo_studio.engine.export import export_onnx
    from stereo_studio.engine.pruning import prune_model

    if ratio or ratios:
        model = prune_model(model, ratio or None, ratios or None, criterion, ROUND_TO, spare=spare)
    return export_onnx(model, out)


def _data_of(target: PruneTarget) -> Any:
    return target.data if isinstance(target.data, str) else target.samples
