"""The menu bar (File, View, Help), the window's actions (shared with the toolbar: one action per shortcut),
the open dialogs (each starts in the last folder used for its kind) and the Help texts."""

from __future__ import annotations

import html
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QMenu, QTextBrowser, QVBoxLayout

from stereo_studio.gui.recent import KINDS, Recent

VERSION_PACKAGES = (
    "stereo-studio", "PySide6-Essentials", "shiboken6", "pyqtgraph", "superqt", "PyOpenGL", "numpy",
    "opencv-python-headless", "torch", "torch-pruning", "onnx", "onnxruntime", "safetensors",
)
DIALOG_FILTERS = {
    "video": "Videos (*.mp4 *.avi *.mkv *.mov *.m4v *.webm);;All files (*)",
    "calibration": "Calibration (*.yml *.yaml *.xml *.json calib.txt);;All files (*)",
}


def _action(window: Any, text: str, slot, shortcut: str | QKeySequence | None = None, tip: str = "",
            checkable: bool = False) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    seq = action.shortcut().toString(QKeySequence.NativeText)
    action.setToolTip(f"{tip or text.rstrip('…')}" + (f" ({seq})" if seq else ""))
    action.setStatusTip(tip or text)
    action.setCheckable(checkable)
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda _=False: slot())
    return action


def build_menus(window: Any) -> dict[str, QAction]:
    """Create the menu bar of `window` (a MainWindow); returns its actions by name (the toolbar reuses
    them)."""
    from stereo_studio.gui.panels import PANEL_SPECS

    a: dict[str, QAction] = {}
    a["open_model"] = _action(window, "Open model…", lambda: open_dialog(window, "model"), "Ctrl+O",
                              "Open a model: an .onnx file or a file of a saved model folder")
    a["open_data"] = _action(window, "Open dataset folder…", lambda: open_dialog(window, "data"),
                             tip="KITTI, Middlebury, SceneFlow, ETH3D or a folder of left/right pairs")
    a["open_video"] = _action(window, "Open video…", lambda: open_dialog(window, "video"),
                              tip="A side-by-side stereo video for the preview")
    a["open_recording"] = _action(window, "Open recording…", lambda: open_dialog(window, "recording"),
                                  tip="A raw recording folder (recording.json) to step through")
    a["open_calibration"] = _action(window, "Open calibration…", lambda: open_dialog(window, "calibration"),
                                    tip="An OpenCV stereo calibration or a Middlebury calib.txt")
    a["snapshot"] = _action(window, "Snapshot", lambda: window.preview.snapshot(), "Ctrl+Shift+S",
                            "Save the preview as PNG")
    a["quit"] = _action(window, "Quit", window.close, QKeySequence.Quit, "Quit Stereo Studio")
    a["jobs"] = _action(window, "Jobs", window.toggle_jobs, "Ctrl+J", "Show / hide the jobs and log dock")
    a["full_screen"] = _action(window, "Full screen", window.set_full_screen, "F11", checkable=True,
                               tip="Full screen on / off")
    a["shortcuts"] = _action(window, "Keyboard shortcuts", lambda: show_help(window, "shortcuts"), "F1",
                             "Every keyboard shortcut of the window")
    a["about"] = _action(window, "About Stereo Studio", lambda: show_help(window, "about"),
                         tip="Versions, the settings file and the bundled models")
    tabs = [s for s in PANEL_SPECS if not s.dock]
    for i, spec in enumerate(tabs, start=1):
        a[f"panel_{spec.name}"] = _action(window, spec.title, lambda n=spec.name: window.show_panel(n),
                                          f"Ctrl+{i}" if i <= 9 else None, spec.tip)

    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    for name in ("open_model", "open_data", "open_video", "open_recording", "open_calibration"):
        file_menu.addAction(a[name])
    recent = file_menu.addMenu("Open recent")
    recent.setObjectName("recent_menu")
    recent.aboutToShow.connect(lambda: _fill_recent(window, recent))
    file_menu.addSeparator()
    export = file_menu.addMenu("Export")
    export.setObjectName("export_menu")
    export.aboutToShow.connect(lambda: _fill_export(window, export, a["snapshot"]))
    _fill_export(window, export, a["snapshot"])
    file_menu.addSeparator()
    file_menu.addAction(a["quit"])

    view = bar.addMenu("&View")
    for spec in tabs:
        view.addAction(a[f"panel_{spec.name}"])
    view.addAction(a["jobs"])
    view.addSeparator()
    shown = view.addMenu("Models in the preview")
    shown.setObjectName("models_menu")
    shown.aboutToShow.connect(lambda: _fill_models(window, shown))
    a["sgbm"] = view.addAction("SGBM parameters")
    a["sgbm"].setCheckable(True)
    a["sgbm"].setToolTip("Show the SGBM tuning controls beside the preview")
    a["sgbm"].toggled.connect(window.preview.show_sgbm_tuner)
    view.aboutToShow.connect(lambda: a["sgbm"].setChecked(window.preview.sgbm_tuner.isVisible()))
    view.addSeparator()
    view.addAction(a["full_screen"])

    help_menu = bar.addMenu("&Help")
    help_menu.addAction(a["shortcuts"])
    help_menu.addAction(a["about"])
    for menu in (file_menu, recent, export, view, shown, help_menu):
        menu.setToolTipsVisible(True)
    return a


