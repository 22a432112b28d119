"""Desktop conventions: the menu bar, recent items, drag and drop, stable model colours, hiding a model, the
Help texts, full screen, a first window that fits the screen, and the one table of panels."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_scenes import calibrated_scenes, sbs_video
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from stereo_studio.gui.recent import Recent, classify


def _menu(window, title: str):
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == title:
            return action.menu()
    raise AssertionError(f"no {title} menu")


def _texts(menu) -> list[str]:
    return [a.text() for a in menu.actions() if a.text()]


def test_menu_bar(make_window, qtbot):
    from stereo_studio.gui.panels import PANEL_SPECS

    window = make_window(models=[("sgbm", "sgbm")])
    file_menu, view, help_menu = (_menu(window, t) for t in ("File", "View", "Help"))
    assert _texts(file_menu)[:5] == ["Open model…", "Open dataset folder…", "Open video…", "Open recording…",
                                     "Open calibration…"]
    assert {"Open recent", "Export", "Quit"} <= set(_texts(file_menu))
    assert [s.title for s in PANEL_SPECS if not s.dock] == _texts(view)[:6]
    assert {"Jobs", "Models in the preview", "SGBM parameters", "Full screen"} <= set(_texts(view))
    assert _texts(help_menu) == ["Keyboard shortcuts", "About Stereo Studio"]
    # the toolbar and the menus share their actions: one action per shortcut
    assert window.actions["open_model"].shortcut().toString() == "Ctrl+O"
    assert window.actions["panel_cloud"].shortcut().toString() == "Ctrl+6"
    window.actions["panel_cloud"].trigger()
    assert window.current_panel() == "cloud"
    export = file_menu.findChild(type(file_menu), "export_menu")
    export.aboutToShow.emit()
    assert "Point cloud of sgbm (PLY)…" in _texts(export)


def test_recent_items_and_last_folders(make_window, qtbot, tmp_path):
    scenes = calibrated_scenes(tmp_path / "scenes")
    calib = scenes / "scene0" / "calib.txt"
    window = make_window(models=[("sgbm", "sgbm")])
    window.open_kind("data", str(scenes))
    window.open_kind("calibration", str(calib))
    qtbot.waitUntil(lambda: window.studio.data_spec == str(scenes), timeout=30_000)
    recent = Recent(window.studio.settings)
    assert recent.items("data") == [str(scenes)] and recent.items("calibration") == [str(calib)]
    assert recent.last_dir("data") == str(scenes.parent)  # the next dialog starts beside it
    assert recent.last_dir("calibration") == str(calib.parent)
    assert window.preview.calibration.text() == str(calib)
    menu = window.menuBar().findChild(type(_menu(window, "File")), "recent_menu")
    menu.aboutToShow.emit()
    texts = _texts(menu)
    assert str(scenes) in texts and str(calib) in texts and "Clear recent items" in texts
    for action in menu.actions():
        if action.text() == "Clear recent items":
            action.trigger()
    assert recent.items("data") == []


def test_classify_paths(tmp_path):
    scenes = calibrated_scenes(tmp_path / "scenes")
    video = sbs_video(tmp_path / "v.avi", frames=2)
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    rec = tmp_path / "rec.raw"
    rec.mkdir()
    (rec / "recording.json").write_text("{}")
    (tmp_path / "net.onnx").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert classify(scenes) == ("data", scenes)
    assert classify(video) == ("video", video)
    assert classify(model) == ("model", model)
    assert classify(model / "config.json") == ("model", model)
    assert classify(rec) == ("recording", rec)
    assert classify(tmp_path / "net.onnx") == ("model", tmp_path / "net.onnx")
    assert classify(scenes / "scene0" / "calib.txt")[0] == "calibration"
    assert classify(tmp_path / "notes.txt") is None
    assert classify(tmp_path / "missing") is None


def _drop(window, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)


def test_drag_and_drop(make_window, qtbot, tmp_path):
    scenes = calibrated_scenes(tmp_path / "scenes")
    video = sbs_video(tmp_path / "v.avi", frames=4)
    window = make_window(models=[("sgbm", "sgbm")])
    assert window.acceptDrops()
    _drop(window, [scenes])
    qtbot.waitUntil(lambda: window.studio.data_spec == str(scenes), timeout=30_000)
    assert window.data_combo.currentText() == str(scenes)
    _drop(window, [scenes / "scene1" / "calib.txt"])
    assert window.preview.calibration.text().endswith("calib.txt")
    window.preview.calibration.clear()
    _drop(window, [video])
    assert window.preview.source_kind() == "video" and window.preview.video_path.text() == str(video)
    qtbot.waitUntil(lambda: window.preview.session is not None, timeout=30_000)
    window.preview.stop_live()
    (tmp_path / "notes.txt").write_text("x")
    _drop(window, [tmp_path / "notes.txt"])
    assert "cannot open" in window.messages.text()


def test_colours_stay_with_models_across_restarts(make_window, settings):
    first = make_window(models=[("student", "student"), ("sgbm", "sgbm")])
    colours = {m.key: m.color for m in first.studio.models}
    first.close()
    again = make_window(models=[("sgbm", "sgbm"), ("student", "student")], settings_=settings)
    assert {m.key: m.color for m in again.studio.models} == colours


def test_hide_a_model_without_closing_it(make_window, qtbot, settings):
    window = make_window()
    preview = window.preview
    preview._menus["student"].requested.emit("student", "hide")  # "Hide from the preview"
    assert "student" not in preview._panes and window.studio.entry("student") is not None
    assert settings.get("preview/hidden", []) == ["student"]
    qtbot.waitUntil(lambda: set(preview.frame.outputs) == {"sgbm"}, timeout=30_000)  # not even computed
    models = window.menuBar().findChild(type(_menu(window, "View")), "models_menu")
    models.aboutToShow.emit()
    student = next(a for a in models.actions() if a.text() == "student")
    assert not student.isChecked()
    window.close()
    again = make_window(settings_=settings)  # still hidden after a restart
    assert "student" not in again.preview._panes
    again.preview.set_model_visible("student", True)
    qtbot.waitUntil(lambda: "student" in again.preview.frame.outputs, timeout=30_000)
    assert "student" in again.preview._panes


def test_help_texts_and_full_screen(make_window, qtbot):
    from stereo_studio.gui.menus import show_help

    window = make_window(models=[("sgbm", "sgbm")])
    about = show_help(window, "about")
    text = about.text.toPlainText()
    for needle in ("PySide6-Essentials", "pyqtgraph", "PyOpenGL", "torch", "Settings file",
                   window.studio.settings.location, "Bundled models", "3D view"):
        assert needle in text, needle
    assert not about.isModal()
    shortcuts = show_help(window, "shortcuts").text.toPlainText()
    for needle in ("Ctrl+O", "Ctrl+6", "F11", "Space", "PgDown", "Preview: Record on / off"):
        assert needle in shortcuts, needle
    window.actions["full_screen"].setChecked(True)
    qtbot.waitUntil(window.isFullScreen, timeout=5000)
    window.actions["full_screen"].setChecked(False)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=5000)


def test_panels_come_from_one_table(make_window):
    from stereo_studio.gui.panels import PANEL_SPECS, TABS

    window = make_window(models=[("sgbm", "sgbm")])
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        s.title for s in PANEL_SPECS if not s.dock
    ]
    for i, name in enumerate(TABS, start=1):
        assert f"Ctrl+{i}" in window.tabs.tabToolTip(i - 1)
        window.show_panel(name)
        assert window.current_panel() == name
    assert window.jobs_dock is window.docks["jobs"]


@pytest.mark.parametrize(
    ("screen", "expected"),
    [((1920, 1040), (1440, 900)), ((1280, 680), (1203, 625)), ((1024, 600), (962, 552)), (None, (1440, 900))],
)
def test_first_window_fits_the_screen(screen, expected):
    from stereo_studio.gui.main_window import initial_size

    assert initial_size(screen) == expected


def test_key_controls_are_in_view_at_1280x720(make_window, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    window.resize(1280, 720)
    window.fit_docks()
    for panel, buttons in (
        ("distill", [window.distill.start_btn, window.distill.cancel_btn]),
        ("preview", [window.preview.snapshot_btn, window.preview.record_btn, window.preview.sgbm_btn]),
        ("cloud", [window.cloud.export_btn]),
    ):
        window.show_panel(panel)
        qtbot.wait(50)
        for button in buttons:
            assert button.isVisible() and not button.visibleRegion().isEmpty(), (panel, button.text())
            # wholly inside the window, not under the fold of a scroll area
            assert button.visibleRegion().boundingRect().size() == button.size(), (panel, button.text())
