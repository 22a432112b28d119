"""Long work, written once: generator functions that yield `Progress` events and `return` a result.

The CLI drives them with a progress bar (`run_with_progress`), the GUI with superqt's `GeneratorWorker`
(`quit()` cancels: the generator is simply not resumed and is closed). Every job yields at least once a
second, so cancellation is honoured within a second. Code that must clean up uses `try/finally`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    """One progress report from a long job.

    `step` of `total` (total may be None when unknown); `message` is a short human line; `metrics`
    holds numbers to plot (e.g. loss, lr, it_s, eta_s, val_epe); `kind` tells consumers what it is
    ("step", "validation", "checkpoint", "point", "log", "done").
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


def run_with_progress(job: Job[T], desc: str = "", quiet: bool = False) -> T:
    """Run a job to completion in this thread, drawing a tqdm bar on stderr; return its result."""
    from tqdm import tqdm

    bar = None
    result: T
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                result = stop.value
                break
            if quiet:
                continue
            if bar is None:
                bar = tqdm(total=event.total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
            if event.total is not None and bar.total != event.total:
                bar.total = event.total
            bar.n = event.step
            shown = {k: f"{v:.4g}" for k, v in event.metrics.items() if isinstance(v, (int, float))}
            if shown:
                bar.set_postfix(shown, refresh=False)
            if event.message:
                bar.set_description_str(f"{desc} {event.message}".strip(), refresh=False)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
        job.close()
    return result


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
