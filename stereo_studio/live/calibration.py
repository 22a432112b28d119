"""Stereo calibration from chessboard pairs, and calibration files in OpenCV's FileStorage format.

Units: object points are in metres (`square_mm / 1000`), so `T` and the baseline are in metres.
Files use OpenCV's usual names: K1, D1, K2, D2, R, T (E, F) and R1, R2, P1, P2, Q when present, plus
image_width / image_height. Files written by OpenCV's stereo_calib sample (M1, M2, ...) load too.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_studio.errors import DataError
from stereo_studio.progress import Job, Progress

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}
CALIB_EXTENSIONS = {".yml", ".yaml", ".xml", ".json"}
_MATRICES = ("K1", "D1", "K2", "D2", "R", "T", "E", "F", "R1", "R2", "P1", "P2", "Q")
_ALIASES = {
    "K1": ("K1", "M1", "cameraMatrix1", "cameraMatrixL", "K_left"),
    "K2": ("K2", "M2", "cameraMatrix2", "cameraMatrixR", "K_right"),
    "D1": ("D1", "distCoeffs1", "distCoeffsL", "D_left"),
    "D2": ("D2", "distCoeffs2", "distCoeffsR", "D_right"),
}
# Beyond these a calibration is implausible (a good one is well under 1 px RMS and 0.5 px mean |dy|):
# rectified rows would not line up, and every disparity computed from them is wrong.
MAX_PLAUSIBLE_RMS = 2.0  # stereo reprojection RMS, px
MAX_PLAUSIBLE_DY = 1.0  # mean |y_left - y_right| of corresponding points after rectification, px
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.001)
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9)


@dataclass
class StereoCalibration:
    """Intrinsics (K, D) of both cameras, the pose of the right camera (R, T, metres) and, when computed,
    the rectification (R1, R2, P1, P2, Q). `image_size` is (height, width) of one view; None if unknown."""

    image_size: tuple[int, int] | None
    K1: np.ndarray
    D1: np.ndarray
    K2: np.ndarray
    D2: np.ndarray
    R: np.ndarray
    T: np.ndarray
    E: np.ndarray | None = None
    F: np.ndarray | None = None
    R1: np.ndarray | None = None
    R2: np.ndarray | None = None
    P1: np.ndarray | None = None
    P2: np.ndarray | None = None
    Q: np.ndarray | None = None
    info: dict[str, float] = field(default_factory=dict)
    path: str | None = None  # the file it was loaded from, for messages

    def __post_init__(self) -> None:
        for name in _MATRICES:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))
        if self.T.size == 3:
            self.T = self.T.reshape(3, 1)

    @property
    def has_rectification(self) -> bool:
        return all(getattr(self, k) is not None for k in ("R1", "R2", "P1", "P2", "Q"))

    @property
    def baseline(self) -> float:
        """Distance between the optical centres (metres when calibrated here)."""
        return float(np.linalg.norm(self.T))

    def with_rectification(self, alpha: float = 0.0) -> StereoCalibration:
        """A copy with R1, R2, P1, P2, Q computed by `cv2.stereoRectify` (alpha 0 keeps only valid pixels)."""
        if self.image_size is None:
            raise DataError("cannot compute rectification: the calibration does not say its image size")
        h, w = self.image_size
        R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(
            self.K1,
            self.D1,
            self.K2,
            self.D2,
            (w, h),
            self.R,
            self.T,
            flags=cv2.CALIB_ZERO_DISPARITY,
            alpha=alpha,
        )
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(R1=R1, R2=R2, P1=P1, P2=P2, Q=Q, info=dict(self.info))
        return StereoCalibration(**values)

    def quality_warnings(self) -> list[str]:
        """`quality_warnings` of the numbers this calibration was saved with (none when it has none)."""
        return quality_warnings(self.info.get("rms"), self.info.get("mean_abs_dy"), self.path)

    def check_size(self, size: tuple[int, int], what: str = "the frames") -> None:
        """Raise DataError when `size` (height, width) is not the calibrated image size."""
        if self.image_size is not None and tuple(size) != tuple(self.image_size):
            ch, cw = self.image_size
            raise DataError(
                f"calibration{_origin(self)} is for {cw}x{ch} (WxH) images but {what} are "
                f"{size[1]}x{size[0]}: calibrate at this resolution or capture at {cw}x{ch}"
            )

    def save(self, path: str | Path) -> Path:
        """Write an OpenCV FileStorage file (.yml, .yaml, .xml or .json)."""
        path = Path(path)
        if path.suffix.lower() not in CALIB_EXTENSIONS:
            raise DataError(f"calibration file {path}: use a .yml, .yaml, .xml or .json name")
        path.parent.mkdir(parents=True, exist_ok=True)
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
        if not fs.isOpened():
            raise DataError(f"cannot write calibration file {path}")
        try:
            if self.image_size is not None:
                fs.write("image_width", int(self.image_size[1]))
                fs.write("image_height", int(self.image_size[0]))
            for name in _MATRICES:
                value = getattr(self, name)
                if value is not None:
                    fs.write(name, np.asarray(value, dtype=np.float64))
            for key, value in self.info.items():
                fs.write(key, float(value))
        finally:
            fs.release()
        return path

    @classmethod
    def load(cls, path: str | Path, expect_size: tuple[int, int] | None = None) -> StereoCalibration:
        """Read a FileStorage calibration file; refuse it when `expect_size` (height, width) differs."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"calibration file not found: {path}")
        try:
            fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        except (cv2.error, SystemError) as exc:  # OpenCV's parser errors surface as either
            raise DataError(f"calibration file {path} is not valid OpenCV YAML / XML / JSON") from exc
        if not fs.isOpened():
            raise DataError(f"calibration file {path} cannot be read as OpenCV YAML / XML / JSON")
        try:
            values: dict[str, Any] = {}
            for name in _MATRICES:
                values[name] = _read_mat(fs, _ALIASES.get(name, (name,)))
            missing = [n for n in ("K1", "D1", "K2", "D2", "R", "T") if values[n] is None]
            if missing:
                raise DataError(f"calibration file {path} lacks {', '.join(missing)}")
            values["image_size"] = _read_size(fs)
            info = {}
            for key in ("rms", "mean_abs_dy", "square_size_m"):
                node = fs.getNode(key)
                if not node.empty() and node.isReal():
                    info[key] = float(node.real())
        finally:
            fs.release()
        try:
            calib = cls(**values, info=info)
            _validate(calib)
        except (ValueError, TypeError) as exc:
            raise DataError(f"calibration file {path} is malformed: {exc}") from exc
        calib.path = str(path)
        if expect_size is not None:
            calib.check_size(expect_size)
        return calib


