"""Stereo frame sources: cameras, side-by-side devices, videos, image-pair folders and datasets.

Every source is a `FrameSource`: `read()` returns the next `StereoFrame` (RGB uint8 views), None at the end
of a finite stream, and raises `SourceError` when the source fails (camera unplugged, truncated video).
`LatestFrameGrabber` runs a source in its own thread and keeps only the newest frame ("latest frame wins"),
so a slow consumer drops frames instead of falling behind; `PrefetchReader` reads files ahead, dropping none.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_studio.errors import SourceError, StereoStudioError

LAYOUTS = ("sbs", "pair")


@dataclass
class StereoFrame:
    """One stereo frame: H x W x 3 uint8 RGB views, optional ground truth for the left view.

    `timestamp` is `time.monotonic()` when the frame was captured (used for capture-to-display latency);
    `meta` carries "source" and, when grabbed by `LatestFrameGrabber`, "grab_ms".
    """

    left: np.ndarray
    right: np.ndarray
    index: int
    timestamp: float
    gt: np.ndarray | None = None
    valid: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of one view."""
        return self.left.shape[0], self.left.shape[1]


_Pair = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]


class FrameSource:
    """Base class. Subclasses implement `_read_pair()` (RGB views) and `_release()`.

    `size` (height, width) resizes every view (ground truth is resized and rescaled with it);
    `loop` restarts a finite source at its end. `read()` and `close()` are thread safe.
    """

    is_live: bool = False

    def __init__(
        self, name: str, size: tuple[int, int] | None = None, fps: float | None = None, loop: bool = False
    ) -> None:
        self.name = name
        self.size = size
        self.fps = fps
        self.loop = loop
        self.frame_count: int | None = None
        self.length: int | None = None  # frames in the file / dataset (also when looping); None if unknown
        self._index = 0
        self._position = 0  # the file position of the next frame (0 again after a loop restarts)
        self._lock = threading.RLock()  # re-entrant: read_at holds it across its seek and read
        self._closed = False

    # -- subclass hooks
    def _read_pair(self) -> _Pair | None:
        raise NotImplementedError

    def _rewind(self) -> None:
        raise SourceError(f"{self.name}: this source cannot loop")

    def _seek(self, index: int) -> None:
        raise SourceError(f"{self.name}: this source cannot seek")

    def _release(self) -> None:
        pass

    # -- public
    def read(self) -> StereoFrame | None:
        """The next frame, None at the end of a finite stream; raises SourceError on failure."""
        with self._lock:
            if self._closed:
                raise SourceError(f"{self.name}: the source is closed")
            try:
                pair = self._read_pair()
                if pair is None and self.loop and self._index > 0:
                    self._rewind()
                    self._position = 0
                    pair = self._read_pair()
            except SourceError:
                raise
            except StereoStudioError as exc:
                raise SourceError(f"{self.name}: {exc}") from exc
            except (OSError, cv2.error, ValueError) as exc:
                raise SourceError(f"{self.name} failed: {exc}") from exc
            if pair is None:
                return None
            stamp = time.monotonic()
            left, right, gt, valid, meta = pair
            if left.shape != right.shape:
                raise SourceError(f"{self.name}: left {left.shape[:2]} and right {right.shape[:2]} differ")
            if self.size is not None and left.shape[:2] != tuple(self.size):
                if meta.get("max_disp"):  # a declared disparity range scales with the width
                    meta = {**meta, "max_disp": float(meta["max_disp"]) * self.size[1] / left.shape[1]}
                left, right, gt, valid = resize_views(left, right, gt, valid, self.size)
            meta = {"source": self.name, "position": self._position, **meta}
            frame = StereoFrame(left, right, self._index, stamp, gt, valid, meta)
            self._index += 1
            self._position += 1
            return frame

    @property
    def seekable(self) -> bool:
        """True for files and datasets of known length (videos, recordings, indexable datasets)."""
        return self.length is not None and type(self)._seek is not FrameSource._seek

    @property
    def position(self) -> int:
        """Index of the frame the next `read()` returns (within the file: 0 again after a loop restart)."""
        return self._position

    def seek(self, index: int) -> None:
        """Make `index` (0 .. length - 1) the next frame `read()` returns; its `StereoFrame.index` is `index`.

        Raises SourceError for live sources, sources of unknown length and out-of-range indices."""
        with self._lock:
            if self._closed:
                raise SourceError(f"{self.name}: the source is closed")
            if not self.seekable:
                raise SourceError(f"{self.name}: cannot seek (a camera, or a stream of unknown length)")
            n = int(self.length or 0)
            if not 0 <= int(index) < n:
                raise SourceError(f"{self.name}: frame {index} is out of range (0 to {n - 1})")
            try:
                self._seek(int(index))
            except SourceError:
                raise
            except (OSError, cv2.error, ValueError, StereoStudioError) as exc:
                raise SourceError(f"{self.name}: cannot seek to frame {index}: {exc}") from exc
            self._index = self._position = int(index)

    def read_at(self, index: int) -> StereoFrame:
        """The frame at `index` (seek, then read, atomically: a prefetch thread still reading cannot slip a
        read in between); the next `read()` returns `index + 1`."""
        with self._lock:
            self.seek(index)
            frame = self.read()
        if frame is None:
            raise SourceError(f"{self.name}: frame {index} could not be read")
        return frame

    def __iter__(self) -> Iterator[StereoFrame]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self, timeout: float = 2.0) -> None:
        """Release the device / file. Waits at most `timeout` s for a read in progress (a hung camera)."""
        if not self._lock.acquire(timeout=timeout):
            self._closed = True  # a read is stuck in the driver: leave the handle to the process exit
            return
        try:
            if not self._closed:
                self._closed = True
                self._release()
        finally:
            self._lock.release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def resize_views(left, right, gt, valid, size: tuple[int, int]):
    """Resize a pair (and its ground truth, values scaled with the width) to (height, width)."""
    h, w = size
    src_h, src_w = left.shape[:2]
    if (src_h, src_w) == (h, w):
        return left, right, gt, valid
    interp = cv2.INTER_AREA if h * w < src_h * src_w else cv2.INTER_LINEAR
    left = cv2.resize(left, (w, h), interpolation=interp)
    right = cv2.resize(right, (w, h), interpolation=interp)
    if gt is not None:
        gt = cv2.resize(gt, (w, h), interpolation=cv2.INTER_NEAREST) * np.float32(w / src_w)
        if valid is not None:
            valid = cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return left, right, gt, valid


