"""The real-time pipeline: frame events, timings, metrics, failures and latest-frame-wins."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from live_helpers import FakeSource, ShiftMatcher, ideal_calibration, sample_list

from stereo_studio.engine.jobs import run_with_progress
from stereo_studio.live.pipeline import STAGES, FrameResult, StereoPipeline
from stereo_studio.live.rectify import Rectifier
from stereo_studio.live.sources import DatasetSource, open_source
from stereo_studio.progress import JobRun


def drain(job):
    with JobRun(job) as run:
        events = list(run)
    return events, run.result


def test_sbs_video_plays_through_with_expected_frame_count(sbs_video: Path) -> None:
    with open_source(sbs_video) as src:
        pipe = StereoPipeline(src, [ShiftMatcher(6.0)], input_size=(48, 64))
        events, summary = drain(pipe.run())
    frames = [e for e in events if e.kind == "frame"]
    assert len(frames) == 12 and summary["frames"] == 12 and summary["error"] is None
    assert [e.payload.index for e in frames] == list(range(12)) and frames[-1].total == 12
    result: FrameResult = frames[0].payload
    assert result.left.shape == (48, 64, 3)
    out = result.outputs["shift"]
    assert out.disparity.shape == (48, 64) and out.color.shape == (48, 64, 3) and out.color.dtype == np.uint8
    assert set(result.timings) == set(STAGES) and result.timings["total"] >= result.timings["infer"]
    assert result.latency_ms > 0 and summary["fps"] > 0 and summary["dropped"] == 0
    assert set(summary["ms"]) == set(STAGES) and summary["models"]["shift"]["ms"] >= 0


def test_several_models_and_metrics_against_ground_truth() -> None:
    src = DatasetSource(sample_list(3), "samples")
    models = [
        ShiftMatcher(6.0, name="right"),
        ShiftMatcher(2.0, name="wrong"),
        ShiftMatcher(2.0, name="wrong"),
    ]
    pipe = StereoPipeline(src, models)
    summary = run_with_progress(pipe.run(), quiet=True)
    assert list(summary["models"]) == ["right", "wrong", "wrong#2"]
    assert summary["models"]["right"]["epe"] == pytest.approx(0.0)
    assert (
        summary["models"]["wrong"]["epe"] == pytest.approx(4.0)
        and summary["models"]["wrong"]["bad3"] == 100.0
    )
    result = pipe.process(DatasetSource(sample_list(1), "one").read())
    assert result.metrics["wrong"]["bad3"] == 100.0
    assert result.outputs["wrong"].error_color.shape == (48, 64, 3)
    assert result.disp_range[0] <= 6.0 <= result.disp_range[1]  # auto range from the ground truth


def test_fixed_range_and_no_ground_truth(sbs_video: Path) -> None:
    with open_source(sbs_video) as src:
        pipe = StereoPipeline(src, [ShiftMatcher(6.0)], disp_range=(0.0, 12.0), colormap="inferno")
        result = pipe.process(src.read())
    assert result.disp_range == (0.0, 12.0) and result.metrics == {}
    assert result.outputs["shift"].error is None


def test_rectifier_runs_before_the_models() -> None:
    src = FakeSource(count=2, h=60, w=80)
    pipe = StereoPipeline(src, [ShiftMatcher()], rectifier=Rectifier(ideal_calibration(60, 80)))
    events, summary = drain(pipe.run())
    assert summary["frames"] == 2 and events[0].payload.gt is None  # raw ground truth is dropped
    assert summary["ms"]["rectify"] > 0


@pytest.mark.parametrize("realtime", [False, True])
def test_source_dying_mid_stream_ends_with_an_error_event(realtime: bool) -> None:
    pipe = StereoPipeline(FakeSource(count=20, fail_after=4, fps=200.0), [ShiftMatcher()], realtime=realtime)
    events, summary = drain(pipe.run())
    kinds = [e.kind for e in events]
    assert kinds[-1] == "error" and kinds.count("error") == 1
    assert "unplugged" in events[-1].message and summary["error"] == events[-1].message
    assert 1 <= summary["frames"] <= 4


def test_stalled_source_ends_with_an_error_event_not_a_hang() -> None:
    src = FakeSource(count=20, hang_after=2, hang_seconds=1.0, live=True)
    pipe = StereoPipeline(src, [ShiftMatcher()], stall_timeout=0.3)
    events, summary = drain(pipe.run())
    assert events[-1].kind == "error" and "no frame for 0.3 s" in summary["error"]


def test_slow_model_drops_frames_instead_of_lagging() -> None:
    src = FakeSource(count=40, fps=100.0)  # a 100 fps "camera"
    pipe = StereoPipeline(src, [ShiftMatcher(delay=0.05)], realtime=True)  # a 20 fps model
    events, summary = drain(pipe.run())
    indices = [e.payload.index for e in events if e.kind == "frame"]
    assert summary["captured"] == 40 and summary["dropped"] > 10
    assert len(indices) < 30 and indices == sorted(indices) and indices[-1] >= 30
    # frames are skipped, not queued: the processed frame is never older than what was captured before it
    assert max(np.diff(indices)) > 1
    assert summary["latency_ms"]["max"] < 1000


def test_cancelling_stops_the_capture_thread() -> None:
    src = FakeSource(count=1000, fps=200.0, live=True)
    job = StereoPipeline(src, [ShiftMatcher()]).run()
    assert next(job).kind == "frame"
    job.close()
    assert not any(t.name == "grab fake" and t.is_alive() for t in threading.enumerate())


def test_max_frames_limits_the_run(sbs_video: Path) -> None:
    with open_source(sbs_video) as src:
        summary = run_with_progress(StereoPipeline(src, [ShiftMatcher()]).run(max_frames=5), quiet=True)
    assert summary["frames"] == 5


def test_results_out_of_range_are_warned_once_per_kind() -> None:
    """A scene declaring disparities (calib.txt ndisp) beyond a model's max disparity, then frames resized
    below the model's range: each frame carries its warnings, the run yields each kind once."""
    samples = sample_list(3)
    for s in samples:
        s.meta["max_disp"] = 40.0  # ShiftMatcher's max disparity is 32
    pipe = StereoPipeline(DatasetSource(samples, "declared"), [ShiftMatcher()])
    events, summary = drain(pipe.run())
    frames = [e.payload for e in events if e.kind == "frame"]
    assert all(list(f.warnings) == ["shift:range"] for f in frames)
    warnings = [e.message for e in events if e.kind == "warning"]
    assert len(warnings) == 1 and "is 32" in warnings[0]
    assert "reach 40 px (the dataset's ndisp)" in warnings[0]
    assert summary["warnings"] == warnings
    # at 24x32 the declared range scales to 20 px (fine), but the image is narrower than the model's range
    small = StereoPipeline(DatasetSource(sample_list(1), "small"), [ShiftMatcher()], input_size=(24, 32))
    result = small.process(DatasetSource(samples[:1], "small").read())
    assert list(result.warnings) == ["shift:size"] and "too small for shift" in result.warnings["shift:size"]


def test_an_implausible_calibration_is_warned() -> None:
    calib = ideal_calibration(60, 80)
    calib.info.update(rms=14.0, mean_abs_dy=6.5)
    calib.path = "bad.yml"
    messages = calib.quality_warnings()
    assert len(messages) == 2 and "bad.yml" in messages[0] and "RMS 14.00 px" in messages[0]
    pipe = StereoPipeline(FakeSource(count=1, h=60, w=80), [ShiftMatcher()], rectifier=calib)
    events, _ = drain(pipe.run())
    assert [e.message for e in events if e.kind == "warning"] == messages
    assert ideal_calibration(60, 80).quality_warnings() == []  # no numbers saved: nothing to judge
