"""Helpers shared by the benchmark sections: thread control, fresh-process timing and markdown tables."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_RUNTIME_ENV = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "STEREO_STUDIO_PRECISION", "GOMP_SPINCOUNT")


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block with `n` torch and OpenCV threads, restoring the previous counts."""
    import cv2
    import torch

    before_t, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before_t)
        cv2.setNumThreads(before_cv)


def table(head: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float | None, spec: str = ".1f") -> str:
    """A number formatted with `spec`, or n/a."""
    return "n/a" if value is None else format(value, spec)


def child_env() -> dict[str, str]:
    """This process's environment minus what the package set itself (the user's own values stay), for a fresh
    `stereo-studio bench` process that uses exactly a user's defaults; no probe in the children: every
    measurement of a run uses one cached choice."""
    from stereo_studio import runtime

    env = {k: v for k, v in os.environ.items() if k not in _RUNTIME_ENV}
    env.update({k: v for k, v in runtime._USER_ENV.items() if v})
    env["STEREO_STUDIO_RUNTIME_PROBE"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return env


def bench_process(model: str, size: tuple[int, int], runs: int, flags: Sequence[str] = (),
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """`stereo-studio bench --json` of `model` in a fresh process (its own OpenMP, nothing else loaded)."""
    cmd = [sys.executable, "-m", "stereo_studio", "bench", "--model", model, "--size", f"{size[0]}x{size[1]}",
           "--runs", str(runs), "--warmup", "3", "--no-memory", "--json", *flags]
    proc = subprocess.run(cmd, cwd=REPO, env=env or child_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"bench {model} {' '.join(flags)} failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_rounds(jobs: dict[str, tuple[str, list[str]]], size: tuple[int, int], runs: int, rounds: int,
                 errors: dict[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each job (label -> (model, bench flags)) timed `rounds` times, one fresh process per job and round, the
    rounds interleaved and rotated so that slow drift of the machine hits every job alike. With `errors`
    given, a failing job is recorded there (label -> message) and skipped afterwards; without, it raises."""
    env = child_env()
    labels = list(jobs)
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            if errors is not None and label in errors:
                continue
            model, flags = jobs[label]
            try:
                results[label].append(bench_process(model, size, runs, flags, env))
            except Exception as exc:  # a bench process that failed, timed out or printed no JSON
                if errors is None:
                    raise
                errors[label] = str(exc)
    return results


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    """The median over rounds of one key of `bench` results (None when no round has it)."""
    values = [x[key] for x in results if x.get(key) is not None]
    return statistics.median(values) if values else None
