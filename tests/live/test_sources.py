"""Frame sources: side-by-side and paired videos, datasets, failures, and the latest-frame-wins grabber."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_helpers import FakeSource, sample_list, textured_pair, write_sbs_video

from stereo_studio.errors import SourceError
from stereo_studio.live.sources import (
    DatasetSource,
    LatestFrameGrabber,
    PrefetchReader,
    SbsVideoSource,
    open_source,
)


def test_sbs_video_splits_views_and_plays_every_frame(sbs_video: Path) -> None:
    with open_source(str(sbs_video)) as src:
        assert isinstance(src, SbsVideoSource) and not src.is_live
        assert src.frame_count == 12 and src.fps == pytest.approx(30.0)
        frames = list(src)
    assert [f.index for f in frames] == list(range(12))
    left, right = textured_pair(3)
    f = frames[3]
    assert f.left.shape == f.right.shape == (96, 128, 3) and f.left.dtype == np.uint8
    # JPEG-compressed, but each half is close to the view written there (and not to the other one)
    assert np.abs(f.left.astype(int) - left).mean() < 20
    assert np.abs(f.right.astype(int) - right).mean() < 20
    assert np.abs(f.left.astype(int) - right).mean() > 40
    assert f.timestamp <= time.monotonic() and f.gt is None


def test_size_option_resizes_and_loop_restarts(sbs_video: Path) -> None:
    with open_source(sbs_video, size=(48, 64), loop=True) as src:
        assert src.frame_count is None
        frames = [src.read() for _ in range(30)]
    assert all(f is not None and f.left.shape == (48, 64, 3) for f in frames)
    assert frames[-1].index == 29


def test_video_pair_source(tmp_path: Path) -> None:
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    paths = [tmp_path / "l.avi", tmp_path / "r.avi"]
    writers = [cv2.VideoWriter(str(p), fourcc, 15, (64, 48)) for p in paths]
    for i in range(5):
        for writer, view in zip(writers, textured_pair(i, 48, 64), strict=True):
            writer.write(view)
    for w in writers:
        w.release()
    with open_source(f"{paths[0]},{paths[1]}", layout="pair") as src:
        assert src.frame_count == 5
        assert len(list(src)) == 5
    with open_source((paths[0], paths[1])) as src:
        assert src.read().left.shape == (48, 64, 3)


def test_dataset_source_carries_ground_truth_and_resizes_it() -> None:
    src = DatasetSource(sample_list(3, 48, 64), "samples", size=(24, 32))
    frames = list(src)
    assert len(frames) == 3 and src.frame_count == 3
    assert frames[0].gt.shape == (24, 32) and np.allclose(frames[0].gt, 3.0)  # 6 px at half width
    assert frames[0].valid.all() and frames[1].meta["name"] == "s1"


@pytest.mark.parametrize(
    ("spec", "layout", "words"),
    [
        ("/nonexistent/video.mp4", "sbs", "source not found"),
        ("9", "sbs", "camera 9"),
        ("3", "pair", "two camera indices"),
    ],
)
def test_missing_sources_fail_with_one_clear_message(spec: str, layout: str, words: str) -> None:
    with pytest.raises(SourceError, match=words):
        open_source(spec, layout=layout)


def test_not_a_video_and_bad_layout(tmp_path: Path, sbs_video: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(SourceError, match=r"junk\.mp4"):
        open_source(junk)
    with pytest.raises(SourceError, match="layout 'pair' with one video"):
        open_source(sbs_video, layout="pair")
    with pytest.raises(SourceError, match="unknown layout"):
        open_source(sbs_video, layout="tb")


def test_truncated_video_ends_with_error(tmp_path: Path) -> None:
    path = write_sbs_video(tmp_path / "full.avi", 40)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    src = open_source(cut)
    read = 0
    with pytest.raises(SourceError, match=r"ended after \d+ of 40 frames"):
        while src.read() is not None:
            read += 1
    assert 5 < read < 40
    src.close()
    with pytest.raises(SourceError, match="closed"):
        src.read()


def test_grabber_keeps_only_the_newest_frame() -> None:
    src = FakeSource(count=20)
    grabber = LatestFrameGrabber(src)  # not paced: reads all 20 frames at once
    deadline = time.monotonic() + 5
    while not grabber.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    frame = grabber.wait_next(timeout=1)
    assert frame.index == 19  # the latest, not the oldest
    assert grabber.captured == 20 and grabber.dropped == 19
    assert grabber.wait_next(timeout=1) is None  # normal end
    assert grabber.latest() is None


def test_grabber_reports_failure_and_stall() -> None:
    grabber = LatestFrameGrabber(FakeSource(count=10, fail_after=3))
    seen = []
    with pytest.raises(SourceError, match="unplugged"):
        while (f := grabber.wait_next(timeout=2)) is not None:
            seen.append(f.index)
    assert seen and seen[-1] <= 2
    stalled = LatestFrameGrabber(FakeSource(count=10, hang_after=1, hang_seconds=0.5))
    assert stalled.wait_next(timeout=2).index == 0
    with pytest.raises(SourceError, match=r"no frame for 0\.2 s"):
        stalled.wait_next(timeout=0.2)
    stalled.stop()


def test_paced_grabber_plays_files_at_their_rate() -> None:
    src = FakeSource(count=6, fps=50.0)
    t0 = time.monotonic()
    with LatestFrameGrabber(src) as grabber:
        assert grabber.pace
        got = []
        while (frame := grabber.wait_next(timeout=2)) is not None:
            got.append(frame.index)
    # paced like a 50 fps camera (never faster), every frame either seen in order or counted as dropped
    assert time.monotonic() - t0 >= 5 / 50.0 * 0.9
    assert got == sorted(got) and got[-1] == 5 and len(got) + grabber.dropped == grabber.captured == 6


def test_prefetch_reader_keeps_order_and_passes_errors_on(tmp_path: Path) -> None:
    reader = PrefetchReader(FakeSource(count=5), depth=2)
    assert [reader.read(timeout=2).index for _ in range(5)] == list(range(5))
    assert reader.read(timeout=2) is None and reader.read() is None
    cut = tmp_path / "cut.avi"
    cut.write_bytes(write_sbs_video(tmp_path / "full.avi", 40).read_bytes()[:30000])
    reader = PrefetchReader(open_source(cut))
    with pytest.raises(SourceError, match="truncated"):
        while reader.read(timeout=2) is not None:
            pass
    stalled = PrefetchReader(FakeSource(count=5, hang_after=0, hang_seconds=0.5))
    with pytest.raises(SourceError, match="no frame for"):
        stalled.read(timeout=0.1)
    stalled.stop()


class FakeCapture:
    """Stands in for cv2.VideoCapture on a machine without cameras: `frames` side-by-side frames, then the
    device disappears (grab fails), as when a USB camera is unplugged."""

    frames = 3

    def __init__(self, index: int, *args) -> None:
        self.index, self.props, self.left = index, {}, self.frames

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def grab(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def retrieve(self):
        left, right = textured_pair(self.index, 48, 64)
        return True, cv2.cvtColor(np.concatenate([left, right], axis=1), cv2.COLOR_RGB2BGR)

    def release(self) -> None:
        pass


def test_cameras_split_side_by_side_and_report_unplugging(monkeypatch) -> None:
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    with open_source(0, size=(48, 64), fps=30) as cam:
        assert cam.is_live and cam.frame_count is None and cam.fps == 30
        assert cam._cam.cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 128  # both views side by side
        frame = cam.read()
        left, right = textured_pair(0, 48, 64)
        assert np.array_equal(frame.left, left) and np.array_equal(frame.right, right)
        cam.read(), cam.read()
        with pytest.raises(SourceError, match=r"camera 0 stopped delivering frames \(unplugged\?\)"):
            cam.read()
    with open_source("0,1") as pair:
        frame = pair.read()
        assert np.array_equal(frame.left, np.concatenate(textured_pair(0, 48, 64), axis=1))  # device 0
        assert np.array_equal(frame.right, np.concatenate(textured_pair(1, 48, 64), axis=1))  # device 1
