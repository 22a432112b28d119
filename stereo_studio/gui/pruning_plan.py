"""The Pruning panel's plan: which model, which importance criterion, the slider (the fraction of the
model's MACs to remove, allocated across layers by the engine), per-layer overrides (a fraction of that
layer's channels), and what the plan does: the engine's one-line summary and, per layer, "removes k of n
(ratio r → r' after rounding)". Protected layers (fixed by the architecture) and spared ones (critical in
the sensitivity analysis) are grayed, with the reason as tooltip. Widgets only: the numbers come from
`pruning_jobs.plan_and_estimate`."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from stereo_studio.gui import format as fmt
from stereo_studio.gui import theme

AUTO = -0.05  # a layer spin at this value shows "auto": the engine allocates that layer
SPIN_STYLE = "QDoubleSpinBox {{ border: none; padding: 0px 2px; min-height: 0px; {color} }}"
MAX_RATIO = 0.9
COLUMNS = ["layer", "ratio", "plan"]
LAYER, RATIO, PLAN = range(len(COLUMNS))


def arrows(text: str) -> str:
    """The engine's plain "->" as an arrow, for display."""
    return text.replace(" -> ", " → ")


def short(text: str) -> str:
    """A table cell's form of a layer's plan: "removes 8 of 16 (0.30 → 0.50 rounded)" (the tooltip has the
    engine's full sentence)."""
    return arrows(text).replace("(ratio ", "(").replace(" after rounding)", " rounded)")


def criterion_choices() -> list[tuple[str, str]]:
    """(name, label) of every importance criterion: the engine's one registry."""
    from stereo_studio.engine.importance import criterion_choices as choices

    return choices()