def _split_sbs(bgr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    w = bgr.shape[1]
    if w % 2:
        raise SourceError(f"{name}: a side-by-side frame needs an even width, got {w}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb[:, : w // 2]), np.ascontiguousarray(rgb[:, w // 2 :])


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)


class _Video:
    """A video file opened with OpenCV's FFMPEG backend; tells a truncated file from a normal end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise SourceError(f"video file not found: {path}")
        self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            raise SourceError(f"cannot open video {path} (not a video OpenCV can decode?)")
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected = count if count > 0 else None
        fps = float(self.cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 0 < fps < 1000 else None
        self.read_count = 0

    def read(self) -> np.ndarray | None:
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            exp = self.expected
            if exp is not None and self.read_count + max(2, exp // 50) < exp:
                raise SourceError(
                    f"video {self.path} ended after {self.read_count} of {exp} frames (truncated or corrupt)"
                )
            return None
        self.read_count += 1
        return bgr

    def rewind(self) -> None:
        self.cap.release()
        self.cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        self.read_count = 0
        if not self.cap.isOpened():
            raise SourceError(f"cannot reopen video {self.path}")

    def seek(self, index: int) -> None:
        """Position the decoder before frame `index`: FFMPEG's seek when it lands exactly, else from the start
        frame by frame (grab without decoding)."""
        if index == self.read_count:
            return
        landed = self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        if landed and int(self.cap.get(cv2.CAP_PROP_POS_FRAMES)) == index:
            self.read_count = index
            return
        if index < self.read_count:
            self.rewind()
        while self.read_count < index:
            if not self.cap.grab():
                raise SourceError(f"video {self.path}: cannot seek to frame {index}")
            self.read_count += 1

    def release(self) -> None:
        self.cap.release()


class _Camera:
    """A camera device; a failed read means it stopped (unplugged, taken by another program)."""

    def __init__(self, index: int, size: tuple[int, int] | None, fps: float | None) -> None:
        self.index = index
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"camera {index} could not be opened (not connected, or in use elsewhere?)")
        self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver queue short: latency, not throughput
        if size is not None:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
        if fps:
            self.cap.set(cv2.CAP_PROP_FPS, fps)
        got = float(self.cap.get(cv2.CAP_PROP_FPS))
        self.fps = got if 0 < got < 1000 else fps

    def grab(self) -> None:
        if not self.cap.grab():
            raise SourceError(f"camera {self.index} stopped delivering frames (unplugged?)")

    def retrieve(self) -> np.ndarray:
        ok, bgr = self.cap.retrieve()
        if not ok or bgr is None:
            raise SourceError(f"camera {self.index} stopped delivering frames (unplugged?)")
        return bgr

    def release(self) -> None:
        self.cap.release()


class SbsCameraSource(FrameSource):
    """One device delivering side-by-side frames (ZED-, ELP-, Arducam-style), split into left / right."""

    is_live = True

    def __init__(self, index: int, size: tuple[int, int] | None = None, fps: float | None = None) -> None:
        super().__init__(f"camera {index} (side by side)", None, fps)
        device_size = None if size is None else (size[0], 2 * size[1])
        self._cam = _Camera(index, device_size, fps)
        self.fps = self._cam.fps
        self.size = size

    def _read_pair(self) -> _Pair:
        self._cam.grab()
        left, right = _split_sbs(self._cam.retrieve(), self.name)
        return left, right, None, None, {}

    def _release(self) -> None:
        self._cam.release()


class CameraPairSource(FrameSource):
    """Two camera devices (left, right); both are grabbed before either is decoded to keep them in step."""

    is_live = True

    def __init__(
        self, left_index: int, right_index: int, size: tuple[int, int] | None = None, fps: float | None = None
    ) -> None:
        super().__init__(f"cameras {left_index},{right_index}", size, fps)
        self._left = _Camera(left_index, size, fps)
        try:
            self._right = _Camera(right_index, size, fps)
        except SourceError:
            self._left.release()
            raise
        self.fps = self._left.fps

    def _read_pair(self) -> _Pair:
        self._left.grab()
        self._right.grab()
        left, right = _to_rgb(self._left.retrieve()), _to_rgb(self._right.retrieve())
        if left.shape != right.shape:  # cameras that ignored the requested size
            right = cv2.resize(right, (left.shape[1], left.shape[0]), interpolation=cv2.INTER_AREA)
        return left, right, None, None, {}

    def _release(self) -> None:
        self._left.release()
        self._right.release()


class SbsVideoSource(FrameSource):
    """A side-by-side video file (left half | right half)."""

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        loop: bool = False,
    ) -> None:
        self._video = _Video(Path(path))
        super().__init__(str(path), size, fps or self._video.fps, loop)
        self.frame_count = None if loop else self._video.expected
        self.length = self._video.expected

    def _read_pair(self) -> _Pair | None:
        bgr = self._video.read()
        if bgr is None:
            return None
        left, right = _split_sbs(bgr, self.name)
        return left, right, None, None, {}

    def _rewind(self) -> None:
        self._video.rewind()

    def _seek(self, index: int) -> None:
        self._video.seek(index)

    def _release(self) -> None:
        self._video.release()


class VideoPairSource(FrameSource):
    """Two video files (left, right) read in step; the stream ends with the shorter one."""

    def __init__(
        self,
        left: str | Path,
        right: str | Path,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        loop: bool = False,
    ) -> None:
        self._left = _Video(Path(left))
        try:
            self._right = _Video(Path(right))
        except SourceError:
            self._left.release()
            raise
        super().__init__(f"{left},{right}", size, fps or self._left.fps, loop)
        counts = [c for c in (self._left.expected, self._right.expected) if c]
        self.frame_count = None if loop or not counts else min(counts)
        self.length = min(counts) if len(counts) == 2 else None

    def _read_pair(self) -> _Pair | None:
        a, b = self._left.read(), self._right.read()
        if a is None or b is None:
            return None
        left, right = _to_rgb(a), _to_rgb(b)
        if left.shape != right.shape:
            raise SourceError(f"{self.name}: left {left.shape[:2]} and right {right.shape[:2]} sizes differ")
        return left, right, None, None, {}

    def _rewind(self) -> None:
        self._left.rewind()
        self._right.rewind()

    def _seek(self, index: int) -> None:
        self._left.seek(index)
        self._right.seek(index)

    def _release(self) -> None:
        self._left.release()
        self._right.release()


class DatasetSource(FrameSource):
    """Any dataset of `StereoSample` (an image-pair folder, a benchmark layout, the synthetic generator).

    Ground truth travels with the frames. `fps` (if given) is the playback rate used when paced.
    """

    def __init__(
        self,
        dataset: Any,
        name: str,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__(name, size, fps, loop)
        self._dataset = dataset
        try:
            n = len(dataset)
        except TypeError:
            n = None
        self._indexable = n is not None and hasattr(dataset, "__getitem__")
        self.frame_count = None if loop else n
        self.length = n if self._indexable else None
        if n == 0:
            raise SourceError(f"{name}: no stereo pairs found")
        self._pos = 0
        self._iter: Iterator[Any] | None = None

    def _read_pair(self) -> _Pair | None:
        if self._indexable:
            if self._pos >= len(self._dataset):
                return None
            sample = self._dataset[self._pos]
        else:
            if self._iter is None:
                self._iter = iter(self._dataset)
            sample = next(self._iter, None)
            if sample is None:
                return None
        self._pos += 1
        meta = {"name": getattr(sample, "name", str(self._pos - 1))}
        declared = (getattr(sample, "meta", None) or {}).get("max_disp")
        if declared:
            meta["max_disp"] = float(declared)  # the scene's disparity range (calib.txt ndisp)
        for key in ("calib", "recorded", "timestamp"):  # depth calibration; a recording's disparities
            if key in (getattr(sample, "meta", None) or {}):
                meta[key] = sample.meta[key]
        return sample.left, sample.right, sample.disparity, sample.valid, meta

    def _rewind(self) -> None:
        self._pos = 0
        self._iter = None

    def _seek(self, index: int) -> None:
        self._pos = index


def _parse_cameras(text: str) -> list[int] | None:
    parts = [p.strip() for p in text.split(",")]
    if 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    return None


def open_source(
    spec: str | int | Path | tuple[str | Path, str | Path],
    layout: str = "sbs",
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    loop: bool = False,
    limit: int | None = None,
) -> FrameSource:
    """Open a stereo stream from a spec:

    - a camera index `0` (layout "sbs": one side-by-side device) or `"0,1"` (two cameras, left then right);
    - a video path (layout "sbs": side by side) or `"left.mp4,right.mp4"` / a 2-tuple of paths (two videos);
    - a folder (image-pair folder or any dataset layout `open_dataset` reads) or `"synthetic"`.
    `size` = (height, width) of one view; `fps` = requested camera rate / playback rate of files;
    `loop` restarts files and datasets at their end; `limit` caps the number of dataset pairs.
    Raises SourceError with one clear message when the source is not there.
    """
    if layout not in LAYOUTS:
        raise SourceError(f"unknown layout '{layout}' (use 'sbs' for side-by-side frames or 'pair')")
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise SourceError(f"a pair source needs two paths, got {len(spec)}")
        return VideoPairSource(spec[0], spec[1], size, fps, loop)
    if isinstance(spec, int):
        spec = str(spec)
    text = str(spec).strip()
    cams = _parse_cameras(text)
    if cams is not None:
        if len(cams) == 2:
            return CameraPairSource(cams[0], cams[1], size, fps)
        if layout == "pair":
            raise SourceError(f"layout 'pair' needs two camera indices, e.g. '{cams[0]},{cams[0] + 1}'")
        return SbsCameraSource(cams[0], size, fps)
    if text.lower() == "synthetic":
        return _dataset_source("synthetic", size, fps, loop, limit)
    if "," in text and not Path(text).exists():
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise SourceError(f"source '{text}': expected 'left.mp4,right.mp4'")
        return VideoPairSource(parts[0], parts[1], size, fps, loop)
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(
            f"source not found: '{text}' (expected a camera index, a video file, a folder or 'synthetic')"
        )
    if path.is_dir() and (path / "recording.json").is_file():  # a raw recording (live/playback.py)
        from stereo_studio.live.playback import open_recording

        return open_recording(path, size=size, fps=fps, loop=loop, limit=limit)
    if path.is_dir():
        return _dataset_source(str(path), size, fps, loop, limit)
    if layout == "pair":
        raise SourceError(f"layout 'pair' with one video ({path}): give two videos as 'left.mp4,right.mp4'")
    return SbsVideoSource(path, size, fps, loop)


def _dataset_source(spec: str, size, fps, loop, limit) -> DatasetSource:
    from stereo_studio.data.datasets import open_dataset

    try:
        dataset = open_dataset(spec, limit=limit, size=size)  # synthetic pairs are generated at `size`
    except StereoStudioError as exc:
        raise SourceError(f"cannot open '{spec}' as a stereo source: {exc}") from exc
    return DatasetSource(dataset, spec, size, fps, loop)


class LatestFrameGrabber:
    """Reads a source in a background thread, keeping only the newest frame ("latest frame wins").

    A frame replaced before anyone took it counts as dropped. A failing source ends the stream: its
    `SourceError` sits in `error` and is raised by `wait_next` once no new frame is left.
    `pace` (default: non-live sources with a known fps) plays files at their frame rate, as a camera would.
    """

    def __init__(self, source: FrameSource, pace: bool | None = None, start: bool = True) -> None:
        self.source = source
        self.pace = (not source.is_live and bool(source.fps)) if pace is None else pace
        self.captured = 0
        self.dropped = 0
        self.error: SourceError | None = None
        self.finished = False
        self._frame: StereoFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"grab {source.name}", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / self.source.fps if self.pace and self.source.fps else 0.0
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                if period:
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    due = max(due + period, time.monotonic() - period)
                t0 = time.monotonic()
                frame = self.source.read()
                if frame is None:
                    break
                frame.meta["grab_ms"] = (time.monotonic() - t0) * 1000.0
                with self._cond:
                    if self._frame is not None:
                        self.dropped += 1
                    self._frame = frame
                    self.captured += 1
                    self._cond.notify_all()
        except SourceError as exc:
            self.error = exc
        except Exception as exc:  # a driver or decoder failure must end the stream, not kill it silently
            self.error = SourceError(f"{self.source.name} failed: {type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def latest(self) -> StereoFrame | None:
        """The newest frame not yet taken, or None (never blocks)."""
        with self._cond:
            frame, self._frame = self._frame, None
            return frame

    def wait_next(self, timeout: float | None = 5.0) -> StereoFrame | None:
        """Block until a new frame arrives; None at the normal end of the stream.

        Raises the source's SourceError when it failed, and SourceError when nothing came for `timeout` s.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._frame is None and not self.finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SourceError(f"{self.source.name}: no frame for {timeout:.1f} s (device stalled?)")
                self._cond.wait(remaining)
            frame, self._frame = self._frame, None
        if frame is None and self.error is not None:
            raise self.error
        return frame

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait at most `timeout` s for it (a hung read is left behind)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> LatestFrameGrabber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrefetchReader:
    """Reads a finite source `depth` frames ahead in a background thread, so decoding overlaps the
    consumer's work; unlike `LatestFrameGrabber` it never drops a frame. `read()` behaves like the
    source's (None at the end, SourceError on failure)."""

    def __init__(self, source: FrameSource, depth: int = 2) -> None:
        self.source = source
        self._queue: queue.Queue[StereoFrame | SourceError | None] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=f"prefetch {source.name}", daemon=True)
        self._thread.start()

    def _put(self, item: StereoFrame | SourceError | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                frame = self.source.read()
                if frame is not None:
                    frame.meta["grab_ms"] = (time.monotonic() - t0) * 1000.0
                if not self._put(frame) or frame is None:
                    return
        except SourceError as exc:
            self._put(exc)
        except Exception as exc:
            self._put(SourceError(f"{self.source.name} failed: {type(exc).__name__}: {exc}"))

    def read(self, timeout: float | None = None) -> StereoFrame | None:
        """The next frame in order; None at the end; raises the source's SourceError, or SourceError after
        `timeout` s without a frame."""
        if self._done:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise SourceError(f"{self.source.name}: no frame for {timeout:.1f} s (source stalled?)") from None
        if item is None or isinstance(item, SourceError):
            self._done = True
        if isinstance(item, SourceError):
            raise item
        return item

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading ahead and wait at most `timeout` s for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
