"""Procedural, natural-looking colour textures for the synthetic stereo generator.

Every function takes a `numpy.random.Generator` and returns float32 arrays in [0, 1]; all of it is vectorised
(small random grids upsampled with OpenCV, trigonometric patterns on coordinate grids, OpenCV drawing).
"""

from __future__ import annotations

import cv2
import numpy as np

_RESIZE = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Fast white noise of zero mean and unit variance (uniform, from random bytes), float32."""
    count = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes(count), np.uint8).reshape(shape)
    return raw.astype(np.float32) * np.float32(1 / 73.9) - np.float32(127.5 / 73.9)


def add_noise(rng: np.random.Generator, img: np.ndarray, sd: float) -> np.ndarray:
    """A uint8 image plus zero-mean white noise of standard deviation `sd` grey levels, in one OpenCV pass."""
    raw = np.frombuffer(rng.bytes(img.size), np.uint8).reshape(img.shape)
    k = sd / 73.9  # the standard deviation of uniform bytes
    return cv2.addWeighted(img, 1.0, raw, k, -127.5 * k, dtype=cv2.CV_8U)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float,
                 channels: int = 1) -> np.ndarray:
    """Value noise: a random grid with one value per `cell` pixels, upsampled to H x W (x channels)."""
    gh = max(2, round(height / cell) + 2)
    gw = max(2, round(width / cell) + 2)
    grid = noise(rng, (gh, gw, channels))
    up = cv2.resize(grid, (width, height), interpolation=_RESIZE[int(rng.integers(2))])
    return up.reshape(height, width, channels) if channels > 1 else up.reshape(height, width)


def fbm(rng: np.random.Generator, height: int, width: int, base_cell: float | None = None,
        octaves: int | None = None, persistence: float | None = None) -> np.ndarray:
    """Multi-octave value noise (fractal Brownian motion), H x W float32, roughly zero mean, unit scale.

    Built coarse to fine: each octave doubles the grid resolution of the accumulated noise and adds a finer
    random grid, so the cost is about one full-resolution pass whatever the number of octaves.
    """
    cell = float(base_cell if base_cell is not None else rng.uniform(16, 96))
    octaves = int(octaves if octaves is not None else rng.integers(3, 6))
    persistence = float(persistence if persistence is not None else rng.uniform(0.45, 0.75))
    gh, gw = max(2, round(height / cell) + 1), max(2, round(width / cell) + 1)
    acc = noise(rng, (gh, gw))
    amp, total = 1.0, 1.0
    for _ in range(octaves - 1):
        if gh * 2 > height + 2 or gw * 2 > width + 2:
            break
        gh, gw = gh * 2, gw * 2
        amp *= persistence
        total += amp * amp
        acc = cv2.resize(acc, (gw, gh), interpolation=cv2.INTER_LINEAR)
        acc += np.float32(amp) * noise(rng, (gh, gw))
    out = cv2.resize(acc, (width, height), interpolation=_RESIZE[int(rng.integers(2))])
    out *= np.float32(1.0 / np.sqrt(total))
    return out


def _coords(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotated coordinates (u along a random direction, v across it)."""
    theta = rng.uniform(0, np.pi)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    return x * c + y * s, y * c - x * s


_WAVE_SIZE = 1024


def stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Wavy stripes (wood grain, fabric, blinds), H x W in [0, 1]."""
    u, _ = _coords(rng, height, width)
    period = rng.uniform(4, 40)
    warp = fbm(rng, height, width, base_cell=rng.uniform(20, 80), octaves=2)
    phase = u + warp * np.float32(rng.uniform(0, period * 0.6))
    # One period of the wave profile in a table, indexed by phase (cheaper than sin on every pixel).
    wave = np.sin(np.linspace(0, 2 * np.pi, _WAVE_SIZE, endpoint=False))
    if rng.random() < 0.4:  # hard-edged stripes
        wave = np.tanh(wave * rng.uniform(2, 8))
    table = (0.5 + 0.5 * wave).astype(np.float32)
    index = (phase * np.float32(_WAVE_SIZE / period)).astype(np.int32) & (_WAVE_SIZE - 1)
    return table[index]


def checker(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Checkerboard, tiles or grid lines on rotated axes, H x W in [0, 1]."""
    u, v = _coords(rng, height, width)
    period = rng.uniform(6, 40)
    offset = np.float32(1e4)  # keeps the coordinates positive so integer truncation is a floor
    if rng.random() < 0.5:
        iu = ((u + offset) * np.float32(1 / period)).astype(np.int32)
        iv = ((v + offset) * np.float32(1 / period)).astype(np.int32)
        pattern = ((iu + iv) & 1).astype(np.float32)
    else:  # grid lines (tiles, windows, bricks)
        line = rng.uniform(1, 4)
        pv = period * rng.uniform(0.5, 1.5)
        fu = (u + offset) * np.float32(1 / period)
        fv = (v + offset) * np.float32(1 / pv)
        on_u = (fu - fu.astype(np.int32)) < np.float32(line / period)
        on_v = (fv - fv.astype(np.int32)) < np.float32(line / pv)
        pattern = (on_u | on_v).astype(np.float32)
        if rng.random() < 0.5:
            pattern = 1.0 - pattern
    pattern *= np.float32(0.8)
    pattern += np.float32(0.1)
    pattern += np.float32(0.1) * fbm(rng, height, width, base_cell=8, octaves=2)
    return pattern


