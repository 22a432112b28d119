"""Worker-side pruning helpers for the Pruning panel (no Qt): a private working copy of the model,
the per-layer plan, live estimates, measured trade-off points and reference points."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

ROUND_TO = 8


@dataclass
class PruneTarget:
    """A deep copy of the model being pruned (never the one the preview runs) and its prunable layers."""

    key: str
    model: Any
    layers: list[Any]  # engine LayerInfo: name, out_channels, protected
    samples: list[Any]
    base: dict[str, float]  # params, macs at the studio size


def prepare_target(key: str, model: Any, data: Any, size: tuple[int, int], val_pairs: int = 4) -> PruneTarget:
    """Copy `model`, trace its pruning graph and load the validation pairs used by every point."""
    from stereo_studio.engine.pruning import estimate, prunable_layers
    from stereo_studio.engine.sweep import validation_samples

    work = copy.deepcopy(model).eval()
    layers = prunable_layers(work)
    max_disp = int(getattr(work, "config", {}).get("max_disp", 64))
    samples = validation_samples(data, val_pairs, size, max_disp)
    base = estimate(work, size=size)
    return PruneTarget(key, work, layers, samples, {k: float(v) for k, v in base.items()})


def plan_and_estimate(
    target: PruneTarget, ratio: float, ratios: dict[str, float] | None, criterion: str, size: tuple[int, int]
) -> dict[str, Any]:
    """Kept widths per layer and estimated params / MACs of a plan (analytic, milliseconds)."""
    from stereo_studio.engine.pruning import estimate, plan_widths

    widths = plan_widths(
        target.model,
        ratio if not ratios else None,
        ratios or None,
        round_to=ROUND_TO,
        criterion=criterion if criterion != "taylor" else "l1",
    )
    est = estimate(
        target.model,
        ratio if not ratios else None,
        ratios or None,
        size=size,
        round_to=ROUND_TO,
        criterion=criterion if criterion != "taylor" else "l1",
    )
    return {
        "widths": widths,
        "params": est.get("params"),
        "macs": est.get("macs"),
        "ratio": ratio,
        "ratios": dict(ratios or {}),
    }


def measure(
    target: PruneTarget,
    ratio: float,
    ratios: dict[str, float] | None,
    criterion: str,
    size: tuple[int, int],
    label: str = "",
) -> Any:
    """One measured trade-off point (pruned copy: latency + accuracy on the validation pairs)."""
    from stereo_studio.engine.sweep import measure_point

    return measure_point(
        target.model,
        ratio if not ratios else None,
        ratios or None,
        size=size,
        criterion=criterion,
        round_to=ROUND_TO,
        samples=target.samples,
        label=label,
    )


@dataclass
class Reference:
    label: str
    latency_ms: float
    epe: float
    color: str


def reference_points(entries: list[tuple[str, Any, str]], samples: list[Any], size: tuple[int, int]):
    """Job: latency and EPE of each (key, matcher, colour) with the trade-off plot's protocol
    (networks: fp32 forward of the module; SGBM: its matcher), yielded one by one (kind "point")."""
    from stereo_studio.engine.bench import measure_latency
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import Progress
    from stereo_studio.engine.sweep import accuracy, latency_ms

    out = []
    for i, (key, matcher, color) in enumerate(entries):
        model = getattr(matcher, "model", None)
        yield Progress(i, len(entries), f"reference {key}")
        if model is not None:
            epe = accuracy(model, samples)["epe"]
            lat = latency_ms(model, size)
        else:
            result = yield from evaluate(matcher, samples, warmup=True)
            epe = float(result["epe"])
            lat = float(measure_latency(matcher, size, warmup=1, runs=5, max_seconds=1.5)["median_ms"])
        ref = Reference(key, lat, epe, color)
        out.append(ref)
        yield Progress(i + 1, len(entries), f"{key}: {lat:.1f} ms, EPE {epe:.2f}", kind="point", payload=ref)
    return out


def suggest(table: Any, target: PruneTarget, macs_fraction: float, size: tuple[int, int]) -> dict[str, float]:
    """Per-layer ratios from a sensitivity table (engine `suggest_plan`)."""
    from stereo_studio.engine.sensitivity import suggest_plan

    return suggest_plan(
        table, target_macs_fraction=macs_fraction, model=target.model, size=size, round_to=ROUND_TO
    )
