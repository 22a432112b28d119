"""Sensitivity table: one row per (layer, ratio), and a plan that meets a MAC budget."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stereo_studio.data.synthetic import SyntheticStereo
from stereo_studio.engine.jobs import JobRun, Progress
from stereo_studio.engine.pruning import estimate, prunable_layers
from stereo_studio.engine.sensitivity import SensitivityRow, SensitivityTable, sensitivity, suggest_plan
from stereo_studio.errors import ModelError
from stereo_studio.models.registry import build_model, default_config

SIZE = (64, 96)


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(default_config("student")).eval()


def test_sensitivity_rows_are_well_formed(student: torch.nn.Module) -> None:
    layers = [i.name for i in prunable_layers(student) if not i.protected][:1]
    val = SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=3, length=1)
    job = sensitivity(student, val, ratios=(0.5, 0.75), val_pairs=1, size=SIZE, layers=layers)
    events = []
    try:
        while True:
            events.append(next(job))
    except StopIteration as stop:
        table = stop.value
    assert all(isinstance(e, Progress) for e in events)
    points = [e.payload for e in events if e.kind == "point"]
    assert points == table.rows and len(table.rows) == 2
    assert table.layers() == layers
    for row in table.rows:
        assert math.isfinite(row.epe) and row.delta_epe == pytest.approx(row.epe - table.base_epe)
        assert 0 < row.macs < table.base_macs and row.kept < row.channels
    ratios, deltas = table.curve(layers[0])
    assert ratios == [0.5, 0.75] and len(deltas) == 2
    assert json.loads(json.dumps(table.to_json()))["rows"][0]["layer"] == layers[0]
    with pytest.raises(ModelError, match="protected"):
        next(sensitivity(student, val, layers=["head"], size=SIZE))


def test_suggest_plan_meets_the_budget_cheapest_first(student: torch.nn.Module) -> None:
    names = [i.name for i in prunable_layers(student) if not i.protected]
    base = estimate(student, size=SIZE)
    table = SensitivityTable(base_epe=1.0, base_macs=base["macs"], base_params=base["params"])
    for k, name in enumerate(names):
        for ratio in (0.25, 0.5, 0.75):
            est = estimate(student, ratios={name: ratio}, size=SIZE)
            # the first layer is very sensitive, the others cheap
            delta = 10.0 * ratio if k == 0 else 0.01 * ratio
            table.rows.append(SensitivityRow(name, ratio, 1 + delta, delta, est["macs"], est["params"], 8, 4))
    plan = suggest_plan(table, 0.6, model=student, size=SIZE)
    assert names[0] not in plan
    assert estimate(student, ratios=plan, size=SIZE)["macs"] <= 0.6 * base["macs"]
    additive = suggest_plan(table, 0.6)  # without the model: per-layer savings added up
    assert additive and names[0] not in additive
    assert suggest_plan(table, 1.0) == {}


def test_plan_looks_past_a_ratio_that_rounds_to_no_cut(student: torch.nn.Module) -> None:
    """A 16-channel layer at 0.25 keeps all 16 (widths in multiples of 8): its 0.5 step must still be taken
    when it is the cheapest (the planner used to skip such a layer for good)."""
    names = [i.name for i in prunable_layers(student) if not i.protected]
    base = estimate(student, size=SIZE)
    table = SensitivityTable(base_epe=1.0, base_macs=base["macs"], base_params=base["params"])
    width = {i.name: i.out_channels for i in prunable_layers(student)}
    first_16 = next(n for n in names if width[n] == 16)
    for name in names:
        for ratio in (0.25, 0.5, 0.75):
            est = estimate(student, ratios={name: ratio}, size=SIZE)
            delta = 0.0 if name == first_16 else 1.0 + ratio  # the 16-wide layer is free to cut
            table.rows.append(SensitivityRow(name, ratio, 1 + delta, delta, est["macs"], est["params"], 8, 4))
    assert estimate(student, ratios={first_16: 0.25}, size=SIZE)["macs"] == base["macs"]  # rounds to no cut
    plan = suggest_plan(table, 0.97, model=student, size=SIZE)
    assert plan.get(first_16, 0) >= 0.5


def test_critical_layers_are_the_costly_ones() -> None:
    table = SensitivityTable(base_epe=2.0, base_macs=100, base_params=10)
    rows = [("ctx", 0.25, 16, 16, 0.0), ("ctx", 0.5, 16, 8, 13.0), ("low", 0.5, 48, 24, 1.5),
            ("cheap", 0.5, 64, 32, 0.1), ("whole", 0.25, 16, 16, 0.0)]
    for layer, ratio, channels, kept, delta in rows:
        table.rows.append(SensitivityRow(layer, ratio, 2.0 + delta, delta, 50, 5, channels, kept))
    assert table.critical() == ["ctx"]  # its first real cut (0.25 keeps all 16) more than doubles EPE
    assert table.critical(threshold=0.5) == ["ctx", "low"]
    assert table.to_json()["critical"] == ["ctx"]


def test_recalibrated_rows(student: torch.nn.Module) -> None:
    name = next(i.name for i in prunable_layers(student) if not i.protected)
    val = SyntheticStereo(height=SIZE[0], width=SIZE[1], max_disp=32, seed=3, length=3)
    job = sensitivity(student, val, ratios=(0.5,), val_pairs=1, size=SIZE, layers=[name], recalibrate=True,
                      calib_pairs=2)
    with JobRun(job) as run:
        for _ in run:
            pass
    assert [r.kind for r in run.result.rows] == ["recalibrated"]