def dots(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Random discs and speckles of different sizes (gravel, foliage, print), H x W x 3 in [0, 1]."""
    img = np.empty((height, width, 3), np.float32)
    img[:] = random_palette(rng, 1)[0]
    count = int(np.clip(height * width / rng.uniform(60, 400), 4, 400))
    xs = rng.integers(0, width, count)
    ys = rng.integers(0, height, count)
    rs = np.maximum(1, rng.gamma(1.5, rng.uniform(1.0, 4.0), count)).astype(int)
    cols = random_palette(rng, count) if rng.random() < 0.6 else rng.uniform(0, 1, (count, 3))
    for x, y, r, c in zip(xs.tolist(), ys.tolist(), rs.tolist(), cols.tolist(), strict=True):
        cv2.circle(img, (x, y), r, c, -1, lineType=cv2.LINE_AA)
    return img


def random_palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` related RGB colours (a base colour and variations), n x 3 float32 in [0, 1].

    Saturation is mostly low to moderate, as in natural scenes; vivid colours are the exception.
    """
    grey = rng.uniform(0.2, 0.8)
    hue = rng.standard_normal(3)
    hue -= hue.mean()
    hue /= np.linalg.norm(hue) + 1e-6
    saturation = rng.beta(1.5, 3.5) * 0.6
    base = grey + saturation * hue
    spread = rng.uniform(0.08, 0.4)
    lum = rng.normal(0, spread, (n, 1))
    chroma = rng.normal(0, spread * rng.uniform(0.1, 0.5), (n, 3))
    return np.clip(base + lum + chroma, 0.02, 1.0).astype(np.float32)


def colourise(rng: np.random.Generator, grey: np.ndarray) -> np.ndarray:
    """Map a grey pattern in ~[0, 1] through a random 2-3 colour ramp, H x W x 3."""
    pal = random_palette(rng, 3)
    t = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    if rng.random() < 0.5:
        ramp = pal[0] * (1 - t) + pal[1] * t
    else:
        low = pal[0] * (1 - 2 * t) + pal[1] * (2 * t)
        ramp = np.where(t < 0.5, low, pal[1] * (2 - 2 * t) + pal[2] * (2 * t - 1))
    index = cv2.convertScaleAbs(np.maximum(grey, 0.0), alpha=255.0)  # [0, 1] -> uint8, saturating
    return cv2.LUT(cv2.merge([index, index, index]), ramp.astype(np.float32).reshape(256, 1, 3))


def random_texture(rng: np.random.Generator, height: int, width: int, low_contrast_prob: float = 0.07,
                   dark_prob: float = 0.05) -> np.ndarray:
    """A natural-looking random colour texture, H x W x 3 float32 in [0, 1].

    A mix of fractal noise, stripes, checker/grid fragments, dots and smooth photo-like gradients, with colour
    variation, fine grain, and random contrast; flat (`low_contrast_prob`) or near-black (`dark_prob`)
    surfaces are rare.
    """
    kind = rng.choice(6, p=[0.34, 0.14, 0.12, 0.12, 0.14, 0.14])
    if kind == 0:
        g = fbm(rng, height, width)
        tex = colourise(rng, 0.5 + 0.3 * g)
    elif kind == 1:
        tex = colourise(rng, stripes(rng, height, width))
    elif kind == 2:
        tex = colourise(rng, checker(rng, height, width))
    elif kind == 3:
        tex = dots(rng, height, width)
    elif kind == 4:  # photo-like: smooth low-saturation colour field with detail
        lum = 0.5 + 0.2 * smooth_noise(rng, height, width, rng.uniform(40, 160))
        lum += 0.15 * fbm(rng, height, width, base_cell=rng.uniform(4, 16))
        chroma = 0.06 * smooth_noise(rng, height, width, rng.uniform(40, 160), channels=3)
        tex = affine_channels(grey3(lum), random_palette(rng, 1)[0] * 1.6, np.zeros(3)) + chroma
    else:  # two noise layers blended by a third (mottled, stone, bark)
        a = colourise(rng, 0.5 + 0.3 * fbm(rng, height, width))
        b = colourise(rng, 0.5 + 0.3 * fbm(rng, height, width, base_cell=rng.uniform(3, 12)))
        m = grey3(np.clip(0.5 + 2.0 * smooth_noise(rng, height, width, rng.uniform(10, 60)), 0, 1))
        tex = b + (a - b) * m
    tex = np.ascontiguousarray(tex, np.float32)
    # Colour variation and fine grain: most surfaces carry texture at several scales.
    if rng.random() < 0.6:
        tex += smooth_noise(rng, height, width, rng.uniform(8, 64), channels=3) * np.float32(0.08)
    if rng.random() < 0.8:
        grain = smooth_noise(rng, height, width, rng.uniform(1.0, 3.0)) * np.float32(rng.uniform(0.01, 0.08))
        tex += grey3(grain)
    # Contrast and brightness around the texture's own mean colour; rarely flat or dark.
    mean = tex[::4, ::4].reshape(-1, 3).mean(axis=0)
    contrast = rng.uniform(0.15, 0.35) if rng.random() < low_contrast_prob else rng.uniform(0.6, 1.5)
    brightness = rng.uniform(0.05, 0.25) if rng.random() < dark_prob else rng.uniform(0.3, 0.75)
    offset = brightness + 0.8 * (mean - mean.mean()) - contrast * mean
    tex = affine_channels(tex, np.full(3, contrast), offset)
    return np.clip(tex, 0.0, 1.0, out=tex)


def grey3(grey: np.ndarray) -> np.ndarray:
    """H x W -> H x W x 3 (the same values in each channel), fast."""
    return cv2.merge([grey, grey, grey])


def affine_channels(img: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Per-channel `img * gain + offset` for an H x W x 3 float32 image, in one OpenCV pass."""
    m = np.zeros((3, 4), np.float32)
    m[[0, 1, 2], [0, 1, 2]] = gain
    m[:, 3] = offset
    return cv2.transform(img, m)
