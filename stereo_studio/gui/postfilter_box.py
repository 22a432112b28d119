"""The menu button above each model's disparity in the preview: its post-filters (one check per entry of the
engine's `postfilter.FILTERS`), its 3D view and point-cloud export, SGBM tuning, and hiding it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolButton, QWidget


class ModelMenuButton(QToolButton):
    """`filters_changed(key, names)` when a post-filter is toggled; `requested(key, what)` for
    "cloud" (show in the 3D view), "export" (point cloud), "sgbm" (tune), "hide"."""

    filters_changed = Signal(str, list)
    requested = Signal(str, str)

    def __init__(self, key: str, filters: list[str] | None = None, sgbm: bool = False,
                 recorded: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from stereo_studio.live.postfilter import FILTERS

        self.key = key
        self.setPopupMode(QToolButton.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setAutoRaise(True)
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        self.filter_actions: dict[str, QAction] = {}
        if not recorded:
            menu.addSection("Post-filters (applied in this order)")
            for name, f in FILTERS.items():
                action = menu.addAction(f.label)
                action.setCheckable(True)
                notes = [f.help]
                if f.needs_left:
                    notes.append("uses the left image")
                if f.stateful:
                    notes.append("video only: needs consecutive frames (ignored on dataset pairs)")
                action.setToolTip("; ".join(n for n in notes if n))
                action.toggled.connect(self._toggled)
                self.filter_actions[name] = action
            menu.addAction("No post-filters").triggered.connect(lambda: self.set_filters([], emit=True))
            menu.addSeparator()
        items = [("Show in the 3D view", "cloud"), ("Export point cloud (PLY)…", "export")]
        if sgbm:
            items.append(("Tune SGBM parameters…", "sgbm"))
        for text, what in items:
            menu.addAction(text).triggered.connect(lambda _=False, w=what: self.requested.emit(key, w))
        if not recorded:
            menu.addSeparator()
            hide = menu.addAction("Hide from the preview")
            hide.setToolTip("The model stays open (View > Models in the preview shows it again)")
            hide.triggered.connect(lambda: self.requested.emit(key, "hide"))
        self.setMenu(menu)
        self.set_filters(filters or [])

    def filters(self) -> list[str]:
        return [n for n, a in self.filter_actions.items() if a.isChecked()]

    def set_filters(self, names: list[str], emit: bool = False) -> None:
        for name, action in self.filter_actions.items():
            action.blockSignals(True)
            action.setChecked(name in names)
            action.blockSignals(False)
        self._label()
        if emit:
            self.filters_changed.emit(self.key, self.filters())

    def _toggled(self, _on: bool) -> None:
        self._label()
        self.filters_changed.emit(self.key, self.filters())

    def _label(self) -> None:
        names = self.filters()
        if not self.filter_actions:
            self.setText(f"⚙ {self.key}")
        else:
            self.setText("⚙ filters: " + (", ".join(names) if names else "none"))
        self.setToolTip(
            f"{self.key}: post-filters ({', '.join(names) or 'none'}), 3D view, point-cloud export, hide"
        )
