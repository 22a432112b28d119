"""JobManager: jobs run off the GUI thread, report progress, return results, cancel cleanly, fail clearly."""

from __future__ import annotations

import gc
import threading
import time
import warnings
import weakref

import pytest
from PySide6.QtCore import QObject

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


CANCEL_PROMISE_S = 1.0  # the GUI promises: a cancelled job stops within a second


def test_cancel_closes_the_generator_within_a_second(qtbot):
    manager = JobManager()
    log: list = []
    results = []
    record = manager.start("slow", _counting, 10_000, log, 0.05, on_result=results.append)
    qtbot.waitUntil(lambda: len(log) > 3, timeout=10_000)
    t0 = time.monotonic()
    manager.cancel(record)
    qtbot.waitUntil(lambda: not record.active, timeout=int(4000 * CANCEL_PROMISE_S))
    took = time.monotonic() - t0
    assert took < CANCEL_PROMISE_S, f"cancel took {took:.2f} s (promised: {CANCEL_PROMISE_S:g} s)"
    assert record.status == "cancelled" and record.error == ""
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


def test_jobs_leave_the_process_wide_warnings_state_alone(qtbot, wait_job):
    """A worker must not swap `warnings.showwarning` or the filters (superqt's `catch_warnings()` per job did:
    overlapping jobs then restore each other's state, and a warning went out through a Qt signal)."""
    manager = JobManager()
    inside, release = threading.Event(), threading.Event()

    def warns():
        inside.set()
        warnings.warn("a warning from a job", UserWarning, stacklevel=1)
        release.wait(10)
        yield Progress(1, 1, "done")

    with pytest.warns(UserWarning, match="a warning from a job"):  # delivered the ordinary way
        show, filters = warnings.showwarning, list(warnings.filters)
        record = manager.start("warns", warns)
        qtbot.waitUntil(inside.is_set, timeout=10_000)
        during = warnings.showwarning, list(warnings.filters)
        release.set()
        wait_job(record)
        assert record.status == "done"
        assert during[0] is show and during[1] == filters, "a running job changed the warnings state"
        assert warnings.showwarning is show and list(warnings.filters) == filters


def _churn(rounds: int):
    """Allocates plenty of containers: an automatic garbage collection would run in this (worker) thread."""
    for i in range(rounds):
        junk = [[[] for _ in range(50)] for _ in range(400)]
        del junk
        yield Progress(i + 1, rounds, "churning")


def test_qt_garbage_is_destroyed_on_the_gui_thread(qtbot, wait_job):
    manager = JobManager()
    died_on: list[str] = []

    def make_garbage() -> None:
        obj = QObject()
        obj.me = obj  # a reference cycle: only the cyclic collector frees it (and the QObject with it)
        weakref.finalize(obj, lambda: died_on.append(threading.current_thread().name))

    gc.collect()
    make_garbage()
    record = manager.start("churn", _churn, 40)
    wait_job(record)
    keep = [[] for _ in range(5000)]  # enough new objects for the GUI thread's next timed collection
    qtbot.waitUntil(lambda: bool(died_on), timeout=10_000)
    del keep
    assert died_on == [threading.main_thread().name]


def test_finished_workers_are_released_on_the_gui_thread(qtbot, wait_job):
    """A finished worker, its signals object and the callbacks it holds are freed (no leak through Qt's
    connections), and freed on the GUI thread."""
    manager = JobManager()
    died_on: list[tuple[str, str]] = []
    records = []
    for _ in range(5):
        record = manager.start("count", _counting, 3, [], on_result=lambda r: None)
        worker = record.worker
        for what, obj in (("worker", worker), ("signals", worker.signals)):
            weakref.finalize(obj, lambda w=what: died_on.append((w, threading.current_thread().name)))
        del worker, obj
        records.append(record)
    for record in records:
        wait_job(record)
    qtbot.waitUntil(lambda: len(died_on) == 10, timeout=15_000)
    assert {thread for _, thread in died_on} == {threading.main_thread().name}


def test_worker_signals_reach_a_gui_thread_relay_that_goes_with_the_job(qtbot, wait_job):
    """Every worker signal is a queued Qt connection to a `JobRelay` slot (not to a plain Python callable,
    which PySide routes through hidden receivers: see the class); handlers run on the GUI thread, and the
    relay and superqt's keep-alive entry go once the job has finished."""
    from stereo_studio.gui.workers import JobRelay, JobWorker

    manager = JobManager()
    ran_on: list[str] = []
    record = manager.start("count", _counting, 3, [], on_progress=lambda e: ran_on.append(
        threading.current_thread().name), on_result=lambda r: ran_on.append(threading.current_thread().name))
    worker = record.worker
    relays = manager.findChildren(JobRelay)
    assert len(relays) == 1 and worker in JobWorker._worker_set
    assert worker.signals.receivers("2started()") == 1 and worker.signals.receivers("2yielded(PyObject)") == 1
    wait_job(record)
    assert ran_on and set(ran_on) == {threading.main_thread().name}
    qtbot.waitUntil(lambda: not manager.findChildren(JobRelay), timeout=5_000)  # deleteLater after finished
    assert worker not in JobWorker._worker_set


def test_cancel_all_releases_workers_whose_relay_goes_with_the_manager(qtbot):
    """A window closing cancels its jobs and is deleted: workers must not stay in superqt's keep-alive set
    because their relay (a child of the manager) never delivered `finished`."""
    from stereo_studio.gui.workers import JobWorker

    manager = JobManager()
    record = manager.start("count", _counting, 1000, [], 0.01)
    worker = record.worker
    qtbot.waitUntil(lambda: worker.is_running, timeout=5_000)
    assert manager.cancel_all(wait_ms=5_000)
    manager.deleteLater()  # its relays with it, before their queued `finished` is delivered
    del manager
    assert worker not in JobWorker._worker_set and record.status == "cancelled"


def test_shut_down_closes_the_window_and_waits_for_every_job_thread(qtbot):
    """The event loop can end without the window closing (app.quit()): jobs still running then met the
    interpreter's teardown of their signals ("Signal source has been deleted"). `shut_down` closes the window
    and waits for the pool's threads, a job that does not look at cancellation included."""
    from PySide6.QtCore import QThreadPool

    from stereo_studio.gui.app import shut_down

    manager = JobManager()
    log: list = []
    manager.start("long", _counting, 50, log, delay=0.02)
    manager.start("deaf", time.sleep, 0.5)  # a plain function: cancellation cannot stop it

    class Window:
        closed = 0

        def isVisible(self) -> bool:
            return not self.closed

        def close(self) -> None:
            self.closed += 1
            manager.cancel_all(wait_ms=0)  # as MainWindow.closeEvent does, without waiting

    window = Window()
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() >= 2, timeout=5000)
    assert shut_down(window, wait_ms=10_000)
    assert window.closed == 1
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def test_a_job_lets_its_threads_openmp_team_go():
    """An idle pooled thread keeping its OpenMP team would slow the window's timings (see openmp.py)."""
    from stereo_studio.gui.workers import _drive
    from stereo_studio.openmp import _loaded_runtime
    from tests.test_openmp import in_named_thread, parallel_torch_op, threads_named

    if _loaded_runtime() is None:
        pytest.skip("no OpenMP runtime mapped (not Linux?)")

    def job():
        parallel_torch_op()
        yield Progress(1, 2, "ran a parallel op")
        return threads_named("ss-omp-job")

    def body() -> tuple[int, int]:
        gen = _drive(job, (), {})
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value, threads_named("ss-omp-job")

    during, after = in_named_thread("ss-omp-job", body)
    assert during == 2 and after == 1
