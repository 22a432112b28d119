"""Run engine jobs (generators yielding `Progress`) off the GUI thread and keep a record of every job.

`JobManager.start(title, factory, *args)` calls `factory(*args)` *in a worker thread* (so even the set-up
of a job never blocks the window), iterates the generator there and relays each `Progress` to the GUI
thread. Cancel = `quit()`: the generator is not resumed and is closed in its own thread (its `finally`
blocks run there). Plain functions run the same way (`start_call`).

Thread discipline (a worker thread runs engine code only):
- Qt objects are destroyed on the GUI thread only. Python's cyclic garbage collector runs in whichever thread
  happens to allocate, so a worker could free a cycle holding a widget (a crash or a deadlock between Qt's
  mutexes and the GIL): `install_gui_gc()` turns automatic collection off and collects on a GUI-thread timer
  (pyqtgraph's `GarbageCollector`); a worker's own Python wrapper is released on the GUI thread too.
- Workers never touch the process-wide `warnings` state: superqt's `WorkerBase.run` wraps every job in
  `warnings.catch_warnings()`, which is not thread-safe (overlapping jobs restore each other's filters and
  `showwarning`); `JobWorker.run` does the same work without it. Warnings the GUI does not want are
  filtered once, here, at import on the main thread.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QThreadPool, QTimer, Signal, Slot
from superqt.utils import GeneratorWorker

from stereo_studio.errors import StereoStudioError
from stereo_studio.openmp import release_openmp_threads

log = logging.getLogger("stereo_studio.gui")

# Torch-Pruning's shape inference warns on every deep concat chain of our nets (harmless: the widths come
# from the layer shapes). Filtered here, once, on the main thread: never from inside a job.
warnings.filterwarnings("ignore", message="Maximum recursive depth reached!", category=UserWarning)

GC_INTERVAL_S = 1.0  # how often the GUI thread collects cyclic garbage (automatic collection is off)
RETIRE_GRACE_S = 5.0  # a finished worker is released on the GUI thread once its pool thread let go of it


class GuiThreadGarbageCollector(QObject):
    """pyqtgraph's `GarbageCollector` (automatic collection off; the generations are collected on a GUI-thread
    timer with the interpreter's own thresholds), plus: automatic collection is turned off again if a library
    turns it back on, and finished workers are released here, on the GUI thread."""

    def __init__(self, interval_s: float = GC_INTERVAL_S) -> None:
        super().__init__()
        from pyqtgraph.util.garbage_collector import GarbageCollector

        self._collector = GarbageCollector(interval=interval_s)  # gc.disable() + its own timer
        self._retired: list[tuple[float, Any]] = []
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(int(interval_s * 1000))

    def retire(self, worker: Any) -> None:
        """Keep `worker` referenced until its pool thread is done with it (see `_release`); once."""
        if not any(kept is worker for _, kept in self._retired):
            self._retired.append((time.monotonic(), worker))

    def _tick(self) -> None:
        if gc.isenabled():  # someone turned automatic collection back on: a worker could collect again
            gc.disable()
        self._release()

    def _release(self, force: bool = False) -> None:
        """Drop the finished workers the pool has deleted (their C++ side is gone, so no thread but this
        one holds them), or that finished long ago."""
        import shiboken6

        now, keep = time.monotonic(), []
        for since, worker in self._retired:
            done = force or not shiboken6.isValid(worker) or now - since > RETIRE_GRACE_S
            if not done or worker.is_running:
                keep.append((since, worker))
        self._retired = keep

    def resume(self) -> None:
        gc.disable()
        self._timer.start()
        self._collector.timer.start()

    def stop(self) -> None:
        """Automatic collection back on (tests, after the last window)."""
        self._timer.stop()
        self._collector.timer.stop()
        self._release(force=True)
        gc.enable()


_gui_gc: GuiThreadGarbageCollector | None = None


def install_gui_gc() -> GuiThreadGarbageCollector:
    """Collect cyclic garbage on the GUI thread only (idempotent; call it on the GUI thread)."""
    global _gui_gc
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        raise RuntimeError("install_gui_gc() must be called on the GUI thread of a running QApplication")
    if _gui_gc is None:
        _gui_gc = GuiThreadGarbageCollector()
    elif gc.isenabled():
        _gui_gc.resume()
    return _gui_gc


def uninstall_gui_gc() -> None:
    """Back to automatic collection (tests that run non-GUI code afterwards)."""
    if _gui_gc is not None:
        _gui_gc.stop()


WORKER_NICENESS = 10  # worker threads yield the CPU to the GUI thread (2 cores are easily saturated)


def _lower_thread_priority() -> None:
    """Give this worker thread a lower OS scheduling priority than the GUI thread: Linux's per-thread nice
    (which Qt's thread priorities do not change for normal threads), elsewhere (Windows, macOS) Qt's
    `QThread.setPriority`. Pool threads keep it, so every job runs below the event loop."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: Qt's priority below
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICENESS)
        return
    thread = QThread.currentThread()
    if thread is not None and thread.priority() not in (QThread.Priority.LowPriority,
                                                        QThread.Priority.LowestPriority):
        thread.setPriority(QThread.Priority.LowPriority)


