"""Trade-off sweep: one well-formed point per ratio, live events, Pareto front."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stereo_studio.data.synthetic import SyntheticStereo
from stereo_studio.engine.sweep import SweepPoint, measure_point, pareto_front, sweep
from stereo_studio.errors import StereoStudioError
from stereo_studio.models.registry import build_model, default_config

SIZE = (64, 96)


def _point(latency: float, epe: float) -> SweepPoint:
    return SweepPoint(ratio=0.0, params=1, macs=1, latency_ms=latency, epe=epe, d1=0.0, bad3=0.0)


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


def test_sweep_yields_a_point_per_ratio() -> None:
    torch.manual_seed(0)
    model = build_model(default_config("student")).eval()
    val = SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=2, length=1)
    job = sweep(model, [0.0, 0.5], val, val_pairs=1, size=SIZE)
    live = []
    try:
        while True:
            event = next(job)
            if event.kind == "point":
                live.append(event.payload)
    except StopIteration as stop:
        points = stop.value
    assert live == points and [p.ratio for p in points] == [0.0, 0.5]
    base, half = points
    assert half.params < base.params and half.macs < base.macs
    for p in points:
        doc = json.loads(json.dumps(p.to_json()))
        for key in ("ratio", "params", "macs", "latency_ms", "epe", "d1", "bad3", "pareto"):
            assert key in doc
        assert math.isfinite(p.epe) and p.latency_ms > 0 and 0 <= p.d1 <= 100 and 0 <= p.bad3 <= 100
    assert any(p.pareto for p in points)
    one = measure_point(model, 0.5, samples=[val[0]], size=SIZE)
    assert one.params == half.params and one.epe == pytest.approx(half.epe, rel=1e-5)
    with pytest.raises(StereoStudioError):
        next(sweep(model, [1.5], val, size=SIZE))


def test_closing_a_sweep_cancels_it_cleanly() -> None:
    torch.manual_seed(0)
    model = build_model(default_config("student")).eval()
    val = SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=2, length=1)
    job = sweep(model, [0.25, 0.5, 0.75], val, val_pairs=1, size=SIZE)
    first = next(job)
    assert first.total == 3 and first.kind != "point"
    job.close()  # what the GUI's quit() does
    with pytest.raises(StopIteration):
        next(job)
