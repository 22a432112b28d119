"""`models/ship.py`: a finished run becomes a bundled model folder with its history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.models.scripts import load_script


def _write_run(run: Path, records: list[dict], config: dict | None = None) -> None:
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text('{"arch": "student"}')
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    (run / "config.json").write_text(json.dumps(config or {"steps": 30}))
    (run / "summary.json").write_text('{"steps": 30, "train_time_s": 5.0}')
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_ship_sums_wall_time_over_sessions_and_keeps_the_curve(tmp_path: Path) -> None:
    records = [
        {"kind": "validation", "step": 0, "val_epe": 9.0, "val_bad2": 90.0, "val_bad3": 80.0},
        {"kind": "step", "step": 10, "time_s": 10.0},
        {"kind": "step", "step": 20, "time_s": 20.0},  # session 1 ends here (20 s)
        {"kind": "step", "step": 30, "time_s": 4.0},  # a resumed session: its clock restarts
        {"kind": "step", "step": 40, "time_s": 9.0},
        {"kind": "validation", "step": 40, "val_epe": 2.0, "val_bad2": 20.0, "val_bad3": 10.0},
    ]
    run, dest = tmp_path / "run", tmp_path / "bundled" / "student"
    _write_run(run, records)
    load_script("ship").ship(run, dest)
    training = json.loads((dest / "training.json").read_text())
    assert training["wall_time_s"] == pytest.approx(29.0)
    assert [v["step"] for v in training["validation"]] == [0, 40]
    assert training["summary"]["train_time_s"] == 5.0
    assert (dest / "model.safetensors").read_bytes() == b"weights"


def test_ship_refuses_an_unfinished_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, [])
    (run / "summary.json").unlink()
    with pytest.raises(SystemExit, match="not a finished run"):
        load_script("ship").ship(run, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_fine_tune_records_the_run_it_started_from(tmp_path: Path) -> None:
    base, tune = tmp_path / "teacher", tmp_path / "teacher-tuned"
    _write_run(base, [{"kind": "step", "step": 10, "time_s": 100.0},
                      {"kind": "validation", "step": 10, "val_epe": 3.0, "val_bad2": 30.0, "val_bad3": 20.0}])
    _write_run(tune, [{"kind": "step", "step": 5, "time_s": 7.0}],
               config={"steps": 5, "init_from": str(base / "model")})
    load_script("ship").ship(tune, tmp_path / "dest")
    training = json.loads((tmp_path / "dest" / "training.json").read_text())
    assert training["wall_time_s"] == pytest.approx(7.0)
    assert training["base"]["run"] == str(base)
    assert training["base"]["wall_time_s"] == pytest.approx(100.0)
    assert [v["step"] for v in training["base"]["validation"]] == [10]


def test_a_model_folder_that_is_not_a_run_has_no_base(tmp_path: Path) -> None:
    pruned = tmp_path / "pruned-raw"
    pruned.mkdir()
    run = tmp_path / "recovered"
    _write_run(run, [], config={"steps": 30, "init_from": str(pruned)})
    load_script("ship").ship(run, tmp_path / "dest")
    assert "base" not in json.loads((tmp_path / "dest" / "training.json").read_text())


def test_a_fine_tune_of_a_fine_tune_records_the_whole_chain(tmp_path: Path) -> None:
    first, second, third = tmp_path / "teacher", tmp_path / "teacher-clutter", tmp_path / "teacher-fresh"
    _write_run(first, [{"kind": "step", "step": 10, "time_s": 100.0}])
    _write_run(second, [{"kind": "step", "step": 5, "time_s": 20.0}],
               config={"steps": 5, "init_from": str(first / "model")})
    _write_run(third, [{"kind": "step", "step": 3, "time_s": 4.0}],
               config={"steps": 3, "init_from": str(second / "model")})
    load_script("ship").ship(third, tmp_path / "dest")
    base = json.loads((tmp_path / "dest" / "training.json").read_text())["base"]
    assert base["run"] == str(second) and base["wall_time_s"] == pytest.approx(20.0)
    assert base["base"]["run"] == str(first) and base["base"]["wall_time_s"] == pytest.approx(100.0)
    assert "base" not in base["base"]
