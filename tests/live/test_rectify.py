"""Rectification with precomputed maps, and disparity to depth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from live_helpers import ideal_calibration

from stereo_studio.errors import DataError
from stereo_studio.live.calibration import detect_corners
from stereo_studio.live.rectify import Rectifier, disparity_to_depth


def test_ideal_rig_rectifies_to_the_same_image_and_depth_is_fb_over_d() -> None:
    rect = Rectifier(ideal_calibration())
    assert rect.focal_px == pytest.approx(100.0) and rect.baseline == pytest.approx(0.1)
    assert rect.doffs == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (5, 5), 0)
    left, _ = rect.rectify(img, img)
    assert np.abs(left[5:-5, 5:-5].astype(int) - img[5:-5, 5:-5]).max() <= 2
    disp = np.array([[10.0, 5.0], [0.0, np.nan]], np.float32)
    depth = rect.disparity_to_depth(np.kron(disp, np.ones((30, 40), np.float32)))
    assert depth[0, 0] == pytest.approx(1.0) and depth[0, 50] == pytest.approx(2.0)
    assert np.isinf(depth[40, 0]) and np.isnan(depth[40, 50])
    # a disparity from a half-size model is rescaled to the rectified frame's pixels
    assert rect.disparity_to_depth(np.full((30, 40), 5.0, np.float32))[0, 0] == pytest.approx(1.0)


def test_disparity_to_depth_with_offset() -> None:
    depth = disparity_to_depth(np.array([[12.0, 2.0]], np.float32), focal_px=500.0, baseline_m=0.2, doffs=2.0)
    assert depth.dtype == np.float32 and depth[0, 0] == pytest.approx(10.0) and np.isinf(depth[0, 1])


def test_wrong_frame_size_is_refused() -> None:
    rect = Rectifier(ideal_calibration())
    frame = np.zeros((30, 40, 3), np.uint8)
    with pytest.raises(DataError, match=r"80x60.*40x30"):
        rect.rectify(frame, frame)
    with pytest.raises(DataError, match="80x60"):
        Rectifier(ideal_calibration(), size=(30, 40))


def test_real_frames_rectify_onto_common_rows(chessboard_calibration, chessboard_dir: Path) -> None:
    rect = Rectifier(chessboard_calibration.calibration)
    dys = []
    for i in (1, 6, 12):
        left = cv2.imread(str(chessboard_dir / f"left{i:02d}.jpg"))
        right = cv2.imread(str(chessboard_dir / f"right{i:02d}.jpg"))
        rl, rr = rect.rectify(left, right)
        cl = detect_corners(cv2.cvtColor(rl, cv2.COLOR_BGR2GRAY), (9, 6))
        cr = detect_corners(cv2.cvtColor(rr, cv2.COLOR_BGR2GRAY), (9, 6))
        assert cl is not None and cr is not None
        dys.append(np.abs(cl[:, 0, 1] - cr[:, 0, 1]))
        assert np.all(cl[:, 0, 0] > cr[:, 0, 0])  # positive disparity after rectification
    assert np.concatenate(dys).mean() < 0.5


def test_calibration_without_size_needs_one() -> None:
    calib = ideal_calibration()
    calib.image_size = None
    with pytest.raises(DataError, match="does not say its image size"):
        Rectifier(calib)
    assert Rectifier(calib, size=(60, 80)).size == (60, 80)
