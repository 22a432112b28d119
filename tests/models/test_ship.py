"""`models/ship.py`: a finished run becomes a bundled model folder with its history."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SHIP = Path(__file__).resolve().parents[2] / "models" / "ship.py"


def _ship_module():
    spec = importlib.util.spec_from_file_location("models_ship", SHIP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(run: Path, records: list[dict]) -> None:
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text('{"arch": "student"}')
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    (run / "config.json").write_text('{"steps": 30}')
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
    _ship_module().ship(run, dest)
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
        _ship_module().ship(run, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
