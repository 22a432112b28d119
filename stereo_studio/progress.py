"""The long-work contract, importable from every layer: a job is a generator function that yields `Progress`
events and `return`s a result (`Job[T]`).

It lives at the package root (not in `engine/`) because `data/` and `live/` write jobs too and must not
import the engine; `stereo_studio.engine.jobs` re-exports it and adds the CLI's progress bar.

`JobRun` is the one way to drive a job by hand (iterate its events, then read `.result`); nothing else in the
code base catches `StopIteration`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    """One progress report from a long job.

    `step` of `total` (total may be None when unknown); `message` is a short human line; `metrics`
    holds numbers to plot (e.g. loss, lr, it_s, eta_s, val_epe); `kind` tells consumers what it is
    ("step", "validation", "checkpoint", "point", "log", "warning", "done").
    """

    step: int = 0
    total: int | None = None
    message: str = ""
    kind: str = "step"
    metrics: dict[str, float] = field(default_factory=dict)
    payload: Any = None

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.step / self.total)


Job = Generator[Progress, None, T]


class JobRun(Generic[T]):
    """Drive a job by hand: iterate it for its events, then read `result` (its return value).

        with JobRun(job) as run:
            for event in run:
                ...            # show it, re-yield it (a relay), or drop it
        return run.result

    Leaving the `with` block (normally, by an exception, or because the generator that holds it is closed)
    closes the job, so its clean-up runs at once. `next_event()` is for callers driven by a timer: the next
    event, or None once the job has returned.
    """

    def __init__(self, job: Job[T]) -> None:
        self.job = job
        self.done = False
        self.result: T | None = None

    def __iter__(self) -> Iterator[Progress]:
        return self

    def __next__(self) -> Progress:
        if self.done:
            raise StopIteration
        try:
            return next(self.job)
        except StopIteration as stop:
            self.done, self.result = True, stop.value
            raise StopIteration from None

    def next_event(self) -> Progress | None:
        return next(self, None)

    def close(self) -> None:
        self.job.close()

    def __enter__(self) -> JobRun[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drain(job: Job[T]) -> T:
    """Run a job to completion without reporting; return its result."""
    with JobRun(job) as run:
        for _ in run:
            pass
    return run.result  # type: ignore[return-value]


class Ticker:
    """Lets a job yield at least every `interval` seconds in tight loops: `if ticker.due(): yield ...`."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False
