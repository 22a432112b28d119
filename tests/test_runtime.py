"""stereo_studio.runtime: choosing inference settings by measurement (fake timings + one real tiny probe), the
per-machine cache, overrides, and the measuring queue (one at a time, training waits / marks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stereo_studio import runtime

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache file (and lock folder) for this test; no user environment overrides."""
    path = tmp_path / "rt" / "runtime.json"
    monkeypatch.setenv(runtime.CACHE_ENV, str(path))
    monkeypatch.setattr(runtime, "_USER_ENV", {k: None for k in runtime._USER_ENV})
    return path


def cand(precision, threads, policy, ms):
    return {"precision": precision, "threads": threads, "wait_policy": policy, "median_ms": ms,
            "p10_ms": ms * 0.9, "p90_ms": ms * 1.1, "runs": 10}


def fake_runner(timings):
    """A probe runner answering from {(policy, precision, threads): ms}, recording its calls."""
    calls = []

    def run(policy, args):
        calls.append((policy, args))
        results = [{k: v for k, v in cand(p, t, policy, ms).items() if k != "wait_policy"}
                   for (pol, p, t), ms in timings.items() if pol == policy and p in args["precisions"]
                   and t in args["threads"]]
        return {"results": results, "bf16_native": True, "model": "fake"}

    run.calls = calls
    return run


def test_choose_fastest_and_preferences_within_tolerance():
    # clearly fastest wins, whatever it is
    def pick(*cands):
        c = runtime.choose(list(cands))
        return c["precision"], c["threads"], c["wait_policy"]

    # the machine: fp32 + ACTIVE 8.9 ms, PASSIVE 22.4, bf16 12.0 -> fp32, ACTIVE
    assert pick(cand("fp32", 2, "PASSIVE", 22.4), cand("fp32", 2, "ACTIVE", 8.9),
                cand("bf16", 2, "ACTIVE", 12.0)) == ("fp32", 2, "ACTIVE")
    assert pick(cand("fp32", 2, "ACTIVE", 20.0), cand("bf16", 2, "ACTIVE", 10.0))[0] == "bf16"  # AMX-like
    # within 2 %: fp32 before bf16, PASSIVE before ACTIVE, fewer threads before more
    assert pick(cand("bf16", 2, "ACTIVE", 10.0), cand("fp32", 2, "ACTIVE", 10.15))[0] == "fp32"
    assert pick(cand("fp32", 2, "ACTIVE", 10.0), cand("fp32", 2, "PASSIVE", 10.1),
                cand("fp32", 1, "PASSIVE", 10.18)) == ("fp32", 1, "PASSIVE")
    # outside the tolerance the preferences do not apply (stop 16: a 5 % tolerance chose a setting 1.25x
    # slower than the fastest)
    assert pick(cand("bf16", 2, "ACTIVE", 10.0), cand("fp32", 2, "PASSIVE", 10.3))[0] == "bf16"
    with pytest.raises(RuntimeError):
        runtime.choose([])


def test_close_first_round_goes_to_a_runoff(cache):
    """Stop 16's table: the short first round had bf16 / 1 / PASSIVE 12.41 and bf16 / 2 / ACTIVE 11.82 ms, the
    fastest really was the 2-thread one (10.7 vs 13.4 ms): the two are timed again, alone and longer."""
    first = {("ACTIVE", "bf16", 2): 11.82, ("PASSIVE", "bf16", 1): 12.41, ("ACTIVE", "fp32", 2): 20.0,
             ("PASSIVE", "fp32", 1): 30.0}
    alone = {("ACTIVE", "bf16", 2): 10.7, ("PASSIVE", "bf16", 1): 13.38}
    calls = []

    def run(policy, args):
        calls.append((policy, args))
        table = alone if len(args["precisions"]) == 1 and len(args["threads"]) == 1 else first
        return fake_runner(table)(policy, args)

    entry = runtime.probe(policies=["ACTIVE", "PASSIVE"], threads=[1, 2], runner=run, budget_s=8.0)
    runoff = [(policy, a["precisions"], a["threads"], a["budget_s"]) for policy, a in calls[2:]]
    assert runoff == [("ACTIVE", ["bf16"], [2], 2.0), ("PASSIVE", ["bf16"], [1], 2.0)] * runtime.RUNOFF_ROUNDS
    assert (entry["choice"]["threads"], entry["choice"]["median_ms"]) == (2, 10.7)
    assert [(r["median_ms"], r["processes"]) for r in entry["runoff"]] == [(10.7, 2), (13.38, 2)]
    # nothing close to the fastest: no run-off
    calls.clear()
    runtime.probe(policies=["ACTIVE"], precisions=["fp32"], threads=[1, 2], budget_s=8.0,
                  runner=lambda policy, args: (calls.append(args), fake_runner(
                      {("ACTIVE", "fp32", 1): 20.0, ("ACTIVE", "fp32", 2): 10.0})(policy, args))[1])
    assert len(calls) == 1


