"""DDP: the same CLI entry point under torchrun with 2 CPU processes (gloo), a few steps on tiny crops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stereo_studio.engine.distributed import DistInfo, init_distributed, launched_by_torchrun, wrap_model

REPO = Path(__file__).resolve().parents[2]


def test_single_process_without_torchrun(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_torchrun()
    info = init_distributed(device="cpu")
    assert info == DistInfo() and info.is_main and not info.enabled
    import torch

    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, info) is model


def test_torchrun_two_cpu_processes(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    run = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "stereo_studio", "train",
           "--arch", "student", "--steps", "3", "--batch-size", "1", "--crop", "32x64",
           "--synthetic-size", "40x80", "--max-disp", "16", "--val-pairs", "1", "--ckpt-interval", "2",
           "--precision", "fp32", "--threads", "1", "--out", str(run), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 prints
    assert summaries[0]["world_size"] == 2 and summaries[0]["steps"] == 3
    assert (run / "model" / "model.safetensors").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "checkpoint"] == [2, 3]  # written once, by rank 0
    assert [r["step"] for r in rows if r["kind"] == "validation"] == [0, 3]
