"""Distillation panel: teacher, student architecture and widths, data, steps and loss weights; start,
pause, resume, cancel; live loss / validation curves, it/s and ETA; resume a previous run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import format as fmt
from stereo_studio.gui import model_picker, theme
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.plot_menu import trim_plot_menu
from stereo_studio.gui.workers import JobRecord

FRESH = "fresh architecture"
NO_TEACHER = "none (ground truth only)"
WIDTH_KNOBS = [  # (config key, label, tooltip)
    ("agg_channels", "aggregation width", "Channels of the 2D aggregation blocks"),
    ("agg_blocks", "aggregation blocks", "Number of residual aggregation blocks"),
    ("corr_channels", "correlation channels", "Feature channels used by the correlation"),
    ("refine_channels", "refinement width", "Channels of the full-resolution refinement"),
    ("low_res_channels", "1/8-res branch width", "Channels of the low-resolution branch (0 = none)"),
]
SPARSITY_CURVES = [  # (metric of a kind="sparsity" event, legend) -- group norms relative to the layer's kept
    ("go_norm_median", "going: median norm"),
    ("go_norm_q90", "going: 90th percentile"),
    ("keep_norm_q10", "kept: 10th percentile"),
    ("go_shrunk", "going: fraction shrunk"),
]


def _spin(lo: int, hi: int, value: int, tip: str, step: int = 1) -> QSpinBox:
    w = QSpinBox()
    w.setRange(lo, hi)
    w.setValue(value)
    w.setSingleStep(step)
    w.setToolTip(tip)
    return w


def _dspin(
    lo: float, hi: float, value: float, tip: str, decimals: int = 3, step: float = 0.1
) -> QDoubleSpinBox:
    w = QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setDecimals(decimals)
    w.setSingleStep(step)
    w.setValue(value)
    w.setToolTip(tip)
    return w


def _run_job(config: Any, run_dir: str, resume: bool):
    """Job (worker thread): distill / train with the engine and return the saved model folder."""
    from stereo_studio import runtime
    from stereo_studio.engine.training import train

    with runtime.training_running():  # latency measurements queue behind it or are marked contended
        return (yield from train(config, run_dir, resume=resume))


def _resume_job(run_dir: str, threads: int | None):
    """Job: resume the run in `run_dir` with its saved config."""
    from stereo_studio.engine.training import TrainConfig, train
    from stereo_studio.errors import StereoStudioError

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise StereoStudioError(f"{run_dir} is not a training run (no config.json)")
    try:
        config = TrainConfig.from_dict(json.loads(path.read_text()))
    except ValueError as exc:
        raise StereoStudioError(f"{path} is not a valid run config: {exc}") from exc
    if threads:
        config.threads = threads
    from stereo_studio import runtime

    with runtime.training_running():
        return (yield from train(config, run_dir, resume=True))


class DistillPanel(QWidget):
    """Settings on the left, live curves on the right."""

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.job: JobRecord | None = None
        self.run_dir: str = ""
        self.last_checkpoint: str = ""
        self.curves: dict[str, tuple[list[float], list[float]]] = {}
        self._build()
        studio.models_changed.connect(self._models_changed)
        studio.jobs.job_changed.connect(self._job_changed)
        self._models_changed()

    def _build(self) -> None:
        from stereo_studio.models.registry import architecture_names, default_config

        self.teacher = QComboBox()
        self.teacher.setToolTip(
            "The model whose outputs the student learns to reproduce (teacher-output L1): a trained network, "
            "a custom architecture or an ONNX network (outputs only)"
        )
        self._teacher_touched = False
        self.teacher.activated.connect(lambda _: setattr(self, "_teacher_touched", True))
        self.start_from = QComboBox()
        self.start_from.setToolTip("Train a fresh student architecture, or fine-tune an open model")
        self.arch = QComboBox()
        self.arch.addItems(architecture_names())
        self.arch.setCurrentText("student" if "student" in architecture_names() else self.arch.itemText(0))
        self.arch.setToolTip("Student architecture (used for a fresh student)")
        self.arch.currentTextChanged.connect(self._arch_changed)
        self.knobs: dict[str, QSpinBox] = {}
        defaults = default_config(self.arch.currentText())
        model_box = QGroupBox("Student")
        mf = QFormLayout(model_box)
        mf.addRow("teacher", self.teacher)
        mf.addRow("start from", self.start_from)
        mf.addRow("architecture", self.arch)
        for key, label, tip in WIDTH_KNOBS:
            w = _spin(0, 512, int(defaults.get(key, 0) or 0), tip)
            self.knobs[key] = w
            mf.addRow(label, w)
        self._arch_changed(self.arch.currentText())

        self.data = QComboBox()
        self.data.setEditable(True)
        self.data.addItems(["synthetic"])
        self.data.setToolTip("Training data: 'synthetic' (the built-in generator) or a dataset folder")
        self.steps = _spin(1, 1_000_000, 2000, "Optimiser steps", 100)
        self.batch = _spin(1, 64, 4, "Pairs per step")
        self.crop_h = _spin(32, 1024, 192, "Training crop height (px)", 16)
        self.crop_w = _spin(32, 2048, 320, "Training crop width (px)", 16)
        self.lr = _dspin(1e-6, 1.0, 1e-3, "Peak learning rate (AdamW, cosine decay)", 5, 1e-4)
        self.w_teacher = _dspin(0.0, 10.0, 1.0, "Weight of the teacher-output L1 loss")
        self.w_gt = _dspin(0.0, 10.0, 0.0, "Weight of the ground-truth loss")
        self.val_interval = _spin(1, 100_000, 200, "Validate every N steps", 50)
        self.threads = _spin(
            1,
            os.cpu_count() or 1,
            max(1, (os.cpu_count() or 2) - 1),
            "CPU threads for training (leave one for the window and the preview)",
        )
        self.run_root = QLineEdit(self.studio.settings.get("distill/run_root", str(Path.cwd() / "runs")))
        self.run_root.setToolTip(
            "Folder where each run gets its own sub-folder (checkpoints, metrics, model)"
        )
        crop = QHBoxLayout()
        crop.addWidget(self.crop_h)
        crop.addWidget(QLabel("×"))
        crop.addWidget(self.crop_w)
        train_box = QGroupBox("Training")
        tf = QFormLayout(train_box)
        tf.addRow("data", self.data)
        tf.addRow("steps", self.steps)
        tf.addRow("batch", self.batch)
        tf.addRow("crop (H × W)", crop)
        tf.addRow("learning rate", self.lr)
        tf.addRow("w teacher", self.w_teacher)
        tf.addRow("w ground truth", self.w_gt)
        tf.addRow("validate every", self.val_interval)
        tf.addRow("threads", self.threads)
        tf.addRow("runs folder", self.run_root)

        from stereo_studio.engine.losses import SPARSITY_METHODS
        from stereo_studio.engine.training import TrainConfig

        self.prune_ready = QGroupBox("Prune-ready training")
        self.prune_ready.setCheckable(True)
        self.prune_ready.setChecked(False)
        self.prune_ready.setToolTip(
            "Group-sparsity regularisation over the pruning engine's channel groups: the channels a pruning "
            "at the target ratio would remove shrink during training, so pruning them later costs little"
        )
        self.sparsity_reg = _dspin(
            0.0, 10_000.0, TrainConfig.sparsity_reg, "Regularisation strength (sparsity_reg)", 2, 5.0
        )
        self.target_ratio = _dspin(
            0.05, 0.95, TrainConfig.target_ratio,
            "Fraction of the MACs the student is made ready to lose (as the Pruning panel's slider)", 2, 0.05,
        )
        self.sparsity_start = _dspin(
            0.0, 0.95, TrainConfig.sparsity_start,
            "Fraction of the steps trained at full width before the regularisation starts", 2, 0.05,
        )
        self.sparsity_method = QComboBox()
        self.sparsity_method.addItems(list(SPARSITY_METHODS))
        self.sparsity_method.setCurrentText(TrainConfig.sparsity_method)
        self.sparsity_method.setToolTip(
            "group: shrink the groups a plan at the target would remove (re-chosen every 100 steps); "
            "slimmable: the same, plus a second pass each step through the network with them removed, so "
            "it works both whole and pruned (a step costs one more forward and backward); "
            "groupnorm: group lasso on every group; bn: L1 on BatchNorm scales (network slimming)"
        )
        pf = QFormLayout(self.prune_ready)
        pf.addRow("strength", self.sparsity_reg)
        pf.addRow("target MACs removed", self.target_ratio)
        pf.addRow("starts after", self.sparsity_start)
        pf.addRow("method", self.sparsity_method)
        self.prune_ready.toggled.connect(lambda on: self.sparsity_plot.setVisible(on or bool(self._sparsity)))

        self.start_btn = QPushButton("Start")
        self.start_btn.setProperty("primary", True)
        self.start_btn.setToolTip("Start distilling (Ctrl+Return)")
        self.start_btn.clicked.connect(self.start)
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setToolTip("Pause / resume the running job (Ctrl+P)")
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the run; its last checkpoint is kept and can be resumed (Ctrl+.)")
        self.cancel_btn.clicked.connect(self.cancel)
        self.resume_btn = QPushButton("Resume run…")
        self.resume_btn.setToolTip("Continue a previous run from its last checkpoint")
        self.resume_btn.clicked.connect(self.browse_resume)
        buttons = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.cancel_btn, self.resume_btn):
            buttons.addWidget(b)

        settings = QWidget()
        sl = QVBoxLayout(settings)
        sl.addWidget(model_box)
        sl.addWidget(train_box)
        sl.addWidget(self.prune_ready)
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(settings)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(400)
        scroll.setMaximumWidth(460)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setToolTip("Steps done")
        self.rate = QLabel("–")
        self.rate.setProperty("role", "value")
        self.eta = QLabel("–")
        self.eta.setProperty("role", "value")
        self.val_label = QLabel("–")
        self.val_label.setProperty("role", "value")
        self.state = QLabel("idle")
        self.state.setProperty("role", "caption")
        stats = QHBoxLayout()
        for caption, w in (("it/s", self.rate), ("ETA", self.eta), ("validation EPE", self.val_label)):
            box = QVBoxLayout()
            c = QLabel(caption)
            c.setProperty("role", "caption")
            box.addWidget(c)
            box.addWidget(w)
            stats.addLayout(box)
            stats.addSpacing(28)
        stats.addStretch(1)
        stats.addWidget(self.state)

        self.loss_plot = pg.PlotWidget(title="training loss")
        trim_plot_menu(self.loss_plot)
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_plot.setToolTip("Loss per step (teacher L1 and ground-truth parts)")
        self.val_plot = pg.PlotWidget(title="validation")
        trim_plot_menu(self.val_plot)
        self.val_plot.setLabel("bottom", "step")
        self.val_plot.setLabel("left", "EPE", units="px")
        self.val_plot.showGrid(x=True, y=True, alpha=0.2)
        self.val_plot.addLegend(offset=(-10, 10))
        self.val_plot.setToolTip("Validation end-point error (and gap to the teacher) on held-out pairs")
        self.lines: dict[str, pg.PlotDataItem] = {}
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addLayout(stats)
        rl.addWidget(self.progress)
        rl.addWidget(self.loss_plot, 3)
        rl.addWidget(self.val_plot, 2)
        self.sparsity_plot = pg.PlotWidget(title="prune-ready: group norms")
        trim_plot_menu(self.sparsity_plot)
        self.sparsity_plot.setLabel("bottom", "step")
        self.sparsity_plot.setLabel("left", "norm / layer's kept median")
        self.sparsity_plot.showGrid(x=True, y=True, alpha=0.2)
        self.sparsity_plot.addLegend(offset=(-10, 10))
        self.sparsity_plot.setToolTip(
            "Group norms of the channels meant to go (relative to their layer's kept channels) as training "
            "goes: they should fall towards 0 while the kept ones stay near 1; 'fraction shrunk' counts the "
            "going channels already below 5 %"
        )
        self.sparsity_plot.setVisible(False)
        self._sparsity = False
        rl.addWidget(self.sparsity_plot, 2)

        layout = QHBoxLayout(self)
        left = QVBoxLayout()  # the settings scroll on a small screen; Start / Pause / Cancel stay in view
        left.addWidget(scroll, 1)
        left.addLayout(buttons)
        layout.addLayout(left)
        layout.addWidget(right, 1)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.start)
        QShortcut(QKeySequence("Ctrl+P"), self, activated=self.toggle_pause)
        # Ctrl+. is the window's one Cancel shortcut (MainWindow.cancel_shortcut): it reaches `cancel`
        self._update_buttons()

    # ----- bindings
    def _models_changed(self) -> None:
        """Teachers and starting points must be saved models (bundled or folders), not untrained ones; an
        ONNX network can teach (outputs only) but never be the student."""
        nets = [m for m in self.studio.networks() if not m.untrained]
        teachers = model_picker.teacher_entries(self.studio)  # trained networks + ONNX networks
        current_t, current_s = self.teacher.currentText(), self.start_from.currentText()
        self.teacher.blockSignals(True)
        self.teacher.clear()
        self.teacher.addItems([m.key for m in teachers] + [NO_TEACHER])
        teacher_default = next((m.key for m in teachers if m.role == "teacher"), NO_TEACHER)
        keep = self._teacher_touched and self.teacher.findText(current_t) >= 0
        self.teacher.setCurrentText(current_t if keep else teacher_default)
        self.teacher.blockSignals(False)
        self.start_from.clear()
        self.start_from.addItems([FRESH] + [m.key for m in nets])
        if self.start_from.findText(current_s) >= 0:
            self.start_from.setCurrentText(current_s)

    def _arch_changed(self, arch: str) -> None:
        from stereo_studio.models.registry import default_config

        defaults = default_config(arch)
        for key, w in self.knobs.items():
            w.setEnabled(isinstance(defaults.get(key), int))
            if isinstance(defaults.get(key), int):
                w.setValue(int(defaults[key]))

    def config(self) -> Any:
        """The engine `TrainConfig` the current settings describe."""
        from stereo_studio.engine.training import TrainConfig
        from stereo_studio.models.registry import default_config

        teacher_key = self.teacher.currentText()
        teacher = self.studio.entry(teacher_key)
        start = self.studio.entry(self.start_from.currentText())
        model_picker.check_student(start)  # an ONNX network is frozen: never a student
        defaults = default_config(self.arch.currentText())
        overrides = {
            k: w.value() for k, w in self.knobs.items() if w.isEnabled() and w.value() != defaults.get(k)
        }
        return TrainConfig(
            arch=None if start else self.arch.currentText(),
            model_overrides={} if start else overrides,
            init_from=start.spec if start else None,
            teacher=teacher.spec if teacher else None,
            data=[self.data.currentText().strip() or "synthetic"],
            steps=self.steps.value(),
            batch_size=self.batch.value(),
            crop=(self.crop_h.value(), self.crop_w.value()),
            lr=self.lr.value(),
            w_teacher=self.w_teacher.value() if teacher else 0.0,
            w_gt=self.w_gt.value() if teacher else max(self.w_gt.value(), 1.0),
            val_interval=min(self.val_interval.value(), self.steps.value()),
            ckpt_interval=min(self.val_interval.value(), self.steps.value()),  # resumable at each validation
            log_interval=max(1, min(10, self.steps.value())),
            val_pairs=4,
            threads=self.threads.value(),
            prune_ready=self.prune_ready.isChecked(),
            sparsity_reg=self.sparsity_reg.value(),
            target_ratio=self.target_ratio.value(),
            sparsity_method=self.sparsity_method.currentText(),
            sparsity_start=self.sparsity_start.value(),
        )

    def running(self) -> bool:
        return self.job is not None and self.job.active

    def start(self) -> None:
        if self.running():
            return
        try:
            config = self.config()
        except Exception as exc:
            self.studio.message.emit("error", f"distillation settings: {exc}")
            return
        root = Path(self.run_root.text().strip() or "runs")
        self.studio.settings.set("distill/run_root", str(root))
        self.run_dir = str(root / f"distill-{time.strftime('%Y%m%d-%H%M%S')}")
        self._launch(f"Distill → {Path(self.run_dir).name}", _run_job, config, self.run_dir, False)

    def browse_resume(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Resume a training run", self.run_root.text())
        if path:
            self.resume(path)

    def resume(self, run_dir: str) -> None:
        """Continue the run in `run_dir` from its last checkpoint."""
        if self.running():
            return
        self.run_dir = run_dir
        self._launch(f"Resume {Path(run_dir).name}", _resume_job, run_dir, self.threads.value())

    def _launch(self, title: str, factory: Any, *args: Any) -> None:
        self.last_checkpoint = ""
        self.curves.clear()
        for line in self.lines.values():
            line.setData([], [])
        self.val_label.setText("–")
        self._sparsity = False
        self.sparsity_plot.setVisible(self.prune_ready.isChecked())
        self.job = self.studio.jobs.start(
            title,
            factory,
            *args,
            on_progress=self._progress,
            on_result=self._done,
            on_error=self._failed,
            on_finished=lambda _r: self._update_buttons(),
        )
        self.state.setText("starting…")
        self._update_buttons()

    def toggle_pause(self) -> None:
        if self.running():
            self.studio.jobs.toggle_pause(self.job)

    def cancel(self) -> None:
        if self.running():
            self.studio.jobs.cancel(self.job)

    def _job_changed(self, record: JobRecord) -> None:
        if record is self.job:
            self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.running()
        paused = running and self.job.status == "paused"
        self.start_btn.setEnabled(not running)
        self.resume_btn.setEnabled(not running)
        self.pause_btn.setEnabled(running)
        self.pause_btn.setText("Resume" if paused else "Pause")
        self.cancel_btn.setEnabled(running)
        if self.job is not None and not running:
            self.state.setText(self.job.status + (f": {self.job.error}" if self.job.error else ""))
        elif paused:
            self.state.setText("paused")

    def _line(self, plot: pg.PlotWidget, name: str, color: str) -> pg.PlotDataItem:
        if name not in self.lines:
            self.lines[name] = plot.plot(
                [],
                [],
                name=dict(SPARSITY_CURVES).get(name, name),
                pen=pg.mkPen(color, width=2),
                symbol="o" if plot is self.val_plot else None,
                symbolSize=6,
                symbolBrush=color,
            )
        return self.lines[name]

    def _add(self, plot: pg.PlotWidget, name: str, color: str, step: float, value: float) -> None:
        xs, ys = self.curves.setdefault(name, ([], []))
        xs.append(step)
        ys.append(value)
        self._line(plot, name, color).setData(xs, ys)

    def _progress(self, event: Any) -> None:
        if event.total:
            self.progress.setValue(int(1000 * event.step / event.total))
            self.progress.setFormat(f"{event.step} / {event.total} steps")
        m = event.metrics
        if event.kind == "step":
            self.state.setText("running")
            self._add(self.loss_plot, "loss", theme.ACCENT, event.step, m.get("loss", float("nan")))
            for i, key in enumerate(k for k in m if k.startswith("loss_")):
                self._add(self.loss_plot, key, theme.MODEL_COLORS[1 + i], event.step, m[key])
            if "it_s" in m:
                self.rate.setText(fmt.number(m["it_s"], 2))
            if "eta_s" in m:
                self.eta.setText(fmt.duration(m["eta_s"]))
        elif event.kind == "validation":
            for i, key in enumerate(k for k in m if "epe" in k or "gap" in k):
                self._add(self.val_plot, key, theme.MODEL_COLORS[i], event.step, m[key])
            epe = next((m[k] for k in m if "epe" in k), None)
            if epe is not None:
                self.val_label.setText(fmt.number(epe, 2, " px"))
        elif event.kind == "sparsity":
            self._sparsity = True
            self.sparsity_plot.setVisible(True)
            for i, (key, _legend) in enumerate(SPARSITY_CURVES):
                if key in m:
                    self._add(self.sparsity_plot, key, theme.MODEL_COLORS[i], event.step, m[key])
            if event.message:
                self.state.setText(event.message)
        elif event.kind == "checkpoint":
            self.last_checkpoint = str(event.payload or "")
            self.state.setText(f"checkpoint saved at step {event.step}")
        elif event.message:
            self.state.setText(event.message)

    def _done(self, model_dir: Any) -> None:
        self.state.setText("done")
        self.studio.message.emit("ok", f"distilled model saved to {model_dir}")
        self.studio.open_model(str(model_dir), role="distilled", key=Path(self.run_dir).name)

    def _failed(self, text: str) -> None:
        self.studio.message.emit("error", f"distillation: {text}")

    def shutdown(self) -> None:
        self.cancel()
