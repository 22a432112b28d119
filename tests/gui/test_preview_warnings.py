"""Issue 10: the window warns when a result will be out of its range (a scene beyond a model's range)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stereo_studio.data.sample import StereoSample
from stereo_studio.gui.preview_frames import dataset_frame


class NarrowMatcher:
    name, max_disp = "narrow", 16

    def predict(self, left, right):
        return np.zeros(left.shape[:2], np.float32)


def test_dataset_frame_carries_the_warnings() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    sample = StereoSample(img, img, np.full((48, 64), 5.0, np.float32), None, {"name": "s", "max_disp": 40.0})
    frame = dataset_frame([sample], 0, [("narrow", NarrowMatcher())])
    assert len(frame.warnings) == 1 and "reach 40 px" in frame.warnings[0] and "is 16" in frame.warnings[0]


def test_window_shows_the_warning_once(make_window, qtbot, tmp_path: Path) -> None:
    from stereo_studio.models.registry import build_model, default_config
    from stereo_studio.models.storage import save_model

    folder = save_model(build_model(default_config("student", max_disp=16)), tmp_path / "narrow")
    window = make_window(models=[(str(folder), "model")])  # synthetic 96x128 pairs reach 64 px

    def warned() -> list[str]:
        return [t for level, t, _ in window.messages.history if level == "warning" and "is 16" in t]

    qtbot.waitUntil(lambda: len(warned()) == 1, timeout=60_000)
    window.preview.refresh()  # the same pair again: no second message
    qtbot.wait(500)
    assert len(warned()) == 1 and "max disparity" in warned()[0]
