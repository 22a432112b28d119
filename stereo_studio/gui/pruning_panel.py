"""Pruning panel: global ratio slider + editable per-layer ratios, immediate params / MACs, a live
accuracy-vs-latency trade-off plot (Pareto front, teacher / unpruned / SGBM references, click a point to
restore it), sweeps, sensitivity analysis, prune + fine-tune and ONNX export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider
from superqt.utils import qdebounced, qthrottled

from stereo_studio.gui import format as fmt
from stereo_studio.gui import theme
from stereo_studio.gui.pruning_jobs import (
    PruneTarget,
    Reference,
    measure,
    plan_and_estimate,
    prepare_target,
    reference_points,
    suggest,
)
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.workers import JobRecord

CRITERIA = [
    ("l1", "L1 magnitude"),
    ("l2", "L2 magnitude"),
    ("bn", "BN scale"),
    ("taylor", "Taylor"),
    ("lamp", "LAMP"),
]
SWEEP_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _sweep_job(model: Any, ratios: Any, samples: Any, size: tuple[int, int], criterion: str, plan: Any):
    from stereo_studio.engine.sweep import sweep

    return (
        yield from sweep(
            model,
            ratios,
            data=samples,
            val_pairs=len(samples),
            size=size,
            criterion=criterion,
            plan=plan or None,
        )
    )


def _sensitivity_job(model: Any, samples: Any, size: tuple[int, int], criterion: str):
    from stereo_studio.engine.sensitivity import sensitivity

    return (
        yield from sensitivity(model, data=samples, val_pairs=len(samples), size=size, criterion=criterion)
    )


def _prune_job(
    spec: str,
    out: str,
    ratio: float | None,
    ratios: Any,
    criterion: str,
    steps: int,
    teacher: str | None,
    size: tuple[int, int],
):
    from stereo_studio.engine.pruning import prune_and_finetune

    return (
        yield from prune_and_finetune(
            spec,
            out,
            ratio=ratio,
            ratios=ratios or None,
            criterion=criterion,
            finetune_steps=steps,
            teacher=teacher,
            size=size,
        )
    )


def _export_job(model: Any, out: str) -> dict:
    from stereo_studio.engine.export import export_onnx

    return export_onnx(model, out)


class PruningPanel(QWidget):
    """Binds the pruning engine to a slider, a table and a trade-off plot."""

    point_added = Signal(object)  # a SweepPoint landed on the plot

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.target: PruneTarget | None = None
        self.overrides: dict[str, float] = {}
        self.points: list[Any] = []
        self.point_settings: dict[int, tuple[float, dict[str, float]]] = {}
        self.references: dict[str, Reference] = {}
        self.sensitivity_table: Any = None
        self._prepare_job: JobRecord | None = None
        self._estimate_job: JobRecord | None = None
        self._estimate_pending = False
        self._measure_job: JobRecord | None = None
        self._measure_pending = False
        self._ref_job: JobRecord | None = None
        self._preparing = ""
        self._spins: dict[str, QDoubleSpinBox] = {}
        self._build()
        studio.models_changed.connect(self._models_changed)
        studio.data_changed.connect(self._data_changed)
        self._models_changed()

    # ----- layout
    def _build(self) -> None:
        self.model = QComboBox()
        self.model.setToolTip("The network to prune (a private copy: the open model is not changed)")
        self.model.currentTextChanged.connect(self._model_selected)
        self._model_touched = False
        self.model.activated.connect(lambda _: setattr(self, "_model_touched", True))
        self.criterion = QComboBox()
        for key, label in CRITERIA:
            self.criterion.addItem(label, key)
        self.criterion.setToolTip("Which channels go first: their importance under this criterion")
        self.criterion.currentIndexChanged.connect(lambda _: self._plan_changed())
        self.slider = QLabeledDoubleSlider(Qt.Horizontal)
        self.slider.setRange(0.0, 0.9)
        self.slider.setSingleStep(0.05)
        self.slider.setDecimals(2)
        self.slider.setValue(float(self.studio.settings.get("pruning/ratio", 0.0) or 0.0))
        self.slider.setToolTip(
            "Global pruning ratio: the fraction of channels each prunable layer loses (Ctrl+Up / Ctrl+Down)"
        )
        self.slider.valueChanged.connect(self._slider_moved)

        self.params = QLabel("–")
        self.macs = QLabel("–")
        self.kept = QLabel("–")
        self.measured = QLabel("–")
        cards = QGridLayout()
        for col, (caption, w) in enumerate(
            (
                ("params", self.params),
                ("MACs", self.macs),
                ("channels kept", self.kept),
                ("last point", self.measured),
            )
        ):
            w.setProperty("role", "value")
            c = QLabel(caption)
            c.setProperty("role", "caption")
            cards.addWidget(c, 0, col)
            cards.addWidget(w, 1, col)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["layer", "channels", "ratio", "kept"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setToolTip("Per-layer ratios: edit one to override the global ratio for that layer")
        self.reset_btn = QPushButton("Reset to global")
        self.reset_btn.setToolTip("Drop the per-layer overrides")
        self.reset_btn.clicked.connect(self.reset_overrides)
        self.plan_btn = QPushButton("Apply sensitivity plan")
        self.plan_btn.setToolTip("Per-layer ratios from the sensitivity analysis reaching the target MACs")
        self.plan_btn.setEnabled(False)
        self.plan_btn.clicked.connect(self.apply_sensitivity_plan)
        self.target_macs = QDoubleSpinBox()
        self.target_macs.setRange(0.05, 1.0)
        self.target_macs.setSingleStep(0.05)
        self.target_macs.setValue(0.5)
        self.target_macs.setToolTip("Target MACs (fraction of the unpruned model) of the sensitivity plan")
        plan_row = QHBoxLayout()
        plan_row.addWidget(self.reset_btn)
        plan_row.addStretch(1)
        plan_row.addWidget(QLabel("target MACs"))
        plan_row.addWidget(self.target_macs)
        plan_row.addWidget(self.plan_btn)

        self.sweep_btn = QPushButton("Run sweep")
        self.sweep_btn.setToolTip(
            f"Measure ratios {', '.join(f'{r:g}' for r in SWEEP_RATIOS)} (Ctrl+Shift+W)"
        )
        self.sweep_btn.clicked.connect(self.run_sweep)
        self.sens_btn = QPushButton("Sensitivity analysis")
        self.sens_btn.setToolTip("Prune each layer alone at 0.25 / 0.5 / 0.75 and plot its EPE increase")
        self.sens_btn.clicked.connect(self.run_sensitivity)
        self.finetune_steps = QSpinBox()
        self.finetune_steps.setRange(0, 100_000)
        self.finetune_steps.setSingleStep(100)
        self.finetune_steps.setValue(500)
        self.finetune_steps.setToolTip("Distillation fine-tune steps after pruning (0 = prune only)")
        self.prune_btn = QPushButton("Prune && fine-tune")
        self.prune_btn.setProperty("primary", True)
        self.prune_btn.setToolTip(
            "Prune the model with the current plan, fine-tune it with distillation from "
            "the teacher and open the result (Ctrl+Shift+P)"
        )
        self.prune_btn.clicked.connect(self.prune_and_finetune)
        self.export_btn = QPushButton("Export ONNX…")
        self.export_btn.setToolTip("Export the selected model (pruned with the current plan) to ONNX")
        self.export_btn.clicked.connect(self.export_onnx)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the running sweep / analysis / pruning job")
        self.cancel_btn.clicked.connect(self.cancel_jobs)
        actions = QGridLayout()
        actions.addWidget(self.sweep_btn, 0, 0)
        actions.addWidget(self.sens_btn, 0, 1)
        actions.addWidget(self.cancel_btn, 0, 2)
        actions.addWidget(QLabel("fine-tune steps"), 1, 0)
        actions.addWidget(self.finetune_steps, 1, 1)
        actions.addWidget(self.prune_btn, 1, 2)
        actions.addWidget(self.export_btn, 2, 2)

        head = QGroupBox("Plan")
        hl = QGridLayout(head)
        hl.addWidget(QLabel("model"), 0, 0)
        hl.addWidget(self.model, 0, 1)
        hl.addWidget(QLabel("criterion"), 1, 0)
        hl.addWidget(self.criterion, 1, 1)
        hl.addWidget(QLabel("global ratio"), 2, 0)
        hl.addWidget(self.slider, 2, 1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(head)
        ll.addLayout(cards)
        ll.addWidget(self.table, 1)
        ll.addLayout(plan_row)
        ll.addLayout(actions)
        left.setMinimumWidth(440)
        left.setMaximumWidth(520)

        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "latency on this machine", units="ms")
        self.plot.setLabel("left", "EPE (lower is better)", units="px")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.getViewBox().setDefaultPadding(0.08)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setToolTip("Each measured pruning point: latency vs accuracy. Click a point to restore it.")
        self.scatter = pg.ScatterPlotItem(
            size=10,
            pen=pg.mkPen(theme.BG),
            brush=pg.mkBrush(theme.ACCENT),
            hoverable=True,
            hoverSize=14,
            name="pruned points",
            tip=self._tip,
        )
        self.scatter.sigClicked.connect(self._point_clicked)
        self.plot.addItem(self.scatter)
        self.front = self.plot.plot(
            [], [], pen=pg.mkPen(theme.OK, width=2, style=Qt.DashLine), name="Pareto front"
        )
        self.current = pg.ScatterPlotItem(
            size=16, pen=pg.mkPen(theme.TEXT, width=2), brush=pg.mkBrush(None), name="current"
        )
        self.plot.addItem(self.current)
        self.refs = pg.ScatterPlotItem(
            size=14,
            symbol="star",
            pen=pg.mkPen(theme.BG),
            hoverable=True,
            tip=lambda x, y, data: f"{data}: {x:.1f} ms, EPE {y:.2f} px",
        )
        self.plot.addItem(self.refs)
        self.ref_labels: list[pg.TextItem] = []

        self.sens_plot = pg.PlotWidget()
        self.sens_plot.setLabel("bottom", "ratio of this layer pruned")
        self.sens_plot.setLabel("left", "EPE increase", units="px")
        self.sens_plot.showGrid(x=True, y=True, alpha=0.2)
        self.sens_plot.addLegend(offset=(10, 10))
        self.sens_plot.setToolTip("Sensitivity: each line is one layer pruned alone")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.plot, "Trade-off")
        self.tabs.addTab(self.sens_plot, "Sensitivity")
        self.status = QLabel("")
        self.status.setProperty("role", "caption")
        key = QLabel(
            f"<span style='color:{theme.ACCENT}'>●</span> measured point &nbsp; "
            f"<span style='color:{theme.OK}'>●</span> on the Pareto front (- - -) &nbsp; "
            f"<span style='color:{theme.ACCENT}'>◆</span> fine-tuned &nbsp; ◯ current &nbsp; "
            "★ reference (teacher, unpruned student, SGBM)"
        )
        key.setProperty("role", "caption")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.tabs, 1)
        rl.addWidget(key)
        rl.addWidget(self.status)

        layout = QHBoxLayout(self)
        layout.addWidget(left)
        layout.addWidget(right, 1)
        QShortcut(
            QKeySequence("Ctrl+Up"), self, activated=lambda: self.slider.setValue(self.slider.value() + 0.05)
        )
        QShortcut(
            QKeySequence("Ctrl+Down"),
            self,
            activated=lambda: self.slider.setValue(self.slider.value() - 0.05),
        )
        QShortcut(QKeySequence("Ctrl+Shift+W"), self, activated=self.run_sweep)
        QShortcut(QKeySequence("Ctrl+Shift+P"), self, activated=self.prune_and_finetune)

    # ----- model selection
    def _models_changed(self) -> None:
        nets = self.studio.networks()
        current = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems([m.key for m in nets])
        default = next((m.key for m in nets if m.role == "student"), nets[0].key if nets else "")
        keep = self._model_touched and self.model.findText(current) >= 0
        self.model.setCurrentText(current if keep else default)
        self.model.blockSignals(False)
        self._model_selected(self.model.currentText())
        self._update_references()

    def _data_changed(self) -> None:
        """Points and references are measured on the data source: start again on the new one."""
        if self.target is None and not self.references:
            return
        self.target = None
        self.references.clear()
        self.refs.setData([])
        for label in self.ref_labels:
            self.plot.removeItem(label)
        self.ref_labels = []
        self._model_selected(self.model.currentText())

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._model_selected(self.model.currentText())

    def _model_selected(self, key: str) -> None:
        """Prepare a private copy of the chosen model (when the panel is visible: no work while hidden)."""
        entry = self.studio.entry(key)
        if entry is None or entry.model is None or self.studio.dataset is None or not self.isVisible():
            return
        if self.target is not None and self.target.key == key:
            return
        if self._prepare_job is not None and self._prepare_job.active and self._preparing == key:
            return
        self.target = None
        self._preparing = key
        self.overrides.clear()
        self.points.clear()
        self.point_settings.clear()
        self.scatter.setData([])
        self.front.setData([], [])
        self.table.setRowCount(0)
        self.status.setText(f"preparing {key}…")

        def ready(target: PruneTarget) -> None:
            if target.key != self.model.currentText():
                return
            self.target = target
            self._fill_table()
            self._plan_changed()
            self._update_references()
            self.status.setText(f"{key}: {len(target.layers)} prunable groups; move the slider to measure")

        data = self.studio.data_spec if isinstance(self.studio.data_spec, str) else "synthetic"
        self._prepare_job = self.studio.jobs.start(
            f"Prepare pruning of {key}",
            prepare_target,
            key,
            entry.model,
            data,
            self.studio.size,
            on_result=ready,
            on_error=lambda t: self.studio.message.emit("error", f"pruning {key}: {t}"),
        )

    def _fill_table(self) -> None:
        self.table.setRowCount(0)
        self._spins.clear()
        if self.target is None:
            return
        layers = self.target.layers
        self.table.setRowCount(len(layers))
        for row, info in enumerate(layers):
            name = QTableWidgetItem(info.name)
            name.setToolTip(f"{info.name}\ncoupled: {', '.join(info.members) or '–'}")
            name.setFlags(name.flags() & ~Qt.ItemIsEditable)
            chans = QTableWidgetItem(str(info.out_channels))
            chans.setFlags(chans.flags() & ~Qt.ItemIsEditable)
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, chans)
            kept = QTableWidgetItem("")
            kept.setFlags(kept.flags() & ~Qt.ItemIsEditable)
            self.table.setItem(row, 3, kept)
            if info.protected:
                lock = QTableWidgetItem("protected")
                lock.setFlags(lock.flags() & ~Qt.ItemIsEditable)
                lock.setForeground(pg.mkColor(theme.MUTED))
                lock.setToolTip("This layer's output width is fixed by the architecture")
                self.table.setItem(row, 2, lock)
                continue
            spin = QDoubleSpinBox()
            spin.setRange(0.0, 0.9)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setFrame(False)
            spin.setValue(self.slider.value())
            spin.setToolTip(f"Ratio of {info.name} (overrides the global ratio once edited)")
            spin.valueChanged.connect(lambda v, n=info.name: self._layer_edited(n, v))
            self.table.setCellWidget(row, 2, spin)
            self._spins[info.name] = spin

    # ----- the plan
    def effective_plan(self) -> tuple[float, dict[str, float]]:
        """(global ratio, per-layer ratios or {} when every layer follows the global ratio)."""
        ratio = float(self.slider.value())
        if not self.overrides or self.target is None:
            return ratio, {}
        plan = {i.name: self.overrides.get(i.name, ratio) for i in self.target.layers if not i.protected}
        return ratio, plan

    def _slider_moved(self, value: float) -> None:
        self.studio.settings.set("pruning/ratio", float(value))
        for name, spin in self._spins.items():
            if name not in self.overrides:
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
        self._plan_changed()

    def _layer_edited(self, name: str, value: float) -> None:
        self.overrides[name] = float(value)
        self._mark_overrides()
        self._plan_changed()

    def _mark_overrides(self) -> None:
        for name, spin in self._spins.items():
            spin.setStyleSheet(f"color: {theme.WARN};" if name in self.overrides else "")

    def reset_overrides(self) -> None:
        self.overrides.clear()
        self._slider_moved(self.slider.value())
        self._mark_overrides()

    def set_plan(self, ratio: float, overrides: dict[str, float]) -> None:
        """Restore a plan (e.g. from a clicked point)."""
        self.overrides = dict(overrides)
        self.slider.blockSignals(True)
        self.slider.setValue(ratio)
        self.slider.blockSignals(False)
        for name, spin in self._spins.items():
            spin.blockSignals(True)
            spin.setValue(self.overrides.get(name, ratio))
            spin.blockSignals(False)
        self._mark_overrides()
        self._plan_changed()

    def _plan_changed(self) -> None:
        self._estimate()
        self._measure_later()

    @qthrottled(timeout=120, leading=True)
    def _estimate(self) -> None:
        """Params / MACs of the plan, immediately (analytic); latest request wins, nothing queues up."""
        if self.target is None:
            return
        if self._estimate_job is not None and self._estimate_job.active:
            self._estimate_pending = True
            return
        self._estimate_pending = False
        ratio, plan = self.effective_plan()
        self._estimate_job = self.studio.jobs.start(
            "Estimate",
            plan_and_estimate,
            self.target,
            ratio,
            plan,
            self.criterion.currentData(),
            self.studio.size,
            track=False,
            on_result=self._show_estimate,
            on_error=lambda t: self.status.setText(f"estimate failed: {t}"),
            on_finished=lambda _r: self._estimate() if self._estimate_pending else None,
        )

    def _show_estimate(self, est: dict[str, Any]) -> None:
        if self.target is None:
            return
        base = self.target.base
        self.params.setText(
            f"{fmt.count(est['params'])}  <span style='color:{theme.MUTED}'>"
            f"({100.0 * est['params'] / max(base['params'], 1):.0f} %)</span>"
        )
        self.macs.setText(
            f"{fmt.count(est['macs'])}  <span style='color:{theme.MUTED}'>"
            f"({100.0 * est['macs'] / max(base['macs'], 1):.0f} %)</span>"
        )
        widths = est["widths"]
        total = kept = 0
        for row, info in enumerate(self.target.layers):
            w = int(widths.get(info.name, info.out_channels))
            item = self.table.item(row, 3)
            if item is not None:
                item.setText(str(w))
            if not info.protected:
                total += info.out_channels
                kept += w
        self.kept.setText(f"{kept} / {total}")

    @qdebounced(timeout=350)
    def _measure_later(self) -> None:
        self.measure_now()

    def measure_now(self) -> None:
        """Measure the current plan (latency + accuracy) in the background; the newest plan wins."""
        if self.target is None:
            return
        busy = [j for j in (self._measure_job, self._ref_job) if j is not None and j.active]
        if busy:  # one timing at a time: concurrent measurements would slow each other down
            self._measure_pending = True
            return
        self._measure_pending = False
        ratio, plan = self.effective_plan()
        label = f"{ratio:.2f}" if not plan else f"plan {len(self.points) + 1}"
        self.status.setText(f"measuring {label}…")
        self._measure_job = self.studio.jobs.start(
            f"Measure point {label}",
            measure,
            self.target,
            ratio,
            plan,
            self.criterion.currentData(),
            self.studio.size,
            label,
            on_result=lambda p: self.add_point(p, ratio, plan),
            on_error=lambda t: self.studio.message.emit("error", f"measuring a pruning point: {t}"),
            on_finished=lambda _r: self._measured(),
        )

    def _measured(self) -> None:
        if self._measure_pending:
            self.measure_now()
        else:
            self._update_references()

    # ----- the trade-off plot
    def add_point(self, point: Any, ratio: float | None = None, plan: dict[str, float] | None = None) -> None:
        """Put a measured `SweepPoint` on the plot, remembering the settings that produced it."""
        from stereo_studio.engine.sweep import pareto_front

        self.point_settings[id(point)] = (
            point.ratio if ratio is None else ratio,
            dict(plan or {}) if plan is not None else {},
        )
        self.points.append(point)
        front = pareto_front(self.points)
        spots = []
        for p in self.points:
            color = theme.OK if p.pareto else theme.ACCENT
            spots.append(
                {
                    "pos": (p.latency_ms, p.epe),
                    "data": p,
                    "brush": pg.mkBrush(color),
                    "symbol": "d" if p.finetuned else "o",
                }
            )
        self.scatter.setData(spots)
        self.front.setData([p.latency_ms for p in front], [p.epe for p in front])
        self.current.setData([point.latency_ms], [point.epe])
        self.measured.setText(f"{point.latency_ms:.1f} ms · EPE {point.epe:.2f}")
        self.status.setText(f"{len(self.points)} points, {len(front)} on the Pareto front")
        self.point_added.emit(point)

    def _tip(self, x: float, y: float, data: Any) -> str:
        if data is None:
            return ""
        return (
            f"{data.label}: {x:.1f} ms · EPE {y:.2f} px · bad-3 {data.bad3:.1f} %\n"
            f"{fmt.count(data.params)} params · {fmt.count(data.macs)} MACs"
            + (" · fine-tuned" if data.finetuned else "")
            + "\nclick to restore these settings"
        )

    def _point_clicked(self, _item: Any, spots: Any, _ev: Any = None) -> None:
        if not len(spots):
            return
        point = spots[0].data()
        self.restore_point(point)

    def restore_point(self, point: Any) -> None:
        ratio, plan = self.point_settings.get(id(point), (point.ratio or 0.0, {}))
        self.current.setData([point.latency_ms], [point.epe])
        self.set_plan(float(ratio or 0.0), plan)

    def _update_references(self) -> None:
        """Teacher, unpruned student and SGBM as reference stars (measured once per model)."""
        busy = [j for j in (self._measure_job, self._ref_job) if j is not None and j.active]
        if self.target is None or busy:
            return
        wanted = [
            m
            for m in self.studio.models
            if m.key not in self.references and (m.role in ("teacher", "student", "sgbm"))
        ]
        if not wanted:
            return
        entries = [(m.key, m.matcher, m.color) for m in wanted]
        self._ref_job = self.studio.jobs.start(
            "Reference points",
            reference_points,
            entries,
            self.target.samples,
            self.studio.size,
            on_progress=self._reference_event,
            on_error=lambda t: self.studio.message.emit("warning", f"reference points: {t}"),
            on_finished=lambda _r: self.measure_now() if self._measure_pending else None,
        )

    def _reference_event(self, event: Any) -> None:
        if event.kind != "point" or not isinstance(event.payload, Reference):
            return
        ref = event.payload
        self.references[ref.label] = ref
        self.refs.setData(
            [
                {"pos": (r.latency_ms, r.epe), "data": r.label, "brush": pg.mkBrush(r.color)}
                for r in self.references.values()
            ]
        )
        for label in self.ref_labels:
            self.plot.removeItem(label)
        self.ref_labels = []
        for r in self.references.values():
            text = pg.TextItem(r.label, color=r.color, anchor=(0.5, 1.3))
            text.setPos(r.latency_ms, r.epe)
            self.plot.addItem(text)
            self.ref_labels.append(text)

    # ----- long jobs
    def _busy(self) -> list[JobRecord]:
        return [j for j in (getattr(self, "_long_job", None),) if j is not None and j.active]

    def cancel_jobs(self) -> None:
        for job in self._busy():
            self.studio.jobs.cancel(job)

    def _start_long(self, title: str, factory: Any, *args: Any, **callbacks: Any) -> None:
        if self._busy():
            self.studio.message.emit("warning", "a pruning job is already running: cancel it first")
            return
        self._long_job = self.studio.jobs.start(title, factory, *args, **callbacks)

    def run_sweep(self) -> None:
        if self.target is None:
            return
        ratio, plan = self.effective_plan()

        def event(e: Any) -> None:
            if e.kind == "point" and e.payload is not None:
                r = e.payload.ratio
                self.add_point(e.payload, r if r is not None else ratio, {} if r is not None else plan)

        self._start_long(
            f"Sweep {self.target.key}",
            _sweep_job,
            self.target.model,
            SWEEP_RATIOS,
            self.target.samples,
            self.studio.size,
            self.criterion.currentData(),
            plan,
            on_progress=event,
            on_error=lambda t: self.studio.message.emit("error", f"sweep: {t}"),
        )

    def run_sensitivity(self) -> None:
        if self.target is None:
            return
        self.sens_plot.clear()
        self.tabs.setCurrentWidget(self.sens_plot)
        rows: dict[str, tuple[list[float], list[float]]] = {}
        lines: dict[str, pg.PlotDataItem] = {}

        def event(e: Any) -> None:
            if e.kind != "point" or e.payload is None:
                return
            row = e.payload
            xs, ys = rows.setdefault(row.layer, ([0.0], [0.0]))
            xs.append(row.ratio)
            ys.append(row.delta_epe)
            if row.layer not in lines:
                color = theme.MODEL_COLORS[len(lines) % len(theme.MODEL_COLORS)]
                lines[row.layer] = self.sens_plot.plot(
                    [],
                    [],
                    pen=pg.mkPen(color, width=2),
                    symbol="o",
                    symbolSize=5,
                    symbolBrush=color,
                    name=row.layer,
                )
            lines[row.layer].setData(xs, ys)

        def done(table: Any) -> None:
            self.sensitivity_table = table
            self.plan_btn.setEnabled(True)
            self.studio.message.emit("ok", f"sensitivity analysis done ({len(table.layers())} layers)")

        self._start_long(
            f"Sensitivity {self.target.key}",
            _sensitivity_job,
            self.target.model,
            self.target.samples,
            self.studio.size,
            self.criterion.currentData(),
            on_progress=event,
            on_result=done,
            on_error=lambda t: self.studio.message.emit("error", f"sensitivity: {t}"),
        )

    def apply_sensitivity_plan(self) -> None:
        if self.sensitivity_table is None or self.target is None:
            return

        def done(plan: dict[str, float]) -> None:
            self.set_plan(self.slider.value(), plan)
            self.tabs.setCurrentWidget(self.plot)

        self.studio.jobs.start(
            "Sensitivity plan",
            suggest,
            self.sensitivity_table,
            self.target,
            self.target_macs.value(),
            self.studio.size,
            on_result=done,
            on_error=lambda t: self.studio.message.emit("error", f"plan: {t}"),
        )

    def prune_and_finetune(self) -> None:
        entry = self.studio.entry(self.model.currentText())
        if entry is None or entry.model is None:
            return
        ratio, plan = self.effective_plan()
        teacher = next((m for m in self.studio.networks() if m.role == "teacher"), None)
        steps = self.finetune_steps.value()
        root = Path(self.studio.settings.get("distill/run_root", str(Path.cwd() / "runs")))
        out = root / f"pruned-{entry.key}-{time.strftime('%Y%m%d-%H%M%S')}"
        key = f"{entry.key}-pruned-{ratio:.2f}" if not plan else f"{entry.key}-pruned-plan"

        def done(path: Any) -> None:
            self.studio.message.emit("ok", f"pruned model saved to {path}")
            self.studio.open_model(str(path), role="pruned", key=key)

        self._start_long(
            f"Prune {entry.key}" + (f" + fine-tune {steps}" if steps else ""),
            _prune_job,
            entry.spec,
            str(out),
            None if plan else ratio,
            plan,
            self.criterion.currentData(),
            steps,
            teacher.spec if (teacher and steps) else None,
            self.studio.size,
            on_result=done,
            on_error=lambda t: self.studio.message.emit("error", f"prune: {t}"),
        )

    def export_onnx(self, path: str | None = None) -> None:
        entry = self.studio.entry(self.model.currentText())
        if entry is None or entry.model is None:
            return
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export ONNX", f"{entry.key}.onnx", "ONNX (*.onnx)")
        if not path:
            return
        ratio, plan = self.effective_plan()

        def build_and_export(model: Any, out: str) -> dict:
            from stereo_studio.engine.pruning import prune_model

            pruned = (
                model
                if not ratio and not plan
                else prune_model(model, None if plan else ratio, plan or None, self_criterion)
            )
            return _export_job(pruned, out)

        self_criterion = self.criterion.currentData()
        model = self.target.model if self.target is not None and self.target.key == entry.key else entry.model
        self.studio.jobs.start(
            f"Export {Path(path).name}",
            build_and_export,
            model,
            path,
            on_result=lambda r: self.studio.message.emit("ok", f"exported {r.get('path', path)}"),
            on_error=lambda t: self.studio.message.emit("error", f"ONNX export: {t}"),
        )

    def shutdown(self) -> None:
        self.cancel_jobs()
