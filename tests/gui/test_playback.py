"""Playback: pause, step, seek and resume a video; a dataset's index bounded by its length; recording raw
disparities beside the video and stepping through the recording as a source."""

from __future__ import annotations

import pytest
from gui_scenes import sbs_video

from stereo_studio.errors import DataError


def _wait_position(qtbot, preview, position: int) -> None:
    qtbot.waitUntil(lambda: preview.frame is not None and preview.frame.position == position, timeout=30_000)


def test_video_pause_step_seek_resume(make_window, qtbot, tmp_path):
    video = sbs_video(tmp_path / "sbs.avi", frames=8)
    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    preview.input_size.setCurrentText("native")
    preview.set_video(str(video))
    assert preview.playback.isVisible() and preview.live_running()
    qtbot.waitUntil(lambda: preview.session is not None and preview.frames_drawn > 0, timeout=30_000)
    assert preview.session.seekable and preview.playback.length == 8
    preview.pause()
    assert not preview.playing and not preview.playback.playing
    qtbot.waitUntil(lambda: not preview._session_busy(), timeout=30_000)
    preview.seek(5)
    _wait_position(qtbot, preview, 5)
    assert preview.playback.counter.text() == "frame 6 / 8" and preview.playback.slider.value() == 5
    assert "6 / 8" in preview.left_pane.title
    preview.step(-1)
    _wait_position(qtbot, preview, 4)
    preview.step(1)
    preview.step(1)  # latest request wins: 6, never a queue of steps
    _wait_position(qtbot, preview, 6)
    preview.step(5)  # bounded by the video's length
    _wait_position(qtbot, preview, 7)
    assert preview.playback.counter.text() == "frame 8 / 8"
    preview.seek(2)
    _wait_position(qtbot, preview, 2)
    shown: list[int] = []
    window.studio.frame_changed.connect(lambda frame: shown.append(frame.position))
    preview.toggle_play()  # resumes after the frame shown (the prefetch thread had read ahead)
    assert preview.playing
    # to the end, and the end handled (paused at the last frame): until then the panel still plays, and a
    # seek would play on from the frame sought (the race a loaded CI machine once hit here)
    qtbot.waitUntil(lambda: not (preview.playing or preview._session_busy()) and bool(shown), timeout=30_000)
    assert shown == [3, 4, 5, 6, 7] and preview.frame.position == 7
    preview.playback.slider.setValue(1)  # a click on the slider's groove seeks at once
    _wait_position(qtbot, preview, 1)
    preview.stop_live()
    assert preview.session is None and preview.start_btn.text() == "Start"


def test_dataset_index_is_bounded_by_its_length(make_window, qtbot, tmp_path):
    from gui_scenes import calibrated_scenes

    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.gui.preview_frames import dataset_frame

    scenes = calibrated_scenes(tmp_path / "scenes", count=3)
    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    window.set_data(str(scenes))
    qtbot.waitUntil(lambda: preview.frame.name == "scene0", timeout=30_000)
    assert preview.index_spin.maximum() == 2 and preview.index_total.text() == "of 3"
    preview.step(1)
    preview.step(1)
    qtbot.waitUntil(lambda: preview.frame.index == 2, timeout=30_000)
    preview.step(1)  # the last pair stays: no wrapping around to the first
    assert preview.index == 2
    assert "(3 / 3)" in preview.left_pane.title
    with pytest.raises(DataError, match="out of range"):
        dataset_frame(open_dataset(str(scenes)), 3, [("sgbm", window.studio.entry("sgbm").matcher)])


def test_record_raw_and_step_through_the_recording(make_window, qtbot, tmp_path):
    from stereo_studio.live.playback import Recording, raw_folder_for

    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    window.studio.settings.set("preview/snapshots", str(tmp_path))
    preview.record_btn.setChecked(True)
    for i in (1, 2):
        preview.step(1)
        qtbot.waitUntil(lambda i=i: preview.frame.index == i, timeout=30_000)
    preview.record_btn.setChecked(False)
    video = next(tmp_path.glob("recording-*.mp4"))
    raw = raw_folder_for(video)
    rec = Recording(raw)
    assert len(rec) == 3 and "sgbm" in rec.models  # lossless disparities beside the colour video
    first_disp = preview.frame.outputs["sgbm"].disparity
    assert any(str(raw) in text for _, text, _ in window.messages.history)
    assert str(raw) in window.studio.settings.get("recent/recording", [])

    window.open_kind("recording", str(raw))  # File > Open recording
    assert preview.source_kind() == "recording"
    qtbot.waitUntil(lambda: preview.session is not None and preview.frames_drawn > 0, timeout=30_000)
    qtbot.waitUntil(lambda: not preview.live_running(), timeout=30_000)
    assert preview.playback.length == 3
    preview.seek(2)
    _wait_position(qtbot, preview, 2)
    frame = preview.frame
    assert "sgbm (recorded)" in frame.outputs and "sgbm (recorded)" in preview._panes
    recorded = frame.outputs["sgbm (recorded)"].disparity
    assert recorded.shape == first_disp.shape
    assert abs(recorded - first_disp).max() <= 1 / 256 + 1e-6  # 16-bit PNG, 1/256 px steps: lossless enough
    assert "as recorded" in preview._panes["sgbm (recorded)"].title
    preview.step(-2)
    _wait_position(qtbot, preview, 0)
