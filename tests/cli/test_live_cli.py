"""`stereo-studio calibrate` and `stereo-studio preview` (run in-process through the CLI entry point)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_studio.cli import main
from stereo_studio.live.calibration import StereoCalibration

PREVIEW_KEYS = {"frames", "fps", "grab", "rectify", "infer", "colormap"}


def write_sbs_video(path: Path, frames: int, h: int = 64, w: int = 96, shift: int = 4) -> Path:
    """A side-by-side MJPG video of a blocky random texture, the right view shifted by `shift` px."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (2 * w, h))
    for i in range(frames):
        grey = np.random.default_rng(i).integers(0, 256, (h // 4, (w + shift) // 4 + 1), dtype=np.uint8)
        grey = np.kron(grey, np.ones((4, 4), np.uint8))[:, : w + shift]
        writer.write(cv2.cvtColor(np.concatenate([grey[:, shift:], grey[:, :w]], axis=1), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_sbs_video(tmp_path / "sbs.avi", 8)


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def test_calibrate_prints_the_contract_keys(capsys, chessboard_dir: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "calib.yml"
    code, data = run_json(
        capsys,
        "calibrate",
        "--images",
        str(chessboard_dir),
        "--board",
        "9x6",
        "--square",
        "25",
        "--out",
        str(out_file),
        "--json",
    )
    assert code == 0
    assert data["rms"] < 1.0 and data["mean_abs_dy"] < 0.3 and data["pairs_used"] == 13
    assert 0.05 < data["baseline"] < 0.12
    assert StereoCalibration.load(out_file, expect_size=(480, 640)).has_rectification


def test_calibrate_without_a_board_fails_clearly(capsys, tmp_path: Path) -> None:
    for side in ("left", "right"):
        for i in range(3):
            cv2.imwrite(str(tmp_path / f"{side}{i}.png"), np.full((60, 80), 200, np.uint8))
    code = main(["calibrate", "--images", str(tmp_path), "--out", str(tmp_path / "c.yml")])
    assert code == 2
    assert "chessboard was found in only 0 of 3 pairs" in capsys.readouterr().err


def test_preview_headless_plays_a_sbs_video(capsys, video: Path) -> None:
    code, data = run_json(
        capsys,
        "preview",
        "--source",
        str(video),
        "--model",
        "sgbm",
        "--max-disp",
        "16",
        "--headless",
        "--json",
    )
    assert code == 0 and set(data) >= PREVIEW_KEYS
    assert data["frames"] == 8 and data["fps"] > 0 and data["infer"] > 0 and data["error"] is None
    assert data["models"]["sgbm"]["ms"] > 0


def test_preview_with_calibration_snapshot_and_recording(capsys, video: Path, tmp_path: Path) -> None:
    K = np.array([[80.0, 0, 47.5], [0, 80.0, 31.5], [0, 0, 1]])
    calib = StereoCalibration((64, 96), K, np.zeros(5), K, np.zeros(5), np.eye(3), np.array([-0.1, 0, 0]))
    calib_file = calib.save(tmp_path / "calib.yml")
    code, data = run_json(
        capsys,
        "preview",
        "--source",
        str(video),
        "--calib",
        str(calib_file),
        "--model",
        "sgbm",
        "--model",
        "sgbm",
        "--max-disp",
        "16",
        "--frames",
        "3",
        "--snapshot",
        str(tmp_path / "s"),
        "--record",
        str(tmp_path / "rec.avi"),
        "--range",
        "0:16",
        "--headless",
        "--json",
    )
    assert code == 0 and data["frames"] == 3 and data["rectify"] > 0
    assert set(data["models"]) == {"sgbm", "sgbm#2"}
    assert Path(data["snapshot"]["sgbm/disp16"]).is_file() and data["recorded"]["frames"] == 3
    wrong = calib
    wrong.image_size = (480, 640)
    wrong.save(tmp_path / "wrong.yml")
    code = main(["preview", "--source", str(video), "--calib", str(tmp_path / "wrong.yml"), "--headless"])
    assert code == 2 and "is for 640x480" in capsys.readouterr().err


def test_preview_missing_and_failing_sources(capsys, tmp_path: Path) -> None:
    assert main(["preview", "--source", str(tmp_path / "none.mp4"), "--headless"]) == 2
    assert "source not found" in capsys.readouterr().err
    full = write_sbs_video(tmp_path / "full.avi", 30).read_bytes()
    (tmp_path / "cut.avi").write_bytes(full[: len(full) // 2])
    code, data = run_json(
        capsys, "preview", "--source", str(tmp_path / "cut.avi"), "--max-disp", "16", "--headless", "--json"
    )
    assert code == 1 and "truncated" in data["error"] and 0 < data["frames"] < 30


def test_preview_window_shows_frames_offscreen(capsys, video: Path) -> None:
    code, data = run_json(
        capsys, "preview", "--source", str(video), "--max-disp", "16", "--frames", "2", "--json"
    )
    assert code == 0 and data["frames"] == 2


def assert_sgbm_scores_on_aloe_q(scores: dict, aloe_q: Path) -> None:
    """SGBM's preview scores on Aloe Q: near the README reference (EPE 1.42 px, bad-3 10.0 %) and far
    better than the best constant prediction (the GT median, 14.75 px: EPE 5.22 px, bad-3 37.4 %)."""
    from stereo_studio.data.pfm import read_pfm
    from stereo_studio.metrics import disparity_metrics

    gt = read_pfm(aloe_q / "disp0GT.pfm")
    valid = np.isfinite(gt) & (gt > 0)
    constant = disparity_metrics(np.full_like(gt, np.median(gt[valid])), gt, valid)
    assert scores["pixels"] == np.count_nonzero(valid), scores  # scored on the whole GT
    assert scores["epe"] < 2.0 and scores["bad3"] < 15.0, scores
    assert scores["epe"] < 0.4 * constant["epe"], (scores, constant)
    assert scores["bad3"] < 0.4 * constant["bad3"], (scores, constant)


def test_preview_scores_against_ground_truth(capsys, aloe_q: Path) -> None:
    code, data = run_json(
        capsys, "preview", "--source", str(aloe_q), "--max-disp", "64", "--headless", "--json"
    )
    assert code == 0 and data["frames"] == 1
    assert_sgbm_scores_on_aloe_q(data["models"]["sgbm"], aloe_q)
    code, data = run_json(
        capsys,
        "preview",
        "--source",
        "synthetic",
        "--size",
        "64x96",
        "--frames",
        "2",
        "--max-disp",
        "32",
        "--headless",
        "--json",
    )
    assert code == 0 and data["frames"] == 2 and "epe" in data["models"]["sgbm"]


@pytest.mark.parametrize("value", [0.0, 14.75, 20.0])
def test_the_preview_accuracy_check_fails_a_constant(capsys, aloe_q: Path, monkeypatch, value) -> None:
    """Mutant: SGBM replaced by a constant prediction (14.75 px is the GT median) fails the check above."""
    from stereo_studio.models.matchers import SGBMMatcher

    def constant(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.full(left.shape[:2], value, np.float32)

    monkeypatch.setattr(SGBMMatcher, "predict", constant)
    code, data = run_json(
        capsys, "preview", "--source", str(aloe_q), "--max-disp", "64", "--headless", "--json"
    )
    assert code == 0 and data["frames"] == 1
    with pytest.raises(AssertionError):
        assert_sgbm_scores_on_aloe_q(data["models"]["sgbm"], aloe_q)
