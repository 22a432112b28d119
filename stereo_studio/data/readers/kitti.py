"""KITTI 2012 / 2015 stereo benchmarks, as distributed (`training/` and `testing/` splits).

2012: `colored_0/`, `colored_1/`, `disp_occ/`; 2015: `image_2/`, `image_3/`, `disp_occ_0/`. Ground truth is a
16-bit PNG of disparity x 256 (0 = unknown); only the `_10` frames have it. The reader accepts the split
folder itself or a folder holding `training/` (the labelled split is then used).
"""

from __future__ import annotations

from pathlib import Path

from stereo_studio.data.readers.common import FolderDataset, read_image, read_png16_disparity, same_size
from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError


class _Kitti(FolderDataset):
    left_dir = ""
    right_dir = ""
    disp_dir = ""

    @classmethod
    def _split(cls, path: Path) -> Path | None:
        for candidate in (path, path / "training"):
            if (candidate / cls.left_dir).is_dir() and (candidate / cls.right_dir).is_dir():
                return candidate
        return None

    @classmethod
    def matches(cls, path: Path) -> bool:
        return cls._split(path) is not None

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        split = self._split(self.root) or self.root
        self.split = split
        left_dir = split / self.left_dir
        for left in sorted(left_dir.glob("*_10.png")):
            right = split / self.right_dir / left.name
            disp = split / self.disp_dir / left.name
            self.items.append((left, right, disp if disp.is_file() else None))
        self._require_items(f"'*_10.png' pairs in {self.left_dir}/")

    def load(self, item: tuple[Path, Path, Path | None]) -> StereoSample:
        left_path, right_path, disp_path = item
        left, right = read_image(left_path), read_image(right_path)
        meta = {"dataset": self.dataset, "name": left_path.stem, "left_path": str(left_path)}
        if right.shape != left.shape:
            raise DataError(f"{right_path} is not the size of {left_path}")
        if disp_path is None:
            return StereoSample(left, right, meta=meta)
        disp, valid = read_png16_disparity(disp_path)
        same_size(disp_path, left.shape[:2], disp)
        return StereoSample(left, right, disp, valid, meta)


class Kitti2012(_Kitti):
    """KITTI 2012: `colored_0/`, `colored_1/`, `disp_occ/`."""

    dataset = "kitti2012"
    left_dir, right_dir, disp_dir = "colored_0", "colored_1", "disp_occ"


class Kitti2015(_Kitti):
    """KITTI 2015: `image_2/`, `image_3/`, `disp_occ_0/`."""

    dataset = "kitti2015"
    left_dir, right_dir, disp_dir = "image_2", "image_3", "disp_occ_0"