def _fill_recent(window: Any, menu: QMenu) -> None:
    menu.clear()
    recent = Recent(window.studio.settings)
    empty = True
    for kind, title in KINDS.items():
        items = recent.items(kind)
        if not items:
            continue
        empty = False
        menu.addSection(title)
        for path in items:
            action = menu.addAction(path)
            action.setToolTip(f"Open {path}")
            action.setEnabled(Path(path).exists())
            action.triggered.connect(lambda _=False, k=kind, p=path: window.open_kind(k, p))
    if empty:
        menu.addAction("(nothing opened yet)").setEnabled(False)
        return
    menu.addSeparator()
    menu.addAction("Clear recent items").triggered.connect(
        lambda: [recent.clear(k) for k in KINDS]
    )


def _fill_export(window: Any, menu: QMenu, snapshot: QAction) -> None:
    menu.clear()
    menu.addAction(snapshot)
    frame = window.preview.frame
    keys = list(frame.outputs) if frame is not None else []
    for key in keys:
        action = menu.addAction(f"Point cloud of {key} (PLY)…")
        action.setToolTip(f"Write the metric 3D points of {key}'s disparity on the frame shown")
        action.triggered.connect(lambda _=False, k=key: window.preview.export_cloud_dialog(k))
    if not keys:
        menu.addAction("Point cloud (PLY): no frame yet").setEnabled(False)
    menu.addSeparator()
    onnx = menu.addAction("ONNX model (Pruning tab)…")
    onnx.setToolTip("Export a model to ONNX from the Pruning tab")
    onnx.triggered.connect(lambda: window.show_panel("pruning"))


def _fill_models(window: Any, menu: QMenu) -> None:
    menu.clear()
    preview = window.preview
    for entry in window.studio.models:
        action = menu.addAction(entry.label)
        action.setCheckable(True)
        action.setChecked(entry.key not in preview.hidden_models)
        action.setToolTip("Show this model's disparity in the preview (hidden models stay open)")
        action.toggled.connect(lambda on, k=entry.key: preview.set_model_visible(k, on))
    if not window.studio.models:
        menu.addAction("(no model open)").setEnabled(False)


# ----- dialogs
def open_dialog(window: Any, kind: str) -> str | None:
    """Ask for a path of `kind` (model, data, video, recording, calibration), starting in the folder last
    used for it, and open it. Returns the path, or None when cancelled."""
    recent = Recent(window.studio.settings)
    where = recent.last_dir(kind)
    titles = {"data": "Open a dataset folder", "recording": "Open a recording folder",
              "video": "Open a stereo video", "calibration": "Open a calibration file"}
    if kind == "model":  # an .onnx file or a file of a model folder (the Models panel's dialog)
        from stereo_studio.gui.model_picker import pick_model

        path = pick_model(window, where)
    elif kind in ("data", "recording"):
        path = QFileDialog.getExistingDirectory(window, titles[kind], where)
    else:
        path, _ = QFileDialog.getOpenFileName(window, titles[kind], where, DIALOG_FILTERS[kind])
    if not path:
        return None
    window.open_kind(kind, path)
    return path


