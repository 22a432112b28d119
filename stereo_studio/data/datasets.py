"""`open_dataset(spec)`: the one way to get a dataset of `StereoSample` from a CLI/GUI data spec.

A spec is `synthetic` (the embedded procedural generator) or a folder in any supported layout (KITTI
2012/2015, SceneFlow, ETH3D, Middlebury, unlabelled pair folders: see `stereo_studio.data.readers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError
from stereo_studio.progress import Job, Progress, Ticker

SYNTHETIC_SIZE = (256, 512)
SYNTHETIC_MAX_DISP = 64
SYNTHETIC_LENGTH = 10000


class Subset:
    """The samples of `dataset` at `indices` (in that order), itself a dataset."""

    def __init__(self, dataset: Any, indices: Sequence[int], name: str | None = None) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.name = name or str(getattr(dataset, "name", "dataset"))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> StereoSample:
        return self.dataset[self.indices[index]]


class Resized:
    """`dataset` with every sample resized to (height, width); disparity, calibration and max_disp follow."""

    def __init__(self, dataset: Any, size: tuple[int, int]) -> None:
        self.dataset = dataset
        self.size = (int(size[0]), int(size[1]))
        self.name = f"{getattr(dataset, 'name', 'dataset')}@{self.size[0]}x{self.size[1]}"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> StereoSample:
        return resize_sample(self.dataset[index], self.size)


def resize_sample(sample: StereoSample, size: tuple[int, int]) -> StereoSample:
    """Resize a pair to (height, width). Disparity values are scaled by the width ratio; ground truth is
    resampled by nearest neighbour so unknown pixels stay unknown."""
    h, w = sample.size
    nh, nw = size
    if (nh, nw) == (h, w):
        return sample
    sx, sy = nw / w, nh / h
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    left = cv2.resize(sample.left, (nw, nh), interpolation=interp)
    right = cv2.resize(sample.right, (nw, nh), interpolation=interp)
    meta = dict(sample.meta)
    meta["resized_from"] = (h, w)
    if "max_disp" in meta:
        meta["max_disp"] = float(meta["max_disp"]) * sx
    if isinstance(meta.get("calib"), dict):
        calib = dict(meta["calib"])
        for key in ("focal_px", "cx", "doffs"):
            if key in calib:
                calib[key] = calib[key] * sx
        if "cy" in calib:
            calib["cy"] = calib["cy"] * sy
        if "ndisp" in calib:
            calib["ndisp"] = calib["ndisp"] * sx
        calib["width"], calib["height"] = float(nw), float(nh)
        meta["calib"] = calib
    for key in ("occlusion", "nonoccluded"):
        if isinstance(meta.get(key), np.ndarray):
            meta[key] = cv2.resize(meta[key].astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
    if sample.disparity is None:
        return StereoSample(left, right, meta=meta)
    valid = np.asarray(sample.valid, bool) & np.isfinite(sample.disparity)
    disp = np.where(valid, sample.disparity, 0.0).astype(np.float32)
    disp = cv2.resize(disp, (nw, nh), interpolation=cv2.INTER_NEAREST) * np.float32(sx)
    valid = cv2.resize(valid.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
    return StereoSample(left, right, disp, valid, meta)


class _MaxDisp:
    """`dataset` whose samples carry meta["max_disp"] = max_disp."""

    def __init__(self, dataset: Any, max_disp: float) -> None:
        self.dataset, self.max_disp = dataset, float(max_disp)
        self.name = getattr(dataset, "name", "dataset")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> StereoSample:
        sample = self.dataset[index]
        sample.meta["max_disp"] = self.max_disp
        return sample


def open_dataset(spec: str, *, limit: int | None = None, seed: int = 0, size: tuple[int, int] | None = None,
                 max_disp: int | None = None) -> Any:
    """A dataset (`len`, `ds[i] -> StereoSample`, `name`) from a data spec.

    - "synthetic": `SyntheticStereo` of `size` (default 256x512), disparities below `max_disp` (default 64,
      at most half the width), `limit` pairs (default 10000), seeded by `seed`.
    - a folder: its layout is recognised (KITTI 2015/2012, SceneFlow, ETH3D, Middlebury, pair folder);
      `limit` keeps the first pairs (sorted by name), `size` resizes every pair (disparity scaled),
      `max_disp` sets meta["max_disp"] (overriding the dataset's own ndisp).
    Raises DataError for a missing folder or an unknown layout.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    if spec.strip().lower() == "synthetic":
        from stereo_studio.data.synthetic import SyntheticStereo

        height, width = size or SYNTHETIC_SIZE
        disp = float(max_disp) if max_disp is not None else float(min(SYNTHETIC_MAX_DISP, width // 2))
        return SyntheticStereo(height, width, disp, seed=seed, length=limit or SYNTHETIC_LENGTH)
    from stereo_studio.data.readers import READERS, find_reader

    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"dataset folder not found: {spec} (a data spec is 'synthetic' or a dataset folder)")
    if not path.is_dir():
        raise DataError(f"{spec} is a file; a dataset is 'synthetic' or a folder")
    reader = find_reader(path)
    if reader is None:
        known = ", ".join(r.dataset for r in READERS)
        raise DataError(f"unknown dataset layout in {spec} (supported: {known}; see the data documentation)")
    dataset: Any = reader(path)
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    if size is not None:
        dataset = Resized(dataset, size)
    if max_disp is not None:
        dataset = _MaxDisp(dataset, max_disp)
    return dataset


def split_dataset(dataset: Any, val_fraction: float, seed: int = 0) -> tuple[Subset, Subset]:
    """Disjoint (train, val) subsets: a seeded random `val_fraction` of the indices (at least one when the
    fraction is positive and there are two or more samples) is held out for validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(dataset)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(1, n_val), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    name = str(getattr(dataset, "name", "dataset"))
    return Subset(dataset, train, f"{name}[train]"), Subset(dataset, val, f"{name}[val]")


def write_dataset(dataset: Any, folder: str | Path, limit: int | None = None) -> Job[Path]:
    """Job: write `dataset` (e.g. pre-generated synthetic pairs) to `folder` in the MiddEval3 layout,
    one scene folder per pair (`im0.png`, `im1.png`, `disp0GT.pfm` with `inf` where unknown, `calib.txt`
    with ndisp, `mask0nocc.png` when occlusions are known), so `open_dataset(folder)` reads it back (much
    faster than generating). Returns the folder."""

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    ticker = Ticker(0.5)
    yield Progress(0, total, f"writing {total} pairs to {root}")
    for i in range(total):
        sample = dataset[i]
        write_scene(sample, root / f"{i:06d}")
        if ticker.due() or i + 1 == total:
            yield Progress(i + 1, total, "writing pairs")
    return root


def write_scene(sample: StereoSample, scene: Path) -> None:
    """One pair as a MiddEval3 scene folder (see `write_dataset`)."""
    from stereo_studio.data.pfm import write_pfm

    scene.mkdir(parents=True, exist_ok=True)
    for name, img in (("im0.png", sample.left), ("im1.png", sample.right)):
        if not cv2.imwrite(str(scene / name), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise DataError(f"cannot write {scene / name}")
    h, w = sample.size
    lines = [f"width={w}", f"height={h}"]
    if "max_disp" in sample.meta:
        lines.append(f"ndisp={float(sample.meta['max_disp']):g}")
    calib = sample.meta.get("calib") or {}
    if "focal_px" in calib:
        f, cx, cy = calib["focal_px"], calib.get("cx", w / 2), calib.get("cy", h / 2)
        lines.insert(0, f"cam0=[{f} 0 {cx}; 0 {f} {cy}; 0 0 1]")
    if "baseline_m" in calib:
        lines.append(f"baseline={calib['baseline_m'] * 1000.0:g}")
    if "doffs" in calib:
        lines.append(f"doffs={calib['doffs']:g}")
    (scene / "calib.txt").write_text("\n".join(lines) + "\n")
    if sample.disparity is not None:
        write_pfm(scene / "disp0GT.pfm", np.where(sample.valid, sample.disparity, np.inf).astype(np.float32))
    occlusion = sample.meta.get("occlusion")
    if isinstance(occlusion, np.ndarray) and occlusion.shape == (h, w):
        cv2.imwrite(str(scene / "mask0nocc.png"), np.where(occlusion, 128, 255).astype(np.uint8))
