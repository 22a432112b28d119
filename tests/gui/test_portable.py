"""Beyond Linux: peak memory and worker priority have portable fallbacks (no /proc, no per-thread nice)."""

from __future__ import annotations

import os


def test_rss_readers_on_every_system(monkeypatch):
    import ctypes

    from stereo_studio.engine import bench

    for platform in ("linux", "darwin", "freebsd"):  # /proc; getrusage (bytes on macOS, KiB elsewhere)
        value = bench._rss_reader(platform)()
        assert isinstance(value, int) and value > 0, platform
    monkeypatch.setattr(ctypes, "CDLL", lambda *_a, **_k: (_ for _ in ()).throw(OSError("no glibc")))
    in_use = bench._malloc_in_use()  # not glibc: the resident set size
    assert in_use() > 0
    assert bench.peak_malloc_mb(lambda: bytearray(64 * 2**20)) >= 0.0


def test_worker_priority_without_per_thread_nice(make_window, qtbot, wait_job, monkeypatch):
    from PySide6.QtCore import QThread

    window = make_window(models=[("sgbm", "sgbm")])
    monkeypatch.delattr(os, "getpriority")  # as on Windows: Qt's thread priority instead
    monkeypatch.delattr(os, "setpriority")

    def priority() -> str:
        return QThread.currentThread().priority().name

    seen = []
    job = window.studio.jobs.start("priority", priority, track=False, on_result=seen.append)
    wait_job(job)
    assert seen and seen[0] in ("LowPriority", "LowestPriority")
