"""Trade-off sweep: for a list of pruning ratios (or per-layer plans), measure params, MACs, latency and
accuracy of the pruned model, and mark the Pareto front.

Every point has a `kind`, and kinds are never mixed up:
- "raw": the pruned model as it is;
- "recalibrated": the same model after its BatchNorm statistics were re-estimated on a few pairs of the
  current data (`pruning.recalibrate_bn`, no labels, well under a second on the student);
- "recovered": after a short distillation from a teacher (`recover_steps` steps, the training engine).
Recalibrated and recovered points have the raw point's architecture, so they reuse its latency and cost.
`ratio` is the asked fraction of MACs removed (see `engine.pruning`); `macs_removed` what was achieved.

`measure_point` is the interactive unit (one raw point: a few seconds on the student); `point_kinds` yields
the raw, recalibrated (and recovered) points of one plan; `sweep` is a job yielding kind="point" events whose
payload is the `SweepPoint`, so a plot can grow live (raw and recalibrated points of every ratio first, then
the recovered ones, each replacing nothing: a plot upgrades the point with the same `label` in place).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from stereo_studio.engine.jobs import Job, JobRun, Progress, drain
from stereo_studio.errors import DataError, StereoStudioError

POINT_KINDS = ("raw", "recalibrated", "recovered")
CALIB_PAIRS = 8  # BatchNorm recalibration pairs (~0.5 s on the student at 240x320, 2 cores)


@dataclass(kw_only=True)
class Timing:
    """How a latency was measured: its p10-p90 spread, the threads, precision and OpenMP wait policy, and
    whether registered work (training) ran meanwhile (`contended`, `contended_by`)."""

    p10_ms: float | None = None
    p90_ms: float | None = None
    threads: int | None = None
    precision: str | None = None
    wait_policy: str | None = None
    contended: bool = False
    contended_by: list[str] = field(default_factory=list)

    @staticmethod
    def of(measurement: Mapping[str, Any]) -> dict[str, Any]:
        """The timing fields of a `bench.measure_latency` result (or of another timed object's dict)."""
        out = {k: measurement.get(k) for k in TIMING_FIELDS}
        out["contended"] = bool(out["contended"])
        out["contended_by"] = list(out["contended_by"] or ())
        return out


TIMING_FIELDS = ("p10_ms", "p90_ms", "threads", "precision", "wait_policy", "contended", "contended_by")


@dataclass
class SweepPoint(Timing):
    """One measured model. `ratio` is the asked fraction of MACs removed (None for a per-layer plan, named
    by `label`); `kind` is "raw", "recalibrated" or "recovered" (`finetuned` is True for "recovered").
    `latency_ms` is a median; `p10_ms` / `p90_ms` its spread, with the threads, precision and OpenMP wait
    policy it ran with, and `contended` when registered work (training) ran meanwhile."""

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
    kind: str = "raw"
    macs_removed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("widths")
        return out


# ---- validation data and accuracy ------------------------------------------------------------------------


def _open(data: Any, n: int, size: tuple[int, int], max_disp: int, seed: int) -> Any:
    if not isinstance(data, str | Path):
        return data
    spec = str(data)
    if spec.strip().lower() == "synthetic":
        from stereo_studio.data.synthetic import SyntheticStereo

        return SyntheticStereo(height=size[0], width=size[1], max_disp=max_disp, seed=seed, length=n)
    from stereo_studio.data.datasets import open_dataset

    return open_dataset(spec, limit=n)


def validation_samples(
    data: Any, n: int, size: tuple[int, int] = (240, 320), max_disp: int = 64
) -> list[Any]:
    """Up to `n` `StereoSample`s with ground truth: from a dataset object, or a data spec (`synthetic` or a
    folder). Synthetic pairs use a seed distinct from the training seeds, at `size`."""
    dataset = _open(data, n, size, max_disp, seed=424_242)
    samples = [dataset[i] for i in range(min(n, len(dataset)))]
    samples = [s for s in samples if s.disparity is not None]
    if not samples:
        raise DataError(f"no stereo pair with ground truth in '{data}': accuracy needs ground truth")
    return samples


def calibration_samples(
    data: Any, n: int = CALIB_PAIRS, size: tuple[int, int] = (240, 320), max_disp: int = 64, skip: int = 0
) -> list[Any]:
    """Up to `n` stereo pairs of the current data for BatchNorm recalibration (no ground truth needed):
    synthetic pairs with their own seed (not the validation ones), else the pairs after the first `skip`
    (the validation pairs) of a folder, a dataset object or a list; when there are no others, the first
    ones (their images only: labels are never used)."""
    dataset = _open(data, skip + n, size, max_disp, seed=515_151)
    count = len(dataset)
    start = skip if count > skip else 0
    return [dataset[i] for i in range(start, min(count, start + n))]


def accuracy_job(model: nn.Module, samples: Sequence[Any], label: str = "") -> Job[dict[str, float]]:
    """Pixel-weighted EPE (px), D1 and bad-3 (percent) of a torch model over `samples`, yielding after each
    pair: the engine's one accuracy loop (`engine.evaluate.evaluate`) on the model as an fp32 `NetMatcher`."""
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.models.matchers import NetMatcher

    was_training = model.training
    try:
        matcher = NetMatcher(model, precision="fp32")
        with JobRun(evaluate(matcher, samples, warmup=False)) as run:
            for event in run:
                if event.kind != "done":
                    message = f"{label} EPE pair {event.step}/{len(samples)}".strip()
                    yield Progress(event.step, len(samples), message, kind="log")
    finally:
        model.train(was_training)
    result = run.result
    return {"epe": float(result["epe"]), "d1": float(result["d1"]), "bad3": float(result["bad3"])}


def relay(job: Job[Any], step: int, total: int | None) -> Job[Any]:
    """Re-yield an inner job's events at the outer job's `step` of `total` (one steady progress bar);
    closing the outer job closes the inner one (its clean-up runs at once)."""
    with JobRun(job) as run:
        for event in run:
            kind = event.kind if event.kind in ("validation", "checkpoint") else "log"
            yield Progress(step, total, event.message, kind=kind, metrics=event.metrics)
    return run.result


def accuracy(model: nn.Module, samples: Sequence[Any]) -> dict[str, float]:
    """`accuracy_job` run to completion."""
    return drain(accuracy_job(model, samples))


def latency(
    model: nn.Module,
    size: tuple[int, int],
    runs: int = 7,
    max_seconds: float = 1.5,
    while_training: bool = True,
) -> dict[str, Any]:
    """Wall time of one forward pass at `size` (`bench.measure_latency`, after 1 warm-up): median, p10,
    p90 and the settings. Interactive points do not wait for a training job (`while_training`): they are
    marked contended."""
    from stereo_studio.engine.bench import measure_latency

    return measure_latency(
        model, size=size, warmup=1, runs=runs, max_seconds=max_seconds, while_training=while_training
    )


def latency_ms(model: nn.Module, size: tuple[int, int], **kwargs: Any) -> float:
    """The median of `latency` (ms)."""
    return float(latency(model, size, **kwargs)["median_ms"])


# ---- one point -------------------------------------------------------------------------------------------


def _max_disp(model: nn.Module) -> int:
    return int(getattr(model, "config", {}).get("max_disp", 64))


def _prune(
    model: nn.Module,
    ratio: float | None,
    ratios: Mapping[str, float] | None,
    criterion: str,
    round_to: int | None,
    allocation: str,
    spare: Iterable[str],
) -> tuple[nn.Module, float]:
    """The pruned copy (the model itself for ratio 0) and the fraction of MACs its plan removed."""
    from stereo_studio.engine.pruning import prune_model

    if not ratio and not ratios:
        return model, 0.0
    pruned = prune_model(model, ratio, ratios, criterion, round_to, allocation, spare=spare)
    return pruned, float(pruned.meta["pruning"]["macs_removed"])


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
    allocation: str = "global",
    spare: Iterable[str] = (),
) -> SweepPoint:
    """Prune `model` (a copy) at `ratio` / `ratios`, then measure params, MACs, latency and accuracy: the
    raw point (see `point_kinds` for the others)."""
    t0 = time.perf_counter()
    if samples is None:
        samples = validation_samples(dataset, val_pairs, size, _max_disp(model))
    pruned, removed = _prune(model, ratio, ratios, criterion, round_to, allocation, spare)
    return drain(_measure(pruned, ratio, samples, size, label, "raw", t0, macs_removed=removed))


