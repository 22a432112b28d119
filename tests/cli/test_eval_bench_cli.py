"""The `eval` / `bench` CLI contract, exercised from outside exactly as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stereo_studio", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=None if env is None else {**os.environ, **env})


def one_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # one JSON object, nothing else on stdout
    return json.loads(lines[0])


def test_eval_sgbm_synthetic_json():
    out = one_json(cli("eval", "--model", "sgbm", "--data", "synthetic", "--limit", "2", "--size", "64x96",
                       "--max-disp", "24", "--json"))
    for key in ("epe", "bad1", "bad2", "bad3", "d1", "pairs", "ms_per_pair"):
        assert key in out
    assert out["pairs"] == 2 and out["max_disp"] == 24
    assert 0 <= out["bad3"] <= out["bad2"] <= out["bad1"] <= 100
    assert out["d1"] <= out["bad3"] and out["ms_per_pair"] > 0


def test_eval_sgbm_on_real_pair_uses_dataset_range(aloe_q):
    proc = cli("eval", "--model", "sgbm", "--data", str(aloe_q), "--json")
    out = one_json(proc)
    assert out["pairs"] == 1 and out["max_disp"] == 64  # Aloe Q's ndisp, rounded up to 16
    assert out["epe"] < 4.0 and out["bad3"] < 30.0  # the data README's SGBM reference is 3.95 / 27.5 %
    assert "eval" in proc.stderr  # the progress bar goes to stderr


def test_eval_readable_table_and_saved_model(tmp_path, capsys):
    from stereo_studio.cli import main
    from stereo_studio.models.registry import build_model, default_config
    from stereo_studio.models.storage import save_model

    folder = save_model(build_model(default_config("student", max_disp=32)), tmp_path / "tiny")
    args = ["eval", "--model", str(folder), "--data", "synthetic", "--limit", "1", "--size", "48x64"]
    assert main([*args, "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "pixel-weighted" in out and "bad-2 %" in out and "max disparity 32" in out
    assert main([*args, "--max-disp", "48"]) == 2  # a trained model keeps its own range
    assert "max_disp 32" in capsys.readouterr().err


def test_bench_sgbm_and_architecture_json(tmp_path):
    out = one_json(cli("bench", "--model", "sgbm", "--size", "64x160", "--runs", "2", "--json"))
    assert out["params"] == 0 and out["macs"] is None and out["latency_ms"] > 0
    assert out["size"] == [64, 160] and out["max_disp"] == 64
    # `arch:student` names the (untrained) architecture, built at --max-disp 32; no bundled models needed
    out = one_json(cli("bench", "--model", "arch:student", "--size", "48x64", "--max-disp", "32",
                       "--runs", "1",
                       "--warmup", "0", "--precision", "fp32", "--no-memory", "--json",
                       env={"STEREO_STUDIO_MODELS": str(tmp_path / "none")}))
    assert out["params"] > 1000 and out["macs"] > 1e6 and out["latency_ms"] > 0
    assert out["max_disp"] == 32 and out["fraction_of_peak"] > 0


def test_errors_are_one_clear_line(tmp_path):
    import cv2
    import numpy as np

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    texture = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(unlabelled / "scene_L.png"), texture)
    cv2.imwrite(str(unlabelled / "scene_R.png"), np.roll(texture, -4, axis=1))
    cases = [
        (("eval", "--model", "sgbm", "--data", str(unlabelled), "--max-disp", "16"), "has no ground truth"),
        (("eval", "--model", "no-such-model", "--data", "synthetic", "--limit", "1"), "unknown model"),
        (("eval", "--model", "sgbm", "--data", "/no/such/folder"), "/no/such/folder"),
        (("bench", "--model", "sgbm", "--size", "240by320"), "bad size"),
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "stereo_studio", *args], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args, _ in cases]
    for proc, (_, expected) in zip(procs, cases, strict=True):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode != 0
        assert stdout == ""
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], stderr
