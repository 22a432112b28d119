"""Channel importance panel: per-layer channel importance of a model under a criterion, as an overview
heat map (layers x channels sorted by importance) and a per-layer bar chart; channels the current pruning
ratio removes are highlighted; hovering names the layer and channel."""

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
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import theme
from stereo_studio.gui.pruning_panel import CRITERIA
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.image_views import pg_colormap
from stereo_studio.gui.workers import JobRecord


@dataclass
class ImportanceView:
    """The engine report plus the display arrays (built in the worker thread)."""

    report: Any
    names: list[str]
    heat: np.ndarray  # layers x max channels: scores sorted descending, scaled to each layer's max; NaN pad
    order: list[np.ndarray]  # per layer: channel index at each sorted position
    protected: list[bool]


def compute_view(model: Any, criterion: str) -> ImportanceView:
    """Job body: the engine's channel importance, arranged for the heat map."""
    import copy

    from stereo_studio.engine.importance import channel_importance

    report = channel_importance(copy.deepcopy(model), criterion)
    width = max((layer.channels for layer in report.layers), default=1)
    heat = np.full((len(report.layers), width), np.nan, dtype=np.float32)
    order = []
    for i, layer in enumerate(report.layers):
        idx = np.argsort(-np.asarray(layer.scores), kind="stable")
        top = float(np.max(layer.scores)) if layer.channels else 1.0
        heat[i, : layer.channels] = np.asarray(layer.scores)[idx] / (top if top > 0 else 1.0)
        order.append(idx)
    return ImportanceView(
        report,
        [layer.name for layer in report.layers],
        heat,
        order,
        [layer.protected for layer in report.layers],
    )