def _measure(
    pruned: nn.Module,
    ratio: float | None,
    samples: Sequence[Any],
    size: tuple[int, int],
    label: str,
    kind: str,
    t0: float,
    like: SweepPoint | None = None,
    macs_removed: float = 0.0,
) -> Job[SweepPoint]:
    """Measure one model, yielding between stages and pairs (each well under a second on the student).
    With `like` (the raw point of the same architecture), its cost and latency are reused."""
    from stereo_studio.engine.pruning import layer_widths, macs_params

    tag = f"{label} ({kind})" if kind != "raw" else label
    if like is None:
        cost = macs_params(pruned, size)
    acc = yield from accuracy_job(pruned, samples, tag)
    if like is None:
        yield Progress(len(samples), len(samples), f"{tag}: latency", kind="log")
        lat = latency(pruned, size, max_seconds=0.6)
    timing = Timing.of({k: getattr(like, k) for k in TIMING_FIELDS} if like else lat)
    return SweepPoint(
        ratio=ratio,
        params=like.params if like else cost["params"],
        macs=like.macs if like else cost["macs"],
        latency_ms=like.latency_ms if like else float(lat["median_ms"]),
        epe=acc["epe"],
        d1=acc["d1"],
        bad3=acc["bad3"],
        finetuned=kind == "recovered",
        label=label or (f"{ratio:g}" if ratio is not None else "plan"),
        seconds=time.perf_counter() - t0,
        widths=dict(like.widths) if like else layer_widths(pruned),
        kind=kind,
        macs_removed=like.macs_removed if like else macs_removed,
        **timing,
    )


