"""Disparity colour maps: OpenCV's lookup tables with a fixed or automatic (percentile) range."""

from __future__ import annotations

import cv2
import numpy as np

_CMAPS: dict[str, int] = {
    name[len("COLORMAP_") :].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}


def colormap_names() -> list[str]:
    """Names accepted by `colorize` (e.g. "turbo", "inferno", "jet", "viridis")."""
    return sorted(_CMAPS)


_LUTS: dict[str, np.ndarray] = {}


def _lut(cmap: str) -> np.ndarray:
    """The 256 x 1 x 3 RGB lookup table of an OpenCV colour map (built once, so no BGR swap per frame)."""
    key = cmap.lower()
    if key not in _CMAPS:
        raise ValueError(f"unknown colour map '{cmap}' (known: {', '.join(colormap_names())})")
    if key not in _LUTS:
        ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
        _LUTS[key] = cv2.cvtColor(cv2.applyColorMap(ramp, _CMAPS[key]), cv2.COLOR_BGR2RGB)
    return _LUTS[key]


def auto_range(disp: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    """Robust (vmin, vmax) of the finite values of `disp` from percentiles; (vmin, vmin + 1) when flat,
    (0, 1) when nothing is finite. Large 2-D maps are subsampled (every 4th row and column)."""
    values = disp[::4, ::4] if disp.ndim == 2 and disp.size > 4096 else disp
    values = values.ravel()
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(values, [low, high])
    if not vmax > vmin:
        vmax = vmin + 1.0
    return float(vmin), float(vmax)


def colorize(
    disp: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "turbo",
    invalid_color: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Map a float H x W array to H x W x 3 uint8 RGB; non-finite pixels get `invalid_color`.

    A missing `vmin` / `vmax` is taken from the 2nd / 98th percentile of the finite values.
    """
    lut = _lut(cmap)
    disp = np.asarray(disp, dtype=np.float32)
    if disp.ndim != 2:
        raise ValueError(f"disparity must be H x W, got shape {disp.shape}")
    if vmin is None or vmax is None:
        auto_lo, auto_hi = auto_range(disp)
        vmin = auto_lo if vmin is None else vmin
        vmax = auto_hi if vmax is None else vmax
    scale = np.float32(255.0 / max(float(vmax) - float(vmin), 1e-6))
    scaled = np.subtract(disp, np.float32(vmin))
    np.multiply(scaled, scale, out=scaled)
    finite = np.isfinite(scaled)
    all_finite = bool(finite.all())
    if not all_finite:
        scaled[~finite] = 0.0
    np.clip(scaled, 0, 255, out=scaled)
    rgb = cv2.applyColorMap(scaled.astype(np.uint8), lut)
    if not all_finite:
        rgb[~finite] = invalid_color
    return rgb


def error_colorize(error: np.ndarray, max_error: float = 5.0) -> np.ndarray:
    """Colour an absolute-error map (pixels) from 0 (dark) to `max_error` and above (bright); NaN = black."""
    return colorize(error, 0.0, max_error, cmap="inferno")
