"""Augmenter: crops stay aligned with the ground truth, views are jittered independently."""

from __future__ import annotations

import numpy as np

from stereo_studio.data.augment import Augmenter
from stereo_studio.data.sample import StereoSample


def _pair(h=40, w=60, gt=True):
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    right = np.roll(left, -3, axis=1)
    if not gt:
        return StereoSample(left, right, meta={"name": "p"})
    # Disparity encodes the pixel position, so a crop can be checked against the image content.
    disp = (np.arange(h * w, dtype=np.float32).reshape(h, w) % 97) + 1
    valid = np.ones((h, w), bool)
    valid[:5] = False
    return StereoSample(left, right, disp, valid, {"name": "p", "max_disp": 128.0})


def _locate(crop, full):
    h, w = crop.shape[:2]
    for y in range(full.shape[0] - h + 1):
        for x in range(full.shape[1] - w + 1):
            if np.array_equal(full[y:y + h, x:x + w], crop):
                return y, x
    raise AssertionError("crop not found")


def test_crop_keeps_views_and_gt_aligned():
    s = _pair()
    aug = Augmenter(crop=(16, 24), photometric=False, occlusion_patch=False)
    for seed in range(5):
        out = aug(s, np.random.default_rng(seed))
        assert out.left.shape == (16, 24, 3) and out.disparity.shape == (16, 24)
        y, x = _locate(out.left, s.left)
        assert np.array_equal(out.right, s.right[y:y + 16, x:x + 24])
        assert np.array_equal(out.disparity, np.where(s.valid, s.disparity, 0)[y:y + 16, x:x + 24])
        assert np.array_equal(out.valid, s.valid[y:y + 16, x:x + 24])


def test_deterministic_and_asymmetric_photometric():
    s = _pair()
    aug = Augmenter(crop=(32, 48), vertical_jitter_px=1.5)
    a, b = aug(s, np.random.default_rng(7)), aug(s, np.random.default_rng(7))
    assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
    c = aug(s, np.random.default_rng(8))
    assert not np.array_equal(a.left, c.left)
    # Same content in both views (identical images), different jitter per view.
    same = StereoSample(s.left, s.left.copy(), s.disparity, s.valid)
    out = Augmenter(crop=None, occlusion_patch=False)(same, np.random.default_rng(1))
    assert np.abs(out.left.astype(int) - out.right.astype(int)).mean() > 1


def test_occlusion_patch_only_touches_right_view():
    s = _pair()
    aug = Augmenter(crop=None, photometric=False, occlusion_patch=True)
    changed = 0
    for seed in range(10):
        out = aug(s, np.random.default_rng(seed))
        assert np.array_equal(out.left, s.left) and np.array_equal(out.valid, s.valid)
        assert np.array_equal(out.disparity[s.valid], s.disparity[s.valid])
        changed += not np.array_equal(out.right, s.right)
    assert 2 <= changed <= 9  # applied about half of the time


def test_scale_and_padding_and_no_gt():
    s = _pair()
    out = Augmenter(crop=(20, 30), scale=(2.0, 2.0), photometric=False, occlusion_patch=False)(
        s, np.random.default_rng(0))
    # Disparities are doubled with the width: every output value is twice a source value.
    assert set(np.unique(out.disparity[out.valid] / 2)) <= set(np.unique(s.disparity))
    padded = Augmenter(crop=(50, 70), photometric=False, occlusion_patch=False)(s, np.random.default_rng(0))
    assert padded.left.shape == (50, 70, 3) and not padded.valid[40:].any() and not padded.valid[:, 60:].any()
    no_gt = Augmenter(crop=(16, 16))(_pair(gt=False), np.random.default_rng(0))
    assert no_gt.left.shape == (16, 16, 3) and not no_gt.has_gt


def test_scale_prob_leaves_the_other_pairs_at_native_scale():
    s = _pair()
    mixed = Augmenter(crop=(20, 30), scale=(2.0, 2.0), scale_prob=0.5, photometric=False,
                      occlusion_patch=False)
    native = 0
    for seed in range(40):
        out = mixed(s, np.random.default_rng(seed))
        try:
            y, x = _locate(out.left, s.left)  # an untouched window of the source pair
        except AssertionError:
            assert out.disparity[out.valid].max() > s.disparity.max()  # doubled disparities
            continue
        native += 1
        assert np.array_equal(out.disparity, np.where(s.valid, s.disparity, 0)[y:y + 20, x:x + 30])
    assert 10 < native < 30
