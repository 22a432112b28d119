"""The window opens ready to play with, persists its session and closes cleanly."""

from __future__ import annotations

import numpy as np

from stereo_studio.gui.main_window import PANELS


def test_opens_with_models_and_a_disparity(make_window, monkeypatch, tmp_path):
    from stereo_studio.gui.main_window import default_models

    monkeypatch.setenv("STEREO_STUDIO_MODELS", str(tmp_path / "no-bundled-models"))
    # no bundled models: the window asks for the untrained architectures explicitly
    assert default_models() == [("arch:teacher", "teacher"), ("arch:student", "student"), ("sgbm", "sgbm")]
    window = make_window(models=[("arch:student", "student"), ("sgbm", "sgbm")])
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
    assert blocker.status == "cancelled" and blocker.error == ""  # stopped, and stopped by the cancel
    assert settings.get("models/open", []) == [["sgbm", "sgbm", "sgbm"]]
    assert settings.get("window/panel", "") == "models"
    again = make_window(models=[("student", "student")], restore=True)
    assert [m.key for m in again.studio.models] == ["sgbm"]  # the saved session wins over the defaults
    assert again.current_panel() == "models"


def test_a_job_failing_while_the_window_closes_is_failed_not_cancelled(make_window, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    job = window.studio.jobs.start("doomed", _fails_soon)
    # its first report seen: it is inside its 0.5 s write (a cancel before that report stops it cleanly)
    qtbot.waitUntil(lambda: job.message == "writing", timeout=5000)
    window.close()  # cancels every job and waits: this one fails before it could see the cancel
    assert job.status == "failed" and job.error == "OSError: disk full"


def _fails_soon():
    import time

    from stereo_studio.engine.jobs import Progress

    yield Progress(0, 1, "writing")
    time.sleep(0.5)
    raise OSError("disk full")


def _endless():
    import time

    from stereo_studio.engine.jobs import Progress

    while True:
        time.sleep(0.01)
        yield Progress(0, None, "waiting")


def test_relaunch_shows_the_restored_data_source(make_window, settings, qtbot, tmp_path):
    from stereo_studio.data.datasets import write_dataset
    from stereo_studio.data.synthetic import SyntheticStereo
    from stereo_studio.engine.jobs import run_with_progress

    pairs = SyntheticStereo(96, 128, 24, seed=5, length=2)
    folder = str(run_with_progress(write_dataset(pairs, tmp_path / "d"), quiet=True))
    settings.set("data/spec", folder)  # the last session worked on this folder
    window = make_window(models=[("sgbm", "sgbm")], restore=True)
    qtbot.waitUntil(lambda: window.studio.data_spec == folder, timeout=30_000)
    assert window.data_combo.currentText() == folder  # not "synthetic" over the folder's numbers
    assert f"data: {folder}" in window.status_models.text()


def test_plot_menus_offer_no_transform_that_breaks_the_plots(make_window):
    """pyqtgraph's Plot Options (FFT, derivative, downsampling, alpha...) raise on scatter and bar items:
    every plot of the window hides and disables them and keeps log axes and the grid."""
    import pyqtgraph as pg

    window = make_window(models=[("sgbm", "sgbm")])
    plots = [item for view in window.findChildren(pg.GraphicsView) for item in view.scene().items()
             if isinstance(item, pg.PlotItem) and item.menuEnabled()]  # (colour bars have no menu)
    assert len(plots) >= 6  # trade-off, sensitivity, importance heat map and bars, the training plots
    for plot in plots:
        c = plot.ctrl
        assert not any(box.isEnabled() for box in (c.fftCheck, c.derivativeCheck, c.phasemapCheck))
        assert not any(g.isEnabled() for g in (c.decimateGroup, c.averageGroup, c.alphaGroup, c.pointsGroup))
        assert c.logYCheck.isEnabled() and c.gridGroup.isEnabled()
        visible = {a.text() for a in plot.ctrlMenu.actions() if a.isVisible()}
        assert visible == {"Transforms", "Grid"}
