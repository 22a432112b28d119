"""Run engine jobs (generators yielding `Progress`) off the GUI thread and keep a record of every job.

`JobManager.start(title, factory, *args)` calls `factory(*args)` *in a worker thread* (so even the set-up
of a job never blocks the window), iterates the generator there and relays each `Progress` to the GUI
thread. Cancel = `quit()`: the generator is not resumed and is closed in its own thread (its `finally`
blocks run there). Plain functions run the same way (`start_call`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import GeneratorWorker

from stereo_studio.errors import JobCancelled, StereoStudioError

log = logging.getLogger("stereo_studio.gui")


WORKER_NICENESS = 10  # worker threads yield the CPU to the GUI thread (2 cores are easily saturated)


def _lower_thread_priority() -> None:
    """Give this worker thread a lower OS scheduling priority than the GUI thread (Linux: per-thread nice;
    elsewhere nothing happens). Pool threads keep it, so every job runs below the event loop."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: keep the default
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICENESS)


def _drive(factory: Callable[..., Any], args: tuple, kwargs: dict) -> Generator[Any, None, Any]:
    _lower_thread_priority()
    job = factory(*args, **kwargs)
    if not isinstance(job, Generator):  # a plain function: its return value is the result
        return job
    return (yield from job)


class JobError(Exception):
    """Wraps a RuntimeError raised by a job: superqt would otherwise take it for a deleted worker and
    swallow it without emitting `errored` or `finished`."""


class JobWorker(GeneratorWorker):
    """A GeneratorWorker that closes its generator in the worker thread when it stops for any reason."""

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
        self._workers: set[JobWorker] = set()
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
        """Run `factory(*args, **kwargs)` (a job generator or a plain function) in a worker thread."""
        record = JobRecord(next(self._ids), title)
        worker = JobWorker(_drive, factory, args, kwargs)
        record.worker = worker

        def progress(event: Any) -> None:
            if self.closed:
                return
            if record.status in ("queued", "paused") and not worker.is_paused:
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
            if isinstance(exc, JobCancelled) or self.closed:
                record.status = "cancelled"
                return
            record.status, record.error = "failed", error_message(exc)
            if not isinstance(exc, StereoStudioError):
                exc = exc.__cause__ if isinstance(exc, JobError) and exc.__cause__ else exc
                log.error("job %s failed:\n%s", title, "".join(traceback.format_exception(exc)))
            if on_error is not None:
                on_error(record.error)

        def finished() -> None:
            self._workers.discard(worker)
            if record.status in ("queued", "running", "paused"):
                record.status = "cancelled" if worker.abort_requested else "done"
            record.ended = time.monotonic()
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

        worker.yielded.connect(progress)
        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.finished.connect(finished)
        worker.started.connect(started)
        worker.paused.connect(lambda: self._set_status(record, "paused"))
        worker.resumed.connect(lambda: self._set_status(record, "running"))
        if track:
            self.records.append(record)
            self.job_added.emit(record)
        self._workers.add(worker)
        worker.start()
        return record

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
        return [r for r in self.records if r.active]

    def cancel_all(self, wait_ms: int = 10000) -> bool:
        """Cancel every job this manager started and wait for them; True if all stopped in time.
        Afterwards the manager ignores the late signals of its workers (the window is going away)."""
        self.closed = True
        for record in self.records:
            if record.active:
                record.status, record.ended = "cancelled", time.monotonic()
        workers = list(self._workers)
        for worker in workers:
            worker.quit()
            if worker.is_paused:
                worker.resume()
        deadline = time.monotonic() + wait_ms / 1000.0
        while any(w.is_running for w in workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        return not any(w.is_running for w in workers)
