"""Atomic, pickle-free checkpoints: round trips, RNG capture, and a kill in the middle of a write."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_studio.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from stereo_studio.errors import StereoStudioError

REPO = Path(__file__).resolve().parents[2]


def _state(step: int) -> dict:
    model = torch.nn.Conv2d(3, 4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 8, 8)).sum().backward()
    opt.step()
    return {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(),
            "config": '{"a": 1}', "last_val": {"val_epe": 1.5}}


def test_round_trip_loads_with_weights_only(tmp_path):
    state = _state(7)
    path = save_checkpoint(state, tmp_path / "ck" / "last.pt")
    raw = torch.load(path, weights_only=True)  # the contract: no pickled objects inside
    assert raw["step"] == 7
    loaded = load_checkpoint(path)
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v)
    opt = torch.optim.AdamW(torch.nn.Conv2d(3, 4, 3).parameters(), lr=1e-3)
    opt.load_state_dict(loaded["optimizer"])
    assert [p.name for p in tmp_path.joinpath("ck").iterdir()] == ["last.pt"]  # no temporary left behind


def test_rng_state_restores_every_generator():
    saved = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2] == again[2]


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(StereoStudioError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(StereoStudioError, match="corrupt"):
        load_checkpoint(bad)


def test_kill_during_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(_state(1), path)
    # A child process starts overwriting the checkpoint, writes half of it, and is killed with SIGKILL.
    script = textwrap.dedent(f"""
        import io, sys, time, torch
        from stereo_studio.engine.checkpoint import save_checkpoint
        real_save = torch.save
        def half_then_hang(obj, fh):
            buf = io.BytesIO(); real_save(obj, buf); data = buf.getvalue()
            fh.write(data[: len(data) // 2]); fh.flush()
            print("half written", flush=True); time.sleep(120)
        torch.save = half_then_hang
        save_checkpoint({{"step": 2, "big": torch.rand(200_000)}}, {str(path)!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        assert child.stdout.readline().strip() == "half written"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert leftovers, "the child should have been killed mid-write"
    assert load_checkpoint(path)["step"] == 1
    save_checkpoint(_state(3), path)  # the next write still works and clears the dead writer's temporary
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
