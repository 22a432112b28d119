"""The Stereo Studio main window: the panels of `panels.PANEL_SPECS` as tabs and docks, the menu bar and
toolbar (`menus.py`), the data source, drag and drop of anything it opens, settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import theme
from stereo_studio.gui.panels import PANEL_SPECS, PANELS, TABS, panel_spec
from stereo_studio.gui.recent import KINDS, Recent, classify
from stereo_studio.gui.settings import Settings
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.message_bar import MessageBar

__all__ = ["PANELS", "TABS", "MainWindow", "default_models", "initial_size"]
DEFAULT_SIZE = (1440, 900)  # first start: this, or what fits the screen
DEFAULT_MODELS = (("teacher", "teacher"), ("student", "student"), ("sgbm", "sgbm"))
BUNDLED_EXTRAS = (("student-pruned", "pruned"),)  # opened by default too, when bundled
OPEN_DATA = "Open dataset folder…"


def default_models() -> list[tuple[str, str]]:
    """(spec, role) of what a new session opens: teacher, student, the bundled pruned student, SGBM.
    A bundled model that is missing opens as its untrained architecture (`arch:NAME`, shown as untrained)."""
    from stereo_studio.models.storage import ARCH_PREFIX, bundled_model_names

    bundled = set(bundled_model_names())
    extras = [m for m in BUNDLED_EXTRAS if m[0] in bundled]
    nets = [(s if s in bundled else ARCH_PREFIX + s, role) for s, role in DEFAULT_MODELS[:2]]
    return [*nets, *extras, *DEFAULT_MODELS[2:]]


def initial_size(available: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) of the window on first start: DEFAULT_SIZE, shrunk to fit the screen's free area."""
    if available is None:
        return DEFAULT_SIZE
    aw, ah = available
    return min(DEFAULT_SIZE[0], max(640, int(aw * 0.94))), min(DEFAULT_SIZE[1], max(480, int(ah * 0.92)))


