"""Snapshots (left view, 16-bit and colour disparity PNGs) and recordings (video of the colour maps)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from stereo_studio.errors import StereoStudioError
from stereo_studio.live.pipeline import FrameResult

DISP16_SCALE = 256.0  # KITTI convention: uint16 = disparity * 256, 0 = invalid
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def disparity_to_png16(disp: np.ndarray) -> np.ndarray:
    """uint16 image of disparity * 256 (KITTI convention), 0 where invalid or negative."""
    d = np.where(np.isfinite(disp) & (disp > 0), disp, 0.0) * DISP16_SCALE
    return np.clip(np.rint(d), 0, 65535).astype(np.uint16)


def _write(path: Path, image: np.ndarray) -> Path:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise StereoStudioError(f"cannot write {path}")
    return path


def save_snapshot(directory: str | Path, result: FrameResult, prefix: str | None = None) -> dict[str, Path]:
    """Write `<prefix>_left.png` and, per model, `_<model>_disp16.png` (disparity * 256, uint16) and
    `_<model>_color.png` (and `_<model>_error.png` when scored). Returns {label: path}."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StereoStudioError(f"cannot create snapshot folder {out}: {exc}") from exc
    stem = prefix or f"frame{result.index:06d}"
    paths = {"left": _write(out / f"{stem}_left.png", result.left)}
    for name, output in result.outputs.items():
        tag = _safe(name)
        paths[f"{name}/disp16"] = _write(
            out / f"{stem}_{tag}_disp16.png", disparity_to_png16(output.disparity)
        )
        paths[f"{name}/color"] = _write(out / f"{stem}_{tag}_color.png", output.color)
        if output.error_color is not None:
            paths[f"{name}/error"] = _write(out / f"{stem}_{tag}_error.png", output.error_color)
    return paths


def mosaic(result: FrameResult, with_left: bool = True) -> np.ndarray:
    """The left view and every model's colour map side by side (RGB uint8), for recording and display."""
    tiles = ([result.left] if with_left else []) + [o.color for o in result.outputs.values()]
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))


class DisparityRecorder:
    """Writes RGB frames (colour-mapped disparity or a mosaic) to a video; the first frame fixes the size.

    The codec follows the extension: .mp4 / .mov (mp4v), .avi / .mkv (MJPG).
    """

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in _FOURCC:
            raise StereoStudioError(f"recording {self.path}: use a .mp4, .avi, .mkv or .mov name")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, rgb: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame."""
        h, w = rgb.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise StereoStudioError(f"cannot open {self.path} for writing video")
            self._size = (h, w)
        elif (h, w) != self._size:
            raise StereoStudioError(f"recording {self.path}: frame size {h}x{w} differs from {self._size}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def write_result(self, result: FrameResult, model: str | None = None) -> None:
        """Record one pipeline result: a model's colour map, or (model None) the left + all models mosaic."""
        self.write(result.outputs[model].color if model is not None else mosaic(result))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> DisparityRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
