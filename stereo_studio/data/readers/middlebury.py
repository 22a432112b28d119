"""Middlebury 2014 / MiddEval3 and ETH3D two-view: one folder per scene.

A scene folder holds `im0.png`, `im1.png`, `calib.txt` (cam0 focal, doffs, baseline in mm, ndisp) and, where
ground truth is public, `disp0GT.pfm` (MiddEval3, ETH3D) or `disp0.pfm` (Middlebury 2014), `inf` = unknown,
plus `mask0nocc.png` (255 = non-occluded). The reader takes a scene folder or a folder of scenes (e.g.
`trainingQ/`). ETH3D scenes share the layout; they are told apart by their names (`delivery_area_1l`, ...,
ending in `_<n>l` / `_<n>s`) or an `eth3d` folder name.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from stereo_studio.data.pfm import read_pfm
from stereo_studio.data.readers.common import FolderDataset, find_file, read_calib_txt, read_image, same_size
from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError

_ETH3D_SCENE = re.compile(r"_\d+[ls]$")


def _is_scene(path: Path) -> bool:
    return (find_file(path, "im0") is not None and find_file(path, "im1") is not None
            and (path / "calib.txt").is_file())


def _scenes(path: Path) -> list[Path]:
    if _is_scene(path):
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and _is_scene(p))


def _looks_eth3d(path: Path, scenes: list[Path]) -> bool:
    if any("eth3d" in part.lower() for part in path.resolve().parts):
        return True
    return bool(scenes) and all(_ETH3D_SCENE.search(s.name) for s in scenes)


class Middlebury(FolderDataset):
    """Middlebury 2014 / MiddEval3: a scene folder or a folder of scene folders."""

    dataset = "middlebury"

    @classmethod
    def matches(cls, path: Path) -> bool:
        scenes = _scenes(path)
        return bool(scenes) and not _looks_eth3d(path, scenes)

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.items = _scenes(self.root)
        self._require_items("scene folders (im0.png, im1.png, calib.txt)")
        if len(self.items) == 1 and self.items[0] == self.root:
            self.name = f"{self.dataset}:{self.root.parent.name}/{self.root.name}"

    def load(self, scene: Path) -> StereoSample:
        left = read_image(find_file(scene, "im0") or scene / "im0.png")
        right = read_image(find_file(scene, "im1") or scene / "im1.png")
        if right.shape != left.shape:
            raise DataError(f"im1 in {scene} is not the size of im0")
        calib = read_calib_txt(scene / "calib.txt")
        meta: dict = {"dataset": self.dataset, "name": scene.name, "calib": calib, "path": str(scene)}
        if "ndisp" in calib:
            meta["max_disp"] = float(calib["ndisp"])
        gt_path = next((scene / n for n in ("disp0GT.pfm", "disp0.pfm") if (scene / n).is_file()), None)
        if gt_path is None:
            return StereoSample(left, right, meta=meta)
        disp = read_pfm(gt_path)
        if disp.ndim != 2:
            raise DataError(f"{gt_path} has {disp.shape[2]} channels, expected a one-channel disparity map")
        same_size(gt_path, left.shape[:2], disp)
        valid = np.isfinite(disp) & (disp > 0)
        disp = np.where(valid, disp, 0.0).astype(np.float32)
        mask_path = scene / "mask0nocc.png"
        if mask_path.is_file():
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise DataError(f"cannot decode mask file {mask_path}")
            same_size(mask_path, left.shape[:2], mask)
            meta["nonoccluded"] = mask == 255
        return StereoSample(left, right, disp, valid, meta)


class ETH3D(Middlebury):
    """ETH3D two-view stereo (same files as MiddEval3; grey images are read as RGB)."""

    dataset = "eth3d"

    @classmethod
    def matches(cls, path: Path) -> bool:
        scenes = _scenes(path)
        return bool(scenes) and _looks_eth3d(path, scenes)
