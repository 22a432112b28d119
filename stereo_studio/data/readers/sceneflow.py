"""SceneFlow (FlyingThings3D, Driving, Monkaa) as distributed.

`<root>/frames_cleanpass/.../left/*.png` (or `frames_finalpass`) with `.../right/*.png`, and disparity for the
left view in `<root>/disparity/.../left/*.pfm` under the same relative path. The clean pass is used when both
passes exist. The root may also be the `frames_*pass` folder itself (its parent then holds `disparity/`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stereo_studio.data.pfm import read_pfm
from stereo_studio.data.readers.common import IMAGE_SUFFIXES, FolderDataset, read_image, same_size
from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError

_PASSES = ("frames_cleanpass", "frames_finalpass")


def _frames_dir(path: Path) -> Path | None:
    if path.name in _PASSES and path.is_dir():
        return path
    for name in _PASSES:
        if (path / name).is_dir():
            return path / name
    return None


def _frames_dirs(path: Path) -> list[Path]:
    """The frames folder of `path`, or those of its sub-folders (e.g. FlyingThings3D/, Driving/, Monkaa/)."""
    here = _frames_dir(path)
    if here is not None:
        return [here]
    if not path.is_dir():
        return []
    found = (_frames_dir(p) for p in sorted(path.iterdir()) if p.is_dir())
    return [f for f in found if f is not None]


class SceneFlow(FolderDataset):
    """FlyingThings3D / Driving / Monkaa: `frames_cleanpass|frames_finalpass` + `disparity` trees."""

    dataset = "sceneflow"

    @classmethod
    def matches(cls, path: Path) -> bool:
        return bool(_frames_dirs(path))

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        frames_dirs = _frames_dirs(self.root)
        if not frames_dirs:
            raise DataError(f"no frames_cleanpass/ or frames_finalpass/ folder in {self.root}")
        for frames in frames_dirs:
            self._scan(frames)
        self._require_items("left/right image folders")
        if len(frames_dirs) == 1:
            self.name = f"{self.dataset}:{frames_dirs[0].parent.name}/{frames_dirs[0].name}"

    def _scan(self, frames: Path) -> None:
        disparity_root = frames.parent / "disparity"
        for dirpath, dirnames, filenames in os.walk(frames):
            dirnames.sort()
            here = Path(dirpath)
            if here.name != "left":
                continue
            right_dir = here.parent / "right"
            rel = here.relative_to(frames)
            for name in sorted(filenames):
                if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                disp = disparity_root / rel / (Path(name).stem + ".pfm")
                self.items.append((here / name, right_dir / name, disp if disp.is_file() else None, rel))

    def load(self, item: tuple[Path, Path, Path | None, Path]) -> StereoSample:
        left_path, right_path, disp_path, rel = item
        left, right = read_image(left_path), read_image(right_path)
        if right.shape != left.shape:
            raise DataError(f"{right_path} is not the size of {left_path}")
        name = "/".join([*rel.parent.parts, left_path.stem])
        meta = {"dataset": self.dataset, "name": name, "left_path": str(left_path)}
        if disp_path is None:
            return StereoSample(left, right, meta=meta)
        disp = read_pfm(disp_path)
        if disp.ndim == 3:
            disp = disp[:, :, 0]
        same_size(disp_path, left.shape[:2], disp)
        disp = np.abs(disp)  # some releases store left disparities as negative numbers
        valid = np.isfinite(disp) & (disp > 0)
        return StereoSample(left, right, np.where(valid, disp, 0.0).astype(np.float32), valid, meta)
