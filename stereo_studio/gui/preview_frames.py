"""Worker-side producers of `PreviewFrame`s, the Preview panel's view model (no Qt here).

Both paths go through the engine's `StereoPipeline`: `dataset_frame` processes one dataset pair,
`live_frames` runs the pipeline job on a video file or camera. Each `FrameResult` is converted (still in
the worker thread) into the arrays the panel draws.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stereo_studio.engine.jobs import Progress


@dataclass
class ModelOutput:
    disparity: np.ndarray
    ms: float | None = None
    fps: float | None = None
    error: np.ndarray | None = None
    depth: np.ndarray | None = None  # metres, calibrated sources only
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class PreviewFrame:
    """A left image, optional ground truth, one output per model, and the shared display range."""

    left: np.ndarray
    outputs: dict[str, ModelOutput]
    gt: np.ndarray | None = None
    levels: tuple[float, float] = (0.0, 64.0)
    name: str = ""
    index: int | None = None
    total: int | None = None
    fps: float | None = None
    result: Any = None  # the engine's FrameResult (snapshots, recordings)


class RecordSlot:
    """Hands a `DisparityRecorder` to the live job: frames are written in the worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorder: Any = None
        self.error: str = ""

    def set(self, recorder: Any) -> Any:
        """Install a recorder (None stops); returns the previous one, which the caller closes."""
        with self._lock:
            old, self._recorder = self._recorder, recorder
            self.error = ""
            return old

    @property
    def active(self) -> bool:
        return self._recorder is not None

    def write(self, result: Any) -> None:
        with self._lock:
            if self._recorder is None:
                return
            try:
                self._recorder.write_result(result)
            except Exception as exc:  # a full disk must not stop the preview: stop recording instead
                self.error = str(exc)
                self._recorder.close()
                self._recorder = None


def to_preview(result: Any, depth: Any = None, total: int | None = None) -> PreviewFrame:
    """Convert the pipeline's `FrameResult` into a `PreviewFrame` (`depth`: disparity -> metres)."""
    outputs = {}
    for name, out in result.outputs.items():
        outputs[name] = ModelOutput(
            out.disparity,
            ms=out.ms,
            fps=out.fps,
            error=out.error,
            metrics=dict(out.metrics or {}),
            depth=depth(out.disparity) if depth is not None else None,
        )
    gt = result.gt
    if gt is not None and result.valid is not None:
        gt = np.where(result.valid, gt, np.nan).astype(np.float32)  # unknown pixels drawn as holes
    lo, hi = result.disp_range
    name = str(result.meta.get("name", "") or result.meta.get("source", ""))
    return PreviewFrame(
        result.left,
        outputs,
        gt,
        (float(lo), float(hi)),
        name,
        result.index,
        total,
        result.fps or None,
        result,
    )


def dataset_frame(dataset: Any, index: int, matchers: list[tuple[str, Any]]) -> PreviewFrame:
    """Predict pair `index` of `dataset` with each (key, matcher); scored when the pair has ground truth."""
    from stereo_studio.live.pipeline import StereoPipeline
    from stereo_studio.live.sources import StereoFrame

    total = len(dataset)
    index = index % total
    sample = dataset[index]
    frame = StereoFrame(
        sample.left,
        sample.right,
        index,
        time.monotonic(),
        sample.disparity,
        sample.valid,
        {"name": sample.name},
    )
    result = StereoPipeline(None, dict(matchers)).process(frame)
    return to_preview(result, total=total)


def live_frames(
    source_spec: Any,
    layout: str,
    matchers: list[tuple[str, Any]],
    calibration: str | None = None,
    input_size: tuple[int, int] | None = None,
    recording: RecordSlot | None = None,
    loop: bool = False,
) -> Generator[Progress, None, dict]:
    """Job: run the live pipeline on a video file or camera, yielding each frame as a `PreviewFrame`
    (kind "frame"); a failing source yields kind "error" and ends the job cleanly."""
    from stereo_studio.live.pipeline import StereoPipeline
    from stereo_studio.live.sources import open_source

    source = open_source(source_spec, layout=layout, loop=loop)
    try:
        rectifier = depth = None
        if calibration:
            from stereo_studio.live.calibration import StereoCalibration
            from stereo_studio.live.rectify import Rectifier

            rectifier = Rectifier(StereoCalibration.load(calibration))
            depth = rectifier.disparity_to_depth
        pipeline = StereoPipeline(source, dict(matchers), rectifier=rectifier, input_size=input_size)
        job = pipeline.run()
        try:
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    return stop.value
                if event.kind == "frame" and event.payload is not None:
                    if recording is not None:
                        recording.write(event.payload)
                    event = Progress(
                        event.step,
                        event.total,
                        event.message,
                        kind="frame",
                        metrics=dict(event.metrics),
                        payload=to_preview(event.payload, depth),
                    )
                yield event
        finally:
            job.close()
    finally:
        source.close()
