"""The Pruning panel's actions: sweep, sensitivity analysis, cancel; how many distillation steps recover a
point; prune + fine-tune and ONNX export. Buttons and settings only: `PruningPanel` runs the jobs."""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSizePolicy, QSpinBox, QWidget

SWEEP_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RECOVER_STEPS = 20  # a recovered point lands within a minute on the student (2 busy cores: ~30-45 s)


class ActionsWidget(QWidget):
    """Two rows of buttons under the trade-off plot."""

    def __init__(self, recover_steps: int = RECOVER_STEPS, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sweep_btn = QPushButton("Run sweep")
        self.sweep_btn.setToolTip(
            f"Measure MAC reductions {', '.join(f'{r:g}' for r in SWEEP_RATIOS)}: raw and recalibrated "
            "points, then recovered ones (Ctrl+Shift+W)"
        )
        self.sens_btn = QPushButton("Sensitivity analysis")
        self.sens_btn.setToolTip(
            "Prune each layer alone at 0.25 / 0.5 / 0.75 of its channels and plot its EPE increase; critical "
            "layers are then spared by the slider's plans"
        )
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the running sweep / analysis / pruning job")
        self.recover_steps = QSpinBox()
        self.recover_steps.setRange(0, 5000)
        self.recover_steps.setSingleStep(10)
        self.recover_steps.setValue(recover_steps)
        self.recover_steps.setSpecialValueText("off")
        self.recover_steps.setSuffix(" steps")
        self.recover_steps.setToolTip(
            "Recovered points: each measured plan is also distilled from the teacher for this many steps in "
            "the background; its point upgrades in place when done (off: raw and recalibrated points only)"
        )
        self.finetune_steps = QSpinBox()
        self.finetune_steps.setRange(0, 100_000)
        self.finetune_steps.setSingleStep(100)
        self.finetune_steps.setValue(500)
        self.finetune_steps.setSuffix(" steps")
        self.finetune_steps.setToolTip("Distillation fine-tune steps after pruning (0 = prune only)")
        self.prune_btn = QPushButton("Prune && fine-tune")
        self.prune_btn.setProperty("primary", True)
        self.prune_btn.setToolTip(
            "Prune the model with the current plan, re-estimate its BatchNorm statistics, fine-tune it with "
            "distillation from the teacher and open the result (Ctrl+Shift+P)"
        )
        self.export_btn = QPushButton("Export ONNX…")
        self.export_btn.setToolTip("Export the selected model (pruned with the current plan) to ONNX")
        for b in (self.sweep_btn, self.sens_btn, self.cancel_btn, self.prune_btn, self.export_btn):
            b.setSizePolicy(QSizePolicy.Minimum, QSizePolicy.Fixed)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        grid.addWidget(self.sweep_btn, 0, 0)
        grid.addWidget(self.sens_btn, 0, 1)
        grid.addWidget(self.cancel_btn, 0, 2)
        grid.addWidget(QLabel("recover points"), 0, 4)
        grid.addWidget(self.recover_steps, 0, 5)
        grid.addWidget(QLabel("fine-tune"), 1, 0)
        grid.addWidget(self.finetune_steps, 1, 1)
        grid.addWidget(self.prune_btn, 1, 2)
        grid.addWidget(self.export_btn, 1, 5)
        grid.setColumnStretch(3, 1)
