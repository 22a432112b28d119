"""The synthetic generator: determinism, ranges, exact ground truth."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from stereo_studio.data.synthetic import (
    GENERATORS,
    GeneratorConfig,
    SyntheticStereo,
    _photometric,
    generate_pair,
    generator_config,
    generator_names,
)


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


def _smooth_texture(rng, height, width, *_):
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


# ------------------------------------------------------------------ generator config and variants (issue 12)


def _digest(sample, geometry_only: bool = False) -> str:
    import hashlib

    h = hashlib.sha256()
    arrays = [sample.disparity, sample.meta["occlusion"]]
    if not geometry_only:
        arrays = [sample.left, sample.right, *arrays]
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def test_default_config_reproduces_the_generator_before_the_config():
    """Digests recorded with the generator as it was before GeneratorConfig existed (issue 12)."""
    # Geometry (disparity, occlusion) depends on numpy's random streams and OpenCV's drawing only.
    raw = generate_pair(11, 64, 128, 32, photometric=False)
    assert _digest(raw, geometry_only=True) == "3a53bef81bc27916"
    if cv2.__version__ != "5.0.0":  # textures and JPEG bytes may differ with another OpenCV build
        pytest.skip(f"full-pair digests recorded with OpenCV 5.0.0, not {cv2.__version__}")
    assert _digest(raw) == "4ce757db8abdcb2e"
    assert _digest(SyntheticStereo(64, 128, 32, seed=7, length=2)[1]) == "de8b9c0bcd6d1f2d"


def test_default_generator_is_the_default_config():
    a = generate_pair(3, 64, 128, 32)
    for generator in ("default", GeneratorConfig(), generator_config(None)):
        b = generate_pair(3, 64, 128, 32, generator=generator)
        assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
        assert np.array_equal(a.disparity, b.disparity)
    assert a.meta["generator"] == "default"
    assert SyntheticStereo(64, 128, 32, seed=1).name == "synthetic-64x128-d32-s1"
    assert SyntheticStereo(64, 128, 32, seed=1, generator="thin").name == "synthetic-64x128-d32-s1-thin"


def test_registry_names_and_errors():
    names = generator_names()
    assert names[0] == "default" and len(names) >= 5 and len(set(names)) == len(names)
    assert all(GENERATORS[n].name == n and GENERATORS[n].description for n in names)
    # Every variant but the default changes something.
    assert all(GENERATORS[n] != GeneratorConfig(name=n) for n in names[1:])
    with pytest.raises(ValueError, match="unknown generator 'nope'; choose one of: default"):
        generator_config("nope")
    with pytest.raises(ValueError, match="objects"):
        GeneratorConfig(objects=(5, 2))
    with pytest.raises(ValueError, match="shape_probs"):
        GeneratorConfig(shape_probs=(0.5, 0.5, 0.5, 0, 0, 0))
    with pytest.raises(ValueError, match="stick_width"):
        GeneratorConfig(stick_width=(0, 3))


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> str:
    """A folder of three stand-in "photographs" (procedural, written as files like a user's photos)."""
    from stereo_studio.data.textures import random_texture

    folder = tmp_path_factory.mktemp("photos")
    for i, (h, w) in enumerate([(120, 160), (300, 200), (80, 400)]):
        img = random_texture(np.random.default_rng(i), h, w)
        cv2.imwrite(str(folder / f"p{i}.png"), (img * 255).astype(np.uint8))
    (folder / "notes.txt").write_text("not an image: ignored")
    return str(folder)


def _config(name: str, photo_dir: str) -> GeneratorConfig:
    """The registered variant, given the photographs it needs."""
    cfg = GENERATORS[name]
    return dataclasses.replace(cfg, photo_dir=photo_dir) if cfg.photo_prob > 0 else cfg


@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_variant_generates_valid_pairs(name, photo_dir):
    ds = SyntheticStereo(96, 192, 40, seed=2, length=3, generator=_config(name, photo_dir))
    for i in range(len(ds)):
        s = ds[i]
        assert s.left.shape == s.right.shape == (96, 192, 3) and s.left.dtype == np.uint8
        assert np.isfinite(s.disparity).all() and s.disparity.min() >= 0 and s.disparity.max() < 40
        occ = s.meta["occlusion"]
        assert occ.shape == (96, 192) and occ.dtype == bool and 0 < occ.mean() < 0.6
        assert s.left.std() > 10 and s.meta["generator"] == name
    # The right view is the left view warped by the ground truth (raw scene, no camera effects).
    raw = generate_pair(4, 96, 192, 40, photometric=False, generator=_config(name, photo_dir))
    keep = _smooth_nonoccluded(raw)
    assert keep.mean() > 0.25
    err = np.abs(_warp_right_to_left(raw, raw.disparity) - raw.left).mean(axis=2)[keep]
    shifted = np.abs(_warp_right_to_left(raw, raw.disparity + 2.0) - raw.left).mean(axis=2)[keep]
    assert err.mean() < 8.0 and np.median(err) <= 3.0 and shifted.mean() > 3.0 * err.mean()


@pytest.mark.parametrize("name", [n for n in GENERATORS if n != "default"])
def test_variants_differ_from_the_default(name, photo_dir):
    a = generate_pair(6, 128, 256, 48)
    b = generate_pair(6, 128, 256, 48, generator=_config(name, photo_dir))
    assert not all(np.array_equal(x, y) for x, y in ((a.left, b.left), (a.right, b.right),
                                                       (a.disparity, b.disparity)))


def test_object_count_follows_the_config(monkeypatch):
    import stereo_studio.data.synthetic as synthetic

    counts: list[int] = []
    make = synthetic._make_layers

    def counting(*args):
        layers = make(*args)
        counts.append(len(layers) - 1)  # minus the background
        return layers

    monkeypatch.setattr(synthetic, "_make_layers", counting)
    for seed in range(6):
        generate_pair(seed, 256, 512, 64, photometric=False, generator="few-objects")
        generate_pair(seed, 256, 512, 64, photometric=False, generator="clutter")
    few, many = counts[0::2], counts[1::2]
    assert all(4 <= c <= 13 for c in few) and all(16 <= c <= 40 for c in many)


def test_same_views_share_the_camera_settings():
    """Without per-view differences, two identical views differ only by (zero-mean) sensor noise."""
    view = np.full((64, 96, 3), 0.5, np.float32)
    shared, separate = [], []
    for seed in range(12):
        left, right = _photometric(np.random.default_rng(seed), [view, view], per_view=False)
        shared.append(np.abs(left.astype(float).mean((0, 1)) - right.astype(float).mean((0, 1))).max())
        left, right = _photometric(np.random.default_rng(seed), [view, view])
        separate.append(np.abs(left.astype(float).mean((0, 1)) - right.astype(float).mean((0, 1))).max())
    assert max(shared) < 1.0
    assert max(separate) > 3.0


def test_floor_rises_steeply_towards_the_bottom():
    """`floor_prob`: a ground plane below a horizon, its disparity growing row by row down to the bottom."""
    floor = GeneratorConfig(name="floor-only", objects=(0, 0), floor_prob=1.0)
    flat = GeneratorConfig(name="no-floor", objects=(0, 0))
    slopes = {}
    for cfg in (floor, flat):
        rows = []
        for seed in range(5):
            d = generate_pair(seed, 128, 256, 48, photometric=False, generator=cfg).disparity
            profile = np.median(d, axis=1)  # per row (objects cover a few columns only)
            rows.append(profile[-16:].max() - profile[-16:].min())
        slopes[cfg.name] = np.mean(rows) / 15
    assert slopes["floor-only"] > 0.15 and slopes["floor-only"] > 3 * slopes["no-floor"]
    assert GENERATORS["clutter-floor"].floor_prob == 0.5
    with pytest.raises(ValueError, match="floor_prob"):
        GeneratorConfig(floor_prob=1.5)


# -------------------------------------------------------------- photographs as textures (issue 12, stop 23)


def test_photo_textures_are_crops_of_the_photographs(photo_dir):
    from stereo_studio.data.photos import PhotoLibrary

    library = PhotoLibrary(photo_dir)
    assert library.names == ["p0.png", "p1.png", "p2.png"] and len(library) == 3
    for seed, (h, w) in enumerate([(50, 70), (256, 512), (9, 300)]):  # larger than every photo: tiled
        a = library.texture(np.random.default_rng(seed), h, w)
        b = library.texture(np.random.default_rng(seed), h, w)
        assert a.shape == (h, w, 3) and a.dtype == np.float32 and np.array_equal(a, b)
        assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.01


def test_photo_generator_paints_photographs_and_needs_them(photo_dir):
    cfg = _config("clutter-photo", photo_dir)
    a = generate_pair(3, 96, 192, 40, generator=cfg)
    b = generate_pair(3, 96, 192, 40, generator=dataclasses.replace(cfg, photo_prob=0.0))
    assert np.array_equal(a.left, generate_pair(3, 96, 192, 40, generator=cfg).left)  # deterministic
    assert not np.array_equal(a.left, b.left)
    with pytest.raises(ValueError, match="paints surfaces with photographs: give it a folder"):
        generate_pair(3, 96, 192, 40, generator="clutter-photo")
    with pytest.raises(ValueError, match="photo_prob"):
        GeneratorConfig(photo_prob=1.5)


def test_photo_folder_errors_are_clear(tmp_path):
    from stereo_studio.data.photos import PhotoLibrary

    with pytest.raises(ValueError, match="does not exist"):
        PhotoLibrary(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no images"):
        PhotoLibrary(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read photo"):
        PhotoLibrary(tmp_path)
    (tmp_path / "broken.jpg").unlink()
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="sides of at least"):
        PhotoLibrary(tmp_path)


def _sharpness(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


def test_phase_variant_resamples_both_views_alike_with_exact_ground_truth():
    """Default: only the right view interpolates the textures (softer); `phase`: both views alike."""
    ratios = {}
    for name in ("default", "phase"):
        pairs = [generate_pair(seed, 96, 192, 40, photometric=False, generator=name) for seed in range(6)]
        ratios[name] = sum(_sharpness(p.right) for p in pairs) / sum(_sharpness(p.left) for p in pairs)
        for sample in pairs[:3]:
            keep = _smooth_nonoccluded(sample)
            err = np.abs(_warp_right_to_left(sample, sample.disparity) - sample.left).mean(axis=2)[keep]
            off = np.abs(_warp_right_to_left(sample, sample.disparity + 0.5) - sample.left).mean(axis=2)[keep]
            assert err.mean() < 8.0 and off.mean() > 1.3 * err.mean()
    assert ratios["default"] < 0.92 and 0.95 < ratios["phase"] < 1.05, ratios
    # Same scene geometry as the default generator's with the same seed: only the textures' sampling changes.
    a = generate_pair(2, 64, 128, 32, photometric=False)
    b = generate_pair(2, 64, 128, 32, photometric=False, generator="phase")
    assert np.array_equal(a.disparity, b.disparity) and not np.array_equal(a.left, b.left)