def _origin(calib: StereoCalibration) -> str:
    return f" file {calib.path}" if calib.path else ""


def _read_mat(fs: cv2.FileStorage, names: tuple[str, ...]) -> np.ndarray | None:
    for name in names:
        node = fs.getNode(name)
        if not node.empty() and not node.isNone():
            mat = node.mat()
            if mat is not None:
                return np.asarray(mat, dtype=np.float64)
    return None


def _read_size(fs: cv2.FileStorage) -> tuple[int, int] | None:
    w, h = fs.getNode("image_width"), fs.getNode("image_height")
    if not w.empty() and not h.empty():
        return int(h.real()), int(w.real())
    node = fs.getNode("imageSize")
    if not node.empty() and node.isSeq() and node.size() == 2:
        return int(node.at(1).real()), int(node.at(0).real())
    return None


def _validate(c: StereoCalibration) -> None:
    shapes = {
        "K1": (3, 3),
        "K2": (3, 3),
        "R": (3, 3),
        "R1": (3, 3),
        "R2": (3, 3),
        "P1": (3, 4),
        "P2": (3, 4),
        "Q": (4, 4),
        "E": (3, 3),
        "F": (3, 3),
    }
    for name, shape in shapes.items():
        value = getattr(c, name)
        if value is not None and value.shape != shape:
            raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
    if c.T.size != 3:
        raise ValueError(f"T has {c.T.size} values, expected 3")
    for name in ("D1", "D2"):
        if getattr(c, name).size not in (4, 5, 8, 12, 14):
            raise ValueError(f"{name} has {getattr(c, name).size} coefficients")


# ----------------------------------------------------------------------------------------------- calibration


@dataclass
class CalibrationResult:
    """What `calibrate_stereo` found: the calibration (with rectification) and its quality numbers."""

    calibration: StereoCalibration
    rms: float  # stereo reprojection RMS, px
    rms_left: float
    rms_right: float
    mean_abs_dy: float  # mean |y_left - y_right| of corresponding corners after rectification, px
    max_abs_dy: float
    pairs_used: int
    pairs_rejected: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> float:
        return self.calibration.baseline

    def warnings(self) -> list[str]:
        """Messages when the rectification error is implausible (see `quality_warnings`)."""
        return quality_warnings(self.rms, self.mean_abs_dy)

    def summary(self) -> dict[str, Any]:
        """Numbers for JSON output."""
        data = {k: v for k, v in asdict(self).items() if k != "calibration"}
        data["warnings"] = self.warnings()
        h, w = self.calibration.image_size or (0, 0)
        data.update(
            baseline=self.baseline,
            baseline_mm=self.baseline * 1000.0,
            image_size=f"{h}x{w}",
            focal_px=float(self.calibration.P1[0, 0]) if self.calibration.P1 is not None else None,
        )
        return data


