"""Disparity error metrics: EPE, bad-x, KITTI D1, and an accumulator over a dataset.

Conventions:
- Inputs may be numpy arrays or torch tensors of the same H x W shape (leading singleton axes such as
  1 x 1 x H x W are squeezed). `valid` is a bool mask; when None it is `isfinite(gt) & (gt > 0)`.
- bad-x is the percentage of valid pixels whose absolute error is strictly greater than x pixels.
- D1 (KITTI 2015) is the percentage of valid pixels whose error is > 3 px **and** > 5 % of |gt|.
- A non-finite prediction at a valid pixel is counted as a prediction of 0 (no match): it is an error of |gt|.
- An image with no valid pixel gives NaN for every metric and `pixels == 0`; it contributes nothing to the
  pixel-weighted totals and is left out of the per-image mean. `MetricAccumulator.result` raises
  `DataError` when no image had a valid pixel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stereo_studio.errors import DataError

BAD_THRESHOLDS: dict[str, float] = {"bad0_5": 0.5, "bad1": 1.0, "bad2": 2.0, "bad3": 3.0}
METRIC_KEYS: tuple[str, ...] = ("epe", *BAD_THRESHOLDS, "d1")


def _as_2d(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be H x W (got shape {arr.shape})")
    return arr


def _aligned(pred: Any, gt: Any, valid: Any | None, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction with non-finite values as 0, ground truth, mask of valid finite ground truth), checked
    to be the same size. Without a mask, valid means finite and > 0."""
    p = _as_2d(pred, "prediction").astype(dtype, copy=False)
    g = _as_2d(gt, "ground truth").astype(dtype, copy=False)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in size")
    if valid is None:
        with np.errstate(invalid="ignore"):
            v = np.isfinite(g) & (g > 0)
    else:
        v = _as_2d(valid, "valid mask").astype(bool, copy=False)
        if v.shape != g.shape:
            raise ValueError(f"valid mask {v.shape} and ground truth {g.shape} differ in size")
        v = v & np.isfinite(g)
    return np.where(np.isfinite(p), p, 0).astype(dtype, copy=False), g, v


def _prepare(pred: Any, gt: Any, valid: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """Return (abs errors at valid pixels, gt at valid pixels) as float64 1-D arrays."""
    p, g, v = _aligned(pred, gt, valid, np.float64)
    gv = g[v]
    return np.abs(p[v] - gv), gv


def _counts(err: np.ndarray, gv: np.ndarray) -> dict[str, float]:
    counts = {"abs_sum": float(err.sum()), "pixels": float(err.size)}
    for key, thr in BAD_THRESHOLDS.items():
        counts[key] = float(np.count_nonzero(err > thr))
    counts["d1"] = float(np.count_nonzero((err > 3.0) & (err > 0.05 * np.abs(gv))))
    return counts


def _from_counts(c: dict[str, float]) -> dict[str, float]:
    n = c["pixels"]
    if n == 0:
        out = {key: math.nan for key in METRIC_KEYS}
    else:
        out = {"epe": c["abs_sum"] / n}
        out.update({key: 100.0 * c[key] / n for key in (*BAD_THRESHOLDS, "d1")})
    out["pixels"] = int(n)
    return out


def disparity_metrics(pred: Any, gt: Any, valid: Any | None = None) -> dict[str, float]:
    """Metrics of one disparity map: epe (px), bad0_5/bad1/bad2/bad3/d1 (percent), pixels (count).

    Every metric is NaN (and pixels 0) when the valid set is empty.
    """
    err, gv = _prepare(pred, gt, valid)
    return _from_counts(_counts(err, gv))


def error_map(pred: Any, gt: Any, valid: Any | None = None) -> np.ndarray:
    """Absolute disparity error, float32 H x W, NaN where the ground truth is invalid (for previews)."""
    p, g, v = _aligned(pred, gt, valid, np.float32)
    out = np.full(g.shape, np.nan, dtype=np.float32)
    out[v] = np.abs(p[v] - g[v])
    return out


class MetricAccumulator:
    """Accumulates metrics over many images.

    `result("pixel")` weighs every valid pixel of the dataset equally (the usual benchmark number);
    `result("image")` is the mean of the per-image metrics (images without valid pixels are skipped).
    `per_image` holds each added image's metrics dict (with its `name` when given).
    """

    def __init__(self) -> None:
        self.per_image: list[dict[str, Any]] = []
        self._totals = {"abs_sum": 0.0, "pixels": 0.0, **{k: 0.0 for k in (*BAD_THRESHOLDS, "d1")}}

    def add(self, pred: Any, gt: Any, valid: Any | None = None, name: str | None = None) -> dict[str, Any]:
        """Add one image; returns its metrics."""
        err, gv = _prepare(pred, gt, valid)
        counts = _counts(err, gv)
        for key, value in counts.items():
            self._totals[key] += value
        metrics: dict[str, Any] = _from_counts(counts)
        if name is not None:
            metrics["name"] = name
        self.per_image.append(metrics)
        return metrics

    def __len__(self) -> int:
        return len(self.per_image)

    @property
    def pixels(self) -> int:
        return int(self._totals["pixels"])

    def result(self, mode: str = "pixel") -> dict[str, float]:
        """Metrics over everything added: mode "pixel" (pixel-weighted) or "image" (mean of images)."""
        if mode not in ("pixel", "image"):
            raise ValueError(f"mode must be 'pixel' or 'image', got {mode!r}")
        if self.pixels == 0:
            raise DataError(
                f"no valid ground-truth pixel in the {len(self.per_image)} image(s) evaluated; "
                "metrics are undefined"
            )
        if mode == "pixel":
            return _from_counts(self._totals)
        counted = [m for m in self.per_image if m["pixels"] > 0]
        out = {key: float(np.mean([m[key] for m in counted])) for key in METRIC_KEYS}
        out["images"] = len(counted)
        return out
