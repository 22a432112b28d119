"""Bring your own network from the command line: prune a custom model folder with --trust-code and bench the
result in a fresh process; export the teacher to ONNX (with its sidecar) and evaluate / distil from it; the
refusals say what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stereo_studio.cli import main
from stereo_studio.models import custom_arch, onnx_net
from tests.models.byo_models import write_custom_model

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "stereo_studio", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


@pytest.fixture(autouse=True)
def _fresh_process_state():
    custom_arch.reset_trust()
    onnx_net.set_onnx_overrides(None)
    yield
    custom_arch.reset_trust()
    onnx_net.set_onnx_overrides(None)


def test_prune_custom_folder_then_bench_it_in_a_fresh_process(tmp_path: Path, capsys) -> None:
    folder = write_custom_model(tmp_path / "pairnet")
    out = tmp_path / "pairnet-50"
    args = ["--ratio", "0.5", "--out", str(out), "--size", "64x128"]
    assert main(["prune", "--model", str(folder), *args]) == 2
    refused = capsys.readouterr().err
    assert str(folder / "model.py") in refused and "--trust-code" in refused and not out.exists()
    assert not (folder / "imported.flag").exists()

    proc = _cli("prune", "--model", str(folder), "--trust-code", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["macs_after"] < 0.75 * result["macs_before"]
    assert result["widths"]["gate"] == 32 and result["widths"]["refine.1"] == 1  # protected: config, output
    assert (out / "model.py").is_file() and "pruned_shapes" in json.loads((out / "config.json").read_text())

    bench = _cli("bench", "--model", str(out), "--trust-code", "--size", "64x128", "--runs", "2", "--warmup",
                 "1", "--no-memory", "--json")
    assert bench.returncode == 0, bench.stderr
    measured = json.loads(bench.stdout.strip().splitlines()[-1])
    assert measured["macs"] == result["macs_after"] and measured["latency_ms"] > 0
    assert main(["bench", "--model", str(out), "--size", "64x128", "--runs", "1", "--no-memory"]) == 2
    assert str(out / "model.py") in capsys.readouterr().err  # trust is per process: this one never gave it


def test_export_then_eval_and_distill_from_the_onnx_teacher(tmp_path: Path, capsys) -> None:
    onnx = tmp_path / "teacher.onnx"
    assert main(["export", "--model", "teacher", "--onnx", str(onnx), "--size", "48x64", "--no-check",
                 "--json"]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sidecar = json.loads(Path(exported["sidecar"]).read_text())
    assert exported["sidecar"] == str(onnx) + ".json" and sidecar["max_disp"] == 64
    assert sidecar["pad_multiple"] == 1 and sidecar["inputs"] == ["left", "right"]

    assert main(["eval", "--model", str(onnx), "--data", "synthetic", "--limit", "1", "--size", "48x64",
                 "--json"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["max_disp"] == 64 and scored["pairs"] == 1 and scored["epe"] >= 0

    run = tmp_path / "run"
    assert main(["distill", "--teacher", str(onnx), "--arch", "student", "--steps", "2", "--batch-size", "1",
                 "--crop", "48x64", "--val-pairs", "1", "--val-interval", "2", "--ckpt-interval", "2",
                 "--synthetic-pairs", "4", "--threads", "1", "--out", str(run), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(summary["model"]).is_dir() and "val_gap" in summary["validation"]


def test_onnx_refusals_and_options(tmp_path: Path, capsys) -> None:
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"")  # never read: refused by what the command needs
    assert main(["prune", "--model", str(onnx), "--ratio", "0.5", "--out", str(tmp_path / "p")]) == 2
    assert "ONNX network, run frozen with onnxruntime" in capsys.readouterr().err
    assert main(["distill", "--teacher", "teacher", "--init-from", str(onnx), "--steps", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "give it as --teacher" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--model", str(onnx), "--data", "synthetic", "--onnx-config", '{"rnage": 1}'])
    assert "unknown key(s) rnage" in capsys.readouterr().err
