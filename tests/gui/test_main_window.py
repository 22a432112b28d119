"""The window opens ready to play with, persists its session and closes cleanly."""

from __future__ import annotations

import numpy as np

from stereo_studio.gui.main_window import PANELS


def test_opens_with_models_and_a_disparity(make_window, monkeypatch, tmp_path):
    monkeypatch.setenv("STEREO_STUDIO_MODELS", str(tmp_path / "no-bundled-models"))
    window = make_window()
    keys = [m.key for m in window.studio.models]
    assert keys == ["student", "sgbm"]
    student = window.studio.entry("student")
    assert student.untrained  # no bundled folder: the untrained architecture, with a visible badge
    assert "untrained" in window.preview._panes["student"].title
    assert "untrained" in window.status_models.text()
    frame = window.preview.frame
    assert frame.outputs["student"].disparity.shape == (96, 128)
    assert np.isfinite(frame.outputs["sgbm"].disparity).any()
    assert window.preview.frames_drawn >= 1
    for name in PANELS:
        window.show_panel(name)
        assert window.panel(name).isVisible()


def test_session_persists_and_close_cancels_jobs(make_window, settings, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    window.show_panel("models")
    blocker = window.studio.jobs.start("endless", _endless)
    qtbot.waitUntil(lambda: blocker.status == "running", timeout=5000)
    window.close()
    assert blocker.status == "cancelled" or not blocker.active
    assert settings.get("models/open", []) == [["sgbm", "sgbm", "sgbm"]]
    assert settings.get("window/panel", "") == "models"
    again = make_window(models=[("student", "student")], restore=True)
    assert [m.key for m in again.studio.models] == ["sgbm"]  # the saved session wins over the defaults
    assert again.current_panel() == "models"


def _endless():
    import time

    from stereo_studio.engine.jobs import Progress

    while True:
        time.sleep(0.01)
        yield Progress(0, None, "waiting")
