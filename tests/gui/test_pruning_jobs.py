"""The Pruning panel's worker functions (Qt-free): a plan says what it removes, and one plan's points come
as raw then recalibrated events."""

from __future__ import annotations

import torch

from stereo_studio.data.synthetic import SyntheticStereo
from stereo_studio.engine.jobs import JobRun
from stereo_studio.gui.pruning_jobs import measure_kinds, plan_and_estimate, prepare_target
from stereo_studio.models.registry import build_model, default_config

SIZE = (64, 96)


def test_plan_and_points_of_kinds() -> None:
    torch.manual_seed(0)
    model = build_model(default_config("student")).eval()
    data = SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=4, length=3)
    target = prepare_target("student", model, data, SIZE, val_pairs=1)
    assert target.calib and len(target.samples) == 1
    est = plan_and_estimate(target, 0.4, None, "l1", SIZE)
    assert abs(est["macs_removed"] - 0.4) < 0.05 and "asked 40%" in est["summary"]
    assert est["macs"] < target.base["macs"] and "ctx_proj.0" in est["protected"]
    assert any("removes" in text for text in est["layers"].values())
    name = next(i.name for i in target.layers if not i.protected and i.out_channels == 16)
    fixed = plan_and_estimate(target, 0.4, {name: 0.3}, "l1", SIZE)
    assert fixed["layers"][name] == "removes 8 of 16 (ratio 0.30 -> 0.50 after rounding)"
    assert abs(fixed["macs_removed"] - 0.4) < 0.05  # the other layers share the rest of the target
    with JobRun(measure_kinds(target, 0.4, None, "l1", SIZE, label="0.40")) as run:
        points = [e.payload for e in run if e.kind == "point"]
    assert [p.kind for p in points] == ["raw", "recalibrated"] == [p.kind for p in run.result]
    assert {p.label for p in points} == {"0.40"}


def test_reference_points_keep_the_latency_spread_and_settings() -> None:
    from stereo_studio.gui.pruning_jobs import reference_points
    from stereo_studio.models.matchers import NetMatcher, SGBMMatcher

    torch.manual_seed(0)
    model = build_model(default_config("student")).eval()
    data = SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=4, length=1)
    entries = [("student", NetMatcher(model), "#fff"), ("sgbm", SGBMMatcher(), "#000")]
    with JobRun(reference_points(entries, [data[0]], SIZE)) as run:
        events = [e.payload for e in run if e.kind == "point"]
    assert [r.label for r in events] == ["student", "sgbm"] == [r.label for r in run.result]
    for ref in events:
        assert ref.p10_ms <= ref.latency_ms <= ref.p90_ms and ref.epe >= 0
        assert ref.threads and ref.precision and ref.wait_policy and ref.contended is False
