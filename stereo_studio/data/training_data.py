"""The datasets of a training run: data specs opened (mixed, cached, held-out split) by `open_training_data`.

A spec is anything `open_dataset` takes, or a side-by-side stereo video (`data.video.VideoFrames`). The run's
config is duck-typed (`DataConfig`): this layer does not know the engine's `TrainConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stereo_studio.data.video import VideoFrames, is_video_file
from stereo_studio.errors import DataError

VAL_SEED_OFFSET = 7_777_777  # validation pairs generated apart from the training ones


class DataConfig(Protocol):
    """The fields of a training config that choose its data (`engine.training.TrainConfig` has them)."""

    data: list[str]
    val_data: str | None
    val_fraction: float
    val_pairs: int
    teacher: str | None
    seed: int
    crop: tuple[int, int]
    synthetic_size: tuple[int, int] | None
    synthetic_pairs: int
    video_frames: int
    cache_mb: int


class ConcatDataset:
    """Several datasets seen as one (mixed data specs)."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part][index - int(self.offsets[part])]


class MemoryCache:
    """Keeps loaded / generated samples in memory up to a byte budget (samples are never modified)."""

    def __init__(self, dataset: Any, budget_bytes: int) -> None:
        self.dataset = dataset
        self.budget = budget_bytes
        self.used = 0
        self._cache: dict[int, Any] = {}
        self.name = getattr(dataset, "name", "")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        sample = self._cache.get(index)
        if sample is None:
            sample = self.dataset[index]
            size = sum(a.nbytes for a in (sample.left, sample.right, sample.disparity, sample.valid)
                       if a is not None)
            if self.used + size <= self.budget:
                self._cache[index] = sample
                self.used += size
        return sample


def is_synthetic(spec: str) -> bool:
    return spec.strip().lower() == "synthetic"


def has_gt(ds: Any) -> bool:
    """Whether a dataset has ground truth (its `has_gt` flag, else its first sample's)."""
    flag = getattr(ds, "has_gt", None)
    if isinstance(flag, bool):
        return flag
    return len(ds) > 0 and bool(ds[0].has_gt)


def open_spec(spec: str, cfg: DataConfig, max_disp: int, seed: int, limit: int | None) -> Any:
    """One data spec as a dataset: synthetic pairs (`limit` or `cfg.synthetic_pairs` of them, a little larger
    than the crop unless `cfg.synthetic_size`), a video's frames, or a dataset folder."""
    from stereo_studio.data.datasets import open_dataset

    if is_synthetic(spec):
        size = cfg.synthetic_size or (cfg.crop[0] + 32, cfg.crop[1] + 64)
        return open_dataset(spec, limit=limit or cfg.synthetic_pairs, seed=seed, size=tuple(size),
                            max_disp=max_disp)
    path = Path(spec).expanduser()
    if is_video_file(path):
        return VideoFrames(path, limit or cfg.video_frames)
    return open_dataset(spec, limit=limit, seed=seed, max_disp=max_disp)


def open_training_data(cfg: DataConfig, max_disp: int) -> tuple[Any, Any | None, str]:
    """(train dataset, validation dataset or None, a line describing them) for a resolved config."""
    from stereo_studio.data.datasets import split_dataset

    parts = []
    for spec in cfg.data:
        ds = open_spec(spec, cfg, max_disp, cfg.seed, None)
        if len(ds) == 0:
            raise DataError(f"dataset '{spec}' holds no stereo pairs")
        if not cfg.teacher and not has_gt(ds):
            raise DataError(f"dataset '{spec}' has no ground truth: unlabelled pairs can only be used to "
                            "distill from a teacher (stereo-studio distill --teacher ...)")
        parts.append(ds)
    train_ds = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    val_seed = cfg.seed + VAL_SEED_OFFSET
    if cfg.val_data:
        val_ds = open_spec(cfg.val_data, cfg, max_disp, val_seed,
                           cfg.val_pairs if is_synthetic(cfg.val_data) else None)
    elif all(is_synthetic(s) for s in cfg.data):
        val_ds = open_spec("synthetic", cfg, max_disp, val_seed, cfg.val_pairs)
    elif len(train_ds) >= 2:
        train_ds, val_ds = split_dataset(train_ds, cfg.val_fraction, cfg.seed)
    else:
        val_ds = None
    if cfg.cache_mb > 0:
        train_ds = MemoryCache(train_ds, cfg.cache_mb * 2**20)
    desc = f"{len(train_ds)} training pairs from {', '.join(cfg.data)}"
    if val_ds is not None:
        desc += f"; {min(len(val_ds), cfg.val_pairs)} validation pairs"
    return train_ds, val_ds, desc
