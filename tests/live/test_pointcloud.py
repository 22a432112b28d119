"""Disparity -> metric 3D points and binary PLY files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from live_helpers import ideal_calibration

from stereo_studio.errors import DataError, StereoStudioError
from stereo_studio.live.pointcloud import (
    DepthCalibration,
    calibration_for,
    disparity_to_points,
    export_point_cloud,
    read_ply,
    write_ply,
)
from stereo_studio.live.rectify import Rectifier, disparity_to_depth

MIDDLEBURY = {"focal_px": 500.0, "cx": 39.5, "cy": 29.5, "baseline_m": 0.1, "doffs": 2.0, "width": 80.0,
              "height": 60.0}


def test_middlebury_calibration_gives_millimetres() -> None:
    calib = DepthCalibration.from_meta(MIDDLEBURY)
    disp = np.full((60, 80), 8.0, np.float32)
    disp[0, 0], disp[0, 1] = 0.0, np.nan
    xyz = calib.reproject(disp)
    assert calib.units == "mm" and xyz[5, 5, 2] == pytest.approx(500 * 100 / (8 + 2))  # Z = f B / (d + doffs)
    assert xyz[5, 5, 0] == pytest.approx((5 - 39.5) * 5000 / 500)
    assert np.isnan(xyz[0, :2]).all()
    metres = calib.to_units("m")
    assert metres.depth(disp)[5, 5] == pytest.approx(5.0) and metres.baseline == pytest.approx(0.1)
    # a disparity map at half the size: pixels and disparities are scaled to the calibration's
    assert calib.depth(np.full((30, 40), 4.0, np.float32))[3, 3] == pytest.approx(5000.0)
    with pytest.raises(DataError, match="baseline"):
        DepthCalibration.from_middlebury({"focal_px": 500.0})


def test_opencv_calibration_agrees_with_the_rectifier() -> None:
    rect = Rectifier(ideal_calibration(60, 80, f=100.0, baseline=0.1))
    calib = calibration_for(rectifier=rect)
    disp = np.full((60, 80), 5.0, np.float32)
    assert calib.units == "m"
    np.testing.assert_allclose(calib.depth(disp), rect.disparity_to_depth(disp), rtol=1e-5)
    assert calib.depth(disp)[0, 0] == pytest.approx(disparity_to_depth(np.float32([5.0]), 100.0, 0.1)[0])
    with pytest.raises(DataError, match="no calibration"):
        calibration_for({"name": "x"})


def test_ply_round_trip_with_units_and_colours(tmp_path: Path) -> None:
    calib = DepthCalibration.from_meta(MIDDLEBURY)
    disp = np.full((60, 80), 8.0, np.float32)
    disp[:, :10] = 0  # skipped
    left = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    points, colours = disparity_to_points(disp, calib, left, max_depth=6000.0)
    assert len(points) == 60 * 70 and np.array_equal(colours, left[:, 10:].reshape(-1, 3))
    path = write_ply(tmp_path / "c.ply", points, colours, "mm", ["model x"])
    header = path.read_bytes()[:400].decode("ascii", "replace")
    assert "format binary_little_endian 1.0" in header and "comment units mm" in header
    assert "property float x" in header and "property uchar red" in header
    back, back_colours, info = read_ply(path)
    assert np.array_equal(back, points) and np.array_equal(back_colours, colours)
    assert info["units"] == "mm" and "model x" in info["comments"]
    assert len(disparity_to_points(disp, calib, max_depth=1000.0)[0]) == 0


def test_export_one_model_of_a_frame(tmp_path: Path) -> None:
    from live_helpers import ShiftMatcher, textured_pair

    from stereo_studio.live.pipeline import StereoPipeline
    from stereo_studio.live.sources import StereoFrame

    left, right = textured_pair(0, 60, 80)
    frame = StereoFrame(left, right, 3, 0.0, meta={"name": "p", "calib": MIDDLEBURY})
    result = StereoPipeline(None, [ShiftMatcher(8.0, name="a"), ShiftMatcher(0.0, name="b")]).process(frame)
    calib = calibration_for(result.meta)
    info = export_point_cloud(result, "a", tmp_path / "a.ply", calib, units="m")
    assert info["points"] == 60 * 80 and info["units"] == "m" and info["median_depth"] == pytest.approx(5.0)
    assert "comment model a" in (tmp_path / "a.ply").read_bytes()[:600].decode("ascii", "replace")
    with pytest.raises(StereoStudioError, match="no valid disparity"):
        export_point_cloud(result, "b", tmp_path / "b.ply", calib)
    with pytest.raises(StereoStudioError, match="no model 'c'"):
        export_point_cloud(result, "c", tmp_path / "c.ply", calib)


def test_render_view_draws_the_nearest_point_and_turns() -> None:
    from stereo_studio.live.pointcloud import render_view

    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 50), np.linspace(-1, 1, 50)), -1).reshape(-1, 2)
    far = np.column_stack([grid, np.full(len(grid), 5.0)])
    near = np.array([[0.0, 0.0, 4.0]])  # in front of the plane's centre
    points = np.vstack([far, near]).astype(np.float32)
    colours = np.vstack([np.tile([0, 0, 255], (len(far), 1)), [[255, 0, 0]]]).astype(np.uint8)
    image = render_view(points, colours, size=(120, 160), point_px=3)
    assert image.shape == (120, 160, 3) and (image == [0, 0, 255]).all(axis=2).sum() > 1000
    assert (image[55:65, 75:85] == [255, 0, 0]).all(axis=2).any()  # the near point hides the plane
    side = render_view(points, colours, yaw=80, size=(120, 160))
    assert (side == [0, 0, 255]).all(axis=2).sum() < (image == [0, 0, 255]).all(axis=2).sum() / 3  # edge-on
    assert (render_view(np.empty((0, 3)), size=(8, 8)) == 24).all()
