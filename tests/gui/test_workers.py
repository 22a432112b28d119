"""JobManager: jobs run off the GUI thread, report progress, return results, cancel cleanly, fail clearly."""

from __future__ import annotations

import threading
import time

from stereo_studio.engine.jobs import Progress
from stereo_studio.errors import ModelError
from stereo_studio.gui.workers import JobManager, error_message


def _counting(n: int, log: list, delay: float = 0.0):
    try:
        for i in range(n):
            log.append(threading.current_thread().name)
            time.sleep(delay)
            yield Progress(i + 1, n, f"step {i + 1}")
        return sum(range(n))
    finally:
        log.append("closed")


def test_job_runs_in_a_worker_and_returns(qtbot, wait_job):
    manager = JobManager()
    log: list = []
    events, results = [], []
    record = manager.start("count", _counting, 5, log, on_progress=events.append, on_result=results.append)
    wait_job(record)
    assert record.status == "done" and results == [10]
    assert [e.step for e in events] == [1, 2, 3, 4, 5]
    assert record.fraction == 1.0
    assert threading.main_thread().name not in log[:-1] and log[-1] == "closed"


def test_cancel_closes_the_generator(qtbot, wait_job):
    manager = JobManager()
    log: list = []
    results = []
    record = manager.start("slow", _counting, 10_000, log, 0.01, on_result=results.append)
    qtbot.waitUntil(lambda: len(log) > 3, timeout=10_000)
    manager.cancel(record)
    wait_job(record, 10_000)
    assert record.status == "cancelled"
    assert log[-1] == "closed" and results == []


def test_errors_become_one_line_messages(qtbot, wait_job):
    manager = JobManager()
    errors = []

    def bad_model():
        raise ModelError("model.safetensors in /x is corrupt")

    def runtime():
        raise RuntimeError("boom\nsecond line")
        yield  # pragma: no cover

    r1 = manager.start("bad", bad_model, on_error=errors.append)
    r2 = manager.start("runtime", runtime, on_error=errors.append)
    wait_job(r1)
    wait_job(r2)  # superqt would swallow a RuntimeError without `finished`: it must not hang
    assert r1.status == r2.status == "failed"
    assert r1.error == "model.safetensors in /x is corrupt"
    assert r2.error == "RuntimeError: boom"
    assert sorted(errors) == sorted([r1.error, r2.error])
    assert error_message(ValueError("")) == "ValueError:"


def test_pause_and_resume(qtbot, wait_job):
    manager = JobManager()
    log: list = []
    record = manager.start("pausable", _counting, 10_000, log, 0.005)
    qtbot.waitUntil(lambda: len(log) > 2, timeout=10_000)
    manager.toggle_pause(record)
    qtbot.waitUntil(lambda: record.status == "paused", timeout=10_000)
    n = len(log)
    qtbot.wait(200)
    assert len(log) <= n + 1  # at most the step in flight
    manager.toggle_pause(record)
    qtbot.waitUntil(lambda: len(log) > n + 3, timeout=10_000)
    manager.cancel(record)
    wait_job(record, 10_000)
    assert record.status == "cancelled" and log[-1] == "closed"
