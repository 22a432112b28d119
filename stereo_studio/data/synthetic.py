"""Procedural stereo generator: the app's embedded default training data, with exact disparity ground truth.

A scene is a textured background surface (slanted or curved) and 8-25 textured layers (polygons, ellipses,
rings, blobs, boxes, thin sticks) at different depths, each with a disparity field that is constant, linear or
quadratic across the shape; objects float in front of the background. Both views are z-buffered (the
nearest surface wins, so intersecting surfaces occlude correctly). The left view samples each layer's texture
on the pixel grid; the right view is rendered by warping each layer (x_right = x_left - d): for every right
pixel the left coordinate is found by a fixed-point solve of x = x_right + d(x, y), so the ground truth is
exact. meta["occlusion"] marks left pixels whose match shows another surface or is out of view.
Photometric realism (shading, per-view gain/gamma/colour, vignetting, blur, noise, JPEG) is applied per view.

The generator's choices are a `GeneratorConfig`; its defaults are the app's default data (the same seed gives
the same pairs), and `GENERATORS` names the variants of the generator ablation (models/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from stereo_studio.data.photos import photo_library
from stereo_studio.data.sample import StereoSample
from stereo_studio.data.textures import add_noise, fbm, grey3, random_texture

_FIXED_POINT_ITERS = 10
_MAX_SLOPE = 0.45  # |d disparity / dx| is kept below this so the fixed-point solve converges fast


@dataclass(frozen=True)
class GeneratorConfig:
    """The procedural generator's choices. The defaults reproduce the default generator exactly."""

    name: str = "default"
    objects: tuple[int, int] = (8, 25)  # objects per scene, inclusive (scaled down below 128x256)
    # Shape mix: polygon, ellipse, ring, noise blob, rotated box, thin stick.
    shape_probs: tuple[float, ...] = (0.26, 0.2, 0.06, 0.2, 0.14, 0.14)
    stick_width: tuple[int, int] = (1, 8)  # px, inclusive
    constant_prob: float = 0.25  # objects with a constant (fronto-parallel) disparity
    steep_prob: float = 0.15  # slanted objects with a steep slope
    slope_sd: tuple[float, float] = (0.03, 0.12)  # px/px, gentle and steep slants
    view_differences: bool = True  # per-view gain, colour, gamma, vignetting, blur, JPEG quality
    low_contrast_prob: float = 0.07  # nearly flat textures
    dark_prob: float = 0.05  # nearly black textures
    floor_prob: float = 0.0  # scenes with a ground plane below a horizon (a floor or table seen from above)
    floor_rise: tuple[float, float] = (0.2, 1.0)  # rise to the bottom row, fraction of the room left
    photo_prob: float = 0.0  # surfaces painted with crops of real photographs (needs `photo_dir`)
    photo_dir: str | None = None  # folder of photographs (`generate --photos`; models/fetch_photos.sh)
    # Both views sample each surface's texture bilinearly at a random sub-pixel phase. Off (the default
    # generator): the left view takes the texture on the pixel grid and only the right view interpolates, so
    # the right view is softer by an amount that depends on the fractional disparity, a cue real cameras lack.
    texture_phase: bool = False
    description: str = field(default="the default generator", compare=False)

    def __post_init__(self) -> None:
        lo, hi = self.objects
        if not 0 <= lo <= hi:
            raise ValueError(f"objects must be a range 0 <= lo <= hi, got {self.objects}")
        if len(self.shape_probs) != 6 or min(self.shape_probs) < 0 or abs(sum(self.shape_probs) - 1) > 1e-6:
            raise ValueError(f"shape_probs must be 6 probabilities summing to 1, got {self.shape_probs}")
        if not 1 <= self.stick_width[0] <= self.stick_width[1]:
            raise ValueError(f"stick_width must be a range 1 <= lo <= hi, got {self.stick_width}")
        if not 0 <= self.floor_prob <= 1 or not 0 <= self.floor_rise[0] <= self.floor_rise[1] <= 1:
            raise ValueError(f"floor_prob must be in [0, 1] and floor_rise a range in [0, 1], got "
                             f"{self.floor_prob}, {self.floor_rise}")
        if not 0 <= self.photo_prob <= 1:
            raise ValueError(f"photo_prob must be in [0, 1], got {self.photo_prob}")