class ImportancePanel(QWidget):
    """Model + criterion + ratio on top; heat map left, layer list and bar chart right."""

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.view: ImportanceView | None = None
        self._job: JobRecord | None = None
        self._pending = False
        self._stale = True
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
        for key, label in CRITERIA:
            self.criterion.addItem(label, key)
        self.criterion.setToolTip("Importance criterion: L1 / L2 weight magnitude, BN scale, Taylor, LAMP")
        self.criterion.currentIndexChanged.connect(lambda _: self.compute())
        self.ratio = QDoubleSpinBox()
        self.ratio.setRange(0.0, 0.9)
        self.ratio.setSingleStep(0.05)
        self.ratio.setValue(float(self.studio.settings.get("pruning/ratio", 0.3) or 0.3))
        self.ratio.setToolTip("Pruning ratio whose removed channels are highlighted (red)")
        self.ratio.valueChanged.connect(lambda _: self._highlight())
        refresh = QPushButton("Recompute")
        refresh.setToolTip("Score the channels again (e.g. after the model changed)")
        refresh.clicked.connect(self.compute)
        self.info = QLabel("")
        self.info.setProperty("role", "caption")
        top = QHBoxLayout()
        for w in (
            QLabel("model"),
            self.model,
            QLabel("criterion"),
            self.criterion,
            QLabel("highlight ratio"),
            self.ratio,
            refresh,
        ):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.info)

        self.heat_widget = pg.GraphicsLayoutWidget()
        self.heat_plot = self.heat_widget.addPlot(row=0, col=0)
        self.heat_plot.setLabel("bottom", "channels, most important first")
        self.heat_plot.setLabel("left", "layer")
        self.heat_plot.invertY(True)
        self.heat_plot.setMouseEnabled(x=True, y=True)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.heat)
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.overlay)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1),
            colorMap=pg_colormap("viridis"),
            interactive=False,
            label="score / layer max",
            width=14,
        )
        self.colorbar.setImageItem(self.heat)
        self.heat_widget.addItem(self.colorbar, row=0, col=1)
        self.heat_widget.setToolTip(
            "Rows: layers; columns: channels sorted by importance; red: removed at "
            "the highlight ratio; hover for names, click a row for its bars"
        )
        self.heat_widget.scene().sigMouseMoved.connect(self._hover_heat)
        self.heat_widget.scene().sigMouseClicked.connect(self._click_heat)

        self.layers = QListWidget()
        self.layers.setToolTip("Prunable layers (protected ones are greyed)")
        self.layers.currentRowChanged.connect(lambda _: self._draw_bars())
        self.bars_plot = pg.PlotWidget()
        self.bars_plot.setLabel("bottom", "channel index")
        self.bars_plot.setLabel("left", "importance")
        self.bars_plot.setToolTip("Importance of each channel of the selected layer; red ones are removed")
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
            on_result=self._show,
            on_error=self._failed,
            on_finished=lambda _r: self.compute() if self._pending else None,
        )

    def _failed(self, text: str) -> None:
        self.info.setText("")
        self.studio.message.emit("error", f"channel importance: {text}")

    def _show(self, view: ImportanceView) -> None:
        self.view = view
        self.heat.setImage(view.heat, autoLevels=False, levels=(0.0, 1.0))
        self.colorbar.setLevels((0.0, 1.0))
        self.heat_plot.getAxis("left").setTicks([[(i + 0.5, n) for i, n in enumerate(view.names)]])
        self.heat_plot.autoRange(padding=0.0)
        first = next((i for i, p in enumerate(view.protected) if not p), 0)
        row = self.layers.currentRow() if self.layers.currentRow() >= 0 else first
        self.layers.blockSignals(True)
        self.layers.clear()
        for name, protected in zip(view.names, view.protected, strict=True):
            self.layers.addItem(name + ("  (protected)" if protected else ""))
            if protected:
                self.layers.item(self.layers.count() - 1).setForeground(pg.mkColor(theme.MUTED))
        self.layers.blockSignals(False)
        self.layers.setCurrentRow(min(row, len(view.names) - 1))
        self.info.setText(
            f"{view.report.criterion}: {len(view.names)} layers scored in {view.report.seconds:.2f} s"
        )
        self._highlight()

    def removed(self) -> dict[str, np.ndarray]:
        return self.view.report.removed(self.ratio.value()) if self.view is not None else {}

    def _highlight(self) -> None:
        if self.view is None:
            return
        removed = self.removed()
        rgba = np.zeros((*self.view.heat.shape, 4), dtype=np.uint8)
        for i, name in enumerate(self.view.names):
            gone = removed.get(name)
            if gone is not None and len(gone):
                order = self.view.order[i]
                rgba[i, : len(order)][np.isin(order, gone)] = (255, 60, 60, 150)
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        self._draw_bars()
        total = sum(len(v) for v in removed.values())
        self.readout.setText(
            f"ratio {self.ratio.value():.2f} removes {total} channels in {len(removed)} layers"
        )

    def _draw_bars(self) -> None:
        row = self.layers.currentRow()
        if self.view is None or not 0 <= row < len(self.view.names):
            return
        layer = self.view.report.layers[row]
        removed = set(int(i) for i in self.removed().get(layer.name, ()))
        brushes = [pg.mkBrush(theme.ERROR if i in removed else theme.ACCENT) for i in range(layer.channels)]
        self.bars.setOpts(
            x=np.arange(layer.channels),
            height=np.asarray(layer.scores),
            width=0.8,
            brushes=brushes,
            pen=pg.mkPen(None),
        )
        self.bars_plot.setTitle(
            f"{layer.name}: {layer.channels} channels, {len(removed)} removed"
            + ("  (protected)" if layer.protected else ""),
            color=theme.TEXT,
        )
        self.bars_plot.setXRange(-0.6, layer.channels - 0.4, padding=0.02)
        top = float(np.max(layer.scores)) if layer.channels else 1.0
        self.bars_plot.setYRange(0.0, top if top > 0 else 1.0, padding=0.05)

    def _hover_heat(self, pos: Any) -> None:
        if self.view is None or not self.heat_plot.sceneBoundingRect().contains(pos):
            return
        p = self.heat_plot.vb.mapSceneToView(pos)
        row, col = int(p.y()), int(p.x())
        if 0 <= row < len(self.view.names) and 0 <= col < len(self.view.order[row]):
            channel = int(self.view.order[row][col])
            score = float(self.view.report.layers[row].scores[channel])
            gone = channel in set(int(i) for i in self.removed().get(self.view.names[row], ()))
            self.readout.setText(
                f"layer {self.view.names[row]} · channel {channel} (rank {col + 1}) · "
                f"score {score:.4g}" + (" · removed" if gone else "")
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
