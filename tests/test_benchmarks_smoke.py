"""benchmarks.run: the entry point writes the machine, every section in order, notes and errors."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # benchmarks/ is a top-level folder of the repo, not part of the package
    sys.path.insert(0, str(REPO))

from benchmarks import run  # noqa: E402


def test_quick_foundation_run_writes_the_report(tmp_path):
    out = tmp_path / "BENCH.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", "foundation", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Machine" in text and "CPU:" in text and "torch" in text
    assert "## foundation" in text and "_Took " in text
    for heading in ("### Matmul peak", "### Synthetic generator", "### Teacher, student, SGBM",
                    "### Cost volume"):
        assert heading in text
    assert "Section failed" not in text
    for name in ("teacher", "student", "sgbm"):
        assert f"| {name} | fp32 |" in text
    assert "Ratios (this run):" in text and "latency student (fp32) / SGBM" in text


def test_section_list_starts_with_the_known_sections():
    names = run.all_sections()
    assert names[:5] == ["foundation", "engine", "live", "gui", "models"]
    assert "__init__" not in names and len(names) == len(set(names))


def test_missing_and_failing_sections_do_not_stop_the_run(tmp_path, monkeypatch):
    calls = []

    def fake(name, body=None):
        module = types.ModuleType(f"benchmarks.sections.{name}")
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)

        def measure(quick):
            calls.append((name, quick))
            if body is None:
                raise RuntimeError("boom in " + name)
            return body

        module.measure = measure
        monkeypatch.setitem(sys.modules, module.__name__, module)

    fake("first_fake", body="first body")
    fake("second_fake")
    fake("third_fake", body="third body")
    out = tmp_path / "report.md"
    text = run.write_report(out, quick=True,
                            sections=["first_fake", "absent_section", "second_fake", "third_fake"])
    assert out.read_text() == text
    assert calls == [("first_fake", True), ("second_fake", True), ("third_fake", True)]
    order = [text.index(f"## {n}") for n in ("first_fake", "absent_section", "second_fake", "third_fake")]
    assert order == sorted(order)
    assert "first body" in text and "third body" in text
    assert "`benchmarks/sections/absent_section.py` does not exist" in text
    assert "Section failed" in text and "RuntimeError: boom in second_fake" in text


def test_models_are_timed_in_interleaved_fresh_processes(monkeypatch):
    """Every model gets one process per round, rounds rotate the order, and the reported latency is the median
    over rounds with the rounds' spread beside it (stop 27: timings inside one long process drifted 2x)."""
    from benchmarks import common
    from benchmarks.sections import models

    calls = []
    latencies = {"a": [5.0, 9.0, 6.0, 4.0], "sgbm": [8.0, 8.5, 7.5]}

    def fake_process(model, size, runs, flags=(), env=None):
        calls.append((model, tuple(flags)))
        ms = latencies[model][sum(1 for m, _ in calls if m == model) - 1]
        return {"model": model, "latency_ms": ms, "p90_ms": ms + 1, "params": 1, "macs": None}

    monkeypatch.setattr(common, "bench_process", fake_process)
    monkeypatch.setattr(common, "child_env", lambda: {})
    out = models._timed(["a", "sgbm"], (24, 32), runs=2, rounds=3, max_disp=48)
    assert [m for m, _ in calls] == ["a", "sgbm", "sgbm", "a", "a", "sgbm"]
    assert ("sgbm", ("--max-disp", "48")) in calls and ("a", ()) in calls
    assert out["a"]["latency_ms"] == 6.0 and out["a"]["p90_ms"] == 7.0 and out["sgbm"]["latency_ms"] == 8.0
    assert (out["a"]["round_min_ms"], out["a"]["round_max_ms"], out["a"]["rounds"]) == (5.0, 9.0, 3)
    quick = models._timed(["a"], (24, 32), runs=2, rounds=1, max_disp=48, quick=True)
    assert calls[-1] == ("a", ("--while-training",)) and quick["a"]["rounds"] == 1


