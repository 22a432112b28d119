"""Plausibility checks that warn (never fail) when a result will be out of its range without saying so:
a scene whose disparities go beyond a model's max disparity, an image too small for a model.

The CLI prints them (`warning: ...` on stderr, and in `--json` output), the GUI shows them in its message
bar. Qt-free and engine-free: data/, live/ and the engine all use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SIDE = 32  # below this the networks' 1/8-res features are a few pixels: nothing left to match


def scene_disparity_range(meta: dict[str, Any] | None, gt: np.ndarray | None = None,
                          valid: np.ndarray | None = None) -> tuple[float, str] | None:
    """(largest disparity of the scene in px, where that number comes from): the declared range (a
    Middlebury calib.txt `ndisp`, carried as meta["max_disp"]) when there is one, else the largest valid
    ground-truth disparity; None when neither is known."""
    declared = (meta or {}).get("max_disp")
    if declared:
        return float(declared), "the dataset's ndisp"
    if gt is not None:
        mask = np.isfinite(gt) & (gt > 0)
        if valid is not None:
            mask &= valid
        if mask.any():
            return float(gt[mask].max()), "its ground truth"
    return None


def range_warnings(model: str, max_disp: float | None, size: tuple[int, int],
                   scene: tuple[float, str] | None, where: str = "") -> dict[str, str]:
    """{"range" | "size": message} for a model of `max_disp` run on an image of `size` (height, width)
    showing `scene` (see `scene_disparity_range`); empty when all is plausible. `where` names the pair."""
    out: dict[str, str] = {}
    if not max_disp:
        return out
    max_disp = float(max_disp)
    prefix = f"{where}: " if where else ""
    if scene is not None and scene[0] > max_disp:
        out["range"] = (
            f"{prefix}disparities reach {scene[0]:.0f} px ({scene[1]}) but {model}'s max disparity is "
            f"{max_disp:.0f}: larger ones cannot be predicted (use smaller images or a model with a larger "
            "max disparity)"
        )
    h, w = size
    if w <= max_disp or min(h, w) < MIN_SIDE:
        out["size"] = (
            f"{prefix}a {w}x{h} (WxH) image is too small for {model}: it needs a width above its max "
            f"disparity ({max_disp:.0f} px) and sides of at least {MIN_SIDE} px"
        )
    return out


def sample_warnings(sample: Any, model: str, max_disp: float | None) -> dict[str, str]:
    """`range_warnings` for one StereoSample."""
    scene = scene_disparity_range(sample.meta, sample.disparity, sample.valid)
    return range_warnings(model, max_disp, sample.left.shape[:2], scene, getattr(sample, "name", ""))
