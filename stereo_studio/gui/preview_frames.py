"""Worker-side producers of `PreviewFrame`s, the Preview panel's view model (no Qt here).

Both paths go through the engine's `StereoPipeline`: `dataset_frame` processes one dataset pair; a
`LiveSession` keeps a video file, recording or camera open with its pipeline, plays it (`live_frames`, a job)
and, for seekable sources, shows one frame at a time while paused (`LiveSession.frame_at`). One job uses a
session at a time (the panel sees to it). Each `FrameResult` is converted (still in the worker thread) into
the arrays the panel draws; `cloud_data` turns one model's disparity into the 3D view's points.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stereo_studio.engine.jobs import JobRun, Progress


@dataclass
class ModelOutput:
    disparity: np.ndarray
    ms: float | None = None
    fps: float | None = None
    error: np.ndarray | None = None
    depth: np.ndarray | None = None  # metres, calibrated sources only
    metrics: dict[str, float] = field(default_factory=dict)
    filter_ms: float = 0.0  # time of its post-filters on this frame
    post_filters: tuple[str, ...] = ()  # the post-filters applied (`disparity` is after them)


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
    warnings: list[str] = field(default_factory=list)  # results out of their range (shown in the bar)
    position: int | None = None  # the frame's position in its file (0 again after a loop restarts)
    rectifier: Any = None  # the live source's Rectifier: its calibration makes metric point clouds
    calib_path: str | None = None  # a calibration file chosen for a dataset's point clouds

    @property
    def counter(self) -> str:
        """'12 / 300' (1-based position of the frame in its source) or '' when unknown."""
        at = self.position if self.position is not None else self.index
        return f"{at + 1} / {self.total}" if at is not None and self.total else ""


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
            filter_ms=float(getattr(out, "filter_ms", 0.0) or 0.0),
            post_filters=tuple(getattr(out, "post_filters", ()) or ()),
        )
    gt = result.gt
    if gt is not None and result.valid is not None:
        gt = np.where(result.valid, gt, np.nan).astype(np.float32)  # unknown pixels drawn as holes
    lo, hi = result.disp_range
    name = str(result.meta.get("name", "") or result.meta.get("source", ""))
    position = result.meta.get("position")
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
        list(getattr(result, "warnings", {}).values()),
        int(position) if position is not None else result.index,
    )


def dataset_frame(
    dataset: Any,
    index: int,
    matchers: list[tuple[str, Any]],
    post_filters: dict[str, list[str] | tuple[str, ...]] | None = None,
    calib_path: str | None = None,
) -> PreviewFrame:
    """Predict pair `index` (0 .. len - 1) of `dataset` with each (key, matcher), after each model's
    `post_filters` ({key: names}; the temporal filter needs video and is left out here); scored when the
    pair has ground truth. `calib_path`: a calibration file for the pair's point clouds."""
    from stereo_studio.errors import DataError
    from stereo_studio.live.pipeline import StereoPipeline
    from stereo_studio.live.sources import StereoFrame

    total = len(dataset)
    if not 0 <= index < total:
        raise DataError(f"pair {index} is out of range: this data has {total} pairs (0 to {total - 1})")
    sample = dataset[index]
    meta: dict[str, Any] = {"name": sample.name}
    if sample.meta.get("max_disp"):
        meta["max_disp"] = sample.meta["max_disp"]  # the scene's disparity range: warns beyond a model's
    if sample.meta.get("calib"):
        meta["calib"] = sample.meta["calib"]  # a Middlebury calib.txt: metric point clouds
    frame = StereoFrame(
        sample.left, sample.right, index, time.monotonic(), sample.disparity, sample.valid, meta
    )
    keys = dict(matchers)
    filters = {k: [n for n in v if n != "temporal"] for k, v in (post_filters or {}).items() if k in keys}
    result = StereoPipeline(None, keys, post_filters=filters).process(frame)
    preview = to_preview(result, total=total)
    preview.position = index
    preview.calib_path = calib_path or None
    return preview


