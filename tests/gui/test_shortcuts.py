"""Every keyboard shortcut of the window reaches exactly one target, on every tab, with the Jobs dock shown
or hidden and the focus in a panel or in the dock (two on one key are ambiguous: Qt runs neither)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication

from stereo_studio.gui.main_window import PANELS


class _Recorder(QObject):
    """Swallows the shortcut events of every action / shortcut it watches (nothing runs) and notes them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[QObject, bool]] = []

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Shortcut:
            self.events.append((obj, event.isAmbiguous()))
            return True
        return False


def _bindings(window) -> dict[str, list[QObject]]:
    """Key sequence (portable text) -> the actions and shortcuts bound to it anywhere in the window."""
    keys: dict[str, list[QObject]] = {}
    for shortcut in window.findChildren(QShortcut):
        for seq in shortcut.keys():  # noqa: SIM118 (QShortcut.keys(), not a dict)
            keys.setdefault(seq.toString(), []).append(shortcut)
    for action in window.findChildren(QAction):
        for seq in action.shortcuts():
            keys.setdefault(seq.toString(), []).append(action)
    return keys


def _name(obj: QObject) -> str:
    if isinstance(obj, QAction):
        return f"action {obj.text() or obj.objectName() or '?'}"
    parent = obj.parent()
    return f"shortcut of {type(parent).__name__}"


def _press(qtbot, widget, text: str) -> None:
    combo = QKeySequence(text)[0]
    qtbot.keyClick(widget, combo.key(), combo.keyboardModifiers())


def _active(qtbot, window) -> None:
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=10_000)


def test_no_shortcut_is_ambiguous(make_window, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    _active(qtbot, window)
    bindings = _bindings(window)
    assert {"Ctrl+Shift+S", "Ctrl+.", "Ctrl+1", "Ctrl+J"} <= set(bindings)
    recorder = _Recorder()
    for targets in bindings.values():
        for target in targets:
            target.installEventFilter(recorder)
    problems, dead = [], []
    for panel in PANELS[:5]:
        for dock in (True, False):
            window.show_panel(panel)
            window.jobs_dock.setVisible(dock)
            focus_spots = [("tabs", window.tabs.tabBar())] + ([("jobs", window.jobs.table)] if dock else [])
            for where, widget in focus_spots:
                widget.setFocus()
                qtbot.waitUntil(lambda w=widget: QApplication.focusWidget() is w, timeout=5000)
                for key in bindings:
                    recorder.events.clear()
                    _press(qtbot, widget, key)
                    state = f"{panel} tab, jobs dock {'shown' if dock else 'hidden'}, focus in {where}: {key}"
                    if any(ambiguous for _, ambiguous in recorder.events):
                        problems.append(f"{state} (bound to {', '.join(_name(o) for o in bindings[key])})")
                    elif key in ("Ctrl+Shift+S", "Ctrl+.", "Ctrl+J", "Ctrl+1") and len(recorder.events) != 1:
                        dead.append(state)
    for targets in bindings.values():
        for target in targets:
            target.removeEventFilter(recorder)
    assert not problems, "ambiguous shortcuts (Qt runs none of them):\n" + "\n".join(problems)
    assert not dead, "window shortcuts that reached no target:\n" + "\n".join(dead)


def test_cancel_shortcut_reaches_the_distillation_run_or_the_selected_job(make_window, qtbot, monkeypatch):
    window = make_window(models=[("sgbm", "sgbm")])
    calls = []
    monkeypatch.setattr(window.distill, "cancel", lambda: calls.append("distill"))
    monkeypatch.setattr(window.jobs, "cancel_selected", lambda: calls.append("jobs"))
    _active(qtbot, window)
    window.jobs_dock.show()
    window.show_panel("distill")
    window.tabs.tabBar().setFocus()
    window.cancel_shortcut()
    window.jobs.table.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.jobs.table, timeout=5000)
    window.cancel_shortcut()
    window.show_panel("models")
    window.tabs.tabBar().setFocus()
    window.cancel_shortcut()
    assert calls == ["distill", "jobs", "jobs"]
