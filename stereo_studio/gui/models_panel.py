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
from stereo_studio.gui import model_picker, theme
from stereo_studio.gui.studio import ModelEntry, Studio

COLUMNS = ["model", "kind", "params", "MACs", "latency", "EPE", "bad-3", "source"]


def latency_cell(s: dict[str, Any]) -> tuple[str, str]:
    """(text, tooltip) of a measured latency: the median with its p10-p90 spread, the settings it ran with
    and whether other registered work (training) ran meanwhile."""
    text = fmt.number(s["latency_ms"], 1, " ms")
    tip = f"median {fmt.number(s['latency_ms'], 2, ' ms')}"
    if s.get("p10_ms") is not None and s.get("p90_ms") is not None:
        text += f" ({s['p10_ms']:.0f}–{s['p90_ms']:.0f})"
        tip += f", p10–p90 {s['p10_ms']:.2f}–{s['p90_ms']:.2f} ms"
    threads = s.get("threads")
    settings = [f"{threads} thread{'s' if threads != 1 else ''}" if threads else "", s.get("precision") or "",
                f"OMP_WAIT_POLICY {s['wait_policy']}" if s.get("wait_policy") else ""]
    if any(settings):
        tip += "\nmeasured with " + ", ".join(x for x in settings if x)
    if s.get("contended"):
        text += " ⚠"
        ran = ", ".join(s.get("contended_by") or ()) or "other work"
        tip += f"\n⚠ contended: {ran} ran during the measurement (Re-measure when it is done)"
    return text, tip


def runtime_text() -> tuple[str, str]:
    """(label, tooltip) of the inference settings this machine uses and where each came from."""
    from stereo_studio import runtime

    s = runtime.inference_settings().to_json()
    src = s["source"]
    now = runtime.runtime_report()
    muted = f"color:{theme.MUTED}"
    text = (
        f"inference settings: <b>{s['precision']}</b> <span style='{muted}'>({src['precision']})</span> · "
        f"<b>{s['threads']} thread{'s' if s['threads'] != 1 else ''}</b> "
        f"<span style='{muted}'>({src['threads']})</span> · "
        f"wait policy <b>{s['wait_policy']}</b> <span style='{muted}'>({src['wait_policy']})</span>"
        f" <span style='{muted}'>· in effect: {now['threads'] or '?'} torch threads, "
        f"OMP_WAIT_POLICY {now['wait_policy']}</span>"
    )
    if "fallback" in src.values():
        text += f" <span style='color:{theme.WARN}'>· not measured on this CPU yet</span>"
    if s.get("probe_contended"):
        text += f" <span style='color:{theme.WARN}'>· measured while training ran (provisional)</span>"
    tip = (
        "The fastest settings measured on this CPU (precision x threads x OpenMP wait policy), used by the "
        "preview, bench, sweeps and every latency here. Where each came from: probe / cache = measured on "
        "this machine, env = your environment, fallback = not measured yet (fp32, all cores).\n"
        f"cache: {s['cache']}"
    )
    return text, tip