def quality_warnings(rms: float | None, mean_abs_dy: float | None, path: str | None = None) -> list[str]:
    """One message per implausible number: reprojection RMS above MAX_PLAUSIBLE_RMS px, or rows still
    MAX_PLAUSIBLE_DY px apart on average after rectification."""
    where = f" ({path})" if path else ""
    out = []
    if rms is not None and not rms <= MAX_PLAUSIBLE_RMS:
        out.append(f"calibration{where}: reprojection RMS {rms:.2f} px is implausible (a good one is below 1 "
                   "px): check the --board corner count, the pairing of left and right images, sharp images")
    if mean_abs_dy is not None and not mean_abs_dy <= MAX_PLAUSIBLE_DY:
        out.append(f"calibration{where}: rectified rows are {mean_abs_dy:.2f} px apart on average (should be "
                   "well below 1 px): disparities computed after this rectification are unreliable")
    return out


def find_calibration_pairs(image_dir: str | Path) -> list[tuple[Path, Path]]:
    """Left / right image pairs in a folder: from image_list.xml / .yml (OpenCV's stereo_calib list,
    alternating left and right), from left/ and right/ subfolders, or from names containing left / right."""
    root = Path(image_dir)
    if root.is_file():
        return _pairs_from_list(root, root.parent)
    if not root.is_dir():
        raise DataError(f"calibration image folder not found: {root}")
    for name in ("image_list.xml", "image_list.yml", "image_list.yaml", "stereo_calib.xml"):
        if (root / name).is_file():
            return _pairs_from_list(root / name, root)
    for left_name, right_name in (("left", "right"), ("Left", "Right"), ("L", "R"), ("cam0", "cam1")):
        if (root / left_name).is_dir() and (root / right_name).is_dir():
            lefts = _images(root / left_name)
            pairs = [(p, root / right_name / p.name) for p in lefts if (root / right_name / p.name).is_file()]
            if pairs:
                return pairs
    pairs = []
    for path in _images(root):
        match = re.search(r"left|Left|LEFT", path.stem)
        if match:
            token = {"left": "right", "Left": "Right", "LEFT": "RIGHT"}[match.group(0)]
            stem = path.stem[: match.start()] + token + path.stem[match.end() :]
            partner = next((p for p in _images(root) if p.stem == stem), None)
            if partner is not None:
                pairs.append((path, partner))
    if not pairs:
        raise DataError(
            f"no stereo image pairs in {root}: expected image_list.xml, left/ and right/ folders, "
            "or files named like left01.jpg / right01.jpg"
        )
    return pairs


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _pairs_from_list(list_file: Path, root: Path) -> list[tuple[Path, Path]]:
    try:
        fs = cv2.FileStorage(str(list_file), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as exc:
        raise DataError(f"image list {list_file} is not valid OpenCV XML / YAML") from exc
    if not fs.isOpened():
        raise DataError(f"cannot read image list {list_file}")
    try:
        node = fs.getNode("imagelist")
        if node.empty():
            node = fs.root().at(0) if fs.root().size() else node
        names = [node.at(i).string() for i in range(node.size())] if node.isSeq() else []
    finally:
        fs.release()
    if len(names) < 2 or len(names) % 2:
        raise DataError(f"image list {list_file} must list left and right images alternately")
    pairs = [(root / names[i], root / names[i + 1]) for i in range(0, len(names), 2)]
    missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if missing:
        raise DataError(f"image list {list_file} names missing files: {', '.join(missing[:3])}")
    return pairs


def parse_board(text: str) -> tuple[int, int]:
    """'9x6' -> (9, 6): inner corners per row x per column."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise DataError(f"bad board size '{text}': expected inner corners as COLSxROWS, e.g. 9x6") from exc
    if cols < 2 or rows < 2:
        raise DataError(f"bad board size '{text}': at least 2x2 inner corners")
    return cols, rows


def detect_corners(gray: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    """Chessboard inner corners (N x 1 x 2 float32, sub-pixel refined), or None when not found."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not found:
        return None
    # sub-pixel window: about a third of a square, at most 11 px (11 x 11 is OpenCV's sample value)
    spacing = float(np.median(np.linalg.norm(np.diff(corners.reshape(-1, 2), axis=0), axis=1)))
    half = int(np.clip(spacing / 3.0, 2, 11))
    refined = cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), _SUBPIX_CRITERIA)
    return refined.reshape(-1, 1, 2).astype(np.float32)


