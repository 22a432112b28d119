"""Rectify frames on the fly with precomputed maps, and turn disparity into depth (metres)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from stereo_studio.errors import DataError
from stereo_studio.live.calibration import StereoCalibration


class Rectifier:
    """Undistorts and rectifies stereo frames of the calibrated size with `cv2.remap` (maps built once)."""

    def __init__(
        self, calib: StereoCalibration, size: tuple[int, int] | None = None, alpha: float = 0.0
    ) -> None:
        if calib.image_size is None:
            if size is None:
                raise DataError(
                    f"calibration{' file ' + calib.path if calib.path else ''} does not say its image size "
                    "(image_width / image_height): add them, or rectify through the pipeline, which uses "
                    "the first frame's size"
                )
            calib = dataclasses.replace(calib, image_size=(int(size[0]), int(size[1])))
        elif size is not None:
            calib.check_size(size)
        self.calib = calib if calib.has_rectification else calib.with_rectification(alpha)
        h, w = self.calib.image_size
        c = self.calib
        self._map_left = cv2.initUndistortRectifyMap(c.K1, c.D1, c.R1, c.P1, (w, h), cv2.CV_16SC2)
        self._map_right = cv2.initUndistortRectifyMap(c.K2, c.D2, c.R2, c.P2, (w, h), cv2.CV_16SC2)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames it accepts and returns."""
        return self.calib.image_size  # type: ignore[return-value]

    @property
    def focal_px(self) -> float:
        """Focal length of the rectified views, pixels."""
        return float(self.calib.Q[2, 3])

    @property
    def baseline(self) -> float:
        """Baseline of the rectified pair (metres when calibrated by Stereo Studio)."""
        return float(1.0 / abs(self.calib.Q[3, 2]))

    @property
    def doffs(self) -> float:
        """Rectified principal points' difference cx_left - cx_right, pixels (0 with zero disparity)."""
        return float(-self.calib.Q[3, 3] / self.calib.Q[3, 2])

    def rectify(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rectified copies of a raw frame pair (any channel count, the calibrated size)."""
        self.calib.check_size(left.shape[:2])
        left = cv2.remap(left, *self._map_left, cv2.INTER_LINEAR)
        right = cv2.remap(right, *self._map_right, cv2.INTER_LINEAR)
        return left, right

    def disparity_to_depth(self, disp: np.ndarray) -> np.ndarray:
        """Depth in metres from a left-view disparity of the rectified frames.

        A disparity map at another resolution (a model run on a resized frame) is rescaled to the
        rectified frame's pixels first; the depth map keeps the disparity's size.
        """
        scale = self.size[1] / disp.shape[1]
        return disparity_to_depth(disp * np.float32(scale), self.focal_px, self.baseline, self.doffs)


def disparity_to_depth(
    disp: np.ndarray, focal_px: float, baseline_m: float, doffs: float = 0.0
) -> np.ndarray:
    """Z = f * B / (d - doffs), float32 metres; +inf where d - doffs <= 0, NaN where d is not finite."""
    disp = np.asarray(disp, dtype=np.float32)
    shifted = disp - np.float32(doffs)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(focal_px * baseline_m) / shifted
    depth[shifted <= 0] = np.inf
    depth[~np.isfinite(disp)] = np.nan
    return depth.astype(np.float32, copy=False)