class MainWindow(QMainWindow):
    """Binds the panels to one `Studio`. `panel(name)` returns a panel, `show_panel(name)` raises it."""

    first_disparity = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        restore: bool = True,
        models: list[tuple[str, str]] | None = None,
        size: tuple[int, int] | None = None,
        data: str | None = None,
    ) -> None:
        """`restore`: reopen the saved session; `models`: (spec, role) pairs to open instead of the defaults
        (teacher, student, SGBM); `size`: (height, width) of the synthetic pairs and measurements; `data`: the
        data source to open (instead of the saved one or the synthetic generator)."""
        super().__init__()
        self.setWindowTitle("Stereo Studio")
        self.studio = Studio(settings or Settings(), self)
        self._models = list(models) if models is not None else default_models()
        if size is not None:
            self.studio.size = (int(size[0]), int(size[1]))
        self.studio.stats_enabled = False  # measurements wait for the first disparity (fast start)
        self._restore = restore
        self._data = data
        self._closing = False
        self.messages = MessageBar()
        self.studio.message.connect(self._message)

        # every panel from the one table (panels.py): tabs in order, docks at the bottom
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.docks: dict[str, QDockWidget] = {}
        self._panels: dict[str, QWidget] = {}
        for spec in PANEL_SPECS:
            widget = spec.build(self.studio)
            self._panels[spec.name] = widget
            setattr(self, spec.name, widget)  # window.preview, window.models, ...
            if spec.dock:
                dock = QDockWidget(spec.title, self)
                dock.setObjectName(f"{spec.name}_dock")
                dock.setWidget(widget)
                dock.setToolTip(spec.tip)
                dock.setFeatures(
                    QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                    | QDockWidget.DockWidgetClosable
                )
                self.addDockWidget(Qt.BottomDockWidgetArea, dock)
                self.docks[spec.name] = dock
            else:
                number = TABS.index(spec.name) + 1
                self.tabs.setTabToolTip(self.tabs.addTab(widget, spec.title), f"{spec.tip} (Ctrl+{number})")
        self.jobs_dock = self.docks["jobs"]
        self.tabs.currentChanged.connect(self._tab_changed)
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(6, 6, 6, 0)
        cl.setSpacing(6)
        cl.addWidget(self.messages)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.setAcceptDrops(True)  # model folders, .onnx, datasets, videos, recordings, calibrations

        self._build_toolbar()
        self._build_status()
        self.pruning.slider.valueChanged.connect(self.importance.set_ratio)
        self.preview.frame_shown.connect(self._frame_shown)
        self.studio.panel_requested.connect(self.show_panel)
        self.studio.models_changed.connect(self._update_status)
        self.studio.jobs.job_changed.connect(lambda _r: self._update_status())
        self.studio.data_changed.connect(self._update_status)
        self.studio.data_changed.connect(self._show_data_spec)
        screen = self.screen() or QApplication.primaryScreen()
        free = screen.availableGeometry() if screen is not None else None
        self.resize(*initial_size((free.width(), free.height()) if free is not None else None))
        self.setMinimumSize(min(1000, self.width()), min(640, self.height()))
        self.fit_docks()
        self._restore_layout()
        self._first_frame = False
        QTimer.singleShot(0, self.start_session)

    # ----- chrome
    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        self.addToolBar(Qt.TopToolBarArea, bar)
        title = QLabel("  Stereo Studio  ")
        title.setStyleSheet(f"font-size: 15px; font-weight: 700; color: {theme.ACCENT};")
        bar.addWidget(title)
        bar.addSeparator()
        bar.addWidget(QLabel(" data "))
        self.data_combo = QComboBox()
        self.data_combo.setMinimumWidth(260)
        self.data_combo.setToolTip(
            "Data source for accuracy, pruning points and the preview: the built-in "
            "synthetic generator or a dataset folder (KITTI, Middlebury, ...)"
        )
        recent = [d for d in self.studio.settings.get("data/recent", []) if isinstance(d, str)]
        self.data_combo.addItems(["synthetic", *recent[:8], OPEN_DATA])
        self.data_combo.activated.connect(self._data_chosen)
        bar.addWidget(self.data_combo)
        bar.addSeparator()
        from stereo_studio.gui.menus import build_menus

        self.actions = build_menus(self)  # the menu bar; one action per shortcut, shared with this toolbar
        for name in ("open_model", "snapshot", "jobs"):
            bar.addAction(self.actions[name])
        cancel_action = QAction("Cancel", self)
        cancel_action.setShortcut(QKeySequence("Ctrl+."))
        cancel_action.setToolTip("Cancel the distillation run or the jobs selected in the dock")
        cancel_action.triggered.connect(self.cancel_shortcut)
        self.addAction(cancel_action)

    def _build_status(self) -> None:
        self.status_models = QLabel("")
        self.status_jobs = QLabel("")
        self.statusBar().addWidget(self.status_models, 1)
        self.statusBar().addPermanentWidget(self.status_jobs)
        self._update_status()

    def _update_status(self) -> None:
        names = ", ".join(m.label for m in self.studio.models) or "loading models…"
        self.status_models.setText(
            f"{names}   ·   data: {self.studio.data_spec}   ·   {self.studio.size[0]}x{self.studio.size[1]}"
        )
        n = len(self.studio.jobs.active())
        self.status_jobs.setText(f"{n} job{'s' if n != 1 else ''} running" if n else "idle")

    def _message(self, level: str, text: str) -> None:
        self.messages.post(level, text)

    # ----- panels
    def panel(self, name: str) -> QWidget:
        if name not in PANELS:
            raise ValueError(f"unknown panel '{name}' (known: {', '.join(PANELS)})")
        return getattr(self, name)

    def show_panel(self, name: str, detail: object = None) -> None:
        """Raise a panel (a tab, or a dock); `detail` goes to its `focus_on` (e.g. a model for the 3D
        view)."""
        widget = self.panel(name)
        if panel_spec(name).dock:
            dock = self.docks[name]
            dock.show()
            dock.raise_()
            self.resizeDocks([dock], [max(260, self.height() // 2)], Qt.Vertical)
        else:
            self.tabs.setCurrentWidget(widget)
        if detail is not None and hasattr(widget, "focus_on"):
            widget.focus_on(detail)

    def fit_docks(self) -> None:
        """The bottom docks take a sixth of the window's height (110 to 170 px): small screens keep room for
        the panels."""
        height = max(110, min(170, self.height() // 6))
        self.resizeDocks(list(self.docks.values()), [height] * len(self.docks), Qt.Vertical)

    def toggle_jobs(self) -> None:
        self.jobs_dock.setVisible(not self.jobs_dock.isVisible())

    def cancel_shortcut(self) -> None:
        """Ctrl+., the window's one Cancel shortcut (one per panel made it ambiguous: nothing happened).
        With the focus in the Jobs dock it cancels the selected jobs; otherwise the Distillation tab's run
        when that tab is shown, else the jobs selected in the dock."""
        focus = QApplication.focusWidget()
        jobs_visible = self.jobs_dock.isVisible()
        in_jobs = jobs_visible and focus is not None and self.jobs.isAncestorOf(focus)
        if not in_jobs and self.tabs.currentWidget() is self.distill:
            self.distill.cancel()
        elif jobs_visible:
            self.jobs.cancel_selected()

    def set_full_screen(self, on: bool) -> None:
        if on:
            self.showFullScreen()
        else:
            self.showNormal()

    def current_panel(self) -> str:
        return next(n for n in TABS if self.panel(n) is self.tabs.currentWidget())

    def _tab_changed(self, _index: int) -> None:
        self.studio.settings.set("window/panel", self.current_panel())

    # ----- session
    def start_session(self) -> None:
        """Open the data and the models: the saved session, or the defaults (teacher, student, SGBM)."""
        s = self.studio.settings
        data = s.get("data/spec", "synthetic") if self._restore else "synthetic"
        data = self._data or data
        saved = s.get("models/open", []) if self._restore else []
        self.studio.data_spec = "synthetic"
        job = self.studio.set_data("synthetic" if not data or not Path(str(data)).exists() else str(data))
        del job
        models = [tuple(m) for m in saved if isinstance(m, list) and len(m) == 3] or [
            (spec, role, None) for spec, role in self._models
        ]
        for spec, role, key in models:
            self.studio.open_model(spec, role=role, key=key)
        if self._restore:
            panel = s.get("window/panel", "preview")
            if panel in TABS:
                self.show_panel(panel)

    def _data_chosen(self, index: int) -> None:
        text = self.data_combo.itemText(index)
        if text == OPEN_DATA:
            path = QFileDialog.getExistingDirectory(
                self, "Open a dataset folder", Recent(self.studio.settings).last_dir("data")
            )
            if not path:
                self.data_combo.setCurrentText(self.studio.data_spec)
                return
            text = path
        self.open_kind("data", text)

    # ----- opening anything: menus, recent items, drag and drop
    def open_kind(self, kind: str, path: str | Path) -> None:
        """Open `path` as a `kind` (model, data, video, recording, calibration) and remember it."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind '{kind}' (known: {', '.join(KINDS)})")
        text = str(path)
        Recent(self.studio.settings).add(kind, text)
        if kind == "model":
            self.models.open_path(text)
        elif kind == "data":
            if text != "synthetic" and self.data_combo.findText(text) < 0:
                self.data_combo.insertItem(1, text)
            self.data_combo.setCurrentText(text)
            self.set_data(text)
        elif kind == "video":
            self.preview.set_video(text, loop=self.preview.loop.isChecked())
            self.show_panel("preview")
        elif kind == "recording":
            self.preview.set_recording(text)
            self.show_panel("preview")
        else:
            self.preview.set_calibration(text)

    def open_path(self, path: str | Path) -> str | None:
        """Open whatever `path` is (a model folder or .onnx file, a dataset folder, a video, a recording, a
        calibration file); returns its kind, or None (with a message) when it is none of these."""
        found = classify(path)
        if found is None:
            self.messages.post("warning", f"cannot open {path}: not a model, dataset, video, recording or "
                               "calibration file")
            return None
        kind, target = found
        self.open_kind(kind, target)
        return kind

    @staticmethod
    def _dropped_paths(event: QDragEnterEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(classify(p) is not None for p in self._dropped_paths(event)):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragEnterEvent) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event)
        if not paths:
            event.ignore()
            return
        for path in paths:
            self.open_path(path)
        event.acceptProposedAction()

    def set_data(self, spec: str) -> None:
        self.studio.set_data(spec, on_finished=lambda _r: self._show_data_spec())

    def _show_data_spec(self) -> None:
        """The data box names the data every number comes from: a restored session's folder too, and the
        previous source again when a new one fails to open."""
        spec = self.studio.data_spec
        if self.data_combo.findText(spec) < 0:
            self.data_combo.insertItem(1, spec)
        self.data_combo.setCurrentText(spec)

    def _frame_shown(self) -> None:
        if not self._first_frame:
            self._first_frame = True
            self.studio.set_stats_enabled(True)
            self.first_disparity.emit()

    # ----- layout persistence and shutdown
    def _restore_layout(self) -> None:
        s = self.studio.settings
        geometry, state = s.get_bytes("window/geometry"), s.get_bytes("window/state")
        if self._restore and geometry is not None:
            self.restoreGeometry(geometry)
        if self._restore and state is not None:
            self.restoreState(state)

    def save_settings(self) -> None:
        s = self.studio.settings
        s.set_bytes("window/geometry", self.saveGeometry())
        s.set_bytes("window/state", self.saveState())
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel every job cleanly (runs keep their checkpoints), save the settings, then close."""
        if not self._closing:
            self._closing = True
            self.save_settings()
            for panel in self._panels.values():
                if hasattr(panel, "shutdown"):
                    panel.shutdown()
            self.studio.set_stats_enabled(False)
            if not self.studio.jobs.cancel_all(wait_ms=15000):
                self.messages.post("warning", "some jobs did not stop within 15 s")
        event.accept()

    def panel_ready(self, name: str) -> bool:
        """Whether a panel shows its content (used by the screenshot mode to wait for it)."""
        ready = panel_spec(name).ready
        return True if ready is None else bool(ready(self))