def calibrate_stereo(
    image_dir: str | Path, board: tuple[int, int] = (9, 6), square_mm: float = 25.0, alpha: float = 0.0
) -> Job[CalibrationResult]:
    """Calibrate a stereo pair from chessboard images (a job yielding Progress, returning CalibrationResult).

    Steps: corners with sub-pixel refinement in every pair (pairs where either view misses the board are
    skipped), per-camera `calibrateCamera`, `stereoCalibrate` with fixed intrinsics, `stereoRectify`
    (alpha 0: only valid pixels), then the rectified corners' mean |dy| as the quality check.
    """
    pairs = find_calibration_pairs(image_dir)
    total = len(pairs) + 3
    square = square_mm / 1000.0
    objp = np.zeros((board[0] * board[1], 3), np.float32)
    objp[:, :2] = np.mgrid[0 : board[0], 0 : board[1]].T.reshape(-1, 2) * square
    obj_points, left_points, right_points = [], [], []
    rejected: list[str] = []
    size: tuple[int, int] | None = None
    for i, (left_path, right_path) in enumerate(pairs):
        yield Progress(i, total, f"corners {left_path.name}", kind="step")
        views = []
        for path in (left_path, right_path):
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise DataError(f"cannot read calibration image {path}")
            if size is None:
                size = gray.shape[:2]
            elif gray.shape[:2] != size:
                raise DataError(
                    f"calibration image {path} is {gray.shape[1]}x{gray.shape[0]}, "
                    f"the others {size[1]}x{size[0]}: all images must have one size"
                )
            views.append(detect_corners(gray, board))
        if views[0] is None or views[1] is None:
            rejected.append(left_path.name)
            continue
        obj_points.append(objp)
        left_points.append(views[0])
        right_points.append(views[1])
    if len(obj_points) < 3:
        raise DataError(
            f"the {board[0]}x{board[1]} chessboard was found in only {len(obj_points)} of {len(pairs)} pairs "
            f"in {image_dir}: need at least 3 (check --board: inner corners, e.g. 9x6)"
        )
    assert size is not None
    h, w = size
    yield Progress(len(pairs), total, "calibrating cameras", kind="step")
    rms_l, K1, D1, _, _ = cv2.calibrateCamera(obj_points, left_points, (w, h), None, None)
    rms_r, K2, D2, _, _ = cv2.calibrateCamera(obj_points, right_points, (w, h), None, None)
    yield Progress(len(pairs) + 1, total, "stereo calibration", kind="step")
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-6)
    # OpenCV writes the outputs into the given arrays: pass copies.
    rms, K1, D1, K2, D2, R, T, E, F = cv2.stereoCalibrate(
        obj_points,
        left_points,
        right_points,
        K1.copy(),
        D1.copy(),
        K2.copy(),
        D2.copy(),
        (w, h),
        flags=cv2.CALIB_FIX_INTRINSIC,
        criteria=criteria,
    )
    yield Progress(len(pairs) + 2, total, "rectification", kind="step")
    calib = StereoCalibration((h, w), K1, D1, K2, D2, R, T, E, F).with_rectification(alpha)
    dy = rectified_dy(calib, left_points, right_points)
    calib.info.update(rms=float(rms), mean_abs_dy=float(dy.mean()), square_size_m=square)
    yield Progress(
        total,
        total,
        f"rms {rms:.3f} px, mean |dy| {dy.mean():.3f} px",
        kind="step",
        metrics={"rms": float(rms), "mean_abs_dy": float(dy.mean())},
    )
    for message in quality_warnings(float(rms), float(dy.mean())):
        yield Progress(total, total, message, kind="warning")
    return CalibrationResult(
        calib,
        float(rms),
        float(rms_l),
        float(rms_r),
        float(dy.mean()),
        float(dy.max()),
        len(obj_points),
        rejected,
    )


def rectified_dy(
    calib: StereoCalibration, left_points: list[np.ndarray], right_points: list[np.ndarray]
) -> np.ndarray:
    """|y_left - y_right| (px) of corresponding points after rectification, all pairs concatenated."""
    if not calib.has_rectification:
        calib = calib.with_rectification()
    left = np.concatenate([p.reshape(-1, 1, 2) for p in left_points]).astype(np.float64)
    right = np.concatenate([p.reshape(-1, 1, 2) for p in right_points]).astype(np.float64)
    ul = cv2.undistortPoints(left, calib.K1, calib.D1, R=calib.R1, P=calib.P1, criteria=_UNDISTORT_CRITERIA)
    ur = cv2.undistortPoints(right, calib.K2, calib.D2, R=calib.R2, P=calib.P2, criteria=_UNDISTORT_CRITERIA)
    return np.abs(ul[:, 0, 1] - ur[:, 0, 1])