def point_kinds(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    samples: Sequence[Any] = (),
    size: tuple[int, int] = (240, 320),
    criterion: str = "l1",
    round_to: int | None = 8,
    label: str = "",
    calib: Sequence[Any] | None = None,
    recover_steps: int = 0,
    teacher: str | None = None,
    data: Any = "synthetic",
    train_overrides: Mapping[str, Any] | None = None,
    allocation: str = "global",
    spare: Iterable[str] = (),
    raw: SweepPoint | None = None,
) -> Job[list[SweepPoint]]:
    """Job: the points of one plan, each yielded as a kind="point" event as soon as it is measured: raw,
    then recalibrated (when `calib` pairs are given), then recovered (when `recover_steps` > 0 and a
    `teacher` is given; distilled from the recalibrated model on `data`). Returns the points. Given the
    plan's `raw` point (measured before), it is not measured again: the later kinds reuse its cost and
    latency (a recovery asked after the interactive points)."""
    t0 = time.perf_counter()
    label = label or (f"{ratio:g}" if ratio is not None else "plan")
    total = max(1, (raw is None) + (calib is not None) + (recover_steps > 0))
    yield Progress(0, total, f"pruning {label}")
    pruned, removed = _prune(model, ratio, ratios, criterion, round_to, allocation, spare)
    points = []
    if raw is None:
        job = _measure(pruned, ratio, samples, size, label, "raw", t0, None, removed)
        raw = yield from relay(job, 0, total)
        points.append(raw)
        yield _point_event(raw, 1, total, f"{label}: {raw.latency_ms:.1f} ms, EPE {raw.epe:.2f}")
    current = pruned
    if calib is not None:
        t0 = time.perf_counter()
        yield Progress(len(points), total, f"{label}: re-estimating BatchNorm statistics")
        current = _recalibrated(pruned, calib)
        job = _measure(current, ratio, samples, size, label, "recalibrated", t0, raw)
        point = yield from relay(job, len(points), total)
        points.append(point)
        yield _point_event(point, len(points), total, f"{label} recalibrated: EPE {point.epe:.2f}")
    if recover_steps > 0:
        if not teacher:
            raise StereoStudioError("recovered points need a teacher to distill from")
        t0 = time.perf_counter()
        done = len(points)
        tuned = yield from relay(
            _finetune(current, recover_steps, teacher, data, train_overrides or {}), done, total
        )
        job = _measure(tuned, ratio, samples, size, label, "recovered", t0, raw)
        point = yield from relay(job, done, total)
        points.append(point)
        yield _point_event(point, done + 1, total, f"{label} recovered: EPE {point.epe:.2f}")
    return points


def _recalibrated(model: nn.Module, calib: Sequence[Any]) -> nn.Module:
    from stereo_studio.engine.pruning import recalibrate_bn

    out = recalibrate_bn(model, calib)
    out.config, out.meta = dict(getattr(model, "config", {})), dict(getattr(model, "meta", {}))
    return out


