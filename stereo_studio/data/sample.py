"""The one sample type every reader, generator and model in Stereo Studio speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StereoSample:
    """A rectified stereo pair with optional ground truth for the left view.

    Images are H x W x 3 uint8 in **RGB** order (readers convert from OpenCV's BGR).
    `disparity` is float32 H x W in pixels of this image size (left view); `valid` is a bool H x W
    mask of pixels where `disparity` is known. Both are None when the pair has no ground truth.
    `meta` carries: "dataset" (str), "name" (str), "max_disp" (float, if known), "calib" (dict, if known:
    focal px, baseline m, doffs, ...), plus anything reader specific.
    """

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray | None = None
    valid: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("left", "right"):
            img = getattr(self, name)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"{name} image must be H x W x 3 uint8, got {img.shape} {img.dtype}")
        if self.left.shape != self.right.shape:
            raise ValueError(f"left {self.left.shape[:2]} and right {self.right.shape[:2]} sizes differ")
        if self.disparity is not None:
            if self.disparity.shape != self.left.shape[:2]:
                raise ValueError(
                    f"disparity {self.disparity.shape} does not match image {self.left.shape[:2]}"
                )
            if self.valid is None:
                self.valid = np.isfinite(self.disparity) & (self.disparity > 0)

    @property
    def has_gt(self) -> bool:
        return self.disparity is not None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.left.shape[0], self.left.shape[1]

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "pair"))