def _drive(factory: Callable[..., Any], args: tuple, kwargs: dict) -> Generator[Any, None, Any]:
    """Run one job in this pool thread; afterwards the thread lets its OpenMP team go (see `openmp`): an
    idle pooled thread's team would slow every other thread's torch work, the window's timings included."""
    _lower_thread_priority()
    try:
        job = factory(*args, **kwargs)
        if not isinstance(job, Generator):  # a plain function: its return value is the result
            return job
        return (yield from job)
    finally:
        release_openmp_threads()


class JobError(Exception):
    """Wraps a RuntimeError raised by a job: superqt would otherwise take it for a deleted worker and
    swallow it without emitting `errored` or `finished`."""


class JobWorker(GeneratorWorker):
    """A GeneratorWorker that closes its generator in the worker thread when it stops for any reason, and
    runs without touching the process-wide `warnings` state (see the module notes)."""

    outcome: str = ""  # returned | errored | aborted, once the job has ended
    error: BaseException | None = None

    def run(self) -> None:
        """superqt's `WorkerBase.run` without `warnings.catch_warnings()`: a job's warnings go through the
        filters set on the main thread. The outcome is kept on the worker (`outcome`: returned | errored |
        aborted) so a window closing without an event loop still knows how each job ended."""
        self.started.emit()
        self._running = True
        try:
            result = self.work()
            if isinstance(result, BaseException):
                raise result
            if self.abort_requested:
                self.outcome = "aborted"
            else:
                self.outcome = "returned"
                self.returned.emit(result)
        except Exception as exc:
            self.outcome = "errored"
            self.error = exc
            self.errored.emit(exc)
        finally:
            self._running = False
            self.finished.emit()  # (superqt's private `_finished` is not used: see `start`)

    def start(self) -> None:
        """Queue the job on the global pool now. superqt's `start` would also connect its private `_finished`
        signal to a plain classmethod: every connection of a worker goes through a `JobRelay` instead, and
        the relay takes the worker out of superqt's keep-alive set on the GUI thread."""
        if self in self._worker_set:
            raise RuntimeError("This worker is already started!")
        self._worker_set.add(self)
        QThreadPool.globalInstance().start(self)

    def work(self):
        try:
            result = super().work()
        finally:
            try:
                self._gen.close()
            except Exception:  # cleanup failures must not hide the job's own outcome
                log.exception("closing a job failed")
        if isinstance(result, RuntimeError):
            raise JobError(f"{type(result).__name__}: {result}") from result
        return result


def error_message(exc: BaseException) -> str:
    """The one line shown to the user for an exception: our own messages as is, others with their type."""
    own = isinstance(exc, StereoStudioError | JobError)
    text = str(exc) if own else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


