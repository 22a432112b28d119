"""A training run's datasets (`data/training_data.py`, `data/video.py`): mixing, caching, videos, specs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from stereo_studio.data.sample import StereoSample
from stereo_studio.data.training_data import (
    ConcatDataset,
    MemoryCache,
    has_gt,
    is_synthetic,
    open_spec,
    open_training_data,
)
from stereo_studio.data.video import VIDEO_SUFFIXES, VideoFrames, is_video_file
from stereo_studio.errors import DataError


class _Counted:
    """`n` 4x6 pairs filled with their index; counts the loads."""

    def __init__(self, n: int, gt: bool = True) -> None:
        self.n, self.gt, self.loads = n, gt, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> StereoSample:
        self.loads += 1
        img = np.full((4, 6, 3), i, np.uint8)
        disp = np.full((4, 6), 1.0, np.float32) if self.gt else None
        return StereoSample(img, img.copy(), disp, meta={"index": i})


def _config(**overrides) -> SimpleNamespace:
    """A duck-typed data config (the data layer never sees the engine's TrainConfig)."""
    base = {"data": ["synthetic"], "val_data": None, "val_fraction": 0.25, "val_pairs": 2, "teacher": None,
            "seed": 0, "crop": (32, 64), "synthetic_size": (40, 80), "synthetic_pairs": 5, "video_frames": 3,
            "cache_mb": 0}
    base.update(overrides)
    return SimpleNamespace(**base)


def _sbs_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 16))
    for i in range(frames):
        writer.write(np.full((16, 64, 3), 10 * i, np.uint8))
    writer.release()
    return path


def test_concat_indexes_across_parts():
    cat = ConcatDataset([_Counted(2), _Counted(3)])
    assert len(cat) == 5
    assert [int(cat[i].left[0, 0, 0]) for i in range(5)] == [0, 1, 0, 1, 2]
    assert int(cat[-1].left[0, 0, 0]) == 2


def test_memory_cache_keeps_samples_within_budget():
    base = _Counted(3)
    one = base[0]
    size = sum(a.nbytes for a in (one.left, one.right, one.disparity, one.valid) if a is not None)
    cache = MemoryCache(base, 2 * size)
    for _ in range(2):
        for i in range(3):
            cache[i]
    assert len(cache) == 3 and cache.used == 2 * size
    assert base.loads == 1 + 3 + 1  # pairs 0 and 1 cached, pair 2 loaded twice


def test_ground_truth_and_synthetic_checks():
    assert has_gt(_Counted(1)) and not has_gt(_Counted(1, gt=False)) and not has_gt(_Counted(0))
    assert is_synthetic(" Synthetic ") and not is_synthetic("synthetic.mp4")


def test_one_list_of_video_suffixes(tmp_path):
    from stereo_studio.gui import recent

    assert recent.VIDEO_SUFFIXES is VIDEO_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in VIDEO_SUFFIXES)
    (tmp_path / "clip.MKV").write_bytes(b"")
    assert is_video_file(tmp_path / "clip.MKV") and not is_video_file(tmp_path / "missing.mp4")


def test_video_frames_are_evenly_spaced_pairs(tmp_path):
    frames = VideoFrames(_sbs_video(tmp_path / "sbs.avi", 6), limit=3)
    assert len(frames) == 3 and not frames.has_gt and frames.name == "sbs.avi"
    assert [s.meta["frame"] for s in frames.samples] == [0, 2, 4]
    assert frames[0].left.shape == frames[0].right.shape == (16, 32, 3)
    with pytest.raises(DataError, match="cannot open video"):
        VideoFrames(tmp_path / "missing.avi", limit=2)


def test_open_spec_and_training_data(tmp_path):
    video = _sbs_video(tmp_path / "sbs.avi", 4)
    assert len(open_spec(str(video), _config(), 16, 0, None)) == 3  # cfg.video_frames
    synthetic = open_spec("synthetic", _config(), 16, 0, None)
    assert len(synthetic) == 5 and synthetic[0].left.shape[:2] == (40, 80)
    train_ds, val_ds, desc = open_training_data(_config(cache_mb=1), 16)
    assert isinstance(train_ds, MemoryCache) and len(train_ds) == 5 and len(val_ds) == 2
    assert desc == "5 training pairs from synthetic; 2 validation pairs"
    with pytest.raises(DataError, match="no ground truth"):
        open_training_data(_config(data=[str(video)]), 16)
    train_ds, val_ds, _ = open_training_data(_config(data=["synthetic", str(video)], teacher="t"), 16)
    assert isinstance(train_ds.dataset, ConcatDataset)
    assert len(train_ds) + len(val_ds) == 8  # a held-out split of the mix
