"""Trade-off sweep: for a list of pruning ratios (or per-layer plans), measure params, MACs, latency and
accuracy of the pruned model, optionally after a short distillation fine-tune, and mark the Pareto front.

`measure_point` is the interactive unit (one ratio, a few validation pairs: a few seconds on the student);
`sweep` is a job yielding kind="point" events whose payload is the `SweepPoint`, so a plot can grow live.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_studio.engine.jobs import Job, Progress
from stereo_studio.errors import DataError, StereoStudioError


@dataclass
class SweepPoint:
    """One measured model. `ratio` is the global ratio (None for a per-layer plan, named by `label`)."""

    ratio: float | None
    params: int
    macs: int
    latency_ms: float
    epe: float
    d1: float
    bad3: float
    finetuned: bool = False
    label: str = ""
    pareto: bool = False
    seconds: float = 0.0
    widths: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("widths")
        return out


# ---- validation data and accuracy ------------------------------------------------------------------------


def validation_samples(
    data: Any, n: int, size: tuple[int, int] = (240, 320), max_disp: int = 64
) -> list[Any]:
    """Up to `n` `StereoSample`s with ground truth: from a dataset object, or a data spec (`synthetic` or a
    folder). Synthetic pairs use a seed distinct from the training seeds, at `size`."""
    if isinstance(data, str | Path):
        spec = str(data)
        if spec.strip().lower() == "synthetic":
            from stereo_studio.data.synthetic import SyntheticStereo

            dataset = SyntheticStereo(
                height=size[0], width=size[1], max_disp=max_disp, seed=424_242, length=n
            )
        else:
            from stereo_studio.data.datasets import open_dataset

            dataset = open_dataset(spec, limit=n)
    else:
        dataset = data
    samples = [dataset[i] for i in range(min(n, len(dataset)))]
    samples = [s for s in samples if s.disparity is not None]
    if not samples:
        raise DataError(f"no stereo pair with ground truth in '{data}': accuracy needs ground truth")
    return samples


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(255)


def accuracy_job(model: nn.Module, samples: Sequence[Any], label: str = "") -> Job[dict[str, float]]:
    """Pixel-weighted EPE (px), D1 and bad-3 (percent) of a torch model over `samples` (fp32, eval mode),
    yielding after each pair."""
    from stereo_studio.metrics import MetricAccumulator

    acc = MetricAccumulator()
    was_training = model.training
    model.eval()
    try:
        for i, s in enumerate(samples):
            with torch.inference_mode():
                pred = model(_to_tensor(s.left), _to_tensor(s.right))
            acc.add(pred[0, 0].float().numpy(), s.disparity, s.valid)
            yield Progress(
                i + 1, len(samples), f"{label} EPE pair {i + 1}/{len(samples)}".strip(), kind="log"
            )
    finally:
        model.train(was_training)
    result = acc.result("pixel")
    return {"epe": float(result["epe"]), "d1": float(result["d1"]), "bad3": float(result["bad3"])}


def drain(job: Job[Any]) -> Any:
    """Run a job to completion without reporting; return its result."""
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value


def relay(job: Job[Any], step: int, total: int | None) -> Job[Any]:
    """Re-yield an inner job's events at the outer job's `step` of `total` (one steady progress bar);
    closing the outer job closes the inner one (its clean-up runs at once)."""
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            kind = event.kind if event.kind in ("validation", "checkpoint") else "log"
            yield Progress(step, total, event.message, kind=kind, metrics=event.metrics)
    finally:
        job.close()


def accuracy(model: nn.Module, samples: Sequence[Any]) -> dict[str, float]:
    """`accuracy_job` run to completion."""
    return drain(accuracy_job(model, samples))


def latency_ms(model: nn.Module, size: tuple[int, int], runs: int = 5, max_seconds: float = 1.5) -> float:
    """Median wall time (ms) of one forward pass at `size` (fp32, inference mode, after 1 warm-up)."""
    from stereo_studio.engine.bench import measure_latency

    return float(measure_latency(model, size=size, warmup=1, runs=runs, max_seconds=max_seconds)["median_ms"])


# ---- one point -------------------------------------------------------------------------------------------


def measure_point(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    dataset: Any = "synthetic",
    val_pairs: int = 4,
    size: tuple[int, int] = (240, 320),
    criterion: str = "l1",
    round_to: int | None = 8,
    samples: Sequence[Any] | None = None,
    label: str = "",
) -> SweepPoint:
    """Prune `model` (a copy) at `ratio` / `ratios`, then measure params, MACs, latency and accuracy."""
    from stereo_studio.engine.pruning import prune_model

    t0 = time.perf_counter()
    if samples is None:
        samples = validation_samples(dataset, val_pairs, size, _max_disp(model))
    pruned = model if not ratio and not ratios else prune_model(model, ratio, ratios, criterion, round_to)
    return drain(_measure(pruned, ratio, samples, size, label, False, t0))


def _measure(
    pruned: nn.Module,
    ratio: float | None,
    samples: Sequence[Any],
    size: tuple[int, int],
    label: str,
    finetuned: bool,
    t0: float,
) -> Job[SweepPoint]:
    """Measure one model, yielding between stages and pairs (each well under a second on the student)."""
    from stereo_studio.engine.pruning import layer_widths, macs_params

    cost = macs_params(pruned, size)
    acc = yield from accuracy_job(pruned, samples, label)
    yield Progress(len(samples), len(samples), f"{label}: latency", kind="log")
    lat = latency_ms(pruned, size, max_seconds=0.6)
    return SweepPoint(
        ratio=ratio,
        params=cost["params"],
        macs=cost["macs"],
        latency_ms=lat,
        epe=acc["epe"],
        d1=acc["d1"],
        bad3=acc["bad3"],
        finetuned=finetuned,
        label=label or (f"{ratio:g}" if ratio is not None else "plan"),
        seconds=time.perf_counter() - t0,
        widths=layer_widths(pruned),
    )


def _max_disp(model: nn.Module) -> int:
    return int(getattr(model, "config", {}).get("max_disp", 64))


def pareto_front(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """Mark (and return) the points no other point beats on both latency and EPE (lower is better)."""
    front = []
    for p in points:
        dominated = any(
            (q.latency_ms <= p.latency_ms and q.epe <= p.epe)
            and (q.latency_ms < p.latency_ms or q.epe < p.epe)
            for q in points
            if q is not p
        )
        p.pareto = not dominated and math.isfinite(p.epe)
        if p.pareto:
            front.append(p)
    return sorted(front, key=lambda q: q.latency_ms)


# ---- the sweep job ---------------------------------------------------------------------------------------



def _point_event(point: SweepPoint, done: int, total: int, message: str) -> Progress:
    """The `kind="point"` event that carries one measured point (the GUI plots its payload)."""
    return Progress(done, total, message, kind="point",
                    metrics={"latency_ms": point.latency_ms, "epe": point.epe}, payload=point)

def sweep(
    model_spec: str | nn.Module,
    ratios: Sequence[float],
    data: Any = "synthetic",
    val_pairs: int = 4,
    finetune_steps: int = 0,
    teacher: str | None = None,
    plan: Mapping[str, float] | None = None,
    size: tuple[int, int] = (240, 320),
    criterion: str = "l1",
    round_to: int | None = 8,
    train_overrides: Mapping[str, Any] | None = None,
) -> Job[list[SweepPoint]]:
    """Measure a point per ratio (plus the per-layer `plan` if given), each also after `finetune_steps` of
    distillation from `teacher` when asked. Yields kind="point" events (payload: the `SweepPoint`); returns
    all points with `pareto` set (latency vs EPE)."""
    from stereo_studio.engine.pruning import load_net, prune_model

    model = load_net(model_spec)
    ratios = [float(r) for r in ratios]
    for r in ratios:
        if not 0.0 <= r < 1.0:
            raise StereoStudioError(f"sweep ratio {r} is outside [0, 1)")
    jobs: list[tuple[float | None, Mapping[str, float] | None, str]] = [(r, None, f"{r:g}") for r in ratios]
    if plan:
        jobs.append((None, dict(plan), "plan"))
    variants = [False, True] if finetune_steps > 0 else [False]
    total = len(jobs) * len(variants)
    yield Progress(0, total, "loading validation pairs")
    samples = validation_samples(data, val_pairs, size, _max_disp(model))
    points: list[SweepPoint] = []
    done = 0
    for ratio, layer_ratios, label in jobs:
        t0 = time.perf_counter()
        yield Progress(done, total, f"pruning {label}")
        pruned = (
            model
            if not ratio and not layer_ratios
            else prune_model(model, ratio, layer_ratios, criterion, round_to)
        )
        yield Progress(done, total, f"measuring {label}")
        point = yield from relay(_measure(pruned, ratio, samples, size, label, False, t0), done, total)
        points.append(point)
        done += 1
        yield _point_event(point, done, total, f"{label}: {point.latency_ms:.1f} ms, EPE {point.epe:.2f}")
        if finetune_steps > 0:
            t0 = time.perf_counter()
            tuned = yield from relay(
                _finetune(pruned, finetune_steps, teacher, data, train_overrides or {}), done, total
            )
            point = yield from relay(_measure(tuned, ratio, samples, size, label, True, t0), done, total)
            points.append(point)
            done += 1
            yield _point_event(point, done, total, f"{label} fine-tuned: EPE {point.epe:.2f}")
    pareto_front(points)
    yield Progress(total, total, "done", kind="done")
    return points


def _finetune(
    model: nn.Module, steps: int, teacher: str | None, data: Any, overrides: Mapping[str, Any]
) -> Job[nn.Module]:
    """A short distillation fine-tune of an in-memory model through the training engine (temp folder)."""
    from stereo_studio.engine.pruning import finetune_config
    from stereo_studio.engine.training import TrainConfig, train
    from stereo_studio.models.storage import load_model, save_model

    with tempfile.TemporaryDirectory(prefix="stereo-sweep-") as tmp:
        start = Path(tmp) / "start"
        save_model(model, start, {"note": "sweep fine-tune start"})
        spec = str(data) if isinstance(data, str | Path) else "synthetic"
        config = finetune_config(TrainConfig, start, teacher, spec, steps, dict(overrides))
        result = yield from train(config, Path(tmp) / "run")
        return load_model(str(result))
