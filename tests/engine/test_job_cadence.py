"""Jobs yield at least once a second (ARCHITECTURE.md; `engine/jobs.py`): the longest stretch of work between
two consecutive yields of each long job, start and end included.

How it is measured, and why it holds on a loaded 2-core machine:
- In CPU seconds of the thread that runs the job (`time.thread_time`), not wall time. A job is a generator, so
  all its work runs in the thread calling `next()`; with torch on one thread and OpenCV threading off, none of
  it moves to other threads. Thread CPU time is what the work takes on an idle core: other processes
  stretch the wall clock, not this. (`Ticker` uses the wall clock, so load only makes it fire sooner in CPU
  terms.) Helper threads that do not hold up a yield, such as the training batch prefetcher, do not count.
- Real jobs on tiny models and images, with the expensive unit (a forward pass, a `predict`, reading a pair)
  made slow by a deterministic CPU burn of 0.1-0.15 s: about one forward of the bundled teacher (0.15 s) or
  student (0.05 s) at 240x320 on one core of the development machine. Each job then does well over a second
  of work in total (`assert_cadence` checks this), so a job that yields only at its end fails, whatever the
  machine and its load; so does one that loses the yields inside a stage of ten or so slow units.
- One-time imports are done here, up front: the first optimizer built in a process imports `torch._dynamo`
  (about 1-1.6 s of CPU), which would otherwise land in whichever training job runs first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import torch._dynamo  # one-time imports, see above
import torch_pruning  # noqa: F401

from stereo_studio.data.sample import StereoSample
from stereo_studio.engine.jobs import Progress

BOUND_S = 1.0  # the promise
HEAVY_S = 1.2  # every job below burns at least this much CPU in total


def burn(seconds: float) -> None:
    """Spend exactly `seconds` of this thread's CPU time (a stand-in for a slower model or reader)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def cpu_gaps(job: Iterator[Progress], clock: Callable[[], float] = time.thread_time) -> tuple[list, Any]:
    """Run `job` to its end; return the `clock` time spent from its start to the first yield, between each
    two yields, and from the last yield to its return, plus the job's result."""
    gaps = []
    last = clock()
    while True:
        try:
            next(job)
        except StopIteration as stop:
            gaps.append(clock() - last)
            return gaps, stop.value
        now = clock()
        gaps.append(now - last)
        last = now


def assert_cadence(gaps: list[float], heavy: bool = True) -> None:
    worst = int(np.argmax(gaps))
    assert gaps[worst] < BOUND_S, f"{gaps[worst]:.2f} s of CPU without a yield (gap {worst} of {len(gaps)})"
    if heavy:  # the same job yielding only at its end would fail the check above
        assert sum(gaps) > HEAVY_S, f"only {sum(gaps):.2f} s of work: too little to test the promise"


@pytest.fixture(autouse=True)
def single_threaded():
    """All the work on the job's thread (see the module doc); restored afterwards."""
    torch_threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv_threads)


def slow_model(seconds: float, arch: str = "student", **overrides: Any) -> torch.nn.Module:
    """A real (small) network whose every forward also burns `seconds` of CPU; copies (pruning) keep it."""
    from stereo_studio.models.registry import build_model, default_config

    torch.manual_seed(0)
    model = build_model(default_config(arch, **overrides)).eval()
    model.register_forward_hook(lambda module, inputs, output: burn(seconds))
    return model


def pairs(n: int, size: tuple[int, int] = (48, 64), max_disp: int = 16) -> list[StereoSample]:
    from stereo_studio.data.synthetic import SyntheticStereo

    data = SyntheticStereo(height=size[0], width=size[1], max_disp=max_disp, seed=5, length=n)
    return [data[i] for i in range(n)]


class SlowList(list):
    """A dataset whose every pair takes `seconds` of CPU to read."""

    name = "slow"

    def __init__(self, samples: list[StereoSample], seconds: float) -> None:
        super().__init__(samples)
        self.seconds = seconds

    def __getitem__(self, index):
        burn(self.seconds)
        return super().__getitem__(index)


# ---- the harness itself --------------------------------------------------------------------------------