GENERATORS: dict[str, GeneratorConfig] = {c.name: c for c in (
    GeneratorConfig(),
    GeneratorConfig(name="few-objects", objects=(4, 13),
                    description="4-13 objects per scene (the older generator's count) instead of 8-25"),
    GeneratorConfig(name="same-views", view_differences=False,
                    description="no per-view photometric differences (both views share gain, colour, gamma, "
                                "vignetting, blur and JPEG quality; sensor noise stays independent)"),
    GeneratorConfig(name="plain", low_contrast_prob=0.35, dark_prob=0.2,
                    description="plainer textures: 35 % nearly flat, 20 % nearly black surfaces (7 %, 5 %)"),
    GeneratorConfig(name="steep", steep_prob=0.6,
                    description="steeper slants: 60 % of slanted objects steep (15 %)"),
    GeneratorConfig(name="clutter", objects=(16, 40),
                    description="candidate: more clutter, 16-40 objects per scene instead of 8-25"),
    GeneratorConfig(name="thin", shape_probs=(0.2, 0.15, 0.05, 0.15, 0.1, 0.35),
                    description="candidate: more thin structures, 35 % of objects are sticks or bars (14 %)"),
    GeneratorConfig(name="clutter-thin", objects=(16, 40), shape_probs=(0.2, 0.15, 0.05, 0.15, 0.1, 0.35),
                    description="clutter and thin together: 16-40 objects, 35 % sticks or bars"),
    GeneratorConfig(name="clutter-floor", objects=(16, 40), floor_prob=0.5,
                    description="clutter and a floor: 16-40 objects, and half the scenes have a ground plane "
                                "below a horizon whose disparity grows steeply downwards (typically "
                                "0.1-1.5 px per row, as a floor or table seen from above)"),
    GeneratorConfig(name="clutter-photo", objects=(16, 40), photo_prob=0.5,
                    description="clutter and photographs: 16-40 objects, half the surfaces painted with "
                                "crops of real photographs (rescaled, turned, recoloured; `--photos DIR`)"),
    GeneratorConfig(name="phase", texture_phase=True,
                    description="diagnostic: the default generator with both views resampled alike (each "
                                "surface's texture sampled bilinearly at a random sub-pixel phase in both "
                                "views)"),
)}


def generator_names() -> list[str]:
    """Names of the registered generator variants, the default first."""
    return list(GENERATORS)


def generator_config(name: str | GeneratorConfig | None = None) -> GeneratorConfig:
    """A registered generator by name (None: the default); a config passes through."""
    if isinstance(name, GeneratorConfig):
        return name
    if name is None:
        return GENERATORS["default"]
    try:
        return GENERATORS[name]
    except KeyError:
        raise ValueError(f"unknown generator {name!r}; choose one of: {', '.join(GENERATORS)}") from None