def test_thread_candidates():
    assert runtime.thread_candidates(1) == [1]
    assert runtime.thread_candidates(2) == [1, 2]
    assert runtime.thread_candidates(4) == [1, 2, 3, 4]
    assert runtime.thread_candidates(12) == [1, 2, 4, 8, 12]


def test_probe_with_fake_timings_caches_per_machine(cache, monkeypatch):
    timings = {("ACTIVE", "fp32", 1): 15.0, ("ACTIVE", "fp32", 2): 8.9, ("ACTIVE", "bf16", 2): 12.0,
               ("PASSIVE", "fp32", 1): 16.0, ("PASSIVE", "fp32", 2): 22.4, ("PASSIVE", "bf16", 2): 25.0,
               ("ACTIVE", "bf16", 1): 20.0, ("PASSIVE", "bf16", 1): 21.0}
    runner = fake_runner(timings)
    assert runtime.load_entry() is None and runtime.inference_settings().source["precision"] == "fallback"
    lines = []
    monkeypatch.setenv(runtime.PROBE_ENV, "1")  # the suite turns probing off; this fake probe is cheap
    settings = runtime.ensure_settings(notice=lines.append, runner=runner, threads=[1, 2])
    assert [c[0] for c in runner.calls] == ["ACTIVE", "PASSIVE"]  # one process per wait policy
    assert (settings.precision, settings.threads, settings.wait_policy) == ("fp32", 2, "ACTIVE")
    assert set(settings.source.values()) == {"probe"}
    assert len(lines) == 1 and "fp32, 2 threads, OMP_WAIT_POLICY=ACTIVE" in lines[0]
    entry = runtime.load_entry()
    assert len(entry["candidates"]) == 8 and entry["choice"]["median_ms"] == 8.9
    assert entry["cpus"] == runtime.cpu_count() and entry["torch"] == runtime.torch_version()
    # the next use reads the cache: no probe
    runner.calls.clear()
    again = runtime.ensure_settings(runner=runner)
    assert runner.calls == [] and set(again.source.values()) == {"cache"} and again.threads == 2
    # another machine's entry in the same file is kept
    runtime.save_entry({"choice": {"precision": "bf16", "threads": 8, "wait_policy": "PASSIVE"}}, key="other")
    data = json.loads(cache.read_text())
    assert set(data["machines"]) == {runtime.machine_key(), "other"}
    assert runtime.inference_settings().precision == "fp32"


def test_probing_disabled_means_fallback(cache, monkeypatch):
    monkeypatch.setenv(runtime.PROBE_ENV, "0")

    def boom(policy, args):
        raise AssertionError("must not probe")

    s = runtime.ensure_settings(runner=boom)
    assert (s.precision, s.threads, s.wait_policy) == ("fp32", runtime.cpu_count(), None)
    assert not cache.exists()


def test_user_environment_wins_over_the_cache(cache, monkeypatch):
    runtime.save_entry({"choice": {"precision": "bf16", "threads": 1, "wait_policy": "ACTIVE"}})
    s = runtime.inference_settings()
    assert (s.precision, s.threads, s.wait_policy) == ("bf16", 1, "ACTIVE")
    monkeypatch.setattr(runtime, "_USER_ENV", {"OMP_WAIT_POLICY": "passive", "OMP_NUM_THREADS": "2",
                                                runtime.PRECISION_ENV: "fp32"})
    s = runtime.inference_settings()
    assert (s.precision, s.threads, s.wait_policy) == ("fp32", 2, "PASSIVE")
    assert set(s.source.values()) == {"env"}
    from stereo_studio.models.matchers import resolve_precision

    assert resolve_precision("auto") == "fp32" and resolve_precision("bf16") == "bf16"


