"""Models panel: the open models (teacher, student, pruned variants, SGBM) with their measured cost and
accuracy, opening built-in architectures or saved model folders, and the layer tree of the selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import format as fmt
from stereo_studio.gui import theme
from stereo_studio.gui.studio import ModelEntry, Studio

COLUMNS = ["model", "kind", "params", "MACs", "latency", "EPE", "bad-3", "source"]


def _module_rows(model: Any) -> list[tuple[str, str, int, int]]:
    """(qualified name, type, depth, own parameter count) of every module: runs in a worker thread."""
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        own = sum(p.numel() for p in module.parameters(recurse=False))
        total = sum(p.numel() for p in module.parameters())
        extra = module.extra_repr()
        rows.append(
            (
                name,
                f"{type(module).__name__}({extra})" if extra else type(module).__name__,
                name.count("."),
                total or own,
            )
        )
    return rows


class ModelsPanel(QWidget):
    """Open / compare models; everything measured runs in the background (Studio's stats queue)."""

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.table = QTreeWidget()
        self.table.setHeaderLabels(COLUMNS)
        self.table.setRootIsDecorated(False)
        self.table.setAlternatingRowColors(True)
        self.table.setToolTip(
            "Open models: cost measured on this machine at the preview size, accuracy on a "
            "few pairs of the current data source"
        )
        self.table.header().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.header().setStretchLastSection(True)
        self.table.currentItemChanged.connect(lambda *_: self._show_details())

        from stereo_studio.models.registry import architecture_names

        self.arch = QComboBox()
        self.arch.addItems([*architecture_names(), "sgbm"])
        self.arch.setToolTip("A built-in architecture (untrained weights) or OpenCV SGBM")
        add_btn = QPushButton("Add")
        add_btn.setToolTip("Open the chosen built-in architecture (Ctrl+Shift+N)")
        add_btn.clicked.connect(self.add_architecture)
        open_btn = QPushButton("Open model folder…")
        open_btn.setProperty("primary", True)
        open_btn.setToolTip("Open a saved model: a folder with config.json + model.safetensors (Ctrl+O)")
        open_btn.clicked.connect(self.browse_model)
        self.remove_btn = QPushButton("Close model")
        self.remove_btn.setToolTip("Close the selected model (Delete)")
        self.remove_btn.clicked.connect(self.remove_selected)
        measure_btn = QPushButton("Re-measure")
        measure_btn.setToolTip("Measure the selected model again (params, MACs, latency, accuracy)")
        measure_btn.clicked.connect(self.remeasure_selected)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("architecture"))
        bar.addWidget(self.arch)
        bar.addWidget(add_btn)
        bar.addSpacing(12)
        bar.addWidget(open_btn)
        bar.addStretch(1)
        bar.addWidget(measure_btn)
        bar.addWidget(self.remove_btn)

        self.title = QLabel("")
        self.title.setProperty("role", "title")
        self.layers = QTreeWidget()
        self.layers.setHeaderLabels(["layer", "type", "params"])
        self.layers.setToolTip("Layer tree of the selected model")
        self.layers.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.layers.header().setSectionResizeMode(1, QHeaderView.Stretch)
        self.config = QPlainTextEdit()
        self.config.setReadOnly(True)
        self.config.setToolTip("The architecture config of the selected model (config.json)")
        details = QTabWidget()
        details.addTab(self.layers, "Layers")
        details.addTab(self.config, "Config")
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.title)
        ll.addWidget(details, 1)
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addLayout(bar)
        ul.addWidget(self.table, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(split)

        QShortcut(QKeySequence("Ctrl+Shift+N"), self, activated=self.add_architecture)
        QShortcut(QKeySequence(Qt.Key_Delete), self.table, activated=self.remove_selected)
        studio.models_changed.connect(self.refresh)
        studio.model_updated.connect(self._update_row)
        self._layer_cache: dict[str, list] = {}
        self.refresh()

    # ----- actions
    def add_architecture(self) -> None:
        name = self.arch.currentText()
        self.studio.open_model(name, role="sgbm" if name == "sgbm" else "model")

    def browse_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a saved model folder", str(Path.cwd()))
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        """Open a model folder (a file inside it is accepted too); errors land in the message bar."""
        p = Path(path)
        if p.is_file():
            p = p.parent
        self.studio.settings.set("models/last_dir", str(p.parent))
        self.studio.open_model(str(p), role="model")

    def selected(self) -> ModelEntry | None:
        item = self.table.currentItem()
        return self.studio.entry(item.data(0, Qt.UserRole)) if item is not None else None

    def remove_selected(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.studio.remove_model(entry.key)

    def remeasure_selected(self) -> None:
        entry = self.selected()
        if entry is not None:
            entry.stats.clear()
            self._update_row(entry.key)
            self.studio.queue_stats(entry.key)

    # ----- view
    def refresh(self) -> None:
        current = self.selected()
        self.table.clear()
        for entry in self.studio.models:
            item = QTreeWidgetItem()
            item.setData(0, Qt.UserRole, entry.key)
            self.table.addTopLevelItem(item)
            self._fill(item, entry)
        if self.table.topLevelItemCount():
            keys = [m.key for m in self.studio.models]
            row = keys.index(current.key) if current is not None and current.key in keys else 0
            self.table.setCurrentItem(self.table.topLevelItem(row))
        else:
            self._show_details()

    def _item(self, key: str) -> QTreeWidgetItem | None:
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            if item.data(0, Qt.UserRole) == key:
                return item
        return None

    def _update_row(self, key: str) -> None:
        item, entry = self._item(key), self.studio.entry(key)
        if item is not None and entry is not None:
            self._fill(item, entry)

    def _fill(self, item: QTreeWidgetItem, entry: ModelEntry) -> None:
        s = entry.stats
        measuring = "…" if not s.get("error") else "error"
        item.setText(0, f"●  {entry.key}")
        item.setForeground(0, QBrush(QColor(entry.color)))
        kind = entry.role + ("  · UNTRAINED" if entry.untrained else "")
        item.setText(1, kind)
        if entry.untrained:
            item.setForeground(1, QBrush(QColor(theme.WARN)))
            item.setToolTip(1, "No trained weights were found: this is the untrained architecture")
        item.setText(2, fmt.count(s["params"]) if "params" in s else measuring)
        item.setText(3, fmt.count(s.get("macs")) if "params" in s else measuring)
        item.setText(4, fmt.number(s["latency_ms"], 1, " ms") if "latency_ms" in s else measuring)
        item.setText(5, fmt.number(s["epe"], 2, " px") if "epe" in s else measuring)
        item.setText(6, fmt.number(s["bad3"], 1, " %") if "bad3" in s else measuring)
        item.setText(7, entry.spec)
        tip = f"{entry.key}: {entry.spec}"
        if s.get("error"):
            tip += f"\nmeasurement failed: {s['error']}"
        if s.get("data"):
            tip += f"\naccuracy on {s.get('pairs', '?')} pairs of {s['data']}"
        for col in (0, 2, 3, 4, 5, 6, 7):
            item.setToolTip(col, tip)

    def _show_details(self) -> None:
        entry = self.selected()
        self.layers.clear()
        if entry is None:
            self.title.setText("no model selected")
            self.config.setPlainText("")
            return
        badge = f"  <span style='color:{theme.WARN}'>untrained</span>" if entry.untrained else ""
        self.title.setText(f"<span style='color:{entry.color}'>●</span> {entry.key}{badge}")
        config = getattr(entry.matcher, "config", None) or getattr(entry.model, "config", None) or {}
        self.config.setPlainText(json.dumps(config, indent=2, default=str))
        if entry.model is None:
            QTreeWidgetItem(self.layers, ["(OpenCV semi-global block matching: no layers)", "", ""])
            return
        if entry.key in self._layer_cache:
            self._fill_layers(self._layer_cache[entry.key])
            return
        key = entry.key

        def done(rows: list) -> None:
            self._layer_cache[key] = rows
            if self.selected() is not None and self.selected().key == key:
                self._fill_layers(rows)

        self.studio.jobs.start(f"Layers of {key}", _module_rows, entry.model, on_result=done, track=False)

    def _fill_layers(self, rows: list[tuple[str, str, int, int]]) -> None:
        self.layers.clear()
        parents: dict[str, QTreeWidgetItem] = {}
        for name, kind, _depth, params in rows:
            parent_name, _, short = name.rpartition(".")
            parent = parents.get(parent_name, self.layers.invisibleRootItem())
            item = QTreeWidgetItem(parent, [short, kind, fmt.count(params)])
            item.setToolTip(0, name)
            item.setToolTip(1, kind)
            parents[name] = item
        self.layers.expandToDepth(0)