class PlanWidget(QWidget):
    """Model, criterion, MAC slider, the cost cards and the per-layer table."""

    changed = Signal()  # the plan changed: slider, criterion or a layer's override
    model_chosen = Signal(str)

    def __init__(self, ratio: float = 0.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overrides: dict[str, float] = {}
        self.layers: list[Any] = []
        self.spins: dict[str, QDoubleSpinBox] = {}
        self.model_touched = False

        self.model = QComboBox()
        self.model.setToolTip("The network to prune (a private copy: the open model is not changed)")
        self.model.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(8)
        self.model.currentTextChanged.connect(self.model_chosen)
        self.model.activated.connect(lambda _: setattr(self, "model_touched", True))
        self.criterion = QComboBox()
        for key, label in criterion_choices():
            self.criterion.addItem(label, key)
        self.criterion.setToolTip("Which channels go first: their importance under this criterion")
        self.criterion.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.slider = QLabeledDoubleSlider(Qt.Horizontal)
        self.slider.setRange(0.0, MAX_RATIO)
        self.slider.setSingleStep(0.05)
        self.slider.setDecimals(2)
        self.slider.setValue(ratio)
        self.slider.setToolTip(
            "Fraction of the model's MACs to remove: the engine ranks every channel by importance and "
            "removes the least important ones until this fraction of the MACs is gone; protected and spared "
            "layers stay whole (Ctrl+Up / Ctrl+Down)"
        )
        self.slider.valueChanged.connect(lambda _: self.changed.emit())

        self.params = QLabel("–")
        self.macs = QLabel("–")
        self.kept = QLabel("–")
        self.measured = QLabel("–")
        cards = QGridLayout()
        cards.setVerticalSpacing(0)
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
        self.summary = QLabel("")
        self.summary.setProperty("role", "caption")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("What the plan does (the engine's plan): asked and achieved MAC reduction")

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(LAYER, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(RATIO, QHeaderView.Fixed)
        header.setSectionResizeMode(PLAN, QHeaderView.Stretch)
        self.table.setColumnWidth(RATIO, 64)
        self.table.horizontalHeaderItem(RATIO).setToolTip(
            "Fraction of the layer's channels to remove: 'auto' = allocated by the engine from the MAC target"
        )
        self.table.horizontalHeaderItem(PLAN).setToolTip(
            "What the plan does: removes k of n channels (ratio asked → ratio after rounding to a multiple "
            "of 8); hover a cell for the engine's sentence"
        )
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(25)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setMinimumHeight(24 * 5)
        self.table.setToolTip(
            "Per-layer plan. ratio: 'auto' = the engine allocates this layer from the MAC target; set a "
            "fraction of this layer's channels to override it. Grayed rows stay whole (tooltip: why)."
        )
        self.reset_btn = QPushButton("Reset overrides")
        self.reset_btn.setToolTip("Every layer back to 'auto' (the engine allocates the MAC target)")
        self.reset_btn.clicked.connect(self.reset_overrides)
        self.plan_btn = QPushButton("Sensitivity plan")
        self.plan_btn.setToolTip(
            "Per-layer ratios from the sensitivity analysis reaching the slider's MAC reduction at the least "
            "accuracy cost (run the analysis first)"
        )
        self.plan_btn.setEnabled(False)
        for b in (self.reset_btn, self.plan_btn):
            b.setSizePolicy(QSizePolicy.Minimum, QSizePolicy.Fixed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.reset_btn)
        buttons.addStretch(1)
        buttons.addWidget(self.plan_btn)

        top = QGridLayout()
        top.addWidget(QLabel("model"), 0, 0)
        top.addWidget(self.model, 0, 1)
        top.addWidget(QLabel("criterion"), 0, 2)
        top.addWidget(self.criterion, 0, 3)
        top.addWidget(QLabel("fraction of MACs removed"), 1, 0, 1, 2)
        top.addWidget(self.slider, 1, 2, 1, 2)
        top.setColumnStretch(1, 1)
        top.setColumnStretch(3, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(cards)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    # ----- models
    def set_models(self, keys: list[str], default: str) -> None:
        """Fill the model list; the user's own choice stays while it is open."""
        current = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems(keys)
        keep = self.model_touched and self.model.findText(current) >= 0
        self.model.setCurrentText(current if keep else default)
        self.model.blockSignals(False)

    # ----- the plan
    def effective_plan(self) -> tuple[float, dict[str, float]]:
        """(fraction of MACs to remove, per-layer overrides): only the overridden layers are listed, the
        engine allocates the others."""
        return float(self.slider.value()), dict(self.overrides)

    def criterion_name(self) -> str:
        return str(self.criterion.currentData())

    def set_plan(self, ratio: float, overrides: dict[str, float]) -> None:
        """Restore a plan (e.g. of a clicked point): one `changed`."""
        self.overrides = {k: float(v) for k, v in overrides.items() if k in self.spins}
        self.slider.blockSignals(True)
        self.slider.setValue(ratio)
        self.slider.blockSignals(False)
        self._sync_spins()
        self.changed.emit()

    def reset_overrides(self) -> None:
        if not self.overrides:
            return
        self.overrides.clear()
        self._sync_spins()
        self.changed.emit()

    def _sync_spins(self) -> None:
        for name, spin in self.spins.items():
            spin.blockSignals(True)
            spin.setValue(self.overrides.get(name, AUTO))
            spin.blockSignals(False)
            spin.setStyleSheet(self._spin_style(name))

    def _layer_edited(self, name: str, value: float) -> None:
        if value <= AUTO + 1e-9:
            self.overrides.pop(name, None)
        else:
            self.overrides[name] = round(float(value), 4)
        self.spins[name].setStyleSheet(self._spin_style(name))
        self.changed.emit()

    def _spin_style(self, name: str) -> str:
        return SPIN_STYLE.format(color=f"color: {theme.WARN};" if name in self.overrides else "")

    # ----- the table
    def set_layers(self, layers: list[Any]) -> None:
        """One row per prunable group (engine `LayerInfo`); protected rows grayed with the reason."""
        self.layers = list(layers)
        self.overrides = {k: v for k, v in self.overrides.items() if any(i.name == k for i in layers)}
        self.table.setRowCount(0)
        self.spins.clear()
        self.table.setRowCount(len(layers))
        for row, info in enumerate(layers):
            name = QTableWidgetItem(info.name)
            plan = QTableWidgetItem("")
            for item in (name, plan):
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
            name.setToolTip(self._name_tip(info))
            self.table.setItem(row, LAYER, name)
            self.table.setItem(row, PLAN, plan)
            if info.protected:
                lock = QTableWidgetItem("—")
                lock.setFlags(lock.flags() & ~Qt.ItemIsEditable)
                self.table.setItem(row, RATIO, lock)
                self._gray(row, info.reason or "its width is fixed by the architecture")
                continue
            spin = QDoubleSpinBox()
            spin.setRange(AUTO, MAX_RATIO)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setSpecialValueText("auto")
            spin.setFrame(False)
            spin.setValue(self.overrides.get(info.name, AUTO))
            spin.setToolTip(
                f"Fraction of {info.name}'s {info.out_channels} channels to remove ('auto': the engine "
                "allocates it from the MAC target)"
            )
            spin.valueChanged.connect(lambda v, n=info.name: self._layer_edited(n, v))
            self.table.setCellWidget(row, RATIO, spin)
            self.spins[info.name] = spin
        self._sync_spins()

    def _gray(self, row: int, reason: str) -> None:
        for col in range(self.table.columnCount()):
            item = self.table.item(row, col)
            if item is not None:
                item.setForeground(pg.mkColor(theme.MUTED))
                if col != PLAN:
                    item.setToolTip(f"stays whole: {reason}")

    def _ungray(self, row: int) -> None:
        item = self.table.item(row, LAYER)
        if item is not None:
            item.setForeground(pg.mkColor(theme.TEXT))
            item.setToolTip(self._name_tip(self.layers[row]))

    @staticmethod
    def _name_tip(info: Any) -> str:
        return f"{info.name}: {info.out_channels} channels\ncoupled: {', '.join(info.members) or '–'}"

    def show_estimate(self, est: dict[str, Any], base: dict[str, float]) -> None:
        """The cards, the summary and each row's "removes k of n" from `plan_and_estimate`'s answer."""
        self.params.setText(
            f"{fmt.count(est['params'])}  <span style='color:{theme.MUTED}'>"
            f"({100.0 * est['params'] / max(base['params'], 1):.0f} %)</span>"
        )
        self.macs.setText(
            f"{fmt.count(est['macs'])}  <span style='color:{theme.MUTED}'>"
            f"({100.0 * est['macs'] / max(base['macs'], 1):.0f} %)</span>"
        )
        self.summary.setText(arrows(est.get("summary", "")))
        widths = est.get("widths", {})
        texts = est.get("layers", {})
        held = est.get("protected", {})  # protected and spared layers, with the reason
        total = kept = 0
        for row, info in enumerate(self.layers):
            text = arrows(texts.get(info.name, ""))
            item = self.table.item(row, PLAN)
            if item is not None:
                item.setText(short(text))
                item.setToolTip(text)
            if info.protected:
                continue
            total += info.out_channels
            kept += int(widths.get(info.name, info.out_channels))
            if info.name in held:
                self._gray(row, held[info.name])
            else:
                self._ungray(row)
                if item is not None:
                    item.setForeground(pg.mkColor(theme.WARN if info.name in self.overrides else theme.TEXT))
        self.kept.setText(f"{kept} / {total}")

    def clear(self) -> None:
        self.table.setRowCount(0)
        self.spins.clear()
        self.layers = []
        self.summary.setText("")