def test_provisional_entry_is_measured_again_when_quiet(cache, monkeypatch):
    monkeypatch.setenv(runtime.PROBE_ENV, "1")
    runtime.save_entry({"choice": {"precision": "bf16", "threads": 1, "wait_policy": "ACTIVE"}, "busy": True})
    runner = fake_runner({("ACTIVE", "fp32", 1): 5.0, ("PASSIVE", "fp32", 1): 5.05})
    monkeypatch.setattr(runtime, "machine_busy", lambda: True)
    assert runtime.ensure_settings(runner=runner, notice=lambda s: None).precision == "bf16"  # still busy
    monkeypatch.setattr(runtime, "machine_busy", lambda: False)
    monkeypatch.setattr(runtime, "load_average", lambda: 0.0)
    s = runtime.ensure_settings(runner=runner, notice=lambda s: None, threads=[1], precisions=["fp32"])
    assert (s.precision, s.wait_policy) == ("fp32", "PASSIVE")
    assert len(runner.calls) == 2 + 2 * runtime.RUNOFF_ROUNDS  # one process per policy, then the run-off
    assert runtime.load_entry()["busy"] is False


def test_a_busy_probe_never_replaces_a_quiet_entry(cache, monkeypatch):
    """Stop 26: a forced probe right after training (load high) chose 1 thread and PASSIVE, replaced the quiet
    entry and became a benchmark's defaults. The quiet measurement must stay in charge; a first busy probe
    (no quiet entry yet) is still cached, marked provisional."""
    monkeypatch.setenv(runtime.PROBE_ENV, "1")
    quiet = {"choice": {"precision": "bf16", "threads": 2, "wait_policy": "ACTIVE", "median_ms": 6.0},
             "busy": False, "contended": False, "measured_at": "earlier"}
    runtime.save_entry(quiet)
    runner = fake_runner({("ACTIVE", "fp32", 1): 9.0, ("PASSIVE", "fp32", 1): 5.0})
    monkeypatch.setattr(runtime, "load_average", lambda: 99.0)  # the probe records the machine as busy
    lines = []
    probe = {"force": True, "runner": runner, "notice": lines.append, "threads": [1], "precisions": ["fp32"]}
    s = runtime.ensure_settings(**probe)
    assert runner.calls  # it did measure
    assert (s.precision, s.threads, s.wait_policy) == ("bf16", 2, "ACTIVE")
    assert runtime.load_entry()["measured_at"] == "earlier"
    assert "busy machine: kept the quiet measurement of earlier" in lines[0]
    # without a quiet entry the busy result is all there is: cached, provisional
    cache.unlink()
    s = runtime.ensure_settings(**probe)
    assert (s.precision, s.threads, s.wait_policy) == ("fp32", 1, "PASSIVE")
    assert runtime.load_entry()["busy"] is True and "provisional" in lines[-1]


def test_a_failed_probe_falls_back_once(cache, monkeypatch):
    monkeypatch.setenv(runtime.PROBE_ENV, "1")
    calls = []

    def broken(policy, args):
        calls.append(policy)
        raise RuntimeError("no model")

    lines = []
    s = runtime.ensure_settings(runner=broken, notice=lines.append)
    assert (s.precision, s.threads, s.wait_policy) == ("fp32", runtime.cpu_count(), None)
    assert "failed (RuntimeError: no model)" in lines[0]
    assert runtime.ensure_settings(runner=broken).source["precision"] == "fallback"
    assert calls == ["ACTIVE"]  # not probed again on every command; `bench --reprobe` forces it


