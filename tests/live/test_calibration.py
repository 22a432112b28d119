"""Stereo calibration on the shared chessboard set, and calibration files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_studio.engine.jobs import Progress
from stereo_studio.errors import DataError
from stereo_studio.live.calibration import (
    StereoCalibration,
    calibrate_stereo,
    find_calibration_pairs,
    parse_board,
)


def test_chessboard_set_calibrates_to_subpixel_accuracy(chessboard_calibration) -> None:
    result = chessboard_calibration
    assert result.pairs_used == 13 and result.pairs_rejected == []
    assert result.rms < 1.0 and result.rms_left < 1.0 and result.rms_right < 1.0
    assert result.mean_abs_dy < 0.3
    assert result.warnings() == [] and result.summary()["warnings"] == []  # a good calibration is quiet
    calib = result.calibration
    assert calib.image_size == (480, 640) and calib.has_rectification
    # 25 mm squares: the right camera sits about 8 cm to the right (T points left, along -x)
    assert (
        0.05 < result.baseline < 0.12 and calib.T[0, 0] < 0 and abs(calib.T[0, 0]) > 10 * abs(calib.T[1, 0])
    )
    summary = result.summary()
    assert summary["baseline_mm"] == pytest.approx(1000 * summary["baseline"])
    assert {"rms", "mean_abs_dy", "pairs_used", "baseline"} <= set(summary)


def test_calibration_job_reports_progress(chessboard_dir: Path) -> None:
    job = calibrate_stereo(chessboard_dir)
    first = next(job)
    assert isinstance(first, Progress) and first.total == 13 + 3 and "left01" in first.message
    job.close()


@pytest.mark.parametrize("ext", [".yml", ".xml"])
def test_calibration_file_round_trips(chessboard_calibration, tmp_path: Path, ext: str) -> None:
    calib = chessboard_calibration.calibration
    path = calib.save(tmp_path / f"calib{ext}")
    loaded = StereoCalibration.load(path, expect_size=(480, 640))
    assert loaded.image_size == (480, 640)
    for name in ("K1", "D1", "K2", "D2", "R", "T", "E", "F", "R1", "R2", "P1", "P2", "Q"):
        np.testing.assert_allclose(getattr(loaded, name), getattr(calib, name), rtol=1e-9, atol=1e-12)
    assert loaded.info["rms"] == pytest.approx(chessboard_calibration.rms)
    text = path.read_text()
    assert "K1" in text and "image_width" in text


def test_calibration_file_of_another_size_is_refused(chessboard_calibration, tmp_path: Path) -> None:
    path = chessboard_calibration.calibration.save(tmp_path / "calib.yml")
    with pytest.raises(DataError, match=r"calib\.yml is for 640x480.*frames are 320x240"):
        StereoCalibration.load(path, expect_size=(240, 320))


def test_opencv_sample_names_load_without_rectification(chessboard_calibration, tmp_path: Path) -> None:
    calib = chessboard_calibration.calibration
    path = tmp_path / "intrinsics_extrinsics.yml"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for name, value in (
        ("M1", calib.K1),
        ("D1", calib.D1),
        ("M2", calib.K2),
        ("D2", calib.D2),
        ("R", calib.R),
        ("T", calib.T.ravel()),
    ):
        fs.write(name, value)
    fs.release()
    loaded = StereoCalibration.load(path)
    assert loaded.image_size is None and not loaded.has_rectification
    np.testing.assert_allclose(loaded.K2, calib.K2)
    assert loaded.T.shape == (3, 1)


def test_broken_calibration_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        StereoCalibration.load(tmp_path / "none.yml")
    partial = tmp_path / "partial.yml"
    fs = cv2.FileStorage(str(partial), cv2.FILE_STORAGE_WRITE)
    fs.write("K1", np.eye(3))
    fs.release()
    with pytest.raises(DataError, match=r"lacks D1, K2, D2, R, T"):
        StereoCalibration.load(partial)
    bad = tmp_path / "bad.yml"
    bad.write_text("%YAML:1.0\n---\nK1: [1, 2\n")
    with pytest.raises(DataError, match=r"bad\.yml"):
        StereoCalibration.load(bad)


def test_pairs_are_found_by_name_and_by_folder(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in (1, 2):
        (flat / f"left{i:02d}.png").touch()
        (flat / f"right{i:02d}.png").touch()
    (flat / "notes.txt").touch()
    pairs = find_calibration_pairs(flat)
    assert [(a.name, b.name) for a, b in pairs] == [
        ("left01.png", "right01.png"),
        ("left02.png", "right02.png"),
    ]
    nested = tmp_path / "nested"
    (nested / "left").mkdir(parents=True)
    (nested / "right").mkdir()
    for side in ("left", "right"):
        (nested / side / "a.jpg").touch()
    assert find_calibration_pairs(nested) == [(nested / "left" / "a.jpg", nested / "right" / "a.jpg")]
    with pytest.raises(DataError, match="no stereo image pairs"):
        find_calibration_pairs(tmp_path / "flat" / ".." / "nested" / "left")


def test_images_without_a_board_are_refused(tmp_path: Path) -> None:
    for side in ("left", "right"):
        for i in range(3):
            cv2.imwrite(str(tmp_path / f"{side}{i}.png"), np.full((60, 80), 128, np.uint8))
    with pytest.raises(DataError, match=r"found in only 0 of 3 pairs"):
        list(calibrate_stereo(tmp_path))


def test_parse_board() -> None:
    assert parse_board("9x6") == (9, 6)
    with pytest.raises(DataError, match="COLSxROWS"):
        parse_board("nine")