@dataclass
class _Layer:
    """One surface: its mask and texture on a box of the left image plane, and its disparity model."""

    x0: int
    y0: int
    mask: np.ndarray  # h x w uint8 (0/1)
    texture: np.ndarray  # h x w x 3 float32
    coef: np.ndarray  # d = c0 + c1*u + c2*v + c3*u^2 + c4*v^2 + c5*u*v with u = x - cx, v = y - cy
    cx: float
    cy: float
    dmin: float
    dmax: float
    phase: tuple[float, float] | None = None  # (x, y) sub-pixel offset of the texture in both views

    def __post_init__(self) -> None:
        h, w = self.mask.shape
        ys = np.arange(self.y0, self.y0 + h, dtype=np.float32)[:, None]
        xs = np.arange(self.x0, self.x0 + w, dtype=np.float32)[None, :]
        self.field = self.disparity(xs, ys)  # disparity on the layer's box (left view)
        self.lo, self.hi = float(self.field.min()), float(self.field.max())

    @property
    def constant(self) -> bool:
        return not np.any(self.coef[1:])

    def disparity(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Disparity at left-view coordinates (broadcasting x and y), clipped to [dmin, dmax]."""
        c = self.coef.astype(np.float32)
        u = x - np.float32(self.cx)
        v = y - np.float32(self.cy)
        d = c[0] + c[1] * u + c[2] * v
        if c[3] or c[4] or c[5]:
            d = d + c[3] * u * u + c[4] * v * v + c[5] * u * v
        d = np.broadcast_to(d, np.broadcast_shapes(np.shape(x), np.shape(y))).astype(np.float32)
        return np.minimum(np.maximum(d, np.float32(self.dmin), out=d), np.float32(self.dmax), out=d)


def _texture(rng: np.random.Generator, height: int, width: int, cfg: GeneratorConfig) -> np.ndarray:
    """A surface's texture: procedural, or a photograph's crop with probability `cfg.photo_prob`."""
    if cfg.photo_prob > 0:  # (no draw at all by default: same pairs)
        if cfg.photo_dir is None:
            raise ValueError(f"generator {cfg.name!r} paints surfaces with photographs: give it a folder of "
                             "them (generate --photos DIR; models/fetch_photos.sh fetches the recipe's)")
        if rng.random() < cfg.photo_prob:
            return photo_library(cfg.photo_dir).texture(rng, height, width)
    return random_texture(rng, height, width, cfg.low_contrast_prob, cfg.dark_prob)


def _rng(rng_or_seed: np.random.Generator | int | tuple | list) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _shape_mask(rng: np.random.Generator, h: int, w: int, cfg: GeneratorConfig) -> np.ndarray:
    """A random shape filling most of an h x w box: polygon, ellipse, ring, blob, box or stick."""
    mask = np.zeros((h, w), np.uint8)
    kind = rng.choice(6, p=list(cfg.shape_probs))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if kind == 0:  # star-convex polygon
        n = int(rng.integers(3, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.5, 1.0, n)
        pts = np.stack([cx + np.cos(ang) * rad * w / 2, cy + np.sin(ang) * rad * h / 2], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif kind in (1, 2):  # ellipse, ring
        angle = rng.uniform(-25, 25)  # a small tilt keeps the ellipse inside its box
        axes = (max(1, int(w / 2 * 0.9)), max(1, int(h / 2 * 0.9)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, angle, 0, 360, 1, -1)
        if kind == 2:
            f = rng.uniform(0.3, 0.7)
            cv2.ellipse(mask, (int(cx), int(cy)), (max(1, int(axes[0] * f)), max(1, int(axes[1] * f))),
                        angle, 0, 360, 0, -1)
    elif kind == 3:  # blob: thresholded noise inside an ellipse
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((x - cx) / (w / 2 + 1e-3)) ** 2 + ((y - cy) / (h / 2 + 1e-3)) ** 2
        field = 1.0 - r2 + 0.35 * fbm(rng, h, w, base_cell=max(4.0, min(h, w) / 3), octaves=2)
        mask[:] = field > 0.3
    elif kind == 4:  # rotated box (planks, signs, furniture faces)
        ang = rng.uniform(-30, 30)
        rect = ((cx, cy), (w * rng.uniform(0.5, 0.8), h * rng.uniform(0.5, 0.8)), ang)
        cv2.fillPoly(mask, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 1)
    else:  # thin stick or bar across the box
        t = int(rng.integers(cfg.stick_width[0], cfg.stick_width[1] + 1))
        if rng.random() < 0.5:
            p0, p1 = (int(rng.uniform(0, w * 0.3)), int(rng.uniform(0, h))), \
                     (int(rng.uniform(w * 0.7, w)), int(rng.uniform(0, h)))
        else:
            p0, p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h * 0.3))), \
                     (int(rng.uniform(0, w)), int(rng.uniform(h * 0.7, h)))
        cv2.line(mask, p0, p1, 1, t)
    if not mask.any():
        mask[h // 2, w // 2] = 1
    return mask


def _shading(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth lighting field (linear gradient, optional soft highlight), h x w x 3, around 1."""
    y = np.arange(h, dtype=np.float32)[:, None] - np.float32(h / 2)
    x = np.arange(w, dtype=np.float32)[None, :] - np.float32(w / 2)
    gx, gy = (rng.normal(0, 0.35, 2) / max(h, w)).astype(np.float32)
    light = 1.0 + gx * x + gy * y
    if rng.random() < 0.3:
        sx, sy = rng.uniform(-w / 2, w / 2), rng.uniform(-h / 2, h / 2)
        s2 = np.float32(2 * (rng.uniform(0.2, 0.6) * max(h, w)) ** 2)
        amp = np.float32(rng.uniform(0.1, 0.4))
        light = light + amp * np.exp(-((x - sx) ** 2) / s2) * np.exp(-((y - sy) ** 2) / s2)
    return grey3(np.clip(light, 0.4, 1.6).astype(np.float32))


def _disparity_model(rng: np.random.Generator, d0: float, w: int, h: int, lo: float, hi: float,
                     cfg: GeneratorConfig, background: bool = False) -> np.ndarray:
    """Coefficients of a constant / slanted / curved disparity field over a w x h box centred on it."""
    coef = np.zeros(6)
    coef[0] = d0
    r = rng.random()
    steep = rng.random() < cfg.steep_prob
    scale = cfg.slope_sd[1] if steep else cfg.slope_sd[0]
    if background:
        # A ground-plane-like tilt (disparity grows downwards) or a gentle slant.
        coef[1] = rng.normal(0, 0.02)
        coef[2] = abs(rng.normal(0, 0.06)) if rng.random() < 0.5 else rng.normal(0, 0.02)
    elif r > cfg.constant_prob:
        coef[1:3] = rng.normal(0, scale, 2)
    if rng.random() < (0.35 if background else 0.2):
        # Curvature: a few pixels of extra disparity between centre and border.
        bulge = rng.normal(0, 0.05) * (hi - lo + 1)
        coef[3] = bulge / max(1.0, (w / 2) ** 2)
        coef[4] = rng.uniform(0.3, 1.0) * bulge / max(1.0, (h / 2) ** 2)
    # Keep the x-slope below _MAX_SLOPE everywhere in the box (fixed-point convergence, plausibility).
    slope = abs(coef[1]) + abs(coef[3]) * w + abs(coef[5]) * h / 2
    if slope > _MAX_SLOPE:
        coef[1:] *= _MAX_SLOPE / slope
    return coef


def _render_right(layer: _Layer, height: int, width: int, right: np.ndarray, right_disp: np.ndarray,
                  right_id: np.ndarray, layer_id: int) -> None:
    """Paint one layer into the right view (with its disparity z-buffer and layer ids) by warping it."""
    h, w = layer.mask.shape
    y0, x0 = layer.y0, layer.x0
    ya, yb = max(0, y0), min(height, y0 + h)
    xa = max(0, int(np.floor(x0 - layer.hi)) - 1)
    xb = min(width, int(np.ceil(x0 + w - layer.lo)) + 1)
    if ya >= yb or xa >= xb:
        return
    yy = np.arange(ya, yb, dtype=np.float32)[:, None]
    xr = np.arange(xa, xb, dtype=np.float32)[None, :]
    c = layer.coef
    if layer.constant:
        d = layer.disparity(xr, yy)
        x = xr + d
    else:
        # Exact for a linear field (x = xr + c0 + c1 (x - cx) + c2 v), then fixed-point steps for the clip
        # and the quadratic terms (a contraction: |d'(x)| < _MAX_SLOPE).
        v = yy - np.float32(layer.cy)
        x = (xr + np.float32(c[0] - c[1] * layer.cx) + np.float32(c[2]) * v) * np.float32(1.0 / (1.0 - c[1]))
        iters = _FIXED_POINT_ITERS if (c[3] or c[4] or c[5]) else 1
        for _ in range(iters):
            d = layer.disparity(x, yy)
            x_next = xr + d
            step = float(np.abs(x_next - x).max())
            x = x_next
            if step < 1e-3:
                break
    mx = x - np.float32(x0)
    my = np.broadcast_to(yy - np.float32(y0), mx.shape).copy()
    m = cv2.remap(layer.mask, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if not m.any():
        return
    if layer.phase is not None:
        mx += np.float32(layer.phase[0])
        my += np.float32(layer.phase[1])
    tex = cv2.remap(layer.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Z-buffer: a pixel shows the nearest surface (largest disparity), whatever the drawing order.
    front = (m != 0) & (d > right_disp[ya:yb, xa:xb])
    front8 = front.view(np.uint8)
    cv2.copyTo(tex, front8, right[ya:yb, xa:xb])
    cv2.copyTo(np.broadcast_to(d, front.shape).astype(np.float32), front8, right_disp[ya:yb, xa:xb])
    right_id[ya:yb, xa:xb][front] = layer_id


def _render_left(layer: _Layer, height: int, width: int, left: np.ndarray, disp: np.ndarray,
                 left_id: np.ndarray, layer_id: int) -> None:
    """Paint one layer into the left view, its disparity and layer-id buffer."""
    h, w = layer.mask.shape
    ya, yb = max(0, layer.y0), min(height, layer.y0 + h)
    xa, xb = max(0, layer.x0), min(width, layer.x0 + w)
    if ya >= yb or xa >= xb:
        return
    sl = (slice(ya - layer.y0, yb - layer.y0), slice(xa - layer.x0, xb - layer.x0))
    front = (layer.mask[sl] != 0) & (layer.field[sl] > disp[ya:yb, xa:xb])  # z-buffer: nearest wins
    front8 = front.view(np.uint8)
    texture = layer.texture[sl]
    if layer.phase is not None:  # the texture resampled at the layer's phase, as the right view samples it
        my, mx = np.mgrid[sl[0], sl[1]].astype(np.float32)
        texture = cv2.remap(layer.texture, mx + np.float32(layer.phase[0]), my + np.float32(layer.phase[1]),
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cv2.copyTo(texture, front8, left[ya:yb, xa:xb])
    cv2.copyTo(layer.field[sl], front8, disp[ya:yb, xa:xb])
    left_id[ya:yb, xa:xb][front] = layer_id


def _make_layers(rng: np.random.Generator, height: int, width: int, max_disp: float,
                 n_objects: int | None, cfg: GeneratorConfig) -> list[_Layer]:
    """The scene: background plus objects, sorted far to near."""
    hi_cap = max_disp - 0.01
    # Scene disparity span: background near the far end, the nearest objects up to the full range.
    d_near = hi_cap * (rng.uniform(0.85, 1.0) if rng.random() < 0.35 else rng.uniform(0.35, 0.9))
    d_far = rng.uniform(0.0, 0.45) * d_near
    pad = int(np.ceil(max_disp)) + 2
    bw, bh = width + pad, height
    coef = _disparity_model(rng, 0.0, bw, bh, d_far, d_near, cfg, background=True)
    # Shift the background so its minimum over the box is d_far.
    corners_u = np.array([-bw / 2, bw / 2, -bw / 2, bw / 2, 0, 0])
    corners_v = np.array([-bh / 2, -bh / 2, bh / 2, bh / 2, 0, bh / 2])
    vals = coef[1] * corners_u + coef[2] * corners_v + coef[3] * corners_u**2 + coef[4] * corners_v**2
    coef[0] = d_far - vals.min()
    bg_tex = _texture(rng, bh, bw, cfg)
    bg_tex *= _shading(rng, bh, bw)
    layers = [_Layer(0, 0, np.ones((bh, bw), np.uint8), bg_tex, coef,
                     bw / 2, bh / 2, 0.0, hi_cap)]
    count = int(n_objects if n_objects is not None else rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    if n_objects is None:  # fewer objects in tiny images (below 128x256), so they stay cheap and legible
        count = max(3, round(count * min(1.0, np.sqrt(height * width / 32768))))
    bg_top = float(coef[0] + np.abs(vals).max())
    if cfg.floor_prob > 0 and rng.random() < cfg.floor_prob:  # (no draw at all by default: same pairs)
        layers.append(_floor_layer(rng, layers[0], height, hi_cap, cfg))
    objects = []
    for _ in range(count):
        u = rng.beta(1.3, 1.6)
        d0 = min(bg_top, d_near) * 0.5 + u * (d_near - min(bg_top, d_near) * 0.5)
        d0 = float(np.clip(d0 + rng.normal(0, 1.0), 0.5, hi_cap))
        # Nearer objects tend to be bigger; sizes span small clutter to a third of the image.
        smallest = min(16.0, 0.5 * min(height, width))
        size = np.exp(rng.uniform(np.log(smallest), np.log(max(smallest, 0.9 * min(height, width)))))
        size *= 0.7 + 0.6 * d0 / max_disp
        aspect = np.exp(rng.normal(0, 0.5))
        w = int(np.clip(size * aspect, 4, max(4, width * 0.8)))
        h = int(np.clip(size / aspect, 4, max(4, height * 0.8)))
        # Place the object so that it is visible in the left view (it may cross the borders).
        x0 = int(rng.uniform(-w * 0.3, width - w * 0.7 + d0 * 0.5))
        y0 = int(rng.uniform(-h * 0.3, height - h * 0.7))
        objects.append((d0, x0, y0, w, h))
    objects.sort(key=lambda o: o[0])
    surfaces = list(layers)  # background, and the floor if any
    for d0, x0, y0, w, h in objects:
        mask = _shape_mask(rng, h, w, cfg)
        tex = _texture(rng, h, w, cfg)
        tex *= _shading(rng, h, w)
        coef = _disparity_model(rng, d0, w, h, d_far, d_near, cfg)
        layer = _Layer(x0, y0, mask, tex, coef, x0 + (w - 1) / 2, y0 + (h - 1) / 2, 0.0, hi_cap)
        # Objects float in front of the background (and floor) behind them (never inside or behind it).
        behind = _max_under(surfaces, layer)
        lowest = float(layer.field[mask.astype(bool)].min())
        if behind is not None and lowest < behind + 1.0:
            coef = coef.copy()
            coef[0] += behind + 1.0 - lowest
            layer = _Layer(x0, y0, mask, tex, coef, layer.cx, layer.cy, 0.0, hi_cap)
        layers.append(layer)
    return layers


def _floor_layer(rng: np.random.Generator, background: _Layer, height: int, hi_cap: float,
                 cfg: GeneratorConfig) -> _Layer:
    """A ground plane from a horizon row to the bottom, across the background's width: its disparity meets
    the background at the horizon and rises steeply (linearly) to the bottom row, tilted slightly."""
    bw = background.mask.shape[1]
    y_h = int(rng.uniform(0.4, 0.85) * height)
    rows = height - y_h
    tilt = float(rng.normal(0, 0.02))  # px/px across
    d_h = float(background.field[y_h].max()) + abs(tilt) * bw / 2 + rng.uniform(0.0, 1.5)
    d_bottom = d_h + rng.uniform(*cfg.floor_rise) * max(0.0, hi_cap - d_h)
    # Never behind the background below the horizon either.
    d_bottom = max(d_bottom, float(background.field[height - 1].max()) + abs(tilt) * bw / 2 + 1.0)
    coef = np.zeros(6)
    coef[0], coef[1], coef[2] = d_h, tilt, (d_bottom - d_h) / max(1, rows - 1)
    tex = random_texture(rng, rows, bw, cfg.low_contrast_prob, cfg.dark_prob)
    tex *= _shading(rng, rows, bw)
    return _Layer(0, y_h, np.ones((rows, bw), np.uint8), tex, coef, bw / 2, float(y_h), 0.0, hi_cap)


def _max_under(surfaces: list[_Layer], layer: _Layer) -> float | None:
    """The largest disparity of the surfaces (background, floor) under the layer's box (None: off them)."""
    h, w = layer.mask.shape
    best = None
    for surface in surfaces:
        sh, sw = surface.mask.shape
        ya, yb = max(surface.y0, layer.y0), min(surface.y0 + sh, layer.y0 + h)
        xa, xb = max(surface.x0, layer.x0), min(surface.x0 + sw, layer.x0 + w)
        if ya < yb and xa < xb:
            top = float(surface.field[ya - surface.y0:yb - surface.y0, xa - surface.x0:xb - surface.x0].max())
            best = top if best is None else max(best, top)
    return best


def _photometric(rng: np.random.Generator, views: list[np.ndarray],
                 per_view: bool = True) -> list[np.ndarray]:
    """Camera effects, shared and per view: vignetting, blur, gain, colour, gamma, noise, JPEG.

    Takes float32 views in [0, 1], returns uint8 views. `per_view=False`: every view gets the first view's
    settings (sensor noise stays independent).
    """
    h, w = views[0].shape[:2]
    scene_gain = rng.uniform(0.7, 1.3)
    scene_gamma = rng.uniform(0.8, 1.25)
    scene_col = rng.uniform(0.9, 1.1, 3)
    noise_level = rng.uniform(0.0, 6.0)  # grey levels
    blur_level = rng.uniform(0.0, 0.9)
    jpeg_quality = int(rng.integers(40, 96)) if rng.random() < 0.6 else 0
    levels = np.arange(256, dtype=np.float64)[:, None] / 255.0
    out = []
    settings: tuple | None = None
    quality = 0
    for img in views:
        if per_view or settings is None:  # this view's settings, drawn in the default generator's order
            k = np.float32(rng.uniform(0.05, 0.3)) if rng.random() < 0.3 else None
            sigma = blur_level * rng.uniform(0.6, 1.4)
            gain = scene_gain * rng.uniform(0.9, 1.1) * scene_col * rng.uniform(0.96, 1.04, 3)
            gamma = scene_gamma * rng.uniform(0.93, 1.07)
            sd = noise_level * rng.uniform(0.7, 1.3)
            settings = k, sigma, gain, gamma, sd
        k, sigma, gain, gamma, sd = settings
        if k is not None:  # vignetting, as a separable falloff
            fy = 1.0 - k * np.linspace(-1, 1, h, dtype=np.float32) ** 2
            fx = 1.0 - k * np.linspace(-1, 1, w, dtype=np.float32) ** 2
            img = cv2.multiply(img, grey3(np.outer(fy, fx)))
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        img8 = _to_uint8(img)
        # Gain, colour balance and gamma in one per-channel lookup table.
        lut = np.clip(255.0 * np.clip(levels * gain[None, :], 0, 1) ** gamma + 0.5, 0, 255).astype(np.uint8)
        img8 = cv2.LUT(img8, lut.reshape(256, 1, 3))
        if sd > 0.5:
            img8 = add_noise(rng, img8, sd)
        if jpeg_quality:
            if per_view or not quality:
                quality = int(np.clip(jpeg_quality + rng.integers(-5, 6), 20, 98))
            img8 = _jpeg(img8, quality)
        out.append(img8)
    return out


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounded and saturated."""
    return cv2.convertScaleAbs(img, alpha=255.0)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]) if ok else img


def generate_pair(rng_or_seed: np.random.Generator | int | tuple | list, height: int = 256, width: int = 512,
                  max_disp: float = 64, *, photometric: bool = True, n_objects: int | None = None,
                  generator: GeneratorConfig | str | None = None) -> StereoSample:
    """Generate one synthetic stereo pair with exact left-view disparity in [0, max_disp).

    `photometric=False` renders the raw scene (no camera effects), so the right view warped with the
    ground truth reproduces the left view on non-occluded pixels. meta["occlusion"] marks left pixels
    hidden (or out of view) in the right image. `generator`: a `GeneratorConfig` or a name in `GENERATORS`
    (default: the default generator); `n_objects` overrides its object count.
    """
    cfg = generator_config(generator)
    rng = _rng(rng_or_seed)
    if height < 8 or width < 8 or max_disp <= 1:
        raise ValueError(f"synthetic pairs need height, width >= 8 and max_disp > 1, got {height}x{width}, "
                         f"{max_disp}")
    layers = _make_layers(rng, height, width, float(max_disp), n_objects, cfg)
    if cfg.texture_phase:  # (no draw by default: the same pairs as before the option)
        for layer, phase in zip(layers, rng.uniform(0.0, 1.0, (len(layers), 2)), strict=True):
            layer.phase = (float(phase[0]), float(phase[1]))
    left = np.zeros((height, width, 3), np.float32)
    right = np.zeros((height, width, 3), np.float32)
    disp = np.full((height, width), -1.0, np.float32)  # z-buffers: every layer is nearer than -1
    right_disp = np.full((height, width), -1.0, np.float32)
    left_id = np.zeros((height, width), np.int16)
    right_id = np.zeros((height, width), np.int16)
    for layer_id, layer in enumerate(layers):
        _render_left(layer, height, width, left, disp, left_id, layer_id)
        _render_right(layer, height, width, right, right_disp, right_id, layer_id)
    # Occlusion: the left pixel's match in the right view is out of view or shows another surface.
    xr = np.arange(width, dtype=np.float32)[None, :] - disp
    xi = np.clip(np.rint(xr), 0, width - 1).astype(np.intp)
    occlusion = (xr < -0.5) | (np.take_along_axis(right_id, xi, axis=1) != left_id)
    if photometric:
        left8, right8 = _photometric(rng, [left, right], per_view=cfg.view_differences)
    else:
        left8, right8 = _to_uint8(left), _to_uint8(right)
    meta = {"dataset": "synthetic", "name": "synthetic", "max_disp": float(max_disp), "occlusion": occlusion,
            "generator": cfg.name}
    return StereoSample(left8, right8, disp, np.ones((height, width), bool), meta)


class SyntheticStereo:
    """A deterministic procedural stereo dataset: `ds[i]` is always the same pair for the same (seed, i).

    `generator`: a `GeneratorConfig` or a name in `GENERATORS` (default: the default generator).
    """

    has_gt = True

    def __init__(self, height: int = 256, width: int = 512, max_disp: float = 64, seed: int = 0,
                 length: int = 10000, photometric: bool = True,
                 generator: GeneratorConfig | str | None = None) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.height, self.width, self.max_disp = int(height), int(width), float(max_disp)
        self.seed, self.length, self.photometric = int(seed), int(length), photometric
        self.generator = generator_config(generator)
        self.name = f"synthetic-{self.height}x{self.width}-d{self.max_disp:g}-s{self.seed}"
        if self.generator.name != "default":
            self.name += f"-{self.generator.name}"

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> StereoSample:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic pairs")
        sample = generate_pair(np.random.default_rng([self.seed, index]), self.height, self.width,
                               self.max_disp, photometric=self.photometric, generator=self.generator)
        sample.meta["name"] = f"synthetic-{self.seed}-{index:06d}"
        sample.meta["index"] = index
        return sample