def pareto_front(points: Sequence[SweepPoint], kind: str | None = None) -> list[SweepPoint]:
    """Mark every point that no point *of its own kind* beats on both latency and EPE (lower is better);
    return the front of `kind` (or of every kind, grouped by kind), sorted by latency."""
    for k in {p.kind for p in points}:
        same = [p for p in points if p.kind == k]
        for p in same:
            dominated = any(
                (q.latency_ms <= p.latency_ms and q.epe <= p.epe)
                and (q.latency_ms < p.latency_ms or q.epe < p.epe)
                for q in same
                if q is not p
            )
            p.pareto = not dominated and math.isfinite(p.epe)
    order = {k: i for i, k in enumerate(POINT_KINDS)}
    front = [p for p in points if p.pareto and (kind is None or p.kind == kind)]
    return sorted(front, key=lambda q: (order.get(q.kind, len(order)), q.latency_ms))


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
    recalibrate: bool = True,
    recover_steps: int | None = None,
    calib_pairs: int = CALIB_PAIRS,
    allocation: str = "global",
    spare: Iterable[str] = (),
) -> Job[list[SweepPoint]]:
    """Measure a point per ratio (plus the per-layer `plan` if given) of each kind: raw; recalibrated
    (with `recalibrate`, on `calib_pairs` pairs of `data`); recovered (after `recover_steps` distillation
    steps from `teacher`; `finetune_steps` is the old name). Raw and recalibrated points of every ratio come
    first, then the recovered ones. Yields kind="point" events (payload: the `SweepPoint`); returns all
    points with `pareto` set per kind (latency vs EPE)."""
    from stereo_studio.models.storage import load_net

    model = load_net(model_spec)
    steps = int(recover_steps if recover_steps is not None else finetune_steps)
    ratios = [float(r) for r in ratios]
    for r in ratios:
        if not 0.0 <= r < 1.0:
            raise StereoStudioError(f"sweep ratio {r} is outside [0, 1)")
    if steps > 0 and not teacher:
        raise StereoStudioError("recovered points need --teacher (they are distilled from it)")
    spare = list(spare)
    jobs: list[tuple[float | None, Mapping[str, float] | None, str]] = [(r, None, f"{r:g}") for r in ratios]
    if plan:
        jobs.append((None, dict(plan), "plan"))
    per_job = 1 + bool(recalibrate) + (steps > 0)
    total = len(jobs) * per_job
    yield Progress(0, total, "loading validation pairs")
    samples = validation_samples(data, val_pairs, size, _max_disp(model))
    calib = None
    if recalibrate:
        calib = calibration_samples(data, calib_pairs, size, _max_disp(model), skip=val_pairs)
    points: list[SweepPoint] = []
    starts: list[tuple[nn.Module, SweepPoint, str, float | None]] = []
    done = 0
    for ratio, layer_ratios, label in jobs:
        t0 = time.perf_counter()
        yield Progress(done, total, f"pruning {label}")
        pruned, removed = _prune(model, ratio, layer_ratios, criterion, round_to, allocation, spare)
        yield Progress(done, total, f"measuring {label}")
        job = _measure(pruned, ratio, samples, size, label, "raw", t0, None, removed)
        raw = yield from relay(job, done, total)
        points.append(raw)
        done += 1
        yield _point_event(raw, done, total, f"{label}: {raw.latency_ms:.1f} ms, EPE {raw.epe:.2f}")
        start = pruned
        if calib is not None:
            t0 = time.perf_counter()
            yield Progress(done, total, f"{label}: re-estimating BatchNorm statistics")
            start = _recalibrated(pruned, calib)
            point = yield from relay(
                _measure(start, ratio, samples, size, label, "recalibrated", t0, raw), done, total
            )
            points.append(point)
            done += 1
            yield _point_event(point, done, total, f"{label} recalibrated: EPE {point.epe:.2f}")
        starts.append((start, raw, label, ratio))
    if steps > 0:
        for start, raw, label, ratio in starts:
            t0 = time.perf_counter()
            tune = _finetune(start, steps, teacher, data, train_overrides or {})
            tuned = yield from relay(tune, done, total)
            point = yield from relay(
                _measure(tuned, ratio, samples, size, label, "recovered", t0, raw), done, total
            )
            points.append(point)
            done += 1
            yield _point_event(point, done, total, f"{label} recovered: EPE {point.epe:.2f}")
    pareto_front(points)
    yield Progress(total, total, "done", kind="done")
    return points


# A recovery fine-tune is short: no validation at the start, one pair at the end (the sweep measures itself);
# fp32, because bf16 autocast ("auto" on a bf16 machine) turned the loss of a pruned student to NaN at step 2
# of a 30-step recovery (measured here). lr 2e-4 and batches of 4: the bundled student pruned at 0.5
# (recalibrated EPE 4.59 on 4 synthetic pairs) recovered in 20 steps to 3.11 with the fine-tune defaults
# (lr 5e-4, batch 2), 2.57 at lr 2e-4, 2.58 at 1e-4, 2.38 at lr 2e-4 with batch 4 (60 steps: no better).
RECOVERY_OVERRIDES: dict[str, Any] = {"val_at_start": False, "val_pairs": 1, "precision": "fp32",
                                      "lr": 2e-4, "batch_size": 4}


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
        config = finetune_config(
            TrainConfig, start, teacher, spec, steps, {**RECOVERY_OVERRIDES, **dict(overrides)}
        )
        result = yield from train(config, Path(tmp) / "run")
        return load_model(str(result))
