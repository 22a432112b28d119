"""The real-time stereo pipeline: grab -> rectify -> resize -> infer (one or more models) -> colour map
(-> error map and metrics when the frame has ground truth), with per-stage timings, FPS and latency."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from stereo_studio.data.checks import range_warnings, scene_disparity_range
from stereo_studio.errors import ModelError, SourceError
from stereo_studio.live.calibration import StereoCalibration
from stereo_studio.live.colormap import auto_range, colorize, error_colorize
from stereo_studio.live.postfilter import FilterChain
from stereo_studio.live.rectify import Rectifier
from stereo_studio.live.sources import (
    FrameSource,
    LatestFrameGrabber,
    PrefetchReader,
    StereoFrame,
    resize_views,
)
from stereo_studio.openmp import release_openmp_threads
from stereo_studio.progress import Job, Progress

STAGES = ("grab", "wait", "rectify", "resize", "infer", "filter", "colormap", "metrics", "total")


class DisparityMatcher(Protocol):
    """What the pipeline needs of a model (`stereo_studio.models.matchers.Matcher` fits)."""

    name: str

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray: ...


@dataclass
class ModelOutput:
    """One model's result on one frame. `ms` is its inference time; `fps` = 1000 / ms (model only);
    `filter_ms` the time of its post-filters (`post_filters` names them; `disparity` is after them)."""

    name: str
    disparity: np.ndarray
    color: np.ndarray
    ms: float
    fps: float
    metrics: dict[str, float] | None = None
    error: np.ndarray | None = None
    error_color: np.ndarray | None = None
    filter_ms: float = 0.0
    post_filters: tuple[str, ...] = ()


@dataclass
class FrameResult:
    """Everything the preview shows for one frame; images are at the processed (model input) size.

    `timings` are ms per stage (STAGES); `fps` is the end-to-end rate (smoothed); `latency_ms` is the
    time from capture to the colour maps being ready.
    """

    index: int
    left: np.ndarray
    right: np.ndarray
    outputs: dict[str, ModelOutput]
    timings: dict[str, float]
    disp_range: tuple[float, float]
    latency_ms: float = 0.0
    fps: float = 0.0
    gt: np.ndarray | None = None
    valid: np.ndarray | None = None
    dropped: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)  # {"model:kind" | "calibration": message}

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """{model name: metrics} for the models scored against ground truth."""
        return {name: out.metrics for name, out in self.outputs.items() if out.metrics is not None}


def _named_matchers(matchers: Sequence[Any] | Mapping[str, Any]) -> dict[str, DisparityMatcher]:
    if isinstance(matchers, Mapping):
        items = list(matchers.items())
    else:
        items = []
        for m in matchers:
            if isinstance(m, str):
                from stereo_studio.models.storage import load_matcher

                m = load_matcher(m)
            items.append((str(getattr(m, "name", type(m).__name__)), m))
    if not items:
        raise ValueError("the pipeline needs at least one model")
    named: dict[str, DisparityMatcher] = {}
    for name, m in items:
        key, k = name, 2
        while key in named:
            key, k = f"{name}#{k}", k + 1
        named[key] = m
    return named


class StereoPipeline:
    """Runs matchers on a stream of stereo frames.

    `matchers`: matcher objects (with `.name` and `.predict(left, right)`), model specs (loaded with
    `load_matcher`) or a {name: matcher} mapping. `rectifier` rectifies raw frames (a StereoCalibration
    is turned into a Rectifier at the first frame, which must have its size); `input_size`
    (height, width) resizes them for the models; `disp_range` (vmin, vmax) fixes the colour range (None:
    automatic, shared by all models: from the ground truth when present, else the first model).
    `realtime` (default: live sources) reads through a `LatestFrameGrabber`, dropping frames the models
    cannot keep up with; otherwise every frame is processed in order (read ahead in a thread when
    `prefetch`, so decoding overlaps inference).

    Timings: "grab" is the time to read and decode a frame (in the capture thread when there is one),
    "wait" the time the pipeline blocked waiting for it; "total" is the sum of the pipeline's own stages.
    """

    def __init__(
        self,
        source: FrameSource | None,
        matchers: Sequence[Any] | Mapping[str, Any],
        rectifier: Rectifier | StereoCalibration | None = None,
        input_size: tuple[int, int] | None = None,
        colormap: str = "turbo",
        disp_range: tuple[float, float] | None = None,
        realtime: bool | None = None,
        error_maps: bool = True,
        max_error: float = 5.0,
        stall_timeout: float = 5.0,
        prefetch: bool = True,
        post_filters: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        self.source = source
        self.matchers = _named_matchers(matchers)
        self._chains: dict[str, FilterChain] = {}
        if isinstance(post_filters, Mapping):
            for name, names in post_filters.items():
                self.set_post_filters(names, model=name)
        elif post_filters:
            self.set_post_filters(post_filters)
        self.rectifier = rectifier
        self.input_size = input_size
        self.colormap = colormap
        self.disp_range = disp_range
        self.realtime = realtime
        self.error_maps = error_maps
        self.max_error = max_error
        self.stall_timeout = stall_timeout
        self.prefetch = prefetch
        self._stats: _RunStats | None = None
        colorize(np.zeros((2, 2), np.float32), 0, 1, cmap=colormap)  # fail early on an unknown colour map

    def set_post_filters(self, names: str | Sequence[str] | None, model: str | None = None) -> None:
        """Post-filters (`stereo_studio.live.postfilter` names) of one model, or of every model (None);
        takes effect from the next frame, with fresh temporal state."""
        chain = FilterChain(names)
        targets = list(self.matchers) if model is None else [model]
        for name in targets:
            if name not in self.matchers:
                raise ModelError(f"no model '{name}' in this preview (models: {', '.join(self.matchers)})")
            self._chains[name] = FilterChain(chain.names)

    def post_filters(self, model: str) -> tuple[str, ...]:
        """The post-filters applied to `model`'s disparity."""
        chain = self._chains.get(model)
        return chain.names if chain is not None else ()

    def reset_post_filters(self) -> None:
        """Forget the temporal filters' previous frames (call after a seek or a jump in the stream)."""
        for chain in list(self._chains.values()):
            chain.reset()

    def process(self, frame: StereoFrame, grab_ms: float = 0.0, wait_ms: float = 0.0) -> FrameResult:
        """Rectify, resize, run every model, colour-map and score one frame."""
        timings = dict.fromkeys(STAGES, 0.0)
        timings["grab"] = grab_ms
        timings["wait"] = wait_ms
        t = time.perf_counter()
        left, right, gt, valid = frame.left, frame.right, frame.gt, frame.valid
        if isinstance(self.rectifier, StereoCalibration):
            self.rectifier = Rectifier(self.rectifier, size=frame.size)
        if self.rectifier is not None:
            left, right = self.rectifier.rectify(left, right)
            gt = valid = None  # ground truth of raw frames does not survive rectification
        t, timings["rectify"] = _lap(t)
        if self.input_size is not None:
            left, right, gt, valid = resize_views(left, right, gt, valid, self.input_size)
        t, timings["resize"] = _lap(t)
        if gt is not None and valid is None:
            valid = np.isfinite(gt) & (gt > 0)

        disparities: dict[str, tuple[np.ndarray, float]] = {}
        for name, matcher in self.matchers.items():
            t0 = time.perf_counter()
            disp = np.asarray(matcher.predict(left, right), dtype=np.float32)
            if disp.shape != left.shape[:2]:
                raise ModelError(f"model '{name}' returned a {disp.shape} map for {left.shape[:2]} frames")
            disparities[name] = (disp, (time.perf_counter() - t0) * 1000.0)
            # the model's OpenMP threads would spin on after it, taking a core from the next matcher (OpenCV's
            # SGBM: 1.3-1.6x slower beside them), the filters and the window (see `stereo_studio.openmp`)
            release_openmp_threads()
        t, timings["infer"] = _lap(t)

        filtered: dict[str, tuple[float, tuple[str, ...]]] = {}
        for name, (disp, ms) in list(disparities.items()):
            chain = self._chains.get(name)
            if chain:
                t0 = time.perf_counter()
                disparities[name] = (chain.apply(disp, left), ms)
                filtered[name] = ((time.perf_counter() - t0) * 1000.0, chain.names)
        for name, disp in (frame.meta.get("recorded") or {}).items():  # a recording opened as the source
            if disp.shape == left.shape[:2]:
                key = f"{name} (recorded)"
                disparities[key if key not in disparities else f"{key}#2"] = (disp, 0.0)
        t, timings["filter"] = _lap(t)

        vmin, vmax = self._range(gt, valid, next(iter(disparities.values()))[0])
        outputs = {
            name: ModelOutput(
                name, disp, colorize(disp, vmin, vmax, self.colormap), ms, 1000.0 / max(ms, 1e-6),
                filter_ms=filtered.get(name, (0.0, ()))[0], post_filters=filtered.get(name, (0.0, ()))[1],
            )
            for name, (disp, ms) in disparities.items()
        }
        t, timings["colormap"] = _lap(t)

        if gt is not None:
            from stereo_studio.metrics import disparity_metrics, error_map

            for out in outputs.values():
                out.metrics = disparity_metrics(out.disparity, gt, valid)
                if self.error_maps:
                    out.error = error_map(out.disparity, gt, valid)
                    out.error_color = error_colorize(out.error, self.max_error)
        t, timings["metrics"] = _lap(t)
        warnings = self._warnings(frame, left.shape[:2], gt, valid)
        timings["total"] = wait_ms + sum(timings[s] for s in STAGES[2:-1])
        latency = (time.monotonic() - frame.timestamp) * 1000.0
        return FrameResult(
            frame.index,
            left,
            right,
            outputs,
            timings,
            (vmin, vmax),
            latency,
            gt=gt,
            valid=valid,
            meta={**frame.meta, "captured": frame.timestamp},
            warnings=warnings,
        )

    def _warnings(self, frame: StereoFrame, size: tuple[int, int], gt, valid) -> dict[str, str]:
        """Results out of their range: a scene beyond a model's max disparity (its declared ndisp, scaled to
        the model's input, or its ground truth), an image too small for a model, an implausible
        calibration."""
        meta = dict(frame.meta)
        if meta.get("max_disp") and tuple(size) != tuple(frame.size):
            meta["max_disp"] = float(meta["max_disp"]) * size[1] / frame.size[1]
        scene = scene_disparity_range(meta, gt, valid)
        where = str(meta.get("name", "") or "")
        out = {
            f"{name}:{kind}": message
            for name, matcher in self.matchers.items()
            for kind, message in range_warnings(
                name, getattr(matcher, "max_disp", None), size, scene, where
            ).items()
        }
        calibration = getattr(self.rectifier, "calib", None)
        if calibration is not None:
            for i, message in enumerate(calibration.quality_warnings()):
                out[f"calibration:{i}"] = message
        return out

    def _range(self, gt, valid, first: np.ndarray) -> tuple[float, float]:
        if self.disp_range is not None:
            return float(self.disp_range[0]), float(self.disp_range[1])
        if gt is not None and valid is not None and valid.any():
            return auto_range(gt[valid])
        return auto_range(first)

    def run(self, max_frames: int | None = None) -> Job[dict[str, Any]]:
        """Process the source's frames (all, or `max_frames`) as a job.

        Yields Progress(kind="frame", payload=FrameResult) per frame and, if the source fails,
        Progress(kind="error", message=..., payload=SourceError) before ending. Returns `summary()`.
        """
        if self.source is None:
            raise ValueError("this pipeline has no source: use process(frame)")
        source = self.source
        realtime = source.is_live if self.realtime is None else self.realtime
        total = max_frames if max_frames is not None else source.frame_count
        grabber = LatestFrameGrabber(source) if realtime else None
        reader = PrefetchReader(source) if self.prefetch and not realtime else None
        stats = self._stats = _RunStats(list(self.matchers), grabber)
        warned: set[str] = set()  # each kind of warning is yielded once per run (the frames carry them all)
        last = None
        fps = 0.0
        try:
            while max_frames is None or stats.frames < max_frames:
                t0 = time.perf_counter()
                try:
                    if grabber is not None:
                        frame = grabber.wait_next(self.stall_timeout)
                    elif reader is not None:
                        frame = reader.read(self.stall_timeout)
                    else:
                        frame = source.read()
                except SourceError as exc:
                    stats.error = exc
                    yield Progress(stats.frames, total, str(exc), kind="error", payload=exc)
                    break
                if frame is None:
                    break
                waited = (time.perf_counter() - t0) * 1000.0
                result = self.process(frame, float(frame.meta.get("grab_ms", waited)), waited)
                now = time.monotonic()
                if last is not None:
                    rate = 1.0 / max(now - last, 1e-6)
                    fps = rate if fps == 0.0 else 0.8 * fps + 0.2 * rate
                last = now
                result.fps = fps
                result.dropped = grabber.dropped if grabber else 0
                stats.add(result)
                for key, message in result.warnings.items():
                    if key not in warned:
                        warned.add(key)
                        stats.warnings.append(message)
                        yield Progress(stats.frames - 1, total, message, kind="warning")
                yield Progress(
                    stats.frames,
                    total,
                    f"frame {result.index}",
                    kind="frame",
                    payload=result,
                    metrics={
                        "fps": fps,
                        "latency_ms": result.latency_ms,
                        "infer_ms": result.timings["infer"],
                    },
                )
        finally:
            stats.end = time.monotonic()
            if grabber is not None:
                grabber.stop()
            if reader is not None:
                reader.stop()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Numbers of the current or last run (also after a cancelled one): frames, fps, seconds,
        ms (mean per stage), latency_ms (mean / p50 / p95 / max), realtime, captured, dropped,
        models ({name: ms, fps and mean metrics}), error (message or None)."""
        stats = self._stats if self._stats is not None else _RunStats(list(self.matchers), None)
        out = stats.summary()
        out["source"] = self.source.name if self.source is not None else None
        return out


class _RunStats:
    """Running totals of one pipeline run."""

    def __init__(self, names: list[str], grabber: LatestFrameGrabber | None) -> None:
        self.grabber = grabber
        self.frames = 0
        self.start = time.monotonic()
        self.end: float | None = None
        self.sums = dict.fromkeys(STAGES, 0.0)
        self.model_ms = dict.fromkeys(names, 0.0)
        self.filter_ms = dict.fromkeys(names, 0.0)
        self.model_metrics: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        self.latencies: list[float] = []
        self.error: SourceError | None = None
        self.warnings: list[str] = []

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        for stage, ms in result.timings.items():
            self.sums[stage] += ms
        self.latencies.append(result.latency_ms)
        for name, out in result.outputs.items():
            if name not in self.model_ms:  # a recorded disparity shown beside the models
                self.model_ms[name] = self.filter_ms[name] = 0.0
                self.model_metrics[name] = []
            self.model_ms[name] += out.ms
            self.filter_ms[name] += out.filter_ms
            if out.metrics is not None:
                self.model_metrics[name].append(out.metrics)

    def summary(self) -> dict[str, Any]:
        n = self.frames
        nan = float("nan")
        elapsed = (self.end or time.monotonic()) - self.start
        lat = np.asarray(self.latencies, dtype=np.float64)
        models: dict[str, dict[str, float]] = {}
        for name, total_ms in self.model_ms.items():
            ms = total_ms / n if n else nan
            entry = {"ms": ms, "fps": 1000.0 / ms if n and ms > 0 else nan}
            if self.filter_ms.get(name):
                entry["filter_ms"] = self.filter_ms[name] / n
            scored = self.model_metrics[name]
            if scored:
                for key in scored[0]:
                    entry[key] = float(np.nanmean([m[key] for m in scored]))
            models[name] = entry
        grabber = self.grabber
        return {
            "frames": n,
            "seconds": elapsed,
            "fps": n / elapsed if elapsed > 0 else 0.0,
            "ms": {stage: (self.sums[stage] / n if n else nan) for stage in STAGES},
            "latency_ms": {
                "mean": float(lat.mean()) if n else nan,
                "p50": float(np.percentile(lat, 50)) if n else nan,
                "p95": float(np.percentile(lat, 95)) if n else nan,
                "max": float(lat.max()) if n else nan,
            },
            "realtime": grabber is not None,
            "captured": grabber.captured if grabber else n,
            "dropped": grabber.dropped if grabber else 0,
            "models": models,
            "error": str(self.error) if self.error is not None else None,
            "warnings": list(self.warnings),
        }


def _lap(t: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now, (now - t) * 1000.0
