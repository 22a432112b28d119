"""Seekable sources (videos, datasets, recordings) and lossless raw recordings played back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from live_helpers import FakeSource, ShiftMatcher, sample_list, write_sbs_video

from stereo_studio.errors import SourceError, StereoStudioError
from stereo_studio.live.pipeline import StereoPipeline
from stereo_studio.live.playback import (
    RawRecorder,
    RecorderGroup,
    Recording,
    decode_disparity,
    encode_disparity,
    raw_folder_for,
)
from stereo_studio.live.recording import DisparityRecorder
from stereo_studio.live.sources import DatasetSource, open_source


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_seek_is_exact_in_both_directions(tmp_path: Path, suffix: str) -> None:
    video = write_sbs_video(tmp_path / f"v{suffix}", 15)
    with open_source(video) as src:
        frames = [f.left for f in src]
    with open_source(video) as src:
        assert src.seekable and src.length == 15 and src.position == 0
        for i in (9, 2, 14, 0, 7, 8):
            frame = src.read_at(i)
            assert frame.index == i and frame.meta["position"] == i and src.position == i + 1
            assert np.array_equal(frame.left, frames[i])
        with pytest.raises(SourceError, match="out of range"):
            src.seek(15)
        src.seek(14)
        assert src.read() is not None and src.read() is None  # the end after a seek


def test_dataset_seek_is_bounded_and_cameras_cannot_seek() -> None:
    src = DatasetSource(sample_list(4), "list")
    assert src.seekable and src.length == 4
    assert src.read_at(3).meta["name"] == "s3" and src.read() is None
    with pytest.raises(SourceError, match=r"out of range \(0 to 3\)"):
        src.seek(-1)
    cam = FakeSource(count=3, live=True)
    assert not cam.seekable
    with pytest.raises(SourceError, match="cannot seek"):
        cam.seek(0)


def test_loop_position_restarts_while_index_counts_on(tmp_path: Path) -> None:
    with open_source(write_sbs_video(tmp_path / "v.avi", 4), loop=True) as src:
        frames = [src.read() for _ in range(6)]
        assert src.length == 4 and src.frame_count is None
    assert [f.index for f in frames] == list(range(6))
    assert [f.meta["position"] for f in frames] == [0, 1, 2, 3, 0, 1]


def test_disparity_encoding_is_lossless_to_a_256th_pixel() -> None:
    disp = np.array([[0.0, -1.0, np.nan, 1.0 / 3, 63.999, 255.99]], np.float32)
    back = decode_disparity(encode_disparity(disp))
    assert back[0, :3].tolist() == [0, 0, 0]
    assert np.abs(back[0, 3:] - disp[0, 3:]).max() <= 0.5 / 256 + 1e-6


def test_raw_recording_round_trip_and_playback(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    with FakeSource(count=5) as src:
        pipe = StereoPipeline(src, [ShiftMatcher(6.25, name="a"), ShiftMatcher(3.5, name="b/x")])
        group = RecorderGroup([DisparityRecorder(tmp_path / "rec.avi", fps=10), RawRecorder(rec_dir, fps=10)])
        results = []
        for event in pipe.run():
            if event.kind == "frame":
                group.write_result(event.payload)
                results.append(event.payload)
        group.close()
    assert group.frames == 5 and raw_folder_for(tmp_path / "rec.avi") == tmp_path / "rec.raw"
    raw = cv2.imread(str(rec_dir / "disp" / "b_x" / "000004.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and (raw == 3.5 * 256).all()

    rec = Recording(rec_dir)
    assert len(rec) == 5 and set(rec.models) == {"a", "b/x"} and rec.fps == 10
    sample = rec[2]
    assert np.array_equal(sample.left, results[2].left) and np.array_equal(sample.right, results[2].right)
    assert (sample.meta["recorded"]["a"] == 6.25).all() and sample.meta["timestamp"] >= 0

    with open_source(rec_dir) as src:  # a recording folder is a seekable source
        assert src.seekable and src.length == 5
        frame = src.read_at(4)
        out = StereoPipeline(None, [ShiftMatcher(1.0, name="a")]).process(frame)
    assert set(out.outputs) == {"a", "a (recorded)", "b/x (recorded)"}
    assert (out.outputs["a (recorded)"].disparity == 6.25).all() and out.outputs["a"].ms >= 0

    with pytest.raises(StereoStudioError, match="not empty"):
        RawRecorder(rec_dir)


def test_an_interrupted_recording_still_opens(tmp_path: Path) -> None:
    recorder = RawRecorder(tmp_path / "r")
    with FakeSource(count=2) as src:
        for event in StereoPipeline(src, [ShiftMatcher()]).run():
            if event.kind == "frame":
                recorder.write_result(event.payload)
    # not closed: frames.csv was flushed per frame
    assert len(Recording(tmp_path / "r")) == 2
    recorder.close()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "recording.json").write_text('{"format": "other"}')
    with pytest.raises(SourceError, match="not a Stereo Studio recording"):
        open_source(tmp_path / "bad")
