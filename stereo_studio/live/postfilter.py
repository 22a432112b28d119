"""Disparity post-filters, toggled per model in the live preview and in `eval` / `preview --post-filter`.

A small registry (`FILTERS`, in the order a chain applies them, whatever order they were named in):
- `speckle`: small blobs that disagree with their surroundings become holes (`cv2.filterSpeckles`);
- `hole`: holes (disparity <= 0 or not finite) take the smaller of the nearest valid values on their left
  and right in the row (holes are mostly occlusions, which belong to the farther surface);
- `median`: 5 x 5 median (`cv2.medianBlur`): removes isolated outliers, keeps edges;
- `guided`: edge-aware weighted median guided by the left image (guided-filter weights, `cv2.boxFilter`
  only): disparity edges follow image edges and outliers inside regions go;
- `temporal`: for video, exponential smoothing with the previous output where the change is small
  (< TEMPORAL_DELTA px), the new value where it is larger (motion); stateful, `reset()` after a seek.

Holes are 0 (the KITTI convention the recordings use). Every function takes and returns float32 H x W and
never changes its input. `FilterChain` keeps the per-model state of the stateful filters and the cost of
each filter on the last frame (`last_ms`).

Why no OpenCV contrib (ximgproc's WLS / fast global smoother): `opencv-contrib-python-headless` replaces
the `opencv-python-headless` package (both install `cv2`), so adopting it swaps the project's OpenCV build
for one filter. WLS also wants a right-view disparity for its confidence (a second SGBM pass, which the
networks do not have). The weighted median here needs only box filters and improves EPE and bad-3 on
Middlebury Aloe for SGBM (BENCHMARKS.md, "postfilters"), where mean-type edge-aware filters (a plain guided
or joint bilateral filter) made bad-3 worse by blending the two sides of depth edges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from stereo_studio.errors import StereoStudioError

SPECKLE_RANGE = 1.0  # px: neighbours closer than this belong to the same blob
SPECKLE_AREA = 0.0005  # blob size limit as a fraction of the image area (at least SPECKLE_MIN px)
SPECKLE_MIN = 20
MEDIAN_KSIZE = 5
GUIDED_RADIUS = 1 / 64  # of the shorter image side, at least 2 px
GUIDED_EPS = 0.05**2  # regularisation, in (grey level / 255)^2
GUIDED_LEVELS = 32  # disparity levels of the weighted median (the pixel's own value is kept in its bin)
TEMPORAL_ALPHA = 0.4  # weight of the new frame
TEMPORAL_DELTA = 1.0  # px: larger changes are taken as they are


class PostFilterError(StereoStudioError):
    """An unknown filter name or a filter that cannot run on the data given."""


def invalid_mask(disp: np.ndarray) -> np.ndarray:
    """Holes: not finite or <= 0."""
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(disp) & (disp > 0))


def remove_speckles(
    disp: np.ndarray, left: np.ndarray | None = None, state: dict | None = None
) -> np.ndarray:
    """Blobs of fewer than SPECKLE_AREA x H x W pixels whose disparity differs from their surroundings by
    more than SPECKLE_RANGE px become holes (0). Fixed point 1/16 px, as OpenCV's matchers use."""
    h, w = disp.shape
    fixed = np.where(invalid_mask(disp), 0, np.rint(disp * 16.0))
    fixed = np.clip(fixed, -32768, 32767).astype(np.int16)
    size = max(SPECKLE_MIN, int(SPECKLE_AREA * h * w))
    cv2.filterSpeckles(fixed, 0, size, round(SPECKLE_RANGE * 16))
    out = disp.astype(np.float32, copy=True)
    out[fixed == 0] = 0.0
    return out