class JobRelay(QObject):
    """Receives one worker's signals on the GUI thread and calls the job's handlers there.

    Worker signals are emitted from pool threads. Connected to plain Python callables, PySide routes them
    through its own hidden receivers, and one such emission crashed (a segfault in `started.emit()` while
    windows were closed and opened). Connected to the `@Slot` methods of this QObject, they are ordinary
    queued Qt connections to a receiver living on the GUI thread: Qt drops them safely if the relay is gone.
    The relay is a child of its `JobManager` and deletes itself once the job has finished."""

    def __init__(self, parent: QObject, handlers: dict[str, Callable[..., None]]) -> None:
        super().__init__(parent)
        self._handlers = handlers

    def connect_worker(self, worker: JobWorker) -> None:
        for name in ("yielded", "returned", "errored", "finished", "started", "paused", "resumed"):
            getattr(worker, name).connect(getattr(self, f"on_{name}"))

    def _call(self, name: str, *args: Any) -> None:
        handler = self._handlers.get(name)
        if handler is not None:
            handler(*args)

    @Slot(object)
    def on_yielded(self, event: Any) -> None:
        self._call("yielded", event)

    @Slot(object)
    def on_returned(self, result: Any) -> None:
        self._call("returned", result)

    @Slot(object)
    def on_errored(self, exc: Any) -> None:
        self._call("errored", exc)

    @Slot()
    def on_started(self) -> None:
        self._call("started")

    @Slot()
    def on_paused(self) -> None:
        self._call("paused")

    @Slot()
    def on_resumed(self) -> None:
        self._call("resumed")

    @Slot()
    def on_finished(self) -> None:
        try:
            self._call("finished")
        finally:
            self._handlers = {}
            self.deleteLater()


@dataclass
class JobRecord:
    """What the Jobs panel shows about one job."""

    id: int
    title: str
    status: str = "queued"  # queued | running | paused | done | cancelled | failed
    fraction: float | None = None
    message: str = ""
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    cancellable: bool = True
    worker: JobWorker | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running", "paused")

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


