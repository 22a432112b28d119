"""Photographic textures for the synthetic generator: random crops of real photographs from a folder.

The generator's textures are procedural by default; a variant with `photo_prob > 0` paints that fraction of
its surfaces with crops of photographs (rescaled, rotated, mirrored and recoloured), so the network sees the
statistics of real surfaces. The photographs are the user's (a folder of images); the recipe fetches a fixed
set from Debian's `opencv-doc` package at install time (`models/fetch_photos.sh`), never at run time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_MIN_SIDE = 64  # px: smaller images are too small to crop from


class PhotoLibrary:
    """The photographs of a folder, decoded once (uint8 RGB), in sorted file-name order (deterministic)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"photo folder {self.folder} does not exist (models/fetch_photos.sh fills one)")
        self.names: list[str] = []
        self.images: list[np.ndarray] = []
        for path in sorted(p for p in self.folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"cannot read photo {path}")
            if min(img.shape[:2]) < _MIN_SIDE:
                raise ValueError(f"photo {path} is {img.shape[1]}x{img.shape[0]}: sides of at least "
                                 f"{_MIN_SIDE} px are needed")
            self.names.append(path.name)
            self.images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))  # the generator's views are RGB
        if not self.images:
            raise ValueError(f"photo folder {self.folder} holds no images ({', '.join(PHOTO_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.images)

    def texture(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random crop of a random photograph, H x W x 3 float32 in [0, 1].

        Scale 0.3-1.2x, a quarter turn and mirroring at random, tiled by reflection where the scaled photo is
        smaller than the crop; then a random per-channel gain and contrast (surfaces of another colour).
        """
        img = self.images[int(rng.integers(len(self.images)))]
        scale = float(np.exp(rng.uniform(np.log(0.3), np.log(1.2))))
        h0, w0 = img.shape[:2]
        small = cv2.resize(img, (max(8, round(w0 * scale)), max(8, round(h0 * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        turns = int(rng.integers(4))
        if turns:
            small = np.rot90(small, turns)
        if rng.random() < 0.5:
            small = small[:, ::-1]
        sh, sw = small.shape[:2]
        pad_y, pad_x = max(0, height - sh), max(0, width - sw)
        if pad_y or pad_x:
            small = cv2.copyMakeBorder(np.ascontiguousarray(small), 0, pad_y, 0, pad_x,
                                       cv2.BORDER_REFLECT_101)
            sh, sw = small.shape[:2]
        y = int(rng.integers(sh - height + 1))
        x = int(rng.integers(sw - width + 1))
        crop = small[y:y + height, x:x + width].astype(np.float32) * np.float32(1 / 255)
        gain = np.exp(rng.normal(0.0, 0.2, 3)).astype(np.float32)
        contrast = np.float32(np.exp(rng.normal(0.0, 0.25)))
        mean = crop[::4, ::4].reshape(-1, 3).mean(axis=0)
        tex = (crop - mean) * contrast + mean * gain
        return np.clip(tex, 0.0, 1.0, out=tex)


@functools.lru_cache(maxsize=4)
def photo_library(folder: str) -> PhotoLibrary:
    """The library of a folder, loaded once per process."""
    return PhotoLibrary(folder)