def fill_holes(disp: np.ndarray, left: np.ndarray | None = None, state: dict | None = None) -> np.ndarray:
    """Each hole takes the smaller (farther) of the nearest valid disparities on its left and right in the
    row; only one of them where the other side has none; rows without a valid pixel stay 0."""
    holes = invalid_mask(disp)
    out = np.where(holes, 0.0, disp).astype(np.float32)
    if not holes.any():
        return out
    w = disp.shape[1]
    cols = np.arange(w)[None, :]
    left_idx = np.maximum.accumulate(np.where(holes, -1, cols), axis=1)
    right_idx = np.minimum.accumulate(np.where(holes, w, cols)[:, ::-1], axis=1)[:, ::-1]
    from_left = np.take_along_axis(out, np.clip(left_idx, 0, w - 1), axis=1)
    from_right = np.take_along_axis(out, np.clip(right_idx, 0, w - 1), axis=1)
    has_l, has_r = left_idx >= 0, right_idx < w
    fill = np.where(has_l & has_r, np.minimum(from_left, from_right), np.where(has_l, from_left, from_right))
    fill = np.where(has_l | has_r, fill, 0.0)
    return np.where(holes, fill, out).astype(np.float32)


def median(disp: np.ndarray, left: np.ndarray | None = None, state: dict | None = None) -> np.ndarray:
    """MEDIAN_KSIZE x MEDIAN_KSIZE median of the disparity (holes stay holes where most neighbours are)."""
    src = np.where(invalid_mask(disp), 0.0, disp).astype(np.float32)
    return cv2.medianBlur(src, MEDIAN_KSIZE)