class JobManager(QObject):
    """Starts, tracks and cancels background jobs. Signals carry the `JobRecord`."""

    job_added = Signal(object)
    job_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.records: list[JobRecord] = []
        self._ids = itertools.count(1)
        self.closed = False  # after cancel_all(): late signals of finished workers are ignored
        self._workers: dict[JobWorker, JobRecord] = {}
        self._gc = install_gui_gc()  # created on the GUI thread: so is every manager
        pool = QThreadPool.globalInstance()
        # Jobs, the live preview and measurements run at the same time: never let the pool queue them.
        pool.setMaxThreadCount(max(pool.maxThreadCount(), 16))

    def start(
        self,
        title: str,
        factory: Callable[..., Any],
        *args: Any,
        on_progress: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_finished: Callable[[JobRecord], None] | None = None,
        track: bool = True,
        **kwargs: Any,
    ) -> JobRecord:
        """Run `factory(*args, **kwargs)` (a job generator or a plain function) in a worker thread.

        The callbacks run on the GUI thread. They (and the slots below) reach the worker through
        `record.worker` only: a slot holding the worker itself would make a cycle through Qt's connections
        that no collector can see, and the worker, its signals and every callback would never be freed."""
        record = JobRecord(next(self._ids), title)
        worker = JobWorker(_drive, factory, args, kwargs)
        record.worker = worker

        def progress(event: Any) -> None:
            if self.closed:
                return
            paused = record.worker is not None and record.worker.is_paused
            if record.status in ("queued", "paused") and not paused:
                record.status = "running"
            fraction = getattr(event, "fraction", None)
            if fraction is not None:
                record.fraction = fraction
            message = getattr(event, "message", "")
            if message:
                record.message = message
            self.job_changed.emit(record)
            if on_progress is not None:
                on_progress(event)

        def returned(result: Any) -> None:
            record.status, record.fraction = "done", 1.0
            if self.closed:
                return
            if on_result is not None:
                try:
                    on_result(result)
                except Exception as exc:  # a binding bug must not kill the window
                    log.exception("handling the result of %s failed", title)
                    record.status, record.error = "failed", error_message(exc)
                    if on_error is not None:
                        on_error(record.error)

        def errored(exc: BaseException) -> None:
            record.status, record.error = "failed", error_message(exc)  # a failure, even while closing
            if not isinstance(exc, StereoStudioError):
                exc = exc.__cause__ if isinstance(exc, JobError) and exc.__cause__ else exc
                log.error("job %s failed:\n%s", title, "".join(traceback.format_exception(exc)))
            if on_error is not None and not self.closed:
                on_error(record.error)

        def finished() -> None:
            done = record.worker
            if done is not None:
                self._workers.pop(done, None)
                self._settle(record, done)
                self._release(done)
            record.ended = record.ended or time.monotonic()
            record.worker = None
            if self.closed:
                return
            self.job_changed.emit(record)
            if on_finished is not None:
                on_finished(record)

        def started() -> None:
            if record.status == "queued" and not self.closed:
                record.status = "running"
                self.job_changed.emit(record)

        JobRelay(self, {
            "yielded": progress, "returned": returned, "errored": errored, "finished": finished,
            "started": started, "paused": lambda: self._set_status(record, "paused"),
            "resumed": lambda: self._set_status(record, "running"),
        }).connect_worker(worker)
        if track:
            self.records.append(record)
            self.job_added.emit(record)
        self._workers[worker] = record
        worker.start()
        return record

    def _release(self, worker: JobWorker) -> None:
        """Out of superqt's keep-alive set (see `JobWorker.start`), and freed on this (GUI) thread once the
        pool thread has let go of it. Idempotent."""
        JobWorker._worker_set.discard(worker)
        self._gc.retire(worker)

    @staticmethod
    def _settle(record: JobRecord, worker: JobWorker) -> None:
        """The final status of a job that stopped, from how its worker ended."""
        if not record.active:
            return
        if worker.outcome == "errored" and worker.error is not None:
            record.status, record.error = "failed", error_message(worker.error)
        elif worker.outcome == "returned":
            record.status = "done"
        else:  # aborted, or never started
            record.status = "cancelled"
        record.ended = time.monotonic()

    def _set_status(self, record: JobRecord, status: str) -> None:
        if record.active and not self.closed:
            record.status = status
            self.job_changed.emit(record)

    def cancel(self, record: JobRecord) -> None:
        """Ask a job to stop; it stops at its next progress report (within about a second)."""
        if record.worker is not None and record.active:
            record.message = "cancelling…"
            record.worker.quit()
            if record.worker.is_paused:
                record.worker.resume()
            self.job_changed.emit(record)

    def toggle_pause(self, record: JobRecord) -> None:
        if record.worker is not None and record.active:
            record.worker.toggle_pause()

    def active(self) -> list[JobRecord]:
        """The jobs of the Jobs list still queued, running or paused."""
        return [r for r in self.records if r.active]

    def busy(self) -> list[JobRecord]:
        """Every job still queued, running or paused, the ones kept out of the Jobs list (`track=False`, e.g.
        the preview's predictions) included: what a latency timing must know ran beside it."""
        return [r for r in self._workers.values() if r.active]

    def cancel_all(self, wait_ms: int = 10000) -> bool:
        """Cancel every job this manager started and wait for them; True if all stopped in time.
        Afterwards the manager ignores the late signals of its workers (the window is going away)."""
        self.closed = True
        workers = dict(self._workers)
        for worker in workers:
            worker.quit()
            if worker.is_paused:
                worker.resume()
        deadline = time.monotonic() + wait_ms / 1000.0
        while any(w.is_running for w in workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        for worker, record in workers.items():
            if not worker.is_running:  # stopped (or never started): its real outcome, not a guess
                self._settle(record, worker)
                self._release(worker)  # its relay may go with this manager before delivering `finished`
        return not any(w.is_running for w in workers)
