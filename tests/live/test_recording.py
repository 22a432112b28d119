"""Snapshots and recordings of pipeline results."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from live_helpers import ShiftMatcher, sample_list

from stereo_studio.errors import StereoStudioError
from stereo_studio.live.pipeline import StereoPipeline
from stereo_studio.live.recording import DisparityRecorder, disparity_to_png16, mosaic, save_snapshot
from stereo_studio.live.sources import DatasetSource


@pytest.fixture
def result():
    pipe = StereoPipeline(None, [ShiftMatcher(6.25, name="net/a"), ShiftMatcher(2.0, name="sgbm")])
    return pipe.process(DatasetSource(sample_list(1), "one").read())


def test_snapshot_writes_left_16bit_and_colour_pngs(result, tmp_path: Path) -> None:
    paths = save_snapshot(tmp_path / "snaps", result)
    assert paths["left"].name == "frame000000_left.png"
    disp16 = cv2.imread(str(paths["net/a/disp16"]), cv2.IMREAD_UNCHANGED)
    assert disp16.dtype == np.uint16 and disp16.shape == (48, 64)
    assert np.allclose(disp16 / 256.0, 6.25)
    color = cv2.cvtColor(cv2.imread(str(paths["sgbm/color"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(color, result.outputs["sgbm"].color)
    left = cv2.cvtColor(cv2.imread(str(paths["left"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(left, result.left)
    assert paths["sgbm/error"].is_file()  # scored against ground truth


def test_png16_marks_invalid_as_zero() -> None:
    out = disparity_to_png16(np.array([[np.nan, -1.0, 1.5, 300.0]], np.float32))
    assert out.tolist() == [[0, 0, 384, 65535]]


@pytest.mark.parametrize("name", ["rec.mp4", "rec.avi"])
def test_recorder_writes_a_playable_video(result, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with DisparityRecorder(path, fps=15) as rec:
        for _ in range(5):
            rec.write_result(result)
    assert rec.frames == 5
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == mosaic(result).shape[1] == 3 * 64
    cap.release()


def test_recorder_refuses_bad_names_and_size_changes(result, tmp_path: Path) -> None:
    with pytest.raises(StereoStudioError, match=r"use a \.mp4"):
        DisparityRecorder(tmp_path / "x.gif")
    rec = DisparityRecorder(tmp_path / "one.avi")
    rec.write_result(result, model="sgbm")
    with pytest.raises(StereoStudioError, match="differs"):
        rec.write(mosaic(result))
    rec.close()
