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


# Launched by torchrun instead of `-m stereo_studio`: the same CLI entry point, but each rank also saves its
# student's initial and final parameters and its local (not yet all-reduced) losses.
RANK_PROBE = """
import os
import sys

import torch

from stereo_studio.cli import main
from stereo_studio.engine import distributed, training

out = sys.argv.pop(1)
probe = {"local_losses": []}
load_student, all_reduce_mean = training._load_student, distributed.all_reduce_mean


def keep_student(cfg):
    probe["student"] = student = load_student(cfg)
    probe["initial"] = {k: v.detach().clone() for k, v in student.named_parameters()}
    return student


def record_local_loss(values, info):
    probe["local_losses"].append(float(values[0]))
    return all_reduce_mean(values, info)


training._load_student, distributed.all_reduce_mean = keep_student, record_local_loss
code = main(sys.argv[1:])
final = {k: v.detach().clone() for k, v in probe.pop("student").named_parameters()}
torch.save({**probe, "final": final}, os.path.join(out, f"rank{os.environ['RANK']}.pt"))
sys.exit(code)
"""


def test_torchrun_two_cpu_processes(tmp_path):
    import torch
    from safetensors.torch import load_file

    torchrun = Path(sys.executable).parent / "torchrun"
    run = tmp_path / "run"
    probe = tmp_path / "rank_probe.py"
    probe.write_text(RANK_PROBE)
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(probe), str(tmp_path), "train",
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

    # The ranks really trained together: each saw its own shard (different local losses), yet every
    # parameter ends identical on both, so the gradients were all-reduced (without it, each rank would take
    # its own Adam steps and the weights would drift apart by ~lr per step). BatchNorm running statistics
    # are left out: DDP broadcasts them from rank 0 before each forward, and each rank's last forward updates
    # its own copy.
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert len(rank0["local_losses"]) == len(rank1["local_losses"]) == 3
    assert rank0["local_losses"] != rank1["local_losses"]
    assert rank0["final"].keys() == rank1["final"].keys() and rank0["final"]
    diffs = {k: float((rank1["final"][k] - w).abs().max()) for k, w in rank0["final"].items()}
    assert max(diffs.values()) <= 1e-7, {k: d for k, d in diffs.items() if d > 1e-7}
    moved = max(float((rank0["final"][k] - rank0["initial"][k]).abs().max()) for k in rank0["final"])
    assert moved > 1e-4  # the weights did change: agreeing is not just both ranks doing nothing
    saved = load_file(str(run / "model" / "model.safetensors"))
    for name, weight in rank0["final"].items():  # and rank 0's weights are the model it saved
        torch.testing.assert_close(saved[name].float(), weight.float(), rtol=0, atol=0)