def _versions() -> list[tuple[str, str]]:
    out = [("Python", platform.python_version())]
    for name in VERSION_PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    from PySide6 import QtCore

    out.append(("Qt (runtime)", QtCore.qVersion()))
    return out


def about_html(window: Any) -> str:
    """Versions, platform, the 3D view's renderer, the settings file and the bundled models."""
    from stereo_studio.models.storage import bundled_model_names, models_dir

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _versions())
    bundled = ", ".join(bundled_model_names()) or "none found"
    cloud = getattr(window, "cloud", None)
    renderer = cloud.renderer_text() if cloud is not None else ""
    from PySide6.QtGui import QGuiApplication

    return (
        "<h3>Stereo Studio</h3>"
        "<p>Distill-then-prune compression of real-time stereo networks, with a live studio.</p>"
        f"<table cellspacing='0' cellpadding='2'>{rows}</table>"
        f"<p><b>Platform</b>: {html.escape(platform.platform())} · Qt platform "
        f"{html.escape(QGuiApplication.platformName())}<br>"
        f"<b>3D view</b>: {html.escape(renderer)}<br>"
        f"<b>Settings file</b>: {html.escape(window.studio.settings.location)}<br>"
        f"<b>Bundled models</b>: {html.escape(bundled)}<br>"
        f"<b>Bundled models folder</b>: {html.escape(str(models_dir()))}</p>"
    )


def shortcut_rows(window: Any) -> list[tuple[str, str]]:
    """(keys, what) of every shortcut in the window: actions (menus, toolbar) and panel shortcuts."""
    rows: dict[str, str] = {}
    for action in window.findChildren(QAction):
        for seq in action.shortcuts():
            text = action.text().replace("&", "").rstrip("…") or action.toolTip()
            rows.setdefault(seq.toString(QKeySequence.NativeText), text)
    for shortcut in window.findChildren(QShortcut):
        what = shortcut.property("what") or shortcut.whatsThis()
        for seq in shortcut.keys():  # noqa: SIM118 (QShortcut.keys(), not a dict)
            rows.setdefault(seq.toString(QKeySequence.NativeText), str(what or ""))
    return sorted(rows.items(), key=lambda kv: (len(kv[0]) > 6, kv[0]))


def shortcuts_html(window: Any) -> str:
    rows = "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
        for k, v in shortcut_rows(window)
    )
    return (
        "<h3>Keyboard shortcuts</h3>"
        f"<table cellspacing='0' cellpadding='3'>{rows}</table>"
        "<p>Drop model folders, .onnx files, dataset folders, videos, recordings and calibration files onto "
        "the window to open them.</p>"
    )


def show_help(window: Any, which: str) -> QDialog:
    """A non-modal window with the shortcuts or the About text (one of each, raised when shown again)."""
    dialogs = window.__dict__.setdefault("_help_dialogs", {})
    dialog = dialogs.get(which)
    if dialog is None:
        dialog = QDialog(window)
        dialog.setObjectName(f"help_{which}")
        dialog.setWindowTitle("Keyboard shortcuts" if which == "shortcuts" else "About Stereo Studio")
        layout = QVBoxLayout(dialog)
        dialog.text = QTextBrowser()
        dialog.text.setOpenExternalLinks(True)
        layout.addWidget(dialog.text)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.resize(560, 520)
        dialog.setAttribute(Qt.WA_DeleteOnClose, False)
        dialogs[which] = dialog
    dialog.text.setHtml(shortcuts_html(window) if which == "shortcuts" else about_html(window))
    dialog.show()
    dialog.raise_()
    return dialog

