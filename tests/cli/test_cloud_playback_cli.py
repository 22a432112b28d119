"""Issue 13 on the command line: `cloud`, `--post-filter`, `--sgbm`, `preview --record-raw / --start`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_studio.cli import main
from stereo_studio.live.pointcloud import read_ply


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else {"stderr": captured.err})


def write_sbs_video(path: Path, frames: int, h: int = 64, w: int = 96, shift: int = 4) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (2 * w, h))
    for i in range(frames):
        grey = np.random.default_rng(i).integers(0, 256, (h // 4, (w + shift) // 4 + 1), dtype=np.uint8)
        grey = np.kron(grey, np.ones((4, 4), np.uint8))[:, : w + shift]
        pair = np.concatenate([grey[:, :w], grey[:, shift:]], axis=1)  # disparity `shift` everywhere
        writer.write(cv2.cvtColor(pair, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.mark.parametrize("model", ["sgbm", "student"])
def test_cloud_of_aloe_has_the_ground_truths_median_depth(capsys, aloe_q: Path, tmp_path: Path, model: str):
    out = tmp_path / f"{model}.ply"
    code, data = run_json(capsys, "cloud", "--model", model, "--data", str(aloe_q), "--out", str(out),
                          "--json")
    assert code == 0, data
    assert data["path"] == str(out) and data["units"] == "mm" and data["model"] == model
    assert data["points"] > 0.9 * 277 * 320
    points, colours, info = read_ply(out)
    assert len(points) == data["points"] and colours is not None and info["units"] == "mm"
    assert abs(data["median_depth"] / data["gt_median_depth"] - 1) < 0.10
    assert np.median(points[:, 2]) == pytest.approx(data["median_depth"])


def test_cloud_options_and_refusals(capsys, aloe_q: Path, tmp_path: Path) -> None:
    code, data = run_json(capsys, "cloud", "--model", "sgbm", "--data", str(aloe_q), "--out",
                          str(tmp_path / "m.ply"), "--units", "m", "--max-depth", "10",
                          "--post-filter", "hole,median", "--sgbm", "block=7", "--json")
    assert code == 0 and data["units"] == "m" and data["post_filters"] == ["hole", "median"]
    assert read_ply(tmp_path / "m.ply")[0][:, 2].max() <= 10.0
    for argv, message in [
        (["--index", "1"], "out of range"),
        (["--post-filter", "temporal"], "temporal"),
        (["--sgbm", "block=4"], "odd"),
        (["--out", str(tmp_path / "x.obj")], ".ply"),
    ]:
        args = ["cloud", "--model", "sgbm", "--data", str(aloe_q), "--out", str(tmp_path / "y.ply"), *argv]
        assert main(args) == 2
        assert message in capsys.readouterr().err


def test_cloud_of_a_video_frame_needs_a_calibration(capsys, tmp_path: Path) -> None:
    video = write_sbs_video(tmp_path / "v.avi", 3)
    assert main(["cloud", "--model", "sgbm", "--data", str(video), "--index", "2",
                 "--out", str(tmp_path / "v.ply")]) == 2
    assert "no calibration" in capsys.readouterr().err
    calib = tmp_path / "calib.txt"
    calib.write_text("cam0=[100 0 47.5; 0 100 31.5; 0 0 1]\ncam1=[100 0 47.5; 0 100 31.5; 0 0 1]\ndoffs=0\n"
                     "baseline=60\nwidth=96\nheight=64\nndisp=16\n")
    code, data = run_json(capsys, "cloud", "--model", "sgbm", "--data", str(video), "--index", "2",
                          "--calib", str(calib), "--out", str(tmp_path / "v.ply"), "--json")
    assert code == 0 and data["frame"] == 2 and data["units"] == "mm"
    assert data["median_depth"] == pytest.approx(100 * 60 / 4, rel=0.1)  # the video's shift is 4 px


def test_eval_post_filter_and_sgbm_options(capsys, aloe_q: Path) -> None:
    code, plain = run_json(capsys, "eval", "--model", "sgbm", "--data", str(aloe_q), "--json")
    code2, tuned = run_json(capsys, "eval", "--model", "sgbm", "--data", str(aloe_q), "--json",
                            "--post-filter", "guided", "--sgbm", "block=5,p1=600,p2=2400")
    assert code == code2 == 0
    assert tuned["post_filters"] == ["guided"] and tuned["filter_ms_per_pair"] > 0
    assert tuned["sgbm"]["P1"] == 600 and tuned["epe"] < plain["epe"]
    assert main(["eval", "--model", "student", "--data", str(aloe_q), "--sgbm", "block=3"]) == 2
    assert "no --model is sgbm" in capsys.readouterr().err
    assert main(["eval", "--model", "sgbm", "--data", str(aloe_q), "--post-filter", "blur"]) == 2
    assert "unknown post-filter 'blur'" in capsys.readouterr().err


def test_preview_records_raw_and_plays_the_recording_back(capsys, tmp_path: Path) -> None:
    video = write_sbs_video(tmp_path / "v.avi", 8)
    rec = tmp_path / "rec"
    code, data = run_json(capsys, "preview", "--source", str(video), "--model", "sgbm", "--max-disp", "16",
                          "--headless", "--json", "--start", "3", "--record-raw", str(rec),
                          "--post-filter", "hole,temporal", "--sgbm", "block=3")
    assert code == 0 and data["frames"] == 5 and data["recorded_raw"]["frames"] == 5
    assert data["models"]["sgbm"]["filter_ms"] > 0
    disp16 = cv2.imread(str(rec / "disp" / "sgbm" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert disp16.dtype == np.uint16 and np.median(disp16) == pytest.approx(4 * 256, abs=64)
    assert (rec / "frames.csv").read_text().splitlines()[1].split(",")[2] == "3"  # source position

    code, data = run_json(capsys, "preview", "--source", str(rec), "--model", "sgbm", "--max-disp", "16",
                          "--headless", "--json", "--start", "2")
    assert code == 0 and data["frames"] == 3 and set(data["models"]) == {"sgbm", "sgbm (recorded)"}
    assert main(["preview", "--source", str(rec), "--headless", "--start", "9"]) == 2
    assert "out of range" in capsys.readouterr().err
