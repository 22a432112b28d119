"""Trade-off sweep: points of three kinds (raw, recalibrated, recovered), live events, Pareto front per kind,
calibration pairs apart from the validation pairs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from stereo_studio.data.synthetic import SyntheticStereo
from stereo_studio.engine.jobs import JobRun
from stereo_studio.engine.sweep import (
    SweepPoint,
    calibration_samples,
    measure_point,
    pareto_front,
    point_kinds,
    sweep,
)
from stereo_studio.errors import StereoStudioError
from stereo_studio.models.registry import build_model, default_config

SIZE = (64, 96)
KEYS = ("ratio", "params", "macs", "latency_ms", "epe", "d1", "bad3", "pareto", "finetuned", "kind")


def _point(latency: float, epe: float, kind: str = "raw") -> SweepPoint:
    return SweepPoint(ratio=0.0, params=1, macs=1, latency_ms=latency, epe=epe, d1=0.0, bad3=0.0, kind=kind)


def _run(job) -> tuple[list, object]:
    events = []
    with JobRun(job) as run:
        for event in run:
            events.append(event)
    return events, run.result


def test_pareto_front_keeps_the_undominated() -> None:
    pts = [
        _point(10, 1.0),
        _point(5, 2.0),
        _point(12, 1.5),
        _point(3, 3.0),
        _point(5, 2.5),
        _point(1, math.nan),
    ]
    front = pareto_front(pts)
    assert [(p.latency_ms, p.epe) for p in front] == [(3, 3.0), (5, 2.0), (10, 1.0)]
    assert [p.pareto for p in pts] == [True, True, False, True, False, False]


def test_pareto_front_is_per_kind() -> None:
    raw, recal = _point(5, 1.0, "raw"), _point(6, 2.0, "recalibrated")
    slow = _point(7, 3.0, "recalibrated")
    front = pareto_front([raw, recal, slow])
    assert raw.pareto and recal.pareto and not slow.pareto  # the raw point does not hide the recalibrated
    assert [p.kind for p in front] == ["raw", "recalibrated"]
    assert pareto_front([raw, recal, slow], kind="recalibrated") == [recal]


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(default_config("student")).eval()


@pytest.fixture(scope="module")
def val() -> SyntheticStereo:
    return SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=2, length=3)


def test_sweep_yields_raw_and_recalibrated_points(student: torch.nn.Module, val: SyntheticStereo) -> None:
    events, points = _run(sweep(student, [0.0, 0.5], val, val_pairs=1, size=SIZE, calib_pairs=2))
    live = [e.payload for e in events if e.kind == "point"]
    assert live == points
    assert [(p.ratio, p.kind) for p in points] == [
        (0.0, "raw"), (0.0, "recalibrated"), (0.5, "raw"), (0.5, "recalibrated")]
    base, base_cal, half, half_cal = points
    assert half.params < base.params and half.macs < base.macs
    assert abs(half.macs_removed - 0.5) < 0.06 and base.macs_removed == 0.0
    for raw, cal in ((base, base_cal), (half, half_cal)):  # same architecture: same cost and latency
        assert (cal.params, cal.macs, cal.latency_ms, cal.label) == (raw.params, raw.macs, raw.latency_ms,
                                                                     raw.label)
        assert cal.epe != raw.epe and not cal.finetuned
        assert (cal.p10_ms, cal.p90_ms, cal.threads) == (raw.p10_ms, raw.p90_ms, raw.threads)
    for p in points:  # the latency's spread and the settings it was measured with
        assert p.p10_ms <= p.latency_ms <= p.p90_ms
        assert p.threads == torch.get_num_threads() and p.precision in ("fp32", "bf16") and p.wait_policy
        assert isinstance(p.contended, bool)
    for p in points:
        doc = json.loads(json.dumps(p.to_json()))
        assert set(KEYS) <= set(doc)
        assert math.isfinite(p.epe) and p.latency_ms > 0 and 0 <= p.d1 <= 100 and 0 <= p.bad3 <= 100
    assert any(p.pareto for p in points if p.kind == "raw")
    assert any(p.pareto for p in points if p.kind == "recalibrated")
    one = measure_point(student, 0.5, samples=[val[0]], size=SIZE)
    assert one.kind == "raw" and one.params == half.params and one.epe == pytest.approx(half.epe, rel=1e-5)
    with pytest.raises(StereoStudioError):
        next(sweep(student, [1.5], val, size=SIZE))
    with pytest.raises(StereoStudioError, match="teacher"):
        next(sweep(student, [0.5], val, size=SIZE, recover_steps=2))


def test_point_kinds_upgrade_one_plan(tmp_path, student: torch.nn.Module, val: SyntheticStereo) -> None:
    from stereo_studio.models.storage import save_model

    teacher = tmp_path / "teacher"
    save_model(build_model(default_config("student", agg_channels=16)), teacher, {})
    overrides = {"crop": (48, 64), "batch_size": 1, "threads": 1, "precision": "fp32", "synthetic_pairs": 4}
    job = point_kinds(student, 0.25, samples=[val[0]], size=SIZE, calib=[val[1], val[2]], recover_steps=2,
                      teacher=str(teacher), train_overrides=overrides)
    events, points = _run(job)
    shown = [e.payload for e in events if e.kind == "point"]
    assert [p.kind for p in shown] == ["raw", "recalibrated", "recovered"] and shown == points
    assert len({p.label for p in points}) == 1 and points[2].finetuned
    assert len({(p.params, p.macs, p.latency_ms) for p in points}) == 1
    # a recovery asked later, given the raw point on the plot: only the recovered point is measured, with the
    # raw point's cost and latency
    raw = dataclasses.replace(points[0], latency_ms=123.0, p10_ms=120.0, p90_ms=130.0)
    events, again = _run(point_kinds(student, 0.25, samples=[val[0]], size=SIZE, recover_steps=1,
                                     teacher=str(teacher), raw=raw, train_overrides=overrides))
    assert [p.kind for p in again] == ["recovered"] == [e.payload.kind for e in events if e.kind == "point"]
    assert (again[0].latency_ms, again[0].p10_ms, again[0].p90_ms, again[0].macs) == (123.0, 120.0, 130.0,
                                                                                      raw.macs)


def test_closing_a_sweep_cancels_it_cleanly(student: torch.nn.Module, val: SyntheticStereo) -> None:
    job = sweep(student, [0.25, 0.5, 0.75], val, val_pairs=1, size=SIZE)
    first = next(job)
    assert first.total == 6 and first.kind != "point"  # raw + recalibrated per ratio
    job.close()  # what the GUI's quit() does
    with pytest.raises(StopIteration):
        next(job)


def test_calibration_pairs_are_not_the_validation_pairs(val: SyntheticStereo) -> None:
    synth = calibration_samples("synthetic", 2, SIZE, 32, skip=4)
    from stereo_studio.engine.sweep import validation_samples

    held = validation_samples("synthetic", 2, SIZE, 32)
    assert len(synth) == 2 and not (synth[0].left == held[0].left).all()
    assert [s.name for s in calibration_samples(val, 2, skip=1)] == [val[1].name, val[2].name]
    assert [s.name for s in calibration_samples([val[0]], 8, skip=1)] == [val[0].name]  # no others