def test_a_failing_bench_process_is_recorded_and_skipped(monkeypatch):
    """The runtime section keeps its other rows when one setting's process fails (`errors` given)."""
    from benchmarks import common

    calls = []

    def fake_process(model, size, runs, flags=(), env=None):
        calls.append(tuple(flags))
        if flags:
            raise RuntimeError("bench failed: no such setting")
        return {"latency_ms": 1.0}

    monkeypatch.setattr(common, "bench_process", fake_process)
    monkeypatch.setattr(common, "child_env", lambda: {})
    errors: dict[str, str] = {}
    jobs = {"ok": ("m", []), "bad": ("m", ["--x"])}
    results = common.bench_rounds(jobs, (8, 8), runs=1, rounds=3, errors=errors)
    assert len(results["ok"]) == 3 and results["bad"] == [] and calls.count(("--x",)) == 1
    assert "no such setting" in errors["bad"]
    with pytest.raises(RuntimeError, match="no such setting"):
        common.bench_rounds(jobs, (8, 8), runs=1, rounds=1)


def _acc(epe: float, bad2: float, bad3: float) -> dict[str, float]:
    return {"epe": epe, "bad2": bad2, "bad3": bad3}


def test_targets_judge_each_goal_and_report_the_held_out_scene(monkeypatch, tmp_path):
    from benchmarks.sections import models

    q = {"teacher": _acc(1.3, 12.0, 9.0), "student": _acc(1.4, 14.0, 11.0),
         "student-scratch": _acc(1.5, 15.0, 12.0), "student-pruned": _acc(1.45, 15.0, 9.5),
         "sgbm": _acc(1.42, 12.6, 10.0)}
    moto = {"student-pruned": _acc(1.7, 14.0, 10.0), "sgbm": _acc(1.61, 9.5, 8.6)}
    acc = {"Aloe Q (320x277)": q, "held-out synthetic": {k: dict(v) for k, v in q.items()},
           "Motorcycle (741x500, held out)": moto}
    speed = {"teacher": {"macs": 5e9, "latency_ms": 30.0}, "student-pruned": {"macs": 3e8, "latency_ms": 5.0}}
    race = {"teacher": {"latency_ms": 170.0}, "student-pruned": {"latency_ms": 20.0},
            "sgbm": {"latency_ms": 40.0}}
    rows = {r[0]: (r[1], r[2]) for r in models._targets(acc, speed, race, 60.0)}
    assert rows["Aloe Q: teacher beats SGBM in EPE and bad-2"][1] == "**pass**"
    assert rows["Aloe Q: student-pruned beats SGBM in EPE and bad-3"][1] == "**miss**"  # 1.45 > 1.42
    assert rows["teacher / student-pruned latency >= 8x"] == ("6.0x", "**miss**")
    assert rows["teacher / student-pruned MACs >= 10x"][1] == "**pass**"
    reference = [k for k in rows if k.startswith("(for reference")]
    assert len(reference) == 1 and rows[reference[0]] == ("8.5x", "n/a")
    assert rows["Motorcycle (741x500, held out): student-pruned beats SGBM (EPE, bad-3)"][1] == "**miss**"
    assert rows["Aloe Q (320x277): distillation pays, student EPE <= 0.85x scratch"][0] == "0.93x"

    monkeypatch.setattr(models.held_out_pair, "scene_folder", lambda out: out / "Motorcycle")
    pairs = models._real_pairs(tmp_path, quick=True)
    assert pairs[models.held_out_pair.NAME] == tmp_path / "Motorcycle"
    assert not any("H (" in k for k in pairs)  # a quick run skips Aloe H
    monkeypatch.setattr(models.held_out_pair, "scene_folder", lambda out: None)
    assert models.held_out_pair.NAME not in models._real_pairs(tmp_path, quick=False)
