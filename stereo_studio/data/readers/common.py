"""What every dataset reader shares: image / disparity file I/O and the folder-dataset base class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def read_image(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (grey images are replicated to three channels)."""
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot decode image file {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def read_png16_disparity(path: Path, scale: float = 256.0) -> tuple[np.ndarray, np.ndarray]:
    """KITTI-style 16-bit PNG disparity (value / scale, 0 = unknown) -> (disparity float32, valid bool)."""
    if not path.is_file():
        raise DataError(f"disparity file not found: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
        got = "unreadable" if raw is None else f"{raw.dtype} with shape {raw.shape}"
        raise DataError(f"malformed disparity file {path}: expected a 16-bit grey PNG, got {got}")
    valid = raw > 0
    return (raw.astype(np.float32) / np.float32(scale)) * valid, valid


def read_calib_txt(path: Path) -> dict[str, Any]:
    """Middlebury / ETH3D `calib.txt` -> {"focal_px", "baseline_m", "doffs", "ndisp", "width", ...}."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read calibration file {path}: {exc.strerror or exc}") from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    calib: dict[str, Any] = {}
    try:
        if "cam0" in fields:
            numbers = [float(v) for v in re.split(r"[\s;\[\]]+", fields["cam0"]) if v]
            if len(numbers) != 9:
                raise ValueError("cam0 must be a 3x3 matrix")
            calib["focal_px"] = numbers[0]
            calib["cx"], calib["cy"] = numbers[2], numbers[5]
        if "baseline" in fields:
            calib["baseline_m"] = float(fields["baseline"]) / 1000.0  # the files give millimetres
        if "doffs" in fields:
            calib["doffs"] = float(fields["doffs"])
        for key in ("ndisp", "width", "height", "vmin", "vmax"):
            if key in fields:
                calib[key] = float(fields[key])
    except ValueError as exc:
        raise DataError(f"malformed calibration file {path}: {exc}") from exc
    return calib


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem.<any image suffix>` if it exists."""
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


class FolderDataset:
    """Base of the readers: a list of items, each turned into a `StereoSample` on access.

    Subclasses set `dataset` (short layout name), implement `matches(path)` (classmethod: does this folder
    have my layout?), fill `self.items` in `__init__` and implement `load(item) -> StereoSample`.
    """

    dataset = "folder"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset folder not found: {self.root}")
        self.items: list[Any] = []
        self.name = f"{self.dataset}:{self.root.name}"

    @classmethod
    def matches(cls, path: Path) -> bool:
        raise NotImplementedError

    def load(self, item: Any) -> StereoSample:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> StereoSample:
        if index < 0:
            index += len(self.items)
        if not 0 <= index < len(self.items):
            raise IndexError(f"index {index} out of range for {len(self.items)} pairs in {self.root}")
        return self.load(self.items[index])

    def _require_items(self, what: str) -> None:
        if not self.items:
            raise DataError(f"no {what} found in {self.root}")


def same_size(path: Path, sample_shape: tuple[int, int], array: np.ndarray) -> None:
    """Raise DataError naming `path` when a ground-truth array does not match the image size."""
    if array.shape[:2] != sample_shape:
        raise DataError(f"{path} is {array.shape[1]}x{array.shape[0]} but the images are "
                        f"{sample_shape[1]}x{sample_shape[0]}")