def _measure_runtime() -> Any:
    """Job: time the inference settings again (the runtime probe, ~10-20 s; a notice instead of stderr)."""
    from stereo_studio import runtime

    return runtime.ensure_settings(force=True, notice=lambda _text: None)


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
        open_btn = QPushButton("Open model…")
        open_btn.setProperty("primary", True)
        open_btn.setToolTip(model_picker.OPEN_TIP)
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
        self.runtime = QLabel("")
        self.runtime.setProperty("role", "caption")
        self.runtime.setWordWrap(True)
        self.runtime_btn = QPushButton("Measure again")
        self.runtime_btn.setToolTip(
            "Time every candidate (precision x threads x wait policy) on this CPU again and keep the fastest "
            "(~10-20 s; the wait policy takes effect at the next start)"
        )
        self.runtime_btn.clicked.connect(self.measure_runtime)
        runtime_row = QHBoxLayout()
        runtime_row.addWidget(self.runtime, 1)
        runtime_row.addWidget(self.runtime_btn)
        ul.addLayout(runtime_row)
        self.show_runtime()
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
        if name == "sgbm":
            self.studio.open_model(name, role="sgbm")
        else:
            self.studio.open_model(f"arch:{name}", role="model", key=name)  # untrained weights, explicitly

    def browse_model(self) -> None:
        path = model_picker.pick_model(self, self.studio.settings.get("models/last_dir", str(Path.cwd())))
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        """Open a model folder (a file inside it is accepted too) or an .onnx file; errors land in the
        message bar; a custom architecture's model.py runs only after a confirmation naming it."""
        p = Path(model_picker.model_spec(path))
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
        kind += "  · ONNX" if model_picker.is_onnx(entry.matcher) else ""
        item.setText(1, kind)
        if entry.untrained:
            item.setForeground(1, QBrush(QColor(theme.WARN)))
            item.setToolTip(1, "No trained weights were found: this is the untrained architecture")
        item.setText(2, fmt.count(s["params"]) if "params" in s else measuring)
        item.setText(3, fmt.count(s.get("macs")) if "params" in s else measuring)
        latency, latency_tip = latency_cell(s) if "latency_ms" in s else (measuring, "")
        item.setText(4, latency)
        item.setForeground(4, QBrush(QColor(theme.WARN if s.get("contended") else theme.TEXT)))
        item.setText(5, fmt.number(s["epe"], 2, " px") if "epe" in s else measuring)
        item.setText(6, fmt.number(s["bad3"], 1, " %") if "bad3" in s else measuring)
        item.setText(7, entry.spec)
        tip = f"{entry.key}: {entry.spec}"
        if s.get("error"):
            tip += f"\nmeasurement failed: {s['error']}"
        if s.get("data"):
            tip += f"\naccuracy on {s.get('pairs', '?')} pairs of {s['data']}"
        tip += model_picker.tooltip_extra(entry.matcher)
        for col in (0, 2, 3, 4, 5, 6, 7):
            item.setToolTip(col, tip + (f"\n{latency_tip}" if col == 4 and latency_tip else ""))

    # ----- inference settings
    def show_runtime(self) -> None:
        text, tip = runtime_text()
        self.runtime.setText(text)
        self.runtime.setToolTip(tip)

    def measure_runtime(self) -> None:
        """Run the runtime probe again in the background (one measurement at a time, like every timing)."""

        def done(settings: Any) -> None:
            self.show_runtime()
            self.studio.message.emit(
                "ok",
                f"inference settings: {settings.precision}, {settings.threads} threads, wait policy "
                f"{settings.wait_policy or 'default'} (the wait policy takes effect at the next start)",
            )

        self.runtime_btn.setEnabled(False)
        self.runtime.setText("timing the inference settings on this CPU…")
        self.studio.jobs.start(
            "Measure inference settings",
            _measure_runtime,
            on_result=done,
            on_error=lambda t: self.studio.message.emit("error", f"inference settings: {t}"),
            on_finished=lambda _r: (self.runtime_btn.setEnabled(True), self.show_runtime()),
        )

    def _show_details(self) -> None:
        entry = self.selected()
        self.layers.clear()
        if entry is None:
            self.title.setText("no model selected")
            self.config.setPlainText("")
            return
        badge = f"  <span style='color:{theme.WARN}'>untrained</span>" if entry.untrained else ""
        badge += model_picker.badge(entry.matcher)
        self.title.setText(f"<span style='color:{entry.color}'>●</span> {entry.key}{badge}")
        config = getattr(entry.matcher, "config", None) or getattr(entry.model, "config", None) or {}
        self.config.setPlainText(json.dumps(config, indent=2, default=str))
        onnx = model_picker.onnx_info(entry.matcher)
        if onnx is not None:  # a frozen ONNX network: its conventions and what was assumed, no layer tree
            self.config.setPlainText(json.dumps(onnx, indent=2, default=str))
            for row in model_picker.onnx_rows(onnx):
                QTreeWidgetItem(self.layers, row).setToolTip(1, row[1])
            return
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
