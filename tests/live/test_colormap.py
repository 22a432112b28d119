"""Colour maps for disparity: fixed and automatic range, invalid pixels."""

from __future__ import annotations

import numpy as np
import pytest

from stereo_studio.live.colormap import auto_range, colorize, colormap_names


def test_fixed_range_maps_ends_to_the_colormap_ends() -> None:
    disp = np.array([[0.0, 10.0, 20.0, 30.0]], np.float32)
    rgb = colorize(disp, 0, 20, cmap="bone")
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].sum() < rgb[0, 1].sum() < rgb[0, 2].sum()
    np.testing.assert_array_equal(rgb[0, 2], rgb[0, 3])  # clipped above vmax


def test_auto_range_ignores_outliers_and_invalid_pixels() -> None:
    disp = np.linspace(10, 20, 10000, dtype=np.float32).reshape(100, 100)
    disp[0, :5] = 1000.0
    disp[1, :5] = np.nan
    lo, hi = auto_range(disp)
    assert 10 <= lo < 11 and 19 < hi <= 20
    rgb = colorize(disp, invalid_color=(1, 2, 3))
    np.testing.assert_array_equal(rgb[1, 0], [1, 2, 3])
    assert auto_range(np.full((4, 4), np.nan, np.float32)) == (0.0, 1.0)
    assert auto_range(np.full((4, 4), 7.0, np.float32)) == (7.0, 8.0)


def test_turbo_is_rgb_not_bgr() -> None:
    rgb = colorize(np.array([[0.0, 1.0]], np.float32), 0, 1, cmap="turbo")
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # low end of turbo is blue-violet
    assert rgb[0, 1, 0] > rgb[0, 1, 2]  # high end is red
    assert "turbo" in colormap_names() and "inferno" in colormap_names()


def test_unknown_colormap() -> None:
    with pytest.raises(ValueError, match="unknown colour map 'nope'"):
        colorize(np.zeros((2, 2), np.float32), cmap="nope")
