"""Unlabelled stereo pairs in a plain folder (no ground truth), e.g. for distillation on real images.

Recognised, in order: `left/` + `right/` folders with matching file names; files named `<name>_L.<ext>` /
`<name>_R.<ext>` (also `_left` / `_right`, any case); `im0.*` + `im1.*` in the folder or in each sub-folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from stereo_studio.data.readers.common import FolderDataset, find_file, image_files, read_image
from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError

_SUFFIX = re.compile(r"^(?P<base>.+)[_\-.](?P<side>l|r|left|right)$", re.IGNORECASE)


def _left_right_dirs(path: Path) -> list[tuple[Path, Path, str]]:
    left, right = path / "left", path / "right"
    if not (left.is_dir() and right.is_dir()):
        return []
    rights = {p.stem: p for p in image_files(right)}
    return [(p, rights[p.stem], p.stem) for p in image_files(left) if p.stem in rights]


def _suffixed(path: Path) -> list[tuple[Path, Path, str]]:
    lefts: dict[str, Path] = {}
    rights: dict[str, Path] = {}
    for p in image_files(path):
        m = _SUFFIX.match(p.stem)
        if not m:
            continue
        side = m.group("side").lower()[0]
        (lefts if side == "l" else rights)[m.group("base")] = p
    return [(lefts[k], rights[k], k) for k in sorted(lefts) if k in rights]


def _im01(path: Path) -> list[tuple[Path, Path, str]]:
    folders = [path] + (sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else [])
    pairs = []
    for folder in folders:
        im0, im1 = find_file(folder, "im0"), find_file(folder, "im1")
        if im0 is not None and im1 is not None:
            pairs.append((im0, im1, folder.name))
    return pairs


def _pairs(path: Path) -> list[tuple[Path, Path, str]]:
    for finder in (_left_right_dirs, _suffixed, _im01):
        pairs = finder(path)
        if pairs:
            return pairs
    return []


class PairFolder(FolderDataset):
    """Unlabelled pairs: `left/` + `right/`, `*_L.*` + `*_R.*`, or `im0.*` + `im1.*` (no ground truth)."""

    dataset = "pairs"
    has_gt = False

    @classmethod
    def matches(cls, path: Path) -> bool:
        return path.is_dir() and bool(_pairs(path))

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.items = _pairs(self.root)
        self._require_items("stereo pairs (left/ + right/, *_L/*_R files, or im0/im1)")

    def load(self, item: tuple[Path, Path, str]) -> StereoSample:
        left_path, right_path, name = item
        left, right = read_image(left_path), read_image(right_path)
        if right.shape != left.shape:
            raise DataError(f"{right_path} ({right.shape[1]}x{right.shape[0]}) is not the size of "
                            f"{left_path} ({left.shape[1]}x{left.shape[0]})")
        meta = {"dataset": self.dataset, "name": name, "left_path": str(left_path)}
        return StereoSample(left, right, meta=meta)
