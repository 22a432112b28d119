"""The pruning CLI exercised from outside: prune, reload in a fresh process, importance, sweep, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_studio.cli import main

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "stereo_studio", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prune") / "student-50"
    proc = _cli(
        "prune", "--model", "student", "--ratio", "0.5", "--size", "64x96", "--out", str(out), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["params_after"] < result["params_before"] and result["macs_after"] < result["macs_before"]
    assert result["widths"]["head"] == 16 and result["widths"]["refine_out"] == 1
    return out


def test_pruned_model_reloads_identically_in_a_fresh_process(pruned_dir: Path, tmp_path: Path) -> None:
    from stereo_studio.models.storage import load_model

    model = load_model(pruned_dir)
    g = torch.Generator().manual_seed(0)
    left, right = torch.rand(1, 3, 52, 84, generator=g), torch.rand(1, 3, 52, 84, generator=g)
    np.save(tmp_path / "left.npy", left.numpy())
    np.save(tmp_path / "right.npy", right.numpy())
    code = (
        "import sys, numpy as np, torch\n"
        "from stereo_studio.models.storage import load_model\n"
        f"m = load_model({str(pruned_dir)!r})\n"
        f"l, r = (torch.from_numpy(np.load({str(tmp_path)!r} + f'/{{n}}.npy')) for n in ('left', 'right'))\n"
        "with torch.no_grad():\n"
        f"    np.save({str(tmp_path / 'out.npy')!r}, m(l, r).numpy())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with torch.no_grad():
        expected = model(left, right).numpy()
    assert expected.shape == (1, 1, 52, 84)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    assert model.config["pruned_shapes"]


def test_importance_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["importance", "--model", "student", "--criterion", "lamp", "--ratio", "0.5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["criterion"] == "lamp" and doc["layers"]
    layer = next(l for l in doc["layers"] if not l["protected"])
    assert len(layer["scores"]) == layer["channels"] and "removes" in doc["plan"]["summary"]
    assert any(l["removed"] for l in doc["layers"])  # ratio 0.5 of the MACs, allocated across layers


def test_sweep_cli_prints_one_point_per_line(pruned_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "sweep",
        "--model",
        str(pruned_dir),
        "--ratios",
        "0,0.5",
        "--data",
        "synthetic",
        "--val-pairs",
        "1",
        "--size",
        "64x96",
        "--json",
    ]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    points = [json.loads(line) for line in lines]
    assert [(p["ratio"], p["kind"]) for p in points] == [
        (0.0, "raw"), (0.0, "recalibrated"), (0.5, "raw"), (0.5, "recalibrated")]
    for p in points:
        assert {"ratio", "params", "macs", "latency_ms", "epe", "d1", "bad3", "pareto", "kind"} <= set(p)
    assert points[2]["params"] < points[0]["params"]


def test_export_and_errors_cli(pruned_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    assert (
        main(
            [
                "export",
                "--model",
                str(pruned_dir),
                "--onnx",
                str(tmp_path / "m.onnx"),
                "--size",
                "64x96",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["max_abs_diff"] < 1e-3 and (tmp_path / "m.onnx").is_file()
    assert main(["export", "--model", "sgbm", "--onnx", str(tmp_path / "s.onnx")]) == 2
    assert "not a network" in capsys.readouterr().err
    bad = tmp_path / "ratios.json"
    bad.write_text(json.dumps({"head": 0.5}))
    assert main(["prune", "--model", "student", "--ratios", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "protected" in capsys.readouterr().err
