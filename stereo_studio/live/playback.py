"""Lossless recordings of a preview session, and playing them back as a seekable source.

A recording is a folder (written by `RawRecorder`, read by `open_recording` / `open_source`):

    recording.json        format, version, disparity encoding, models, fps, source, size, calibration
    frames.csv            frame, time_s (capture time since the first frame), source_position, name
    left/000000.png       the rectified, resized left view the models saw (8-bit RGB PNG, lossless)
    right/000000.png      the right view (so other models can be run on the same frames later)
    disp/<model>/000000.png   each model's disparity as 16-bit PNG: value / 256 = disparity in pixels,
                          0 = invalid (the KITTI convention; 1/256 px steps, up to 255.99 px)

16-bit PNG rather than .npz: every frame is its own file (an interrupted recording keeps all frames
written), any image tool and the KITTI readers open them, and PNG compression is lossless at a fraction
of float32's size. `frames.csv` is appended and flushed per frame; it (not recording.json) says how many
frames there are.

Opened as a source (`open_source(folder)` recognises `recording.json`), a recording is a `DatasetSource`:
seekable, bounded by its length, each frame carrying its recorded disparities in `meta["recorded"]`,
which `StereoPipeline` shows as "<model> (recorded)" beside the models it runs.

`RecorderGroup` writes the colour-mapped video (`recording.DisparityRecorder`) and the raw folder together.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import SourceError, StereoStudioError
from stereo_studio.live.sources import DatasetSource

FORMAT = "stereo-studio-recording"
VERSION = 1
DISP_SCALE = 256.0
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # lossless either way; level 1 keeps recording cheap


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def encode_disparity(disp: np.ndarray) -> np.ndarray:
    """uint16 = round(disparity * 256), 0 where invalid (<= 0 or not finite), clipped at 65535."""
    with np.errstate(invalid="ignore"):
        d = np.where(np.isfinite(disp) & (disp > 0), disp, 0.0) * DISP_SCALE
    return np.clip(np.rint(d), 0, 65535).astype(np.uint16)


def decode_disparity(raw: np.ndarray) -> np.ndarray:
    """float32 disparity from the uint16 encoding (0 stays 0: invalid)."""
    return raw.astype(np.float32) / np.float32(DISP_SCALE)


def raw_folder_for(video: str | Path) -> Path:
    """The raw recording folder written beside a colour video: `rec.mp4` -> `rec.raw/`."""
    video = Path(video)
    return video.with_name(video.stem + ".raw")


class RawRecorder:
    """Writes a lossless recording (see the module doc) of pipeline results, one `write_result` per frame.

    `models` limits which outputs are recorded (default: all); `calib` (a dict such as the Middlebury
    reader's `calib`, or {"Q": 4x4 list, "units": "m"}) is stored so a point cloud can be made later.
    Refuses a folder that already holds files."""

    def __init__(
        self,
        directory: str | Path,
        fps: float | None = None,
        models: list[str] | None = None,
        source: str | None = None,
        calib: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(directory)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise StereoStudioError(f"recording folder {self.path} exists and is not empty: choose a new one")
        try:
            (self.path / "left").mkdir(parents=True, exist_ok=True)
            (self.path / "right").mkdir(exist_ok=True)
        except OSError as exc:
            raise StereoStudioError(f"cannot create recording folder {self.path}: {exc}") from exc
        self.fps = float(fps) if fps else None
        self.only = list(models) if models else None
        self.source = source
        self.calib = calib
        self.frames = 0
        self.models: dict[str, str] = {}  # model name -> folder under disp/
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self._csv_file = open(self.path / "frames.csv", "w", newline="")  # noqa: SIM115 (closed in close())
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(["frame", "time_s", "source_position", "name"])
        self._write_header()

    def _write_header(self) -> None:
        header = {
            "format": FORMAT,
            "version": VERSION,
            "disparity": "16-bit PNG, value / 256 = disparity in pixels of the recorded views, 0 = invalid",
            "disparity_scale": DISP_SCALE,
            "models": self.models,
            "frames": self.frames,
            "fps": self.fps,
            "size": list(self._size) if self._size else None,
            "source": self.source,
            "started": self._started,
            "calib": _jsonable(self.calib),
        }
        (self.path / "recording.json").write_text(json.dumps(header, indent=2) + "\n")

    def _imwrite(self, path: Path, image: np.ndarray) -> None:
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), image, _PNG_FAST):
            raise StereoStudioError(f"cannot write {path} (disk full?)")

    def write_result(self, result: Any) -> None:
        """Record one `FrameResult`: the views and every (selected) model's disparity."""
        size = tuple(result.left.shape[:2])
        if self._size is None:
            self._size = size  # type: ignore[assignment]
        elif size != self._size:
            raise StereoStudioError(f"recording {self.path}: frame size {size} differs from {self._size}")
        meta = getattr(result, "meta", {}) or {}
        now = meta.get("captured") or time.monotonic() - float(result.latency_ms or 0.0) / 1000.0
        if self._t0 is None:
            self._t0 = now
        stem = f"{self.frames:06d}.png"
        self._imwrite(self.path / "left" / stem, result.left)
        self._imwrite(self.path / "right" / stem, result.right)
        new_model = False
        for name, out in result.outputs.items():
            if self.only is not None and name not in self.only:
                continue
            if name not in self.models:
                folder = _safe(name)
                while folder in self.models.values():
                    folder += "_"
                self.models[name] = folder
                (self.path / "disp" / folder).mkdir(parents=True, exist_ok=True)
                new_model = True
            self._imwrite(self.path / "disp" / self.models[name] / stem, encode_disparity(out.disparity))
        if self.calib is None and meta.get("calib"):  # e.g. a Middlebury scene's calib.txt
            self.calib = dict(meta["calib"])
        position, name = meta.get("position", ""), meta.get("name", "")
        self._csv.writerow([self.frames, f"{now - self._t0:.6f}", position, name])
        self._csv_file.flush()
        self.frames += 1
        if new_model or self.frames == 1:
            self._write_header()

    def close(self) -> None:
        if not self._csv_file.closed:
            self._csv_file.close()
            self._write_header()

    def __enter__(self) -> RawRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecorderGroup:
    """Several recorders fed the same results (the colour video and the raw folder)."""

    def __init__(self, recorders: list[Any]) -> None:
        self.recorders = [r for r in recorders if r is not None]

    @property
    def path(self) -> Path | None:
        return self.recorders[0].path if self.recorders else None

    @property
    def frames(self) -> int:
        return min((r.frames for r in self.recorders), default=0)

    def write_result(self, result: Any) -> None:
        for r in self.recorders:
            r.write_result(result)

    def close(self) -> None:
        for r in self.recorders:
            r.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Recording:
    """A recording folder as a dataset: `len`, `rec[i] -> StereoSample` without ground truth, whose meta
    holds "recorded" ({model: disparity}), "timestamp" (s since the first frame), "name" and "calib"."""

    def __init__(self, directory: str | Path, limit: int | None = None) -> None:
        self.root = Path(directory)
        header_path = self.root / "recording.json"
        try:
            self.header = json.loads(header_path.read_text())
        except (OSError, ValueError) as exc:
            raise SourceError(f"{header_path} is not a readable recording header: {exc}") from exc
        if self.header.get("format") != FORMAT:
            got = self.header.get("format")
            raise SourceError(f"{self.root} is not a Stereo Studio recording (format {got!r})")
        if int(self.header.get("version", 0)) > VERSION:
            raise SourceError(f"{self.root}: recording version {self.header['version']} is newer than this "
                              f"Stereo Studio reads ({VERSION})")
        try:
            with open(self.root / "frames.csv", newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as exc:
            raise SourceError(f"{self.root}: cannot read frames.csv: {exc}") from exc
        rows = [r for r in rows if (self.root / "left" / f"{int(r['frame']):06d}.png").is_file()]
        self.rows = rows[:limit] if limit else rows
        self.models: dict[str, str] = dict(self.header.get("models") or {})
        self.name = f"recording:{self.root.name}"
        self.fps = self.header.get("fps")
        self.calib = self.header.get("calib")
        self.scale = float(self.header.get("disparity_scale", DISP_SCALE))

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, path: Path, flags: int) -> np.ndarray:
        image = cv2.imread(str(path), flags)
        if image is None:
            raise SourceError(f"recording {self.root}: cannot read {path.relative_to(self.root)}")
        return image

    def __getitem__(self, index: int) -> StereoSample:
        if index < 0:
            index += len(self.rows)
        if not 0 <= index < len(self.rows):
            raise IndexError(f"frame {index} out of range for a recording of {len(self.rows)} frames")
        row = self.rows[index]
        stem = f"{int(row['frame']):06d}.png"
        left = cv2.cvtColor(self._read(self.root / "left" / stem, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        right = cv2.cvtColor(self._read(self.root / "right" / stem, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        recorded = {}
        for model, folder in self.models.items():
            path = self.root / "disp" / folder / stem
            if path.is_file():
                raw = self._read(path, cv2.IMREAD_UNCHANGED)
                recorded[model] = raw.astype(np.float32) / np.float32(self.scale)
        meta: dict[str, Any] = {"name": row.get("name") or f"frame {row['frame']}", "recorded": recorded,
                                "timestamp": float(row.get("time_s") or 0.0)}
        if self.calib:
            meta["calib"] = self.calib
        return StereoSample(left, right, meta=meta)


def open_recording(
    directory: str | Path,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    loop: bool = False,
    limit: int | None = None,
) -> DatasetSource:
    """A recording folder as a seekable source (its fps, unless `fps` is given, paces realtime playback)."""
    rec = Recording(directory, limit=limit)
    if not len(rec):
        raise SourceError(f"recording {directory} has no frames")
    return DatasetSource(rec, str(directory), size=size, fps=fps or rec.fps, loop=loop)
