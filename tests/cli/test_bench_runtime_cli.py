"""`bench` and the runtime settings: defaults from this machine's cached probe, explicit flags win, and the
JSON keeps its keys while adding p10, the settings used and the chosen defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stereo_studio import runtime

REPO = Path(__file__).resolve().parents[2]


def bench(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                            runtime.PRECISION_ENV)}
    env.update({runtime.CACHE_ENV: str(cache), runtime.PROBE_ENV: "0", "PYTHONPATH": str(REPO)})
    cmd = [sys.executable, "-m", "stereo_studio", "bench", "--model", "sgbm", "--size", "64x160",
           "--runs", "3", "--warmup", "1", "--no-memory", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def write_cache(path: Path, choice: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": runtime.CACHE_VERSION,
                                "machines": {runtime.machine_key(): {"choice": choice}}}))


def test_bench_uses_cached_defaults_and_flags_win(tmp_path):
    cache = tmp_path / "runtime.json"
    write_cache(cache, {"precision": "fp32", "threads": 1, "wait_policy": "PASSIVE"})
    proc = bench(cache, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("params", "macs", "latency_ms", "p90_ms", "mean_ms", "runs", "threads", "size", "max_disp"):
        assert key in out, key
    assert out["p10_ms"] <= out["latency_ms"] <= out["p90_ms"]
    assert (out["threads"], out["wait_policy"], out["contended"]) == (1, "PASSIVE", False)
    assert out["runtime"]["source"] == {"precision": "cache", "threads": "cache", "wait_policy": "cache"}
    assert "measuring the fastest" not in proc.stderr  # a cache entry exists: no probe

    proc = bench(cache, "--json", "--threads", "2", "--wait-policy", "active")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["threads"], out["wait_policy"]) == (2, "ACTIVE")
    assert out["runtime"]["threads"] == 1  # the machine's defaults are unchanged


def test_bench_table_shows_settings_and_fallback(tmp_path):
    proc = bench(tmp_path / "none.json", "--while-training")
    assert proc.returncode == 0, proc.stderr
    assert "p10-p90" in proc.stdout and "OMP_WAIT_POLICY default" in proc.stdout
    assert "built-in defaults: not measured" in proc.stdout