def test_cpu_gaps_counts_start_between_and_end():
    ticks = iter([0.0, 0.25, 1.5, 1.75, 4.0])

    def job():
        yield Progress(0)
        yield Progress(1)
        yield Progress(2)
        return "done"

    gaps, result = cpu_gaps(job(), clock=lambda: next(ticks))
    assert gaps == [0.25, 1.25, 0.25, 2.25] and result == "done"
    with pytest.raises(AssertionError, match=r"2\.25 s of CPU without a yield"):
        assert_cadence(gaps)
    with pytest.raises(AssertionError, match="too little"):
        assert_cadence([0.5, 0.5])
    assert_cadence([0.5, 0.5, 0.5])


def test_burn_spends_thread_cpu_time():
    t0 = time.thread_time()
    burn(0.05)
    assert 0.05 <= time.thread_time() - t0 < 0.5


# ---- the jobs ------------------------------------------------------------------------------------------


def test_evaluate_yields_every_second():
    from stereo_studio.engine.evaluate import evaluate

    class SlowMatcher:
        name = "slow"

        def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
            burn(0.15)  # SGBM on Aloe H, or the bundled teacher at 240x320
            return np.zeros(left.shape[:2], np.float32)

    gaps, result = cpu_gaps(evaluate(SlowMatcher(), pairs(8)))  # 9 predicts with the warm-up
    assert result["pairs"] == 8
    assert_cadence(gaps)


def test_sweep_yields_every_second():
    from stereo_studio.engine.sweep import sweep

    # per ratio: MACs (one forward), 2 validation pairs, latency (a warm-up and 3-5 timed runs: at 0.1 s a
    # forward, the longest stage, about 0.6 s), and the pruning of the 0.5 copy.
    job = sweep(slow_model(0.1), [0.0, 0.5], pairs(2), val_pairs=2, size=(48, 64))
    gaps, points = cpu_gaps(job)
    assert {p.ratio for p in points} == {0.0, 0.5}
    assert_cadence(gaps)


def test_sensitivity_yields_every_second():
    from stereo_studio.engine.pruning import prunable_layers
    from stereo_studio.engine.sensitivity import sensitivity

    model = slow_model(0.15)  # the bundled teacher's pace, with the default 8 validation pairs
    layer = next(i.name for i in prunable_layers(model) if not i.protected)
    job = sensitivity(model, pairs(8), ratios=(0.5,), val_pairs=8, size=(48, 64), layers=[layer])
    gaps, table = cpu_gaps(job)
    assert len(table.rows) == 1
    assert_cadence(gaps)


def test_training_yields_every_second(tmp_path: Path, monkeypatch):
    from stereo_studio.engine import training
    from stereo_studio.engine.training import TrainConfig, train

    load_student = training._load_student

    def slow_student(cfg):
        student = load_student(cfg)
        student.register_forward_hook(lambda module, inputs, output: burn(0.1))
        return student

    monkeypatch.setattr(training, "_load_student", slow_student)
    tiny = {"feature_channels": [8, 8], "corr_channels": 8, "ctx_channels": 8, "agg_channels": 16,
            "agg_blocks": 1, "low_res_channels": 0, "refine_channels": 8}
    # validation and a checkpoint only at the start and the end, so only the per-step yields (and the
    # ticker's) keep the 10 steps in between (over a second of work) from being one long stretch
    config = TrainConfig(arch="student", model_overrides=tiny, steps=10, batch_size=1, crop=(32, 64),
                         synthetic_size=(40, 80), max_disp=16, synthetic_pairs=8, val_pairs=2,
                         val_interval=10, ckpt_interval=10, log_interval=1, precision="fp32", threads=1)
    gaps, model_dir = cpu_gaps(train(config, tmp_path / "run"))  # 2 + 10 + 2 slow forward passes
    assert (model_dir / "model.safetensors").exists()
    assert_cadence(gaps)


def test_dataset_generation_yields_every_second(tmp_path: Path):
    from stereo_studio.data.datasets import write_dataset

    gaps, root = cpu_gaps(write_dataset(SlowList(pairs(12), 0.1), tmp_path / "data"))
    assert len(list(root.iterdir())) == 12
    assert_cadence(gaps)


def test_calibration_yields_every_second(chessboard_dir: Path):
    from stereo_studio.live.calibration import calibrate_stereo

    gaps, result = cpu_gaps(calibrate_stereo(chessboard_dir))
    assert result.pairs_used == 13
    assert_cadence(gaps, heavy=False)  # all of it takes about 0.3 s: only a slow stage would show
