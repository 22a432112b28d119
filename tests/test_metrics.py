"""Metrics checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stereo_studio.errors import DataError
from stereo_studio.metrics import MetricAccumulator, disparity_metrics, error_map

GT = np.array([[10.0, 20.0], [30.0, 40.0]], dtype=np.float32)
PRED = np.array([[10.4, 21.5], [34.0, 38.0]], dtype=np.float32)  # errors 0.4, 1.5, 4, 2


def test_hand_computed_values():
    m = disparity_metrics(PRED, GT, np.ones((2, 2), bool))
    assert m["pixels"] == 4
    assert m["epe"] == pytest.approx((0.4 + 1.5 + 4 + 2) / 4, abs=1e-6)
    assert m["bad0_5"] == pytest.approx(75.0)
    assert m["bad1"] == pytest.approx(75.0)
    assert m["bad2"] == pytest.approx(25.0)  # an error of exactly 2 px is not "bad-2"
    assert m["bad3"] == pytest.approx(25.0)
    assert m["d1"] == pytest.approx(25.0)


def test_d1_needs_both_3px_and_5_percent():
    gt = np.array([[100.0, 10.0]], np.float32)
    pred = np.array([[104.0, 14.0]], np.float32)  # 4 px each: 4 % of 100 (not D1), 40 % of 10 (D1)
    m = disparity_metrics(pred, gt, np.ones_like(gt, bool))
    assert m["bad3"] == pytest.approx(100.0)
    assert m["d1"] == pytest.approx(50.0)


@pytest.mark.parametrize("key, threshold", [("bad0_5", 0.5), ("bad1", 1.0), ("bad2", 2.0), ("bad3", 3.0)])
def test_bad_x_thresholds_are_exact(key, threshold):
    """An error of exactly x px is not bad-x, one just over it is: pins each threshold (the hand-computed
    errors above leave bad-0.5 anywhere in [0.4, 1.5), bad-1 in [0.4, 1.5), bad-3 in [2, 4))."""
    gt = np.full((1, 2), 50.0, np.float32)
    pred = gt + np.array([[threshold, threshold + 0.01]], np.float32)
    assert disparity_metrics(pred, gt)[key] == pytest.approx(50.0)


def test_d1_boundaries_are_exact():
    """D1 is error > 3 px and > 5 % of the ground truth, both strict: exactly 3 px (at 30 %) or exactly 5 %
    (4 px of 80) is not D1, just over either is."""
    gt = np.array([[10.0, 10.0, 80.0, 80.0]], np.float32)
    pred = gt + np.array([[3.0, 3.02, 4.0, 4.04]], np.float32)
    m = disparity_metrics(pred, gt)
    assert m["d1"] == pytest.approx(50.0)
    assert m["bad3"] == pytest.approx(75.0)


def test_valid_mask_and_default_mask():
    gt = np.array([[10.0, np.inf, 0.0, 5.0]], np.float32)
    pred = np.array([[11.0, 99.0, 99.0, 5.0]], np.float32)
    m = disparity_metrics(pred, gt)  # default: finite and > 0 -> pixels 0 and 3
    assert m["pixels"] == 2 and m["epe"] == pytest.approx(0.5)
    m = disparity_metrics(pred, gt, np.array([[False, True, False, True]]))  # inf gt never counts
    assert m["pixels"] == 1 and m["epe"] == pytest.approx(0.0)


def test_nonfinite_prediction_counts_as_zero():
    gt = np.array([[8.0, 2.0]], np.float32)
    pred = np.array([[np.nan, 2.0]], np.float32)
    m = disparity_metrics(pred, gt)
    assert m["epe"] == pytest.approx(4.0)
    assert m["bad3"] == pytest.approx(50.0)


def test_torch_and_numpy_agree():
    t = disparity_metrics(torch.from_numpy(PRED)[None, None], torch.from_numpy(GT), torch.ones(2, 2) > 0)
    n = disparity_metrics(PRED, GT, np.ones((2, 2), bool))
    assert t == pytest.approx(n)


def test_empty_valid_set_gives_nan():
    m = disparity_metrics(PRED, GT, np.zeros((2, 2), bool))
    assert m["pixels"] == 0 and math.isnan(m["epe"]) and math.isnan(m["bad2"])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ"):
        disparity_metrics(PRED, GT[:1])


def test_accumulator_pixel_vs_image_mean():
    acc = MetricAccumulator()
    acc.add(np.array([[11.0]]), np.array([[10.0]]), name="a")  # 1 px, error 1
    acc.add(np.full((1, 3), 13.0), np.full((1, 3), 10.0), name="b")  # 3 px, error 3
    acc.add(np.zeros((1, 2)), np.zeros((1, 2)), name="empty")  # no valid pixel: ignored
    pixel, image = acc.result("pixel"), acc.result("image")
    assert pixel["epe"] == pytest.approx((1 + 9) / 4)
    assert image["epe"] == pytest.approx((1 + 3) / 2)
    assert pixel["bad2"] == pytest.approx(75.0) and image["bad2"] == pytest.approx(50.0)
    assert pixel["pixels"] == 4 and image["images"] == 2
    assert [m["name"] for m in acc.per_image] == ["a", "b", "empty"]
    with pytest.raises(ValueError):
        acc.result("median")


def test_accumulator_without_valid_pixels_raises():
    acc = MetricAccumulator()
    acc.add(PRED, GT, np.zeros((2, 2), bool))
    with pytest.raises(DataError, match="no valid ground-truth"):
        acc.result()


def test_error_map():
    valid = np.array([[True, False], [True, True]])
    e = error_map(PRED, GT, valid)
    assert e.dtype == np.float32 and e.shape == (2, 2)
    assert math.isnan(e[0, 1])
    np.testing.assert_allclose(e[[0, 1, 1], [0, 0, 1]], [0.4, 4.0, 2.0], rtol=1e-5)
