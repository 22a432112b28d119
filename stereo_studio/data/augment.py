"""Training augmentation for stereo pairs: random scale and crop, asymmetric photometric jitter, sub-pixel
vertical jitter of the right view and an occlusion patch pasted into the right view. Vectorised (OpenCV LUTs,
warps, slicing); works on pairs with or without ground truth."""

from __future__ import annotations

import cv2
import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.data.textures import add_noise

# Meta entries holding more left-view disparity maps (float32 H x W, NaN = unknown), e.g. a cached teacher's
# output (`data.teacher_cache`): every geometric change (scale, crop, padding) applies to them exactly as
# to the ground truth; the right-view-only changes (vertical jitter, occlusion patch) and photometric jitter
# do not.
DISPARITY_MAPS = ("teacher_disparity",)


class Augmenter:
    """`Augmenter(crop=(h, w))(sample, rng) -> StereoSample`, deterministic given `rng`.

    - `scale=(lo, hi)`: resize both views by a random factor (disparity scaled with it); with a crop only
      the window that becomes the crop is resized. `scale_prob`: the fraction of pairs resized (the others
      keep the native scale, untouched); 1 (default) draws no extra random number.
    - `crop`: the same random window in both views; pairs smaller than it are padded (padding is invalid).
    - `photometric`: per-view gain, gamma, colour balance and noise (the two views differ).
    - `vertical_jitter_px`: the right view is shifted by up to this many pixels vertically (sub-pixel).
    - `occlusion_patch`: with probability 1/2 a rectangle of the right view is overwritten (mean colour or a
      patch copied from elsewhere), mimicking occlusions; the left ground truth is unchanged.

    Maps in `meta` under the `DISPARITY_MAPS` keys follow the ground truth's geometry (padding becomes NaN).
    """

    def __init__(self, crop: tuple[int, int] | None = (256, 512), photometric: bool = True,
                 vertical_jitter_px: float = 0.0, occlusion_patch: bool = True,
                 scale: tuple[float, float] | None = None, scale_prob: float = 1.0) -> None:
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.photometric = photometric
        self.vertical_jitter_px = float(vertical_jitter_px)
        self.occlusion_patch = occlusion_patch
        self.scale = scale
        self.scale_prob = float(scale_prob)

    def __call__(self, sample: StereoSample, rng: np.random.Generator) -> StereoSample:
        left, right, disp, valid = sample.left, sample.right, sample.disparity, sample.valid
        scale = self.scale
        if scale is not None and self.scale_prob < 1.0 and rng.random() >= self.scale_prob:
            scale = None
        meta = {k: v for k, v in sample.meta.items() if k != "occlusion"}
        maps = {k: np.asarray(meta.pop(k), np.float32) for k in DISPARITY_MAPS if k in meta}
        if disp is not None:
            valid = np.asarray(valid, bool) & np.isfinite(disp)
            disp = np.where(valid, disp, 0.0).astype(np.float32)
        if self.crop is not None:
            left, right, disp, valid, maps = _scaled_crop(rng, left, right, disp, valid, self.crop,
                                                          scale, maps)
        elif scale is not None:
            h, w = left.shape[:2]
            f = _random_scale(rng, scale)
            size = (max(8, round(h * f)), max(8, round(w * f)))
            left, right, disp, valid, maps = _resize_all(left, right, disp, valid, size, maps)
        if self.photometric:
            left = _jitter_view(rng, left)
            right = _jitter_view(rng, right)
        if self.vertical_jitter_px > 0:
            dy = rng.uniform(-self.vertical_jitter_px, self.vertical_jitter_px)
            m = np.float32([[1, 0, 0], [0, 1, dy]])
            right = cv2.warpAffine(right, m, (right.shape[1], right.shape[0]), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)
        if self.occlusion_patch and rng.random() < 0.5:
            right = _occlusion_patch(rng, right)
        meta.update({k: np.ascontiguousarray(v) for k, v in maps.items()})
        return StereoSample(np.ascontiguousarray(left), np.ascontiguousarray(right),
                            None if disp is None else np.ascontiguousarray(disp),
                            None if valid is None else np.ascontiguousarray(valid), meta)


def _random_scale(rng: np.random.Generator, scale: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))


def _resize_all(left, right, disp, valid, size, maps):
    """Resize views, ground truth and `maps` to (h, w); disparities scaled by the width ratio."""
    h, w = left.shape[:2]
    nh, nw = size
    if (nh, nw) == (h, w):
        return left, right, disp, valid, maps
    left = cv2.resize(left, (nw, nh), interpolation=cv2.INTER_LINEAR)
    right = cv2.resize(right, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if disp is not None:
        disp = cv2.resize(disp, (nw, nh), interpolation=cv2.INTER_NEAREST) * np.float32(nw / w)
        valid = cv2.resize(valid.view(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    maps = {k: cv2.resize(m, (nw, nh), interpolation=cv2.INTER_NEAREST) * np.float32(nw / w)
            for k, m in maps.items()}
    return left, right, disp, valid, maps


def _scaled_crop(rng, left, right, disp, valid, crop, scale, maps):
    """A random window that, resized by a random factor from `scale`, is exactly `crop`; pairs smaller than
    the window are padded at the bottom/right (padding is invalid; NaN in `maps`). Only the window is
    resized."""
    ch, cw = crop
    f = 1.0 if scale is None else _random_scale(rng, scale)
    wh, ww = max(1, round(ch / f)), max(1, round(cw / f))
    h, w = left.shape[:2]
    if h < wh or w < ww:
        ph, pw = max(0, wh - h), max(0, ww - w)
        left = cv2.copyMakeBorder(left, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        right = cv2.copyMakeBorder(right, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        if disp is not None:
            disp = np.pad(disp, ((0, ph), (0, pw)))
            valid = np.pad(valid, ((0, ph), (0, pw)))
        maps = {k: np.pad(m, ((0, ph), (0, pw)), constant_values=np.nan) for k, m in maps.items()}
        h, w = left.shape[:2]
    y = int(rng.integers(0, h - wh + 1))
    x = int(rng.integers(0, w - ww + 1))
    win = (slice(y, y + wh), slice(x, x + ww))
    left, right = left[win], right[win]
    if disp is not None:
        disp, valid = disp[win], valid[win]
    maps = {k: m[win] for k, m in maps.items()}
    return _resize_all(left, right, disp, valid, (ch, cw), maps)


_LEVELS = np.arange(256, dtype=np.float64)[:, None] / 255.0


def _jitter_view(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Gain, gamma and colour balance through one per-channel LUT, then additive noise."""
    gain = rng.uniform(0.8, 1.2) * rng.uniform(0.92, 1.08, 3)
    gamma = rng.uniform(0.8, 1.25)
    lut = np.clip(255.0 * np.clip(_LEVELS * gain[None, :], 0, 1) ** gamma + 0.5, 0, 255).astype(np.uint8)
    out = cv2.LUT(img, lut.reshape(256, 1, 3))
    sd = rng.uniform(0.0, 4.0)
    if sd > 0.5:
        out = add_noise(rng, out, sd)
    return out


def _occlusion_patch(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    ph = int(rng.integers(max(1, h // 12), max(2, h // 4)))
    pw = int(rng.integers(max(1, w // 12), max(2, w // 4)))
    y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    out = img.copy()
    if rng.random() < 0.5:
        out[y:y + ph, x:x + pw] = img.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    else:
        sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        out[y:y + ph, x:x + pw] = img[sy:sy + ph, sx:sx + pw]
    return out
