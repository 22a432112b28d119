"""Live controls of OpenCV SGBM's parameters (the engine's `SGBMParams`): block size, P1, P2, uniqueness,
speckle window and range, disp12MaxDiff, mode, number of disparities and hole filling. The values are
validated by `SGBMParams.from_dict` (a bad combination, e.g. P2 <= P1, is the engine's clear message) and
saved in the settings as `params.to_dict()`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

MODES = ("sgbm", "hh", "3way", "hh4")
MODE_TIPS = {
    "sgbm": "single pass, 5 directions (fast)",
    "hh": "full two-pass, 8 directions (slow, best)",
    "3way": "3-way (fastest; the project's default)",
    "hh4": "4 directions",
}


def _spin(lo: int, hi: int, tip: str, step: int = 1, special: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)  # one change per finished edit, not per key
    if special:
        spin.setSpecialValueText(special)
    return spin


class SGBMTuner(QGroupBox):
    """`changed(values)` with the {field: value} dict `SGBMParams.from_dict` reads (None = automatic)."""

    changed = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("SGBM parameters", parent)
        self.block = _spin(1, 51, "Matching block size (odd)", 2)
        self.p1 = _spin(-1, 1_000_000, "P1: penalty of a 1 px disparity change between neighbours "
                        "(auto = 8 x 3 x block²)", 50, "auto")
        self.p2 = _spin(-1, 4_000_000, "P2: penalty of larger disparity jumps, > P1 (auto = 32 x 3 x block²)",
                        100, "auto")
        self.uniqueness = _spin(0, 100, "Uniqueness ratio (%): margin the best match must win by", 1)
        self.speckle_window = _spin(0, 10_000, "Speckle filter: largest blob of disparities removed as noise "
                                    "(0 = off)", 10, "off")
        self.speckle_range = _spin(0, 256, "Speckle filter: largest disparity variation inside a blob", 1)
        self.disp12 = _spin(-1, 512, "Largest left-right consistency difference (px; off = no check)", 1,
                            "off")
        self.mode = QComboBox()
        for m in MODES:
            self.mode.addItem(m, m)
            self.mode.setItemData(self.mode.count() - 1, MODE_TIPS[m], Qt.ToolTipRole)
        self.mode.setToolTip("OpenCV's SGBM variant: " + "; ".join(f"{m}: {t}" for m, t in MODE_TIPS.items()))
        self.ndisp = _spin(0, 512, "Number of disparities searched (a multiple of 16; auto = the model's max "
                           "disparity rounded up)", 16, "auto")
        self.fill = QCheckBox("fill invalid pixels from the left")
        self.fill.setToolTip("Invalid pixels take the nearest valid disparity on their left (else 0)")
        self.derived = QLabel("")
        self.derived.setProperty("role", "caption")
        self.derived.setWordWrap(True)
        defaults = QPushButton("Defaults")
        defaults.setToolTip("Back to the project's SGBM parameters")
        defaults.clicked.connect(self.reset)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for label, w in (
            ("block", self.block), ("P1", self.p1), ("P2", self.p2), ("uniqueness %", self.uniqueness),
            ("speckle window", self.speckle_window), ("speckle range", self.speckle_range),
            ("disp12 max diff", self.disp12), ("mode", self.mode), ("disparities", self.ndisp),
        ):
            form.addRow(label, w)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.fill)
        layout.addWidget(self.derived)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(defaults)
        layout.addLayout(row)
        layout.addStretch(1)
        self._loading = False
        self.reset(emit=False)
        for spin in (self.block, self.p1, self.p2, self.uniqueness, self.speckle_window, self.speckle_range,
                     self.disp12, self.ndisp):
            spin.valueChanged.connect(self._edited)
        self.mode.currentIndexChanged.connect(self._edited)
        self.fill.toggled.connect(self._edited)
        self.setMinimumWidth(250)
        self.setAlignment(Qt.AlignLeft)

    def values(self) -> dict[str, Any]:
        """The fields of `SGBMParams` (p1, p2, num_disparities None when automatic)."""
        block = self.block.value()
        return {
            "block_size": block if block % 2 else block + 1,
            "p1": None if self.p1.value() < 0 else self.p1.value(),
            "p2": None if self.p2.value() < 0 else self.p2.value(),
            "uniqueness": self.uniqueness.value(),
            "speckle_window": self.speckle_window.value(),
            "speckle_range": self.speckle_range.value(),
            "disp12_max_diff": self.disp12.value(),
            "mode": self.mode.currentData(),
            "num_disparities": self.ndisp.value() or None,
            "fill_holes": self.fill.isChecked(),
        }

    def set_values(self, values: dict[str, Any], emit: bool = False) -> None:
        """Show `values` (an `SGBMParams.to_dict()`); unknown keys are ignored."""
        self._loading = True
        try:
            v = dict(values)
            if "block_size" in v:
                self.block.setValue(int(v["block_size"]))
            for key, spin in (("p1", self.p1), ("p2", self.p2)):
                if key in v:
                    spin.setValue(-1 if v[key] is None else int(v[key]))
            for key, spin in (("uniqueness", self.uniqueness), ("speckle_window", self.speckle_window),
                              ("speckle_range", self.speckle_range), ("disp12_max_diff", self.disp12)):
                if key in v and v[key] is not None:
                    spin.setValue(int(v[key]))
            if "num_disparities" in v:
                self.ndisp.setValue(int(v["num_disparities"] or 0))
            if "mode" in v:
                index = self.mode.findData(str(v["mode"]))
                if index >= 0:
                    self.mode.setCurrentIndex(index)
            if "fill_holes" in v:
                self.fill.setChecked(bool(v["fill_holes"]))
        finally:
            self._loading = False
        self._edited(emit=emit)

    def reset(self, emit: bool = True) -> None:
        from stereo_studio.models.matchers import SGBMParams

        self.set_values(SGBMParams().to_dict(), emit=emit)

    def show_derived(self, p1: int | None, p2: int | None, ndisp: int | None) -> None:
        """The values OpenCV uses (the automatic ones resolved by the engine)."""
        parts = []
        if p1 is not None and p2 is not None:
            parts.append(f"in use: P1 {p1}, P2 {p2}")
        if ndisp is not None:
            parts.append(f"{ndisp} disparities")
        self.derived.setText(" · ".join(parts))
        self.p1.setSpecialValueText(f"auto ({p1})" if p1 is not None else "auto")
        self.p2.setSpecialValueText(f"auto ({p2})" if p2 is not None else "auto")

    def _edited(self, *_args: Any, emit: bool = True) -> None:
        if self._loading:
            return
        if emit:
            self.changed.emit(self.values())