class LiveSession:
    """A video file, recording or camera kept open with its pipeline, so the preview can pause, step and
    seek (seekable sources), and restart playing where it stopped. Opened in a worker (`open_live_session`);
    used by one job at a time; `close()` releases the source."""

    def __init__(
        self,
        source_spec: Any,
        layout: str,
        matchers: list[tuple[str, Any]],
        calibration: str | None = None,
        input_size: tuple[int, int] | None = None,
        loop: bool = False,
        post_filters: dict[str, list[str] | tuple[str, ...]] | None = None,
    ) -> None:
        from stereo_studio.live.pipeline import StereoPipeline
        from stereo_studio.live.sources import open_source

        self.source = open_source(source_spec, layout=layout, loop=loop)
        try:
            self.rectifier = self.depth = None
            if calibration:
                from stereo_studio.live.calibration import StereoCalibration
                from stereo_studio.live.rectify import Rectifier

                self.rectifier = Rectifier(StereoCalibration.load(calibration))
                self.depth = self.rectifier.disparity_to_depth
            keys = dict(matchers)
            filters = {k: list(v) for k, v in (post_filters or {}).items() if k in keys and v}
            self.pipeline = StereoPipeline(
                self.source, keys, rectifier=self.rectifier, input_size=input_size, post_filters=filters
            )
        except BaseException:
            self.source.close()
            raise
        self.last_position: int | None = None  # position of the last frame shown

    @property
    def seekable(self) -> bool:
        return bool(self.source.seekable)

    @property
    def length(self) -> int | None:
        return self.source.length

    @property
    def name(self) -> str:
        return str(self.source.name)

    def set_post_filters(self, key: str, names: list[str] | tuple[str, ...]) -> None:
        """Post-filters of one model from the next frame on (an atomic swap: safe while a job plays)."""
        if key in self.pipeline.matchers:
            self.pipeline.set_post_filters(list(names), model=key)

    def _preview(self, result: Any) -> PreviewFrame:
        frame = to_preview(result, self.depth, total=self.length)
        frame.rectifier = self.rectifier
        self.last_position = frame.position
        return frame

    def play(
        self, start: int | None = None, recording: RecordSlot | None = None
    ) -> Generator[Progress, None, dict]:
        """Job: play from `start` (seekable sources; None: where the source is), yielding each frame as a
        `PreviewFrame` (kind "frame"); a failing source yields kind "error" and ends the job cleanly.
        Cancelling leaves the session open (the prefetch thread may have read ahead: resume with `start`)."""
        if start is not None and self.seekable:
            self.source.seek(int(start))
            self.pipeline.reset_post_filters()
        with JobRun(self.pipeline.run()) as run:
            for event in run:
                if event.kind == "frame" and event.payload is not None:
                    if recording is not None:
                        recording.write(event.payload)
                    event = Progress(
                        event.step,
                        event.total,
                        event.message,
                        kind="frame",
                        metrics=dict(event.metrics),
                        payload=self._preview(event.payload),
                    )
                yield event
        return run.result

    def frame_at(self, index: int) -> PreviewFrame:
        """Read and process frame `index` (paused stepping and seeking); temporal filters start afresh
        unless it follows the last frame shown."""
        frame = self.source.read_at(int(index))
        if self.last_position is None or int(index) != self.last_position + 1:
            self.pipeline.reset_post_filters()
        return self._preview(self.pipeline.process(frame))

    def close(self) -> None:
        self.source.close()


def open_live_session(*args: Any, **kwargs: Any) -> LiveSession:
    """`LiveSession(...)`, run as a job (opening a camera or a video can take a moment)."""
    return LiveSession(*args, **kwargs)


def live_frames(
    source_spec: Any,
    layout: str,
    matchers: list[tuple[str, Any]],
    calibration: str | None = None,
    input_size: tuple[int, int] | None = None,
    recording: RecordSlot | None = None,
    loop: bool = False,
    post_filters: dict[str, list[str] | tuple[str, ...]] | None = None,
) -> Generator[Progress, None, dict]:
    """Job: open a source, play it to its end (or until cancelled) and close it (see `LiveSession.play`)."""
    session = LiveSession(source_spec, layout, matchers, calibration, input_size, loop, post_filters)
    try:
        return (yield from session.play(None, recording))
    finally:
        session.close()


