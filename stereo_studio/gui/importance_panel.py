"""Channel importance panel: per-layer channel importance of a model under a criterion (the engine's one
registry), as an overview heat map (layers x channels, most important first) on a scale that separates
channels (`ImportanceReport.display_scores`: each channel's place in the global ranking the pruning plan
uses, or its rank within its layer) and a per-layer bar chart of the raw scores. The channels the pruning
plan removes at the highlighted MAC reduction are marked (`report.removed`), each layer says what the plan
does to it ("removes 8 of 16 (ratio 0.30 → 0.50 after rounding)") under the plan's summary, protected layers
are grayed with the reason, and a criterion that cannot score a layer says what it used instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import theme
from stereo_studio.gui.pruning_plan import arrows, criterion_choices
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.image_views import pg_colormap
from stereo_studio.gui.widgets.plot_menu import trim_plot_menu
from stereo_studio.gui.workers import JobRecord

SCALES = [  # (display_scores mode, combo label, colour bar label)
    ("rank", "global rank", "global rank: 0 = pruned first"),
    ("layer", "rank in layer", "rank within the layer: 0 = least important"),
]
REMOVED_RGBA = (255, 60, 60, 170)
PROTECTED_RGBA = (*pg.mkColor(theme.MUTED).getRgb()[:3], 110)


@dataclass
class ImportanceView:
    """The engine report plus the display arrays (built in the worker thread)."""

    report: Any
    names: list[str]
    heat: np.ndarray  # layers x max channels: display scores, most important first; NaN: protected / padding
    order: list[np.ndarray]  # per layer: channel index at each sorted position
    protected: list[bool]
    scale: str = "rank"


def compute_view(model: Any, criterion: str, scale: str = "rank") -> ImportanceView:
    """Job body: the engine's channel importance, arranged for the heat map."""
    import copy

    from stereo_studio.engine.importance import channel_importance

    report = channel_importance(copy.deepcopy(model), criterion)
    return arrange(report, scale)


def arrange(report: Any, scale: str = "rank") -> ImportanceView:
    """The heat map of `report` on a display scale (`report.display_scores(scale)`), each row sorted with
    the most important channel first."""
    shown = report.display_scores(scale)
    width = max((layer.channels for layer in report.layers), default=1)
    heat = np.full((len(report.layers), width), np.nan, dtype=np.float32)
    order = []
    for i, (layer, values) in enumerate(zip(report.layers, shown, strict=True)):
        if layer.protected:
            idx = np.arange(layer.channels)
        else:
            idx = np.argsort(-np.asarray(values), kind="stable")
            heat[i, : layer.channels] = np.asarray(values)[idx]
        order.append(idx)
    names = [layer.name for layer in report.layers]
    return ImportanceView(report, names, heat, order, [layer.protected for layer in report.layers], scale)


