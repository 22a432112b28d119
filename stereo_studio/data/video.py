"""Stereo videos as data: the file suffixes taken for videos, a side-by-side video's frames as a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError

# The one list of video file suffixes (lower case), for training data specs and live sources alike.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")


def is_video_file(path: Path) -> bool:
    """True for an existing file whose suffix is a video's."""
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


class VideoFrames:
    """Unlabelled pairs from a side-by-side stereo video (left half | right half), for distillation.

    At most `limit` frames, evenly spaced over the video, are decoded once and kept in memory.
    """

    def __init__(self, path: Path, limit: int) -> None:
        import cv2

        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DataError(f"cannot open video {path}")
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or limit
            stride = max(1, count // limit)
            self.samples: list[StereoSample] = []
            index = 0
            while len(self.samples) < limit:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % stride == 0:
                    w = frame.shape[1]
                    if w % 2:
                        raise DataError(f"{path}: a side-by-side frame needs an even width, got {w}")
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                    self.samples.append(StereoSample(
                        np.ascontiguousarray(rgb[:, : w // 2]), np.ascontiguousarray(rgb[:, w // 2:]),
                        meta={"dataset": "video", "name": f"{path.stem}-{index:06d}", "frame": index}))
                index += 1
        finally:
            cap.release()
        if not self.samples:
            raise DataError(f"no frames could be read from video {path}")
        self.name = path.name
        self.has_gt = False

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> StereoSample:
        return self.samples[index]