# ----- the 3D view's data


@dataclass
class CloudData:
    """One model's point cloud of one frame, ready to draw: `points` N x 3 in the left rectified camera's
    frame (x right, y down, z forward, `units`), `gl_points` the same as OpenGL's z-up world (x, z, -y),
    colours from the image or the depth (N x 3 uint8, and N x 4 float RGBA for OpenGL)."""

    model: str
    points: np.ndarray
    gl_points: np.ndarray
    image_colours: np.ndarray
    depth_colours: np.ndarray
    image_rgba: np.ndarray
    depth_rgba: np.ndarray
    units: str
    origin: str
    median_depth: float
    depth_range: tuple[float, float]
    centre: np.ndarray  # median of gl_points
    extent: float  # 95th percentile distance from the centre

    def rgba(self, colour_by: str) -> np.ndarray:
        return self.depth_rgba if colour_by == "depth" else self.image_rgba

    def colours(self, colour_by: str) -> np.ndarray:
        return self.depth_colours if colour_by == "depth" else self.image_colours


def _rgba(colours: np.ndarray) -> np.ndarray:
    out = np.ones((len(colours), 4), np.float32)
    out[:, :3] = colours.astype(np.float32) / np.float32(255.0)
    return out


def frame_calibration(frame: PreviewFrame) -> Any:
    """The depth calibration of a shown frame (its live source's rectifier, a chosen calibration file, or
    the dataset's calib.txt); DataError naming what to do when there is none."""
    from stereo_studio.live.pointcloud import calibration_for

    meta = frame.result.meta if frame.result is not None else {}
    return calibration_for(meta, rectifier=frame.rectifier, calib_path=frame.calib_path)


def cloud_data(frame: PreviewFrame, model: str, cmap: str = "turbo") -> CloudData:
    """The metric point cloud of `model`'s disparity on `frame` (engine: `disparity_to_points`), with its
    colours; DataError without a calibration or without valid disparities."""
    from stereo_studio.errors import DataError
    from stereo_studio.live.colormap import auto_range, colorize
    from stereo_studio.live.pointcloud import disparity_to_points

    result = frame.result
    if result is None or model not in result.outputs:
        raise DataError(f"no disparity of '{model}' on this frame")
    calib = frame_calibration(frame)
    points, colours = disparity_to_points(result.outputs[model].disparity, calib, result.left)
    if not len(points):
        raise DataError(f"'{model}' has no valid disparity on this frame: no points to show")
    z = points[:, 2]
    lo, hi = auto_range(z)
    depth_colours = colorize(z[None, :].astype(np.float32), lo, hi, cmap=cmap)[0]
    gl = np.stack([points[:, 0], points[:, 2], -points[:, 1]], axis=1).astype(np.float32)
    centre = np.median(gl, axis=0)
    extent = float(np.percentile(np.linalg.norm(gl - centre, axis=1), 95)) or 1.0
    image_colours = colours if colours is not None else np.full_like(depth_colours, 200)
    return CloudData(
        model, points, gl, image_colours, depth_colours, _rgba(image_colours), _rgba(depth_colours),
        calib.units, calib.origin, float(np.median(z)), (float(lo), float(hi)), centre, extent,
    )


def render_cloud(
    data: CloudData, colour_by: str, yaw: float, pitch: float, size: tuple[int, int], zoom: float,
    point_px: int = 2,
) -> np.ndarray:
    """The software 3D view's picture (engine `render_view`), for displays without OpenGL."""
    from stereo_studio.live.pointcloud import render_view

    return render_view(data.points, data.colours(colour_by), yaw=yaw, pitch=pitch, size=size, zoom=zoom,
                       point_px=point_px, background=(37, 41, 50))


def export_cloud(frame: PreviewFrame, model: str, path: str, units: str | None = None) -> dict[str, Any]:
    """Write `model`'s point cloud of `frame` as binary PLY (engine `export_point_cloud`); returns the same
    dict as `stereo-studio cloud --json`."""
    from stereo_studio.live.pointcloud import export_point_cloud

    return export_point_cloud(frame.result, model, path, frame_calibration(frame), units=units)
