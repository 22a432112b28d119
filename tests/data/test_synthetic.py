"""The synthetic generator: determinism, ranges, exact ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stereo_studio.data.synthetic import SyntheticStereo, generate_pair


def _warp_right_to_left(sample, disparity):
    h, w = sample.size
    mx = np.arange(w, dtype=np.float32)[None, :] - disparity.astype(np.float32)
    my = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(sample.right, mx, my, cv2.INTER_LINEAR).astype(np.float32)


def _smooth_nonoccluded(sample):
    """Non-occluded pixels away from depth discontinuities (where bilinear sampling mixes two surfaces)."""
    d = sample.disparity
    jump = np.zeros(d.shape, bool)
    jump[:, 1:] |= np.abs(np.diff(d, axis=1)) > 0.5
    jump[1:, :] |= np.abs(np.diff(d, axis=0)) > 0.5
    near_jump = cv2.dilate(jump.astype(np.uint8), np.ones((3, 5), np.uint8)).astype(bool)
    # Bilinear sampling next to an occluded pixel may mix in the occluder.
    near_occlusion = cv2.dilate(sample.meta["occlusion"].astype(np.uint8), np.ones((1, 5), np.uint8))
    return ~near_occlusion.astype(bool) & ~near_jump


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_is_exact(seed):
    sample = generate_pair(seed, 96, 192, 40, photometric=False)
    keep = _smooth_nonoccluded(sample)
    assert keep.mean() > 0.3
    err = np.abs(_warp_right_to_left(sample, sample.disparity) - sample.left).mean(axis=2)[keep]
    # Only the resampling of fine-grained textures remains: a few grey levels on average (the tight check,
    # with band-limited textures, is below).
    assert err.mean() < 8.0
    assert np.median(err) <= 3.0
    # A half-pixel error in the disparity is clearly visible in the same check.
    shifted = np.abs(_warp_right_to_left(sample, sample.disparity + 0.5) - sample.left).mean(axis=2)[keep]
    shifted_off = np.abs(_warp_right_to_left(sample, sample.disparity + 2.0) - sample.left).mean(axis=2)[keep]
    assert shifted.mean() > 1.3 * err.mean()
    assert shifted_off.mean() > 3.0 * err.mean()


def test_dataset_is_deterministic_and_indexed():
    ds = SyntheticStereo(64, 128, 32, seed=3, length=5)
    assert len(ds) == 5
    a, b, c = ds[1], ds[1], ds[2]
    assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
    assert np.array_equal(a.disparity, b.disparity)
    assert not np.array_equal(a.left, c.left)
    assert np.array_equal(ds[-1].left, ds[4].left)
    assert a.meta["dataset"] == "synthetic" and a.meta["max_disp"] == 32 and a.name != c.name
    other_seed = SyntheticStereo(64, 128, 32, seed=4, length=5)[1]
    assert not np.array_equal(a.left, other_seed.left)
    with pytest.raises(IndexError):
        ds[5]


def test_sample_contents_and_disparity_range():
    ds = SyntheticStereo(96, 160, 48, seed=0, length=12)
    disparities = []
    for i in range(len(ds)):
        s = ds[i]
        assert s.left.shape == (96, 160, 3) and s.left.dtype == np.uint8
        assert s.disparity.dtype == np.float32 and s.valid.all()
        assert s.disparity.min() >= 0.0 and s.disparity.max() < 48
        assert s.meta["occlusion"].shape == (96, 160)
        # Scenes are textured, and the two views differ (parallax and photometric changes).
        assert s.left.std() > 10
        assert np.abs(s.left.astype(int) - s.right.astype(int)).mean() > 2
        disparities.append(s.disparity.ravel())
    d = np.concatenate(disparities)
    # The range is used: near objects reach the upper part, and the bulk is not stuck at zero.
    assert d.max() > 0.8 * 48
    assert 0.1 * 48 < np.median(d) < 0.7 * 48


def test_scene_has_many_layers():
    s = generate_pair(np.random.default_rng(5), 128, 256, 64, photometric=False)
    levels = np.unique(np.round(s.disparity[::2, ::2], 0))
    assert len(levels) > 8


def _smooth_texture(rng, height, width):
    """A band-limited texture, so bilinear resampling is nearly lossless and only geometry errors remain."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy, phase = rng.uniform(0.05, 0.15), rng.uniform(0.02, 0.08), rng.uniform(0, 6.3, 3)
    channels = [0.5 + 0.4 * np.sin(fx * x * (k + 1) / 2 + fy * y + phase[k]) for k in range(3)]
    return np.stack(channels, axis=2).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_ground_truth_is_exact_with_smooth_textures(monkeypatch, seed):
    import stereo_studio.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "random_texture", _smooth_texture)
    sample = generate_pair(seed, 96, 192, 40, photometric=False)
    keep = _smooth_nonoccluded(sample)
    err = np.abs(_warp_right_to_left(sample, sample.disparity) - sample.left).mean(axis=2)[keep]
    assert err.mean() < 0.6 and np.percentile(err, 99) < 3.0
    shifted = np.abs(_warp_right_to_left(sample, sample.disparity + 0.5) - sample.left).mean(axis=2)[keep]
    assert shifted.mean() > 3 * err.mean()