class ImportancePanel(QWidget):
    """Model + criterion + MAC reduction + scale on top; the plan's summary; heat map left, the layers and
    the bar chart of one right."""

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.view: ImportanceView | None = None
        self._job: JobRecord | None = None
        self._pending = False
        self._stale = True
        self._plans: dict[float, tuple[dict[str, np.ndarray], Any]] = {}
        self._build()
        studio.models_changed.connect(self._models_changed)
        self._models_changed()

    def _build(self) -> None:
        self.model = QComboBox()
        self.model.setToolTip("The network whose channels are scored")
        self.model.currentTextChanged.connect(lambda _: self.compute())
        self._model_touched = False
        self.model.activated.connect(lambda _: setattr(self, "_model_touched", True))
        self.criterion = QComboBox()
        for key, label in criterion_choices():
            self.criterion.addItem(label, key)
        self.criterion.setToolTip("Importance criterion (the engine's registry): which channels go first")
        self.criterion.currentIndexChanged.connect(lambda _: self.compute())
        self.ratio = QDoubleSpinBox()
        self.ratio.setRange(0.0, 0.9)
        self.ratio.setSingleStep(0.05)
        self.ratio.setValue(float(self.studio.settings.get("pruning/ratio", 0.3) or 0.3))
        self.ratio.setToolTip(
            "Fraction of the MACs the pruning plan removes (the Pruning panel's slider): its removed "
            "channels are marked red"
        )
        self.ratio.valueChanged.connect(lambda _: self._highlight())
        self.scale = QComboBox()
        for mode, label, _bar in SCALES:
            self.scale.addItem(label, mode)
        self.scale.setToolTip(
            "Heat map scale: a channel's place in the global ranking the pruning plan uses (channels below "
            "the removed fraction go first), or its rank within its layer. Raw magnitudes crowd near the "
            "top and hide the differences"
        )
        self.scale.currentIndexChanged.connect(lambda _: self._rescale())
        refresh = QPushButton("Recompute")
        refresh.setToolTip("Score the channels again (e.g. after the model changed)")
        refresh.clicked.connect(lambda: self.compute(force=True))
        self.info = QLabel("")
        self.info.setProperty("role", "caption")
        top = QHBoxLayout()
        for w in (
            QLabel("model"),
            self.model,
            QLabel("criterion"),
            self.criterion,
            QLabel("MACs removed"),
            self.ratio,
            QLabel("scale"),
            self.scale,
            refresh,
        ):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.info)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("What the pruning plan does at this MAC reduction (the engine's plan)")

        self.heat_widget = pg.GraphicsLayoutWidget()
        self.heat_plot = self.heat_widget.addPlot(row=0, col=0)
        trim_plot_menu(self.heat_plot)
        self.heat_plot.setLabel("bottom", "channels, most important first")
        self.heat_plot.invertY(True)
        self.heat_plot.setMouseEnabled(x=True, y=True)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.heat)
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.overlay)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=pg_colormap("viridis"), interactive=False, label=SCALES[0][2], width=14
        )
        self.colorbar.setImageItem(self.heat)
        self.heat_widget.addItem(self.colorbar, row=0, col=1)
        self.heat_widget.setToolTip(
            "Rows: layers; columns: channels, most important first; red: removed at this MAC reduction; "
            "gray: protected layers (never pruned). Hover for names, click a row for its bars"
        )
        self.heat_widget.scene().sigMouseMoved.connect(self._hover_heat)
        self.heat_widget.scene().sigMouseClicked.connect(self._click_heat)

        self.layers = QListWidget()
        self.layers.setToolTip("What the plan does to each layer; grayed layers are protected (hover: why)")
        self.layers.currentRowChanged.connect(lambda _: self._draw_bars())
        self.bars_plot = pg.PlotWidget()
        trim_plot_menu(self.bars_plot)
        self.bars_plot.setLabel("bottom", "channel index")
        self.bars_plot.setLabel("left", "importance (raw score)")
        self.bars_plot.setToolTip("Raw importance of each channel of the selected layer; red: removed")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.bars_plot.addItem(self.bars)
        self.bars_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.bars_plot.getAxis("left").enableAutoSIPrefix(False)
        self.bars_plot.scene().sigMouseMoved.connect(self._hover_bars)
        self.readout = QLabel("hover the heat map or the bars")
        self.readout.setProperty("role", "caption")

        right = QSplitter(Qt.Vertical)
        right.addWidget(self.layers)
        right.addWidget(self.bars_plot)
        right.setSizes([220, 380])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.heat_widget)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addWidget(self.readout)

    def _models_changed(self) -> None:
        current = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        nets = self.studio.networks()
        self.model.addItems([m.key for m in nets])
        default = next((m.key for m in nets if m.role == "student"), nets[0].key if nets else "")
        keep = self._model_touched and self.model.findText(current) >= 0
        self.model.setCurrentText(current if keep else default)
        self.model.blockSignals(False)
        if self.view is None or self.model.currentText() != current:
            self.compute()

    def set_ratio(self, ratio: float) -> None:
        self.ratio.setValue(ratio)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._stale:
            self.compute()

    def compute(self, force: bool = False) -> None:
        """Score the chosen model's channels in the background (latest request wins); while the panel is
        hidden the work waits until it is shown."""
        entry = self.studio.entry(self.model.currentText())
        if entry is None or entry.model is None:
            return
        if not (force or self.isVisible()):
            self._stale = True
            return
        self._stale = False
        if self._job is not None and self._job.active:
            self._pending = True
            return
        self._pending = False
        criterion = self.criterion.currentData()
        self.info.setText(f"scoring {entry.key} ({criterion})…")
        self._job = self.studio.jobs.start(
            f"Importance {entry.key} ({criterion})",
            compute_view,
            entry.model,
            criterion,
            self.scale.currentData(),
            on_result=self._show,
            on_error=self._failed,
            on_finished=lambda _r: self.compute() if self._pending else None,
        )

    def _failed(self, text: str) -> None:
        self.info.setText("")
        self.studio.message.emit("error", f"channel importance: {text}")

    def _rescale(self) -> None:
        if self.view is not None:
            self._show(arrange(self.view.report, self.scale.currentData()))

    def _show(self, view: ImportanceView) -> None:
        self.view = view
        self._plans.clear()
        self.heat.setImage(view.heat, autoLevels=False, levels=(0.0, 1.0))
        self.colorbar.setLevels((0.0, 1.0))
        bar_label = next(b for mode, _l, b in SCALES if mode == view.scale)
        self.colorbar.getAxis("left").setLabel(bar_label)
        self.heat_plot.getAxis("left").setTicks([[(i + 0.5, n) for i, n in enumerate(view.names)]])
        self.heat_plot.autoRange(padding=0.0)
        removed = self.removed()  # first shown: a layer the plan cuts, else the first unprotected one
        first = next((i for i, n in enumerate(view.names) if len(removed.get(n, ()))), None)
        first = first if first is not None else next((i for i, p in enumerate(view.protected) if not p), 0)
        row = self.layers.currentRow() if self.layers.currentRow() >= 0 else first
        self.layers.blockSignals(True)
        self.layers.clear()
        for layer in view.report.layers:
            item = QListWidgetItem(layer.name)
            if layer.protected:
                item.setForeground(pg.mkColor(theme.MUTED))
            self.layers.addItem(item)
        self.layers.blockSignals(False)
        self.layers.setCurrentRow(min(row, len(view.names) - 1))
        report = view.report
        fallbacks = [layer for layer in report.layers if layer.fallback]
        self.info.setText(
            f"{report.criterion}: {len(view.names)} layers scored in {report.seconds:.2f} s"
            + (f" · {len(fallbacks)} scored by {fallbacks[0].fallback} instead" if fallbacks else "")
        )
        self._highlight()

    def plan_at(self, ratio: float) -> tuple[dict[str, np.ndarray], Any]:
        """(removed channels per layer, the engine's plan) at a MAC reduction (milliseconds; cached)."""
        key = round(float(ratio), 4)
        if key not in self._plans:
            report = self.view.report
            plan = report.plan(ratio) if report.graph is not None and ratio > 0 else None
            self._plans[key] = (report.removed(ratio) if ratio > 0 else {}, plan)
        return self._plans[key]

    def removed(self) -> dict[str, np.ndarray]:
        return self.plan_at(self.ratio.value())[0] if self.view is not None else {}

    def describe(self, name: str) -> str:
        """What the plan does to layer `name`, as the engine says it (arrow for display)."""
        if self.view is None:
            return ""
        layer = next(layer for layer in self.view.report.layers if layer.name == name)
        _removed, plan = self.plan_at(self.ratio.value())
        if layer.protected:
            return f"protected ({layer.reason})" if layer.reason else "protected"
        if plan is None:
            return f"keeps all {layer.channels}"
        return arrows(plan.layer(name).describe())

    def _highlight(self) -> None:
        if self.view is None:
            return
        removed, plan = self.plan_at(self.ratio.value())
        rgba = np.zeros((*self.view.heat.shape, 4), dtype=np.uint8)
        for i, layer in enumerate(self.view.report.layers):
            if layer.protected:
                rgba[i, : layer.channels] = PROTECTED_RGBA
                continue
            gone = removed.get(layer.name)
            if gone is not None and len(gone):
                order = self.view.order[i]
                rgba[i, : len(order)][np.isin(order, gone)] = REMOVED_RGBA
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        for i, layer in enumerate(self.view.report.layers):
            item = self.layers.item(i)
            text = self.describe(layer.name)
            item.setText(f"{layer.name}  ·  {text}")
            tip = f"{layer.name}: {text}"
            if layer.fallback:
                tip += f"\n{self.view.report.criterion} cannot score this layer: scored by {layer.fallback}"
                item.setText(item.text() + f"  · scored by {layer.fallback}")
            if layer.members:
                tip += f"\ncoupled: {', '.join(layer.members)}"
            item.setToolTip(tip)
        total = sum(len(v) for v in removed.values())
        ratio = self.ratio.value()
        if plan is not None:
            self.summary.setText(arrows(plan.summary()))
        else:
            self.summary.setText("no MAC reduction asked: every channel stays")
        self.readout.setText(f"MAC reduction {ratio:.2f} removes {total} channels in {len(removed)} layers")
        self._draw_bars()

    def _draw_bars(self) -> None:
        row = self.layers.currentRow()
        if self.view is None or not 0 <= row < len(self.view.names):
            return
        layer = self.view.report.layers[row]
        removed = set(int(i) for i in self.removed().get(layer.name, ()))
        base = theme.MUTED if layer.protected else theme.ACCENT
        brushes = [pg.mkBrush(theme.ERROR if i in removed else base) for i in range(layer.channels)]
        self.bars.setOpts(
            x=np.arange(layer.channels),
            height=np.asarray(layer.scores),
            width=0.8,
            brushes=brushes,
            pen=pg.mkPen(None),
        )
        self.bars_plot.setTitle(f"{layer.name}: {self.describe(layer.name)}", color=theme.TEXT, size="10pt")
        self.bars_plot.setXRange(-0.6, layer.channels - 0.4, padding=0.02)
        top = float(np.max(layer.scores)) if layer.channels else 1.0
        self.bars_plot.setYRange(0.0, top if top > 0 else 1.0, padding=0.05)

    def _hover_heat(self, pos: Any) -> None:
        if self.view is None or not self.heat_plot.sceneBoundingRect().contains(pos):
            return
        p = self.heat_plot.vb.mapSceneToView(pos)
        row, col = int(p.y()), int(p.x())
        if 0 <= row < len(self.view.names) and 0 <= col < len(self.view.order[row]):
            layer = self.view.report.layers[row]
            channel = int(self.view.order[row][col])
            score = float(layer.scores[channel])
            if layer.protected:
                self.readout.setText(f"layer {layer.name} · channel {channel} · protected: {layer.reason}")
                return
            gone = channel in set(int(i) for i in self.removed().get(layer.name, ()))
            self.readout.setText(
                f"layer {layer.name} · channel {channel} (rank {col + 1} in its layer) · score {score:.4g} · "
                f"{self.scale.currentText()} {float(self.view.heat[row, col]):.2f}"
                + (" · removed" if gone else "")
            )

    def _click_heat(self, event: Any) -> None:
        if self.view is None:
            return
        p = self.heat_plot.vb.mapSceneToView(event.scenePos())
        row = int(p.y())
        if 0 <= row < len(self.view.names):
            self.layers.setCurrentRow(row)

    def _hover_bars(self, pos: Any) -> None:
        row = self.layers.currentRow()
        if self.view is None or not 0 <= row < len(self.view.names):
            return
        p = self.bars_plot.getPlotItem().vb.mapSceneToView(pos)
        channel = round(p.x())
        layer = self.view.report.layers[row]
        if 0 <= channel < layer.channels:
            gone = channel in set(int(i) for i in self.removed().get(layer.name, ()))
            self.readout.setText(
                f"layer {layer.name} · channel {channel} · score {float(layer.scores[channel]):.4g}"
                + (" · removed" if gone else "")
            )
