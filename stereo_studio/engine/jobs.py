"""Long work, written once: generator functions that yield `Progress` events and `return` a result.

The contract (`Progress`, `Job`, `Ticker`, `JobRun`, `drain`) lives in `stereo_studio.progress` so that
`data/` and `live/` can write jobs without importing the engine; it is re-exported here.

The CLI drives jobs with a progress bar (`run_with_progress`), the GUI with superqt's `GeneratorWorker`
(`quit()` cancels: the generator is simply not resumed and is closed). Every job yields at least once a
second, so cancellation is honoured within a second. Code that must clean up uses `try/finally`.
"""

from __future__ import annotations

import sys

from stereo_studio.progress import Job, JobRun, Progress, T, Ticker, drain

__all__ = ["Job", "JobRun", "Progress", "Ticker", "drain", "run_with_progress"]


def run_with_progress(job: Job[T], desc: str = "", quiet: bool = False) -> T:
    """Run a job to completion in this thread, drawing a tqdm bar on stderr; return its result."""
    from tqdm import tqdm

    bar = None
    try:
        with JobRun(job) as run:
            for event in run:
                if quiet:
                    continue
                if event.kind == "warning":  # a line above the bar, shown once per message by the job
                    tqdm.write(f"warning: {event.message}", file=sys.stderr)
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
    return run.result  # type: ignore[return-value]
