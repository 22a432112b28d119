"""The Stereo Studio main window: panels as tabs, the jobs / log dock, the data source, settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
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
from stereo_studio.gui.distill_panel import DistillPanel
from stereo_studio.gui.importance_panel import ImportancePanel
from stereo_studio.gui.jobs_panel import JobsPanel
from stereo_studio.gui.models_panel import ModelsPanel
from stereo_studio.gui.preview_panel import PreviewPanel
from stereo_studio.gui.pruning_panel import PruningPanel
from stereo_studio.gui.settings import Settings
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.message_bar import MessageBar

PANELS = ("preview", "models", "importance", "distill", "pruning", "jobs")
DEFAULT_MODELS = (("teacher", "teacher"), ("student", "student"), ("sgbm", "sgbm"))
BUNDLED_EXTRAS = (("student-pruned", "pruned"),)  # opened by default too, when bundled
OPEN_DATA = "Open dataset folder…"


def default_models() -> list[tuple[str, str]]:
    """(spec, role) of what a new session opens: teacher, student, the bundled pruned student, SGBM."""
    from stereo_studio.models.storage import bundled_model_names

    bundled = set(bundled_model_names())
    extras = [m for m in BUNDLED_EXTRAS if m[0] in bundled]
    return [*DEFAULT_MODELS[:2], *extras, *DEFAULT_MODELS[2:]]


class MainWindow(QMainWindow):
    """Binds the panels to one `Studio`. `panel(name)` returns a panel, `show_panel(name)` raises it."""

    first_disparity = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        restore: bool = True,
        models: list[tuple[str, str]] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        """`restore`: reopen the saved session; `models`: (spec, role) pairs to open instead of the defaults
        (teacher, student, SGBM); `size`: (height, width) of the synthetic pairs and measurements."""
        super().__init__()
        self.setWindowTitle("Stereo Studio")
        self.studio = Studio(settings or Settings(), self)
        self._models = list(models) if models is not None else default_models()
        if size is not None:
            self.studio.size = (int(size[0]), int(size[1]))
        self.studio.stats_enabled = False  # measurements wait for the first disparity (fast start)
        self._restore = restore
        self._closing = False
        self.messages = MessageBar()
        self.studio.message.connect(self._message)

        self.preview = PreviewPanel(self.studio)
        self.models = ModelsPanel(self.studio)
        self.importance = ImportancePanel(self.studio)
        self.distill = DistillPanel(self.studio)
        self.pruning = PruningPanel(self.studio)
        self.jobs = JobsPanel(self.studio)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        for widget, title, tip in (
            (self.preview, "Preview", "Disparity maps of every open model on the same frame (Ctrl+1)"),
            (self.models, "Models", "Open models: cost, accuracy, layers (Ctrl+2)"),
            (self.importance, "Channel importance", "Per-layer channel importance (Ctrl+3)"),
            (self.distill, "Distillation", "Distil a student from a teacher (Ctrl+4)"),
            (self.pruning, "Pruning", "Prune, see the accuracy / latency trade-off live (Ctrl+5)"),
        ):
            self.tabs.setTabToolTip(self.tabs.addTab(widget, title), tip)
        self.tabs.currentChanged.connect(self._tab_changed)
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(6, 6, 6, 0)
        cl.setSpacing(6)
        cl.addWidget(self.messages)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.jobs_dock = QDockWidget("Jobs / log", self)
        self.jobs_dock.setObjectName("jobs_dock")
        self.jobs_dock.setWidget(self.jobs)
        self.jobs_dock.setFeatures(
            QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable | QDockWidget.DockWidgetClosable
        )
        self.addDockWidget(Qt.BottomDockWidgetArea, self.jobs_dock)

        self._build_toolbar()
        self._build_status()
        self.pruning.slider.valueChanged.connect(self.importance.set_ratio)
        self.preview.frame_shown.connect(self._frame_shown)
        self.studio.models_changed.connect(self._update_status)
        self.studio.jobs.job_changed.connect(lambda _r: self._update_status())
        self.studio.data_changed.connect(self._update_status)
        self.resize(1440, 900)
        self.setMinimumSize(1000, 680)
        self.resizeDocks([self.jobs_dock], [190], Qt.Vertical)
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
        for text, shortcut, tip, slot in (
            ("Open model…", "Ctrl+O", "Open a saved model folder", self.models.browse_model),
            ("Snapshot", "Ctrl+Shift+S", "Save the preview as PNG", self.preview.snapshot),
            ("Jobs", "Ctrl+J", "Show / hide the jobs and log dock", self.toggle_jobs),
        ):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(shortcut))
            action.setToolTip(f"{tip} ({shortcut})")
            action.triggered.connect(lambda _=False, s=slot: s())
            bar.addAction(action)
        for i, name in enumerate(PANELS[:5], start=1):
            action = QAction(self)
            action.setShortcut(QKeySequence(f"Ctrl+{i}"))
            action.triggered.connect(lambda _=False, n=name: self.show_panel(n))
            self.addAction(action)
        quit_action = QAction(self)
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)

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

    def show_panel(self, name: str) -> None:
        widget = self.panel(name)
        if name == "jobs":
            self.jobs_dock.show()
            self.jobs_dock.raise_()
            self.resizeDocks([self.jobs_dock], [max(260, self.height() // 2)], Qt.Vertical)
            return
        self.tabs.setCurrentWidget(widget)

    def toggle_jobs(self) -> None:
        self.jobs_dock.setVisible(not self.jobs_dock.isVisible())

    def current_panel(self) -> str:
        return next(n for n in PANELS[:5] if self.panel(n) is self.tabs.currentWidget())

    def _tab_changed(self, _index: int) -> None:
        self.studio.settings.set("window/panel", self.current_panel())

    # ----- session
    def start_session(self) -> None:
        """Open the data and the models: the saved session, or the defaults (teacher, student, SGBM)."""
        s = self.studio.settings
        data = s.get("data/spec", "synthetic") if self._restore else "synthetic"
        saved = s.get("models/open", []) if self._restore else []
        self.studio.data_spec = "synthetic"
        job = self.studio.set_data("synthetic" if not data or not Path(str(data)).exists() else str(data))
        del job
        models = [tuple(m) for m in saved if isinstance(m, list) and len(m) == 3] or [
            (spec, role, spec) for spec, role in self._models
        ]
        for spec, role, key in models:
            self.studio.open_model(spec, role=role, key=key)
        if self._restore:
            panel = s.get("window/panel", "preview")
            if panel in PANELS[:5]:
                self.show_panel(panel)

    def _data_chosen(self, index: int) -> None:
        text = self.data_combo.itemText(index)
        if text == OPEN_DATA:
            path = QFileDialog.getExistingDirectory(self, "Open a dataset folder")
            if not path:
                self.data_combo.setCurrentText(self.studio.data_spec)
                return
            text = path
            recent = [path] + [d for d in self.studio.settings.get("data/recent", []) if d != path]
            self.studio.settings.set("data/recent", recent[:8])
            if self.data_combo.findText(path) < 0:
                self.data_combo.insertItem(1, path)
            self.data_combo.setCurrentText(path)
        self.set_data(text)

    def set_data(self, spec: str) -> None:
        self.studio.set_data(spec)

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
            for panel in (self.preview, self.distill, self.pruning):
                panel.shutdown()
            self.studio.set_stats_enabled(False)
            if not self.studio.jobs.cancel_all(wait_ms=15000):
                self.messages.post("warning", "some jobs did not stop within 15 s")
        event.accept()

    def panel_ready(self, name: str) -> bool:
        """Whether a panel shows its content (used by the screenshot mode to wait for it)."""
        if name == "preview":
            return self.preview.complete()
        if name == "models":
            return bool(self.studio.models) and all(
                "error" in m.stats or ("latency_ms" in m.stats and "epe" in m.stats)
                for m in self.studio.models
            )
        if name == "importance":
            return self.importance.view is not None
        if name == "pruning":
            return len(self.pruning.points) >= 1 and len(self.pruning.references) >= 2
        return True
