"""Helpers for the live tests: textured pairs and side-by-side videos made in code, fake models, sources."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import SourceError
from stereo_studio.live.calibration import StereoCalibration
from stereo_studio.live.sources import FrameSource


def textured_pair(seed: int, h: int = 96, w: int = 128, shift: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A random-texture pair whose right view is the left shifted by `shift` px (disparity = shift)."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (h // 4 + 1, (w + shift) // 4 + 1), dtype=np.uint8)
    grey = np.kron(grey, np.ones((4, 4), np.uint8))[:h, : w + shift]  # 4 px texels survive JPEG
    base = np.stack([grey, grey // 2 + 64, 255 - grey], axis=-1)
    return np.ascontiguousarray(base[:, shift:]), np.ascontiguousarray(base[:, :w])


def write_sbs_video(path: Path, frames: int, h: int = 96, w: int = 128, fps: float = 30.0) -> Path:
    """A side-by-side video: left half = textured left view, right half = its right view."""
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (2 * w, h))
    assert writer.isOpened()
    for i in range(frames):
        left, right = textured_pair(i, h, w)
        writer.write(cv2.cvtColor(np.concatenate([left, right], axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


class ShiftMatcher:
    """A fake model: predicts a constant disparity (optionally slowly)."""

    def __init__(self, value: float = 6.0, delay: float = 0.0, name: str = "shift") -> None:
        self.name, self.value, self.delay, self.max_disp = name, value, delay, 32

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        return np.full(left.shape[:2], self.value, np.float32)


class FakeSource(FrameSource):
    """`count` frames with ground truth; fails with SourceError after `fail_after` frames, or blocks for
    `hang_seconds` in the read after `hang_after` frames; `fps` paces it when grabbed."""

    def __init__(
        self,
        count: int = 10,
        fail_after: int | None = None,
        hang_after: int | None = None,
        fps: float | None = None,
        live: bool = False,
        h: int = 48,
        w: int = 64,
        hang_seconds: float = 1.0,
    ) -> None:
        super().__init__("fake", fps=fps)
        self.is_live = live
        self.count, self.fail_after, self.hang_after, self.h, self.w = count, fail_after, hang_after, h, w
        self.frame_count = count
        self.hang_seconds = hang_seconds
        self.produced = 0

    def _read_pair(self):
        if self.fail_after is not None and self.produced >= self.fail_after:
            raise SourceError("fake camera unplugged")
        if self.hang_after is not None and self.produced >= self.hang_after:
            time.sleep(self.hang_seconds)
            self.hang_after = None
        if self.produced >= self.count:
            return None
        left, right = textured_pair(self.produced, self.h, self.w)
        gt = np.full((self.h, self.w), 6.0, np.float32)
        self.produced += 1
        return left, right, gt, np.ones_like(gt, bool), {}


def sample_list(n: int = 3, h: int = 48, w: int = 64) -> list[StereoSample]:
    out = []
    for i in range(n):
        left, right = textured_pair(i, h, w)
        out.append(StereoSample(left, right, np.full((h, w), 6.0, np.float32), meta={"name": f"s{i}"}))
    return out


def ideal_calibration(h: int = 60, w: int = 80, f: float = 100.0, baseline: float = 0.1) -> StereoCalibration:
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], float)
    return StereoCalibration(
        (h, w), K, np.zeros(5), K.copy(), np.zeros(5), np.eye(3), np.array([[-baseline], [0], [0]])
    )