def guided(disp: np.ndarray, left: np.ndarray | None = None, state: dict | None = None) -> np.ndarray:
    """Edge-aware weighted median guided by the left image: the constant-time weighted median of Ma et al.
    (ICCV 2013) with guided-filter weights (He et al., 2013) on the grey left view.

    For GUIDED_LEVELS disparity levels k, the guided filter of the indicator [d <= k] is the weighted
    cumulative histogram at each pixel; the output is where it crosses 1/2 (linearly interpolated in the
    bin, or the pixel's own value when that lies in the bin). Unlike a mean (box, bilateral or plain guided
    filter), a median does not blend the two sides of a depth edge. Holes are filled from the background
    first. Radius GUIDED_RADIUS x the shorter side (at least 2 px), regularisation GUIDED_EPS."""
    if left is None:
        raise PostFilterError("the guided filter needs the left image")
    if left.shape[:2] != disp.shape:
        left = cv2.resize(left, (disp.shape[1], disp.shape[0]), interpolation=cv2.INTER_AREA)
    grey = left if left.ndim == 2 else cv2.cvtColor(left, cv2.COLOR_RGB2GRAY)
    guide = grey.astype(np.float32) / np.float32(255.0)
    d = fill_holes(disp) if invalid_mask(disp).any() else disp.astype(np.float32)
    lo, hi = float(d.min()), float(d.max())
    if not hi > lo:
        return d.copy()
    r = max(2, round(min(d.shape) * GUIDED_RADIUS))
    size = (2 * r + 1, 2 * r + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    var_i = box(guide * guide) - mean_i * mean_i + np.float32(GUIDED_EPS)
    n = max(1, min(GUIDED_LEVELS, int(np.ceil(hi - lo))))
    step = (hi - lo) / n
    out = np.full(d.shape, hi, np.float32)
    done = np.zeros(d.shape, bool)
    before = np.zeros(d.shape, np.float32)  # the cumulative weight up to the previous level
    for k in range(1, n + 1):
        level = np.float32(lo + k * step) if k < n else np.float32(hi)
        below = (d <= level).astype(np.float32)
        mean_p = box(below)
        a = (box(guide * below) - mean_i * mean_p) / var_i
        cum = box(a) * guide + box(mean_p - a * mean_i)
        hit = (cum >= 0.5) & ~done
        if hit.any():
            t = np.clip((0.5 - before) / np.maximum(cum - before, 1e-6), 0.0, 1.0)
            own = (d <= level) & ((d > level - step) | (k == 1))  # the first bin includes lo
            out[hit] = np.where(own, d, level - step + t * np.float32(step))[hit]
            done |= hit
            if done.all():
                break
        before = cum
    return out


def temporal(disp: np.ndarray, left: np.ndarray | None = None, state: dict | None = None) -> np.ndarray:
    """out = a * d + (1 - a) * previous output where both are valid and differ by < TEMPORAL_DELTA px;
    elsewhere d. `state` holds the previous output (reset on a size change)."""
    if state is None:
        return disp.astype(np.float32, copy=True)
    prev = state.get("prev")
    cur = disp.astype(np.float32, copy=True)
    if prev is not None and prev.shape == cur.shape:
        holes = invalid_mask(cur) | invalid_mask(prev)
        with np.errstate(invalid="ignore"):
            blend = ~holes & (np.abs(cur - prev) < TEMPORAL_DELTA)
        a = np.float32(TEMPORAL_ALPHA)
        cur = np.where(blend, a * cur + (1 - a) * prev, cur).astype(np.float32)
    state["prev"] = cur
    return cur


@dataclass(frozen=True)
class PostFilter:
    """A registered filter: `fn(disp, left, state) -> disp`; `needs_left`: uses the left image;
    `stateful`: keeps state between frames (in `state`, a dict per model)."""

    name: str
    label: str
    fn: Callable[[np.ndarray, np.ndarray | None, dict], np.ndarray]
    needs_left: bool = False
    stateful: bool = False
    help: str = ""


FILTERS: dict[str, PostFilter] = {
    f.name: f
    for f in (
        PostFilter("speckle", "Speckle removal", remove_speckles,
                   help="small blobs that disagree with their surroundings become holes"),
        PostFilter("hole", "Hole filling", fill_holes, help="holes take the farther of their row neighbours"),
        PostFilter("median", "Median 5x5", median, help="removes isolated outliers"),
        PostFilter("guided", "Edge-aware (guided by the left image)", guided, needs_left=True,
                   help="weighted median: disparity edges follow image edges, outliers go"),
        PostFilter("temporal", "Temporal smoothing (video)", temporal, stateful=True,
                   help="blends with the previous frame where the change is small"),
    )
}


def filter_names() -> list[str]:
    """The registered names, in the order a chain applies them."""
    return list(FILTERS)


def parse_filters(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """'hole,median' (or a list) -> validated names in application order; None, '' or 'none' -> ()."""
    if spec is None:
        return ()
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {str(p).strip().lower() for p in parts} - {"", "none"}
    unknown = sorted(names - set(FILTERS))
    if unknown:
        raise PostFilterError(
            f"unknown post-filter '{unknown[0]}' (known: {', '.join(FILTERS)}; "
            "comma-separated, e.g. hole,median)"
        )
    return tuple(n for n in FILTERS if n in names)


class FilterChain:
    """The filters of one model, applied in registry order, with that model's state and timings."""

    def __init__(self, names: str | Iterable[str] | None = ()) -> None:
        self.names = parse_filters(names)
        self._state: dict[str, dict[str, Any]] = {n: {} for n in self.names if FILTERS[n].stateful}
        self.last_ms: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self.names)

    @property
    def stateful(self) -> bool:
        return bool(self._state)

    def apply(self, disp: np.ndarray, left: np.ndarray | None = None) -> np.ndarray:
        """The filtered copy of `disp` (float32); `left` (H x W x 3 RGB) for the guided filter."""
        out = np.asarray(disp, dtype=np.float32)
        self.last_ms = {}
        for name in self.names:
            f = FILTERS[name]
            if f.needs_left and left is None:
                raise PostFilterError(f"post-filter '{name}' needs the left image")
            t0 = time.perf_counter()
            out = f.fn(out, left, self._state.get(name, {}))
            self.last_ms[name] = (time.perf_counter() - t0) * 1000.0
        return out if out is not disp else out.copy()

    def reset(self) -> None:
        """Forget the previous frames (after a seek, a new source or a size change)."""
        for state in self._state.values():
            state.clear()

    def __repr__(self) -> str:
        return f"FilterChain({','.join(self.names) or 'none'})"
