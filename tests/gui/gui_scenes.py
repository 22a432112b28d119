"""Small data the window tests make for themselves: calibrated Middlebury-layout scenes and stereo videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FOCAL_PX, BASELINE_M = 120.0, 0.1  # the scenes' calibration: depth = 12 / disparity metres


def calibrated_scenes(root: Path, count: int = 3, size=(96, 128)) -> Path:
    """`count` synthetic pairs as MiddEval3 scene folders with a calib.txt (focal, baseline): a dataset whose
    frames have a metric calibration (point clouds)."""
    from stereo_studio.data.datasets import write_scene
    from stereo_studio.data.synthetic import SyntheticStereo

    h, w = size
    ds = SyntheticStereo(h, w, 24, seed=5, length=count)
    for i in range(count):
        sample = ds[i]
        sample.meta["calib"] = {"focal_px": FOCAL_PX, "baseline_m": BASELINE_M, "doffs": 0.0}
        write_scene(sample, root / f"scene{i}")
    return root


def sbs_video(path: Path, frames: int = 8, size=(96, 128)) -> Path:
    """A side-by-side stereo video (MJPG) of synthetic pairs."""
    from stereo_studio.data.synthetic import SyntheticStereo

    h, w = size
    ds = SyntheticStereo(h, w, 24, seed=3, length=frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (2 * w, h))
    assert writer.isOpened()
    for i in range(frames):
        s = ds[i]
        writer.write(cv2.cvtColor(np.concatenate([s.left, s.right], axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return path
