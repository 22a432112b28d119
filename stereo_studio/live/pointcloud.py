"""Disparity -> metric 3D points, coloured from the left view, written as binary PLY.

Everything goes through OpenCV's 4 x 4 reprojection matrix Q (`cv2.reprojectImageTo3D`):
[X Y Z W]^T = Q [x y d 1]^T, point = (X, Y, Z) / W, in the left rectified camera's frame (x right, y down,
z forward, as OpenCV). Q comes from

- a Middlebury / ETH3D `calib.txt` (focal f, principal point cx, cy, baseline B in mm, doffs):
  Q = [[1, 0, 0, -cx], [0, 1, 0, -cy], [0, 0, 0, f], [0, 0, 1/B, doffs/B]], i.e. Z = f B / (d + doffs), in mm;
- an OpenCV stereo calibration (`stereo-studio calibrate`, or any file with K1..T / Q): its rectification's
  Q, in the calibration's units (metres for Stereo Studio's own files).

A disparity map at another size than the calibration's (a model run on resized frames) is handled by
scaling Q's columns: x, d by calibration width / disparity width, y by the heights' ratio.
Invalid pixels (disparity <= 0 or not finite, outside `valid`, behind the camera or beyond `max_depth`)
are skipped. Units are "mm" or "m" and written into the PLY header.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_studio.errors import DataError, StereoStudioError

UNITS = {"mm": 1000.0, "m": 1.0}  # per metre
FRAME_NOTE = "left rectified camera frame: x right, y down, z forward (OpenCV)"


@dataclasses.dataclass(frozen=True)
class DepthCalibration:
    """A reprojection matrix `Q` for disparities of an image of `size` (height, width; None: any size, the
    disparity's own) giving points in `units` ("mm" or "m"). `origin` names where it came from."""

    Q: np.ndarray
    size: tuple[int, int] | None
    units: str
    origin: str = ""

    def __post_init__(self) -> None:
        q = np.asarray(self.Q, dtype=np.float64)
        if q.shape != (4, 4) or not np.isfinite(q).all():
            raise DataError(f"reprojection matrix Q must be a finite 4 x 4 matrix, got shape {q.shape}")
        if self.units not in UNITS:
            raise DataError(f"unknown depth units '{self.units}' (mm or m)")
        object.__setattr__(self, "Q", q)

    # -- constructors
    @classmethod
    def from_middlebury(cls, calib: dict[str, Any], origin: str = "calib.txt") -> DepthCalibration:
        """From `read_calib_txt`'s dict (focal_px, cx, cy, baseline_m, doffs, width, height): millimetres."""
        missing = [k for k in ("focal_px", "baseline_m") if k not in calib]
        if missing:
            raise DataError(f"calibration {origin} lacks {' and '.join(missing)} (cam0 and baseline lines)")
        f = float(calib["focal_px"])
        b = float(calib["baseline_m"]) * 1000.0
        if f <= 0 or b <= 0:
            raise DataError(f"calibration {origin}: focal length and baseline must be positive")
        width, height = calib.get("width"), calib.get("height")
        cx = float(calib.get("cx", (float(width) - 1) / 2 if width else 0.0))
        cy = float(calib.get("cy", (float(height) - 1) / 2 if height else 0.0))
        doffs = float(calib.get("doffs", 0.0))
        q = np.array([[1, 0, 0, -cx], [0, 1, 0, -cy], [0, 0, 0, f], [0, 0, 1 / b, doffs / b]], np.float64)
        size = (round(float(height)), round(float(width))) if width and height else None
        return cls(q, size, "mm", origin)

    @classmethod
    def from_stereo_calibration(cls, calib: Any, units: str = "m") -> DepthCalibration:
        """From a `StereoCalibration` (rectification computed when missing); `units` of its T (metres for
        files written by `stereo-studio calibrate`)."""
        if not calib.has_rectification:
            calib = calib.with_rectification()
        return cls(calib.Q, calib.image_size, units, calib.path or "OpenCV calibration")

    @classmethod
    def from_meta(cls, calib: dict[str, Any]) -> DepthCalibration:
        """From a frame's `meta["calib"]`: a Middlebury dict, or {"Q", "size", "units"} (`to_dict`)."""
        if "Q" in calib:
            size = tuple(calib["size"]) if calib.get("size") else None
            return cls(np.asarray(calib["Q"], np.float64), size, str(calib.get("units", "m")),  # type: ignore[arg-type]
                       str(calib.get("origin", "recording")))
        return cls.from_middlebury(calib, str(calib.get("origin", "calib.txt")))

    @classmethod
    def load(cls, path: str | Path) -> DepthCalibration:
        """A Middlebury / ETH3D `calib.txt` (mm), or an OpenCV calibration file (.yml / .xml / .json, m)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"calibration file not found: {path}")
        if path.suffix.lower() == ".txt":
            from stereo_studio.data.readers.common import read_calib_txt

            return cls.from_middlebury(read_calib_txt(path), str(path))
        from stereo_studio.live.calibration import StereoCalibration

        return cls.from_stereo_calibration(StereoCalibration.load(path))

    # -- derived
    def to_units(self, units: str) -> DepthCalibration:
        """The same calibration giving points in `units` (W is divided by the scale factor)."""
        if units not in UNITS:
            raise DataError(f"unknown depth units '{units}' (mm or m)")
        q = self.Q.copy()
        q[3, :] /= UNITS[units] / UNITS[self.units]
        return dataclasses.replace(self, Q=q, units=units)

    @property
    def focal_px(self) -> float:
        return float(self.Q[2, 3])

    @property
    def baseline(self) -> float:
        """In `units`."""
        return float(1.0 / abs(self.Q[3, 2]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (`from_meta` reads it back), e.g. for a recording's header."""
        return {"Q": self.Q.tolist(), "size": list(self.size) if self.size else None, "units": self.units,
                "origin": self.origin}

    def _q_for(self, shape: tuple[int, int]) -> np.ndarray:
        if self.size is None or tuple(self.size) == tuple(shape):
            return self.Q
        sy, sx = self.size[0] / shape[0], self.size[1] / shape[1]
        return self.Q @ np.diag([sx, sy, sx, 1.0])

    def reproject(self, disp: np.ndarray) -> np.ndarray:
        """H x W x 3 float32 points (NaN where the disparity is invalid or the point is not in front)."""
        disp = np.asarray(disp, dtype=np.float32)
        if disp.ndim != 2:
            raise DataError(f"disparity must be H x W, got shape {disp.shape}")
        with np.errstate(invalid="ignore"):
            good = np.isfinite(disp) & (disp > 0)
        xyz = cv2.reprojectImageTo3D(np.where(good, disp, 0).astype(np.float32), self._q_for(disp.shape))
        with np.errstate(invalid="ignore"):
            good &= np.isfinite(xyz).all(axis=2) & (xyz[..., 2] > 0)
        xyz[~good] = np.nan
        return xyz

    def depth(self, disp: np.ndarray) -> np.ndarray:
        """Z in `units` (NaN where invalid)."""
        return self.reproject(disp)[..., 2]


def disparity_to_points(
    disp: np.ndarray,
    calib: DepthCalibration,
    left: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    max_depth: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N x 3 float32 points, N x 3 uint8 RGB colours from `left` or None) of the valid pixels, row-major."""
    xyz = calib.reproject(disp)
    keep = np.isfinite(xyz[..., 2])
    if valid is not None:
        keep &= np.asarray(valid, bool)
    if max_depth is not None:
        keep &= xyz[..., 2] <= max_depth
    colours = None
    if left is not None:
        if left.shape[:2] != disp.shape:
            left = cv2.resize(left, (disp.shape[1], disp.shape[0]), interpolation=cv2.INTER_AREA)
        colours = np.ascontiguousarray(left[keep][:, :3], dtype=np.uint8)
    return np.ascontiguousarray(xyz[keep], dtype=np.float32), colours


_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def write_ply(
    path: str | Path, points: np.ndarray, colours: np.ndarray | None = None, units: str | None = None,
    comments: list[str] | tuple[str, ...] = (),
) -> Path:
    """Binary little-endian PLY: x, y, z float32 (+ red, green, blue uchar); `units` and `comments` go into
    header comments ("comment units mm")."""
    path = Path(path)
    points = np.asarray(points, np.float32).reshape(-1, 3)
    if colours is not None:
        colours = np.asarray(colours, np.uint8).reshape(-1, 3)
        if len(colours) != len(points):
            raise StereoStudioError(f"{len(points)} points but {len(colours)} colours")
    lines = ["ply", "format binary_little_endian 1.0", "comment written by Stereo Studio"]
    if units:
        lines.append(f"comment units {units}")
    lines += [f"comment {c}".replace("\n", " ") for c in comments]
    lines.append(f"element vertex {len(points)}")
    lines += [f"property float {a}" for a in "xyz"]
    if colours is not None:
        lines += [f"property uchar {c}" for c in ("red", "green", "blue")]
    lines.append("end_header")
    if colours is not None:
        data = np.empty(len(points), _VERTEX)
        data["x"], data["y"], data["z"] = points.T
        data["red"], data["green"], data["blue"] = colours.T
    else:
        data = points.astype("<f4")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(("\n".join(lines) + "\n").encode("ascii"))
            f.write(data.tobytes())
    except OSError as exc:
        raise StereoStudioError(f"cannot write point cloud {path}: {exc.strerror or exc}") from exc
    return path


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(points N x 3, colours N x 3 or None, {"units", "comments"}) of a PLY written by `write_ply`."""
    path = Path(path)
    blob = path.read_bytes()
    end = blob.find(b"end_header\n")
    if not blob.startswith(b"ply\n") or end < 0:
        raise DataError(f"{path} is not a PLY file")
    header = blob[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise DataError(f"{path}: only binary little-endian PLY is read here")
    count = next(int(h.split()[2]) for h in header if h.startswith("element vertex"))
    props = [h.split()[2] for h in header if h.startswith("property")]
    comments = [h[len("comment "):] for h in header if h.startswith("comment ")]
    units = next((c.split()[1] for c in comments if c.startswith("units ")), None)
    dtype = _VERTEX if props == list(_VERTEX.names) else np.dtype([(a, "<f4") for a in "xyz"])
    data = np.frombuffer(blob, dtype, count=count, offset=end + len(b"end_header\n"))
    points = np.stack([data["x"], data["y"], data["z"]], axis=1)
    colours = np.stack([data["red"], data["green"], data["blue"]], axis=1) if dtype is _VERTEX else None
    return points, colours, {"units": units, "comments": comments}


def calibration_for(
    meta: dict[str, Any] | None = None, rectifier: Any = None, calib_path: str | Path | None = None
) -> DepthCalibration:
    """The depth calibration of a frame: an explicit file, else the pipeline's rectifier (its Q), else the
    frame's own (`meta["calib"]`: a Middlebury calib.txt or a recording's). DataError when there is none."""
    if calib_path is not None:
        return DepthCalibration.load(calib_path)
    if rectifier is not None:
        return DepthCalibration.from_stereo_calibration(rectifier.calib)
    calib = (meta or {}).get("calib")
    if calib:
        return DepthCalibration.from_meta(calib)
    raise DataError(
        "no calibration for a metric point cloud: give a Middlebury calib.txt or an OpenCV calibration "
        "file (--calib), or use a source that has one"
    )


def export_point_cloud(
    result: Any,
    model: str,
    path: str | Path,
    calib: DepthCalibration,
    units: str | None = None,
    max_depth: float | None = None,
) -> dict[str, Any]:
    """Write the cloud of one model's disparity in a pipeline `FrameResult`, coloured from its left view.
    Returns {"path", "points", "units", "model", "median_depth", "calibration"} (the CLI's JSON)."""
    if model not in result.outputs:
        raise StereoStudioError(f"no model '{model}' in this frame (models: {', '.join(result.outputs)})")
    if units:
        calib = calib.to_units(units)
    disp = result.outputs[model].disparity
    points, colours = disparity_to_points(disp, calib, result.left, max_depth=max_depth)
    if not len(points):
        raise StereoStudioError(f"model '{model}' gave no valid disparity on this frame: no points to write")
    name = str((result.meta or {}).get("name", "") or (result.meta or {}).get("source", ""))
    comments = [FRAME_NOTE, f"model {model}", f"frame {result.index} {name}".strip(),
                f"calibration {calib.origin}"]
    write_ply(path, points, colours, calib.units, comments)
    return {
        "path": str(path),
        "points": len(points),
        "units": calib.units,
        "model": model,
        "median_depth": float(np.median(points[:, 2])),
        "calibration": calib.origin,
    }


def render_view(
    points: np.ndarray,
    colours: np.ndarray | None = None,
    yaw: float = 0.0,
    pitch: float = 0.0,
    size: tuple[int, int] = (360, 480),
    zoom: float = 1.0,
    point_px: int = 2,
    background: tuple[int, int, int] = (24, 24, 24),
) -> np.ndarray:
    """A perspective picture (H x W x 3 uint8 RGB) of a cloud turned by `yaw` / `pitch` degrees about its
    median point, for a 3D view without OpenGL: points drawn far to near as `point_px` squares, so
    the nearest wins. At yaw = pitch = 0 it looks along the left camera's axis. Qt-free (the GUI's
    3D view draws this image and changes yaw / pitch / zoom on drag / wheel)."""
    h, w = size
    image = np.empty((h, w, 3), np.uint8)
    image[:] = background
    pts = np.asarray(points, np.float32).reshape(-1, 3)
    keep = np.isfinite(pts).all(axis=1)
    pts = pts[keep]
    if not len(pts):
        return image
    cols = (np.full((len(pts), 3), 220, np.uint8) if colours is None
            else np.asarray(colours, np.uint8).reshape(-1, 3)[keep])
    centre = np.median(pts, axis=0)
    rel = pts - centre
    extent = float(np.percentile(np.linalg.norm(rel, axis=1), 95)) or 1.0
    a, b = np.deg2rad(yaw), np.deg2rad(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]], np.float32)
    cam = rel @ (rx @ ry).T
    z = cam[:, 2] + 2.5 * extent  # the eye 2.5 extents before the centre
    front = z > 0.05 * extent
    cam, z, cols = cam[front], z[front], cols[front]
    f = zoom * 2.0 * min(h, w)
    u = np.rint(f * cam[:, 0] / z + w / 2).astype(np.int64)
    v = np.rint(f * cam[:, 1] / z + h / 2).astype(np.int64)
    order = np.argsort(-z, kind="stable")  # far to near: nearer points are written later and stay
    u, v, cols = u[order], v[order], cols[order]
    flat = image.reshape(-1, 3)
    for dy in range(point_px):
        for dx in range(point_px):
            x, y = u + dx, v + dy
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            flat[y[inside] * w + x[inside]] = cols[inside]
    return image