def _python(code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter: this environment without OpenMP variables, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**base, "PYTHONPATH": str(REPO), **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_applies_cached_wait_policy_and_training_gets_passive(cache):
    runtime.save_entry({"choice": {"precision": "fp32", "threads": 2, "wait_policy": "ACTIVE"}})
    show = "import os, sys, stereo_studio; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    assert _python(show) == "ACTIVE False"  # and the package import loads no torch
    assert _python(show, OMP_WAIT_POLICY="PASSIVE") == "PASSIVE False"  # the user's value wins
    training = ("from stereo_studio import runtime; runtime.prepare_process('training'); "
                "import os; print(os.environ['OMP_WAIT_POLICY'])")
    assert _python(training) == "PASSIVE"
    inference = ("from stereo_studio import runtime; runtime.prepare_process('inference'); "
                 "import os; print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'])")
    assert _python(inference) == "ACTIVE 2"
    assert _python(inference, OMP_NUM_THREADS="1") == "ACTIVE 1"
    # ACTIVE spins a bounded time (GNU OpenMP's ACTIVE alone spins forever: an idle process kept a core busy)
    spin = ("import os, stereo_studio; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    assert _python(spin) == f"ACTIVE {runtime.ACTIVE_SPIN_COUNT}"
    assert _python(spin, GOMP_SPINCOUNT="7") == "ACTIVE 7"  # the user's value wins
    spin_of_training = training.replace("OMP_WAIT_POLICY']",
                                        "OMP_WAIT_POLICY'], os.environ.get('GOMP_SPINCOUNT')")
    assert _python(spin_of_training) == "PASSIVE None"


def test_set_wait_policy_bounds_active_spinning(monkeypatch):
    monkeypatch.setattr(runtime, "_USER_ENV", {k: None for k in runtime._USER_ENV})
    env: dict[str, str] = {}
    runtime.set_wait_policy("ACTIVE", env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": runtime.ACTIVE_SPIN_COUNT}
    runtime.set_wait_policy("PASSIVE", env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    monkeypatch.setitem(runtime._USER_ENV, "GOMP_SPINCOUNT", "9")
    runtime.set_wait_policy("ACTIVE", env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's own GOMP_SPINCOUNT stays theirs


def test_real_tiny_probe(cache):
    """One real probe subprocess, tiny: one policy, fp32, one thread, 48x64, a short budget."""
    entry = runtime.probe(policies=["PASSIVE"], precisions=["fp32"], threads=[1], size=(48, 64), budget_s=0.1)
    (c,) = entry["candidates"]
    assert (c["precision"], c["threads"], c["wait_policy"]) == ("fp32", 1, "PASSIVE")
    assert 0 < c["p10_ms"] <= c["median_ms"] <= c["p90_ms"] and c["runs"] >= 3
    assert entry["choice"]["wait_policy"] == "PASSIVE" and entry["probe"]["model"]


# ---- measuring queue -----------------------------------------------------------------------------------


def test_measurements_never_overlap(cache):
    inside, overlaps = [], []

    def work():
        with runtime.measuring():
            if inside:
                overlaps.append(1)
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and not runtime.measurement_active()
    with runtime.measuring(), runtime.measuring() as nested:  # re-entrant in one thread
        assert runtime.measurement_active() and not nested.contended


def test_measurement_waits_for_training_or_is_marked(cache):
    started, stop = threading.Event(), threading.Event()

    def train():
        with runtime.training_running():
            started.set()
            stop.wait(5)

    t = threading.Thread(target=train)
    t.start()
    started.wait(5)
    try:
        assert runtime.training_active()
        with runtime.measuring(while_training=True) as slot:
            pass
        assert slot.contended and slot.contended_by == ["training"]
        told = []
        threading.Timer(0.3, stop.set).start()
        with runtime.measuring(on_wait=told.append, poll_s=0.02) as slot:
            assert not runtime.training_active()
        assert told and slot.waited_s >= 0.2 and not slot.contended
    finally:
        stop.set()
        t.join()
    # the calling thread's own training never blocks its measurement (it is marked instead)
    with runtime.training_running(), runtime.measuring() as slot:
        pass
    assert slot.contended


def test_training_in_another_process_is_seen(cache):
    code = ("import sys, time; from stereo_studio import runtime\n"
            "with runtime.training_running():\n    print('ready', flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert runtime.training_active()
        with runtime.measuring(while_training=True) as slot:
            pass
        assert slot.contended_by == ["training"]
    finally:
        proc.kill()
        proc.wait()
    assert not runtime.training_active()
