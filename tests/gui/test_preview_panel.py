"""Preview panel: dataset stepping, a video file source, a failing camera, hover, snapshot and recording."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


def _sbs_video(path, frames: int = 6, size=(96, 128)) -> None:
    from stereo_studio.data.synthetic import SyntheticStereo

    h, w = size
    ds = SyntheticStereo(h, w, 24, seed=3, length=frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (2 * w, h))
    assert writer.isOpened()
    for i in range(frames):
        s = ds[i]
        writer.write(cv2.cvtColor(np.concatenate([s.left, s.right], axis=1), cv2.COLOR_RGB2BGR))
    writer.release()


def test_step_through_dataset_and_hover(make_window, qtbot):
    window = make_window()
    preview = window.preview
    first = preview.frame
    assert first.index == 0 and first.gt is not None
    assert set(first.outputs) == {"student", "sgbm"}
    assert "EPE" in preview._panes["sgbm"].title
    preview.step(1)
    qtbot.waitUntil(lambda: preview.frame.index == 1, timeout=30_000)
    assert preview.frame.name != first.name
    preview._hover(10, 20)
    text = preview.readout.text()
    assert "x 10, y 20" in text and "student" in text and "sgbm" in text and "GT" in text
    preview.cmap.setCurrentText("inferno")
    assert window.studio.settings.get("preview/cmap") == "inferno"
    preview.range.setValue((2.0, 30.0))
    assert not preview.auto_range.isChecked()
    assert preview._levels() == (2.0, 30.0)


def test_video_file_source(make_window, qtbot, tmp_path):
    video = tmp_path / "stereo_sbs.avi"
    _sbs_video(video)
    window = make_window()
    preview = window.preview
    drawn = preview.frames_drawn
    preview.input_size.setCurrentText("native")
    preview.set_video(str(video))
    assert preview.live_running()
    qtbot.waitUntil(lambda: preview.frames_drawn >= drawn + 2, timeout=60_000)
    frame = preview.frame
    assert frame.gt is None and frame.left.shape == (96, 128, 3)
    assert set(frame.outputs) == {"student", "sgbm"}
    assert "stereo_sbs.avi" in str(frame.result.meta.get("source", ""))
    qtbot.waitUntil(lambda: not preview.live_running(), timeout=60_000)  # 6 frames: the stream ends
    # paused at the last frame, the video still open to step through
    assert not preview.playing and not preview.playback.playing
    qtbot.waitUntil(lambda: preview.frame.position == 5, timeout=10_000)
    assert preview.playback.counter.text() == "frame 6 / 6"
    assert preview.start_btn.text() == "Stop"
    preview.toggle_live()  # Stop: the source closes
    assert preview.start_btn.text() == "Start" and preview.session is None
    back = preview.frames_drawn
    preview.set_source_kind("dataset")  # back to the dataset
    qtbot.waitUntil(lambda: preview.frames_drawn > back and preview.frame.gt is not None, timeout=30_000)


def test_missing_camera_stops_with_a_message(make_window, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    preview.set_source_kind("camera")
    preview.camera_left.setValue(63)
    preview.start_live()
    qtbot.waitUntil(lambda: not preview.live_running(), timeout=30_000)
    qtbot.waitUntil(lambda: bool(window.messages.errors()), timeout=10_000)
    assert "63" in window.messages.errors()[-1]
    assert preview.start_btn.text() == "Start"


def test_snapshot_and_recording(make_window, qtbot, tmp_path):
    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    window.studio.settings.set("preview/snapshots", str(tmp_path))
    view = preview.snapshot(str(tmp_path))
    assert view is not None and view.exists() and view.stat().st_size > 1000
    qtbot.waitUntil(lambda: len(list(tmp_path.glob("*_disp16.png"))) == 1, timeout=10_000)
    preview.record_btn.setChecked(True)
    for i in (1, 2, 3):
        preview.step(1)
        qtbot.waitUntil(lambda i=i: preview.frame.index == i, timeout=30_000)
    preview.record_btn.setChecked(False)
    videos = list(tmp_path.glob("recording-*.mp4"))
    assert len(videos) == 1
    cap = cv2.VideoCapture(str(videos[0]))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert count == 4  # the pair on screen when recording started + 3 steps
    assert any("recording saved" in text for _, text, _ in window.messages.history)


@pytest.mark.parametrize("bad", ["not-a-video.avi"])
def test_bad_video_gives_a_message(make_window, qtbot, tmp_path, bad):
    window = make_window(models=[("sgbm", "sgbm")])
    path = tmp_path / bad
    path.write_bytes(b"garbage")
    window.preview.set_video(str(path))
    qtbot.waitUntil(lambda: not window.preview.live_running(), timeout=30_000)
    qtbot.waitUntil(lambda: bool(window.messages.errors()), timeout=10_000)
    assert bad in window.messages.errors()[-1]


def test_hover_readout_follows_the_pair_on_screen(make_window, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    preview._hover(10, 20)
    before = preview.readout.text()
    preview.step(1)
    qtbot.waitUntil(lambda: preview.frame.index == 1, timeout=30_000)
    frame = preview.frame
    expected = f"sgbm {float(frame.outputs['sgbm'].disparity[20, 10]):.2f} px"
    assert expected in preview.readout.text() and f"GT {frame.gt[20, 10]:.2f} px" in preview.readout.text()
    assert preview.readout.text() != before
