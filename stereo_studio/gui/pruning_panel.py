"""Pruning panel: the plan (`pruning_plan.PlanWidget`: MAC slider, per-layer overrides, what the plan does),
the live accuracy-vs-latency trade-off (`tradeoff_plot.TradeoffPlot`: raw, recalibrated and recovered points,
a Pareto front per kind, every opened model as a reference; click a point to restore its plan), the
sensitivity curves, and the actions (`pruning_actions.ActionsWidget`: sweep, sensitivity analysis, prune +
fine-tune, ONNX export). This module wires them to the engine jobs of `pruning_jobs`.

Jobs: a plan change re-estimates params / MACs at once (throttled, latest wins) and, once the slider rests,
measures the plan's raw then recalibrated point (a newer plan cancels an older measurement); a background
recovery (a short distillation from the teacher) then upgrades the plan's point in place, paused while an
interactive measurement runs. Reference points of the opened models are measured one at a time in between.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget
from superqt.utils import qdebounced, qthrottled

from stereo_studio.engine.sweep import TIMING_FIELDS
from stereo_studio.gui.pruning_actions import SWEEP_RATIOS, ActionsWidget
from stereo_studio.gui.pruning_jobs import (
    PruneTarget,
    Reference,
    export_job,
    measure_kinds,
    plan_and_estimate,
    prepare_target,
    prune_job,
    reference_points,
    sensitivity_job,
    suggest,
    sweep_job,
)
from stereo_studio.gui.pruning_plan import PlanWidget, criterion_choices
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.tradeoff_plot import SensitivityPlot, TradeoffPlot
from stereo_studio.gui.workers import JobRecord

CRITERIA = criterion_choices()  # (name, label) from the engine's registry (engine.importance)
MEASURE_DEBOUNCE_MS = 250  # a point is measured once the slider rests this long
UNPRUNED = ("unpruned",)
REF_RETRY_MS = 1000
QUIET_WAIT_S = 30.0  # the unpruned point waits this long at most for the Models panel's measurements
TIMING = ("latency_ms", *TIMING_FIELDS)


def plan_key(ratio: float, overrides: dict[str, float], criterion: str, spare: list[str]) -> tuple:
    """Points of the same plan share this key (a new point of the same kind replaces the old one)."""
    ratio = round(float(ratio or 0.0), 4)
    if not ratio and not overrides:
        return UNPRUNED
    return (ratio, tuple(sorted(overrides.items())), criterion, tuple(sorted(spare)))


def plan_label(ratio: float, overrides: dict[str, float], criterion: str, spare: list[str]) -> str:
    """A short name of a plan for the plot: '0.5', '0.5 + 2 layers · bn · spared'."""
    if not ratio and not overrides:
        return "unpruned"
    text = f"{round(float(ratio), 2):g}"
    if overrides:
        text += f" + {len(overrides)} layer{'s' if len(overrides) != 1 else ''}"
    if criterion != "l1":
        text += f" · {criterion}"
    if spare:
        text += " · spared"
    return text


def same_timing(point: Any, like: Any) -> Any:
    """`point` with the latency of `like`, the plan's raw point on the plot: a recovered point has the raw
    point's architecture (the engine reuses its latency too), and the recovery job's own raw timing ran
    beside the interactive measurements."""
    names = {f.name for f in dataclasses.fields(point)}
    same = {k: getattr(like, k) for k in TIMING if k in names and hasattr(like, k)}
    return dataclasses.replace(point, **same)


class PruningPanel(QWidget):
    """The plan on the left; the trade-off / sensitivity plots and the actions on the right."""

    point_added = Signal(object)  # a SweepPoint landed on the plot

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.target: PruneTarget | None = None
        self.sensitivity_table: Any = None
        self.spare: list[str] = []  # critical layers of the sensitivity analysis: the plans leave them whole
        self._prepare_job: JobRecord | None = None
        self._preparing = ""
        self._estimate_job: JobRecord | None = None
        self._estimate_pending = False
        self._measure_job: JobRecord | None = None
        self._measure_key: Hashable | None = None
        self._measure_pending = False
        self._recover_job: JobRecord | None = None
        self._recover_next: tuple | None = None
        self._ref_job: JobRecord | None = None
        self._ref_retry = False
        self._quiet_deadline = 0.0
        self._quiet_timer = False
        self._long_job: JobRecord | None = None
        self.released_at: float | None = None  # when the plan last changed (time to the first point)
        self._build()
        studio.models_changed.connect(self._models_changed)
        studio.data_changed.connect(self._data_changed)
        self._models_changed()

    # ----- layout
    def _build(self) -> None:
        self.plan = PlanWidget(float(self.studio.settings.get("pruning/ratio", 0.0) or 0.0))
        self.plan.model_chosen.connect(self._model_selected)
        self.plan.changed.connect(self._plan_changed)
        self.plan.plan_btn.clicked.connect(self.apply_sensitivity_plan)
        self.plan.setMinimumWidth(500)
        self.plan.setMaximumWidth(580)
        self.tradeoff = TradeoffPlot()
        self.tradeoff.point_clicked.connect(lambda e: self.restore_point(e.point))
        self.sens_plot = SensitivityPlot()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.tradeoff, "Trade-off")
        self.tabs.addTab(self.sens_plot, "Sensitivity")
        self.actions = ActionsWidget()
        self.actions.sweep_btn.clicked.connect(self.run_sweep)
        self.actions.sens_btn.clicked.connect(self.run_sensitivity)
        self.actions.cancel_btn.clicked.connect(self.cancel_jobs)
        self.actions.prune_btn.clicked.connect(self.prune_and_finetune)
        self.actions.export_btn.clicked.connect(lambda: self.export_onnx())
        self.status = QLabel("")
        self.status.setProperty("role", "caption")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(4)
        rl.addWidget(self.tabs, 1)
        rl.addWidget(self.status)
        rl.addWidget(self.actions)
        layout = QHBoxLayout(self)
        layout.addWidget(self.plan)
        layout.addWidget(right, 1)
        step = lambda d: self.slider.setValue(round(self.slider.value() + d, 2))  # noqa: E731
        QShortcut(QKeySequence("Ctrl+Up"), self, activated=lambda: step(0.05))
        QShortcut(QKeySequence("Ctrl+Down"), self, activated=lambda: step(-0.05))
        QShortcut(QKeySequence("Ctrl+Shift+W"), self, activated=self.run_sweep)
        QShortcut(QKeySequence("Ctrl+Shift+P"), self, activated=self.prune_and_finetune)

    # the widgets other code and the tests reach through the panel
    @property
    def model(self) -> Any:
        return self.plan.model

    @property
    def criterion(self) -> Any:
        return self.plan.criterion

    @property
    def slider(self) -> Any:
        return self.plan.slider

    @property
    def params(self) -> Any:
        return self.plan.params

    @property
    def table(self) -> Any:
        return self.plan.table

    @property
    def finetune_steps(self) -> Any:
        return self.actions.finetune_steps

    @property
    def recover_steps(self) -> Any:
        return self.actions.recover_steps

    @property
    def points(self) -> list[Any]:
        return self.tradeoff.points

    @property
    def references(self) -> dict[str, Reference]:
        return self.tradeoff.references

    def effective_plan(self) -> tuple[float, dict[str, float]]:
        return self.plan.effective_plan()

    def kinds(self, label: str) -> set[str]:
        """The kinds of point measured for the plan labelled `label` (e.g. "0.5")."""
        return {p.kind for p in self.points if p.label == label}

    def reset_overrides(self) -> None:
        self.plan.reset_overrides()

    def set_plan(self, ratio: float, overrides: dict[str, float]) -> None:
        self.plan.set_plan(ratio, overrides)

    def _current(self) -> tuple[Hashable, str, tuple]:
        """(key, label, settings) of the plan on screen."""
        ratio, overrides = self.plan.effective_plan()
        criterion = self.plan.criterion_name()
        spare = list(self.spare)
        settings = (ratio, overrides, criterion, spare)
        return plan_key(*settings), plan_label(*settings), settings

    def teacher_spec(self) -> str | None:
        """The model recovered points and fine-tunes distil from: the open teacher (trained)."""
        teacher = next((m for m in self.studio.models if m.role == "teacher" and not m.untrained), None)
        return teacher.spec if teacher is not None else None

    # ----- model selection
    def _models_changed(self) -> None:
        nets = self.studio.networks()
        default = next((m.key for m in nets if m.role == "student"), nets[0].key if nets else "")
        self.plan.set_models([m.key for m in nets], default)
        open_keys = {m.key for m in self.studio.models}
        if any(k not in open_keys for k in self.references):  # a closed model leaves the plot
            for k in [k for k in self.references if k not in open_keys]:
                self.references.pop(k)
            self.tradeoff.set_references(self.references)
        self._model_selected(self.model.currentText())
        self._update_references()

    def _data_changed(self) -> None:
        """Points and references are measured on the data source: start again on the new one."""
        if self.target is None and not self.references:
            return
        self.target = None
        self.tradeoff.clear_references()
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
        for job in (self._measure_job, self._recover_job):
            if job is not None and job.active:
                self.studio.jobs.cancel(job)
        self._recover_next = None
        self.target = None
        self._preparing = key
        self.plan.overrides.clear()
        self.spare = []
        self.sensitivity_table = None
        self.plan.plan_btn.setEnabled(False)
        self.tradeoff.clear()
        self.plan.clear()
        self.status.setText(f"preparing {key}…")

        def ready(target: PruneTarget) -> None:
            if target.key != self.model.currentText():
                return
            self.target = target
            self._quiet_deadline = time.monotonic() + QUIET_WAIT_S
            self.plan.set_layers(target.layers)
            self._plan_changed()
            self._update_references()
            self.status.setText(f"{key}: {len(target.layers)} channel groups; move the slider to measure")

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

    # ----- the plan
    def _plan_changed(self) -> None:
        self.studio.settings.set("pruning/ratio", float(self.slider.value()))
        self.released_at = time.perf_counter()
        self._estimate()
        self._measure_later()

    @qthrottled(timeout=120, leading=True)
    def _estimate(self) -> None:
        """Params / MACs and what the plan does, at once (analytic); latest request wins."""
        if self.target is None:
            return
        if self._estimate_job is not None and self._estimate_job.active:
            self._estimate_pending = True
            return
        self._estimate_pending = False
        ratio, overrides = self.effective_plan()
        target = self.target
        self._estimate_job = self.studio.jobs.start(
            "Estimate",
            plan_and_estimate,
            target,
            ratio,
            overrides,
            self.plan.criterion_name(),
            self.studio.size,
            list(self.spare),
            track=False,
            on_result=lambda est: self._show_estimate(target, est),
            on_error=lambda t: self.status.setText(f"estimate failed: {t}"),
            on_finished=lambda _r: self._estimate() if self._estimate_pending else None,
        )

    def _show_estimate(self, target: PruneTarget, est: dict[str, Any]) -> None:
        if target is self.target:
            self.plan.show_estimate(est, target.base)

    @qdebounced(timeout=MEASURE_DEBOUNCE_MS)
    def _measure_later(self) -> None:
        self.measure_now()

    def measure_now(self) -> None:
        """Measure the plan on screen (raw, then recalibrated) in the background; a newer plan cancels the
        measurement of an older one, and a running recovery pauses meanwhile."""
        if self.target is None:
            return
        key, label, settings = self._current()
        if {"raw", "recalibrated"} <= set(self.tradeoff.kinds_of(key)):
            best = self.tradeoff.best(key)
            self.tradeoff.set_current(best.point if best else None)
            self._queue_recovery(key, label, settings)
            return
        if self._measure_job is not None and self._measure_job.active:
            if self._measure_key != key:
                self._measure_pending = True
                self.studio.jobs.cancel(self._measure_job)  # newest wins: it restarts when this one stops
            return
        if self._ref_job is not None and self._ref_job.active:  # one timing at a time
            self._measure_pending = True
            return
        if key == UNPRUNED and self.studio.stats_busy() and time.monotonic() < self._quiet_deadline:
            # the first point, measured on its own: not beside the Models panel's evaluations (the slider's
            # points never wait)
            if not self._quiet_timer:
                self._quiet_timer = True
                QTimer.singleShot(REF_RETRY_MS, self, self._measure_when_quiet)
            return
        self._measure_pending = False
        self._hold_recovery(True)
        ratio, overrides, criterion, spare = settings
        target = self.target
        self.status.setText(f"measuring {label}…")
        self._measure_key = key

        def event(e: Any) -> None:
            if e.kind == "point" and e.payload is not None and target is self.target:
                self._add(key, e.payload, settings, label)

        self._measure_job = self.studio.jobs.start(
            f"Measure point {label}",
            measure_kinds,
            target,
            ratio,
            overrides,
            criterion,
            self.studio.size,
            label,
            0,
            None,
            spare,
            on_progress=event,
            on_error=lambda t: self.studio.message.emit("error", f"measuring a pruning point: {t}"),
            on_finished=lambda r: self._measured(r, key, label, settings),
        )

    def _measure_when_quiet(self) -> None:
        self._quiet_timer = False
        self.measure_now()

    def _measured(self, record: JobRecord, key: Hashable, label: str, settings: tuple) -> None:
        self._measure_key = None
        if record.status == "done":
            self._queue_recovery(key, label, settings)
        if self._measure_pending:
            self.measure_now()
            return
        self._hold_recovery(False)
        self._next_recovery()
        self._update_references()  # holds the recovery again while it times

    # ----- recovered points
    def _queue_recovery(self, key: Hashable, label: str, settings: tuple) -> None:
        """Recover the plan `key` next (the newest plan waits; a running recovery finishes first)."""
        if self.recover_steps.value() <= 0 or self.teacher_spec() is None or self.target is None:
            return
        if key == UNPRUNED:  # nothing was removed: nothing to recover
            return
        if "recovered" in self.tradeoff.kinds_of(key):
            return
        running = self._recover_job is not None and self._recover_job.active
        if running and self._recover_job.title.endswith(f" {label}"):
            return
        self._recover_next = (key, label, settings)
        self._next_recovery()

    def _next_recovery(self) -> None:
        if self._recover_next is None or self.target is None:
            return
        if any(j is not None and j.active for j in (self._recover_job, self._measure_job)):
            return
        key, label, settings = self._recover_next
        self._recover_next = None
        ratio, overrides, criterion, spare = settings
        steps, teacher, target = self.recover_steps.value(), self.teacher_spec(), self.target

        def event(e: Any) -> None:
            recovered = e.kind == "point" and e.payload is not None and e.payload.kind == "recovered"
            if recovered and target is self.target:
                raw = self.tradeoff.entries.get((key, "raw"))
                self._add(key, same_timing(e.payload, raw.point) if raw else e.payload, settings, label)

        self.status.setText(f"recovering {label}: {steps} distillation steps in the background…")
        raw = self.tradeoff.entries.get((key, "raw"))
        self._recover_job = self.studio.jobs.start(
            f"Recover point {label}",
            measure_kinds,
            target,
            ratio,
            overrides,
            criterion,
            self.studio.size,
            label,
            steps,
            teacher,
            spare,
            False,
            raw.point if raw is not None else None,
            on_progress=event,
            on_error=lambda t: self.studio.message.emit("warning", f"recovering {label}: {t}"),
            on_finished=lambda _r: self._next_recovery(),
        )

    def _hold_recovery(self, hold: bool) -> None:
        """Pause the recovery while an interactive measurement runs (both would share the CPU)."""
        worker = self._recover_job.worker if self._recover_job is not None else None
        if worker is None or not self._recover_job.active:
            return
        # a request the worker has not taken yet is dropped first (superqt has no call for it): a resume
        # followed at once by a pause must leave it paused, and the other way round
        if hold:
            worker._resume_requested = False
            worker.pause()
        else:
            worker._pause_requested = False
            worker.resume()

    # ----- the trade-off plot
    def _add(self, key: Hashable, point: Any, settings: tuple, label: str) -> None:
        point.label = label
        self.tradeoff.add(key, point, settings)
        kinds = self.tradeoff.kinds_of(key)
        self.plan.measured.setText(f"{point.latency_ms:.1f} ms · EPE {point.epe:.2f}")
        pending = self._recover_job is not None and self._recover_job.active
        fronts = ", ".join(f"{len(self.tradeoff.front(k))} {k}" for k in ("raw", "recalibrated", "recovered"))
        self.status.setText(
            f"{label}: {' → '.join(kinds)} · {len(self.points)} points; on the Pareto fronts: {fronts}"
            + (" · recovering in the background" if pending else "")
        )
        self.point_added.emit(point)

    def add_point(self, point: Any, ratio: float | None = None, plan: dict[str, float] | None = None) -> None:
        """Put a measured `SweepPoint` on the plot under the plan that produced it."""
        r = float(point.ratio if ratio is None else ratio or 0.0)
        settings = (r, dict(plan or {}), self.plan.criterion_name(), list(self.spare))
        self._add(plan_key(*settings), point, settings, plan_label(*settings))

    def restore_point(self, point: Any) -> None:
        entry = self.tradeoff.entry_of(point)
        if entry is None or entry.settings is None:
            return
        ratio, overrides, criterion, _spare = entry.settings
        index = self.criterion.findData(criterion)
        if index >= 0 and index != self.criterion.currentIndex():
            self.criterion.blockSignals(True)
            self.criterion.setCurrentIndex(index)
            self.criterion.blockSignals(False)
        self.tradeoff.set_current(point)
        self.set_plan(float(ratio or 0.0), overrides)

    def _update_references(self) -> None:
        """Every opened model (teacher, students, pruned and fine-tuned results, SGBM, ONNX) as a reference
        star, measured once per model when no other timing runs."""
        busy = [j for j in (self._measure_job, self._ref_job) if j is not None and j.active]
        if self.target is None or busy:
            return
        wanted = [m for m in self.studio.models if m.key not in self.references and m.matcher is not None]
        if not wanted:
            return
        if self.studio.stats_busy():  # the Models panel's measurements evaluate models: wait for them
            if not self._ref_retry:
                self._ref_retry = True
                QTimer.singleShot(REF_RETRY_MS, self, self._retry_references)
            return
        entries = [(m.key, m.matcher, m.color) for m in wanted]
        self._hold_recovery(True)
        self._ref_job = self.studio.jobs.start(
            "Reference points",
            reference_points,
            entries,
            self.target.samples,
            self.studio.size,
            on_progress=self._reference_event,
            on_error=lambda t: self.studio.message.emit("warning", f"reference points: {t}"),
            on_finished=lambda _r: self._references_measured(),
        )

    def _references_measured(self) -> None:
        if self._measure_pending:
            self.measure_now()
        else:
            self._hold_recovery(False)
            self._update_references()  # models opened meanwhile

    def _retry_references(self) -> None:
        self._ref_retry = False
        self._update_references()

    def _reference_event(self, event: Any) -> None:
        if event.kind == "point" and isinstance(event.payload, Reference):
            self.tradeoff.set_reference(event.payload)

    # ----- long jobs
    def _busy(self) -> list[JobRecord]:
        return [j for j in (self._long_job,) if j is not None and j.active]

    def cancel_jobs(self) -> None:
        for job in (self._long_job, self._recover_job):
            if job is not None and job.active:
                self.studio.jobs.cancel(job)
        self._recover_next = None

    def _start_long(self, title: str, factory: Any, *args: Any, **callbacks: Any) -> None:
        if self._busy():
            self.studio.message.emit("warning", "a pruning job is already running: cancel it first")
            return
        self._long_job = self.studio.jobs.start(title, factory, *args, **callbacks)

    def run_sweep(self) -> None:
        if self.target is None:
            return
        criterion, spare = self.plan.criterion_name(), list(self.spare)
        teacher = self.teacher_spec()
        steps = self.recover_steps.value() if teacher else 0

        def event(e: Any) -> None:
            if e.kind == "point" and e.payload is not None:
                settings = (float(e.payload.ratio or 0.0), {}, criterion, spare)
                self._add(plan_key(*settings), e.payload, settings, plan_label(*settings))

        self.tabs.setCurrentWidget(self.tradeoff)
        self._start_long(
            f"Sweep {self.target.key}",
            sweep_job,
            self.target,
            SWEEP_RATIOS,
            self.studio.size,
            criterion,
            steps,
            teacher,
            spare,
            on_progress=event,
            on_error=lambda t: self.studio.message.emit("error", f"sweep: {t}"),
        )

    def run_sensitivity(self) -> None:
        if self.target is None:
            return
        self.sens_plot.reset()
        self.tabs.setCurrentWidget(self.sens_plot)

        def event(e: Any) -> None:
            if e.kind == "point" and e.payload is not None:
                self.sens_plot.add_row(e.payload)

        def done(table: Any) -> None:
            self.sensitivity_table = table
            self.spare = list(table.critical())
            self.sens_plot.mark_critical(self.spare)
            self.plan.plan_btn.setEnabled(True)
            spared = f"; spared from now on: {', '.join(self.spare)}" if self.spare else ""
            self.studio.message.emit(
                "ok", f"sensitivity analysis done ({len(table.layers())} layers){spared}"
            )
            self._plan_changed()

        self._start_long(
            f"Sensitivity {self.target.key}",
            sensitivity_job,
            self.target,
            self.studio.size,
            self.plan.criterion_name(),
            on_progress=event,
            on_result=done,
            on_error=lambda t: self.studio.message.emit("error", f"sensitivity: {t}"),
        )

    def apply_sensitivity_plan(self) -> None:
        """Per-layer ratios from the sensitivity table reaching the slider's MAC reduction."""
        if self.sensitivity_table is None or self.target is None:
            return
        ratio = float(self.slider.value())
        if ratio <= 0:
            self.studio.message.emit("warning", "move the slider to the MAC reduction the plan should reach")
            return

        def done(plan: dict[str, float]) -> None:
            self.set_plan(ratio, plan)
            self.tabs.setCurrentWidget(self.tradeoff)

        self.studio.jobs.start(
            "Sensitivity plan",
            suggest,
            self.sensitivity_table,
            self.target,
            1.0 - ratio,
            self.studio.size,
            on_result=done,
            on_error=lambda t: self.studio.message.emit("error", f"plan: {t}"),
        )

    def prune_and_finetune(self) -> None:
        entry = self.studio.entry(self.model.currentText())
        if entry is None or entry.model is None:
            return
        ratio, overrides = self.effective_plan()
        teacher = self.teacher_spec()
        steps = self.finetune_steps.value() if teacher else 0
        root = Path(self.studio.settings.get("distill/run_root", str(Path.cwd() / "runs")))
        out = root / f"pruned-{entry.key}-{time.strftime('%Y%m%d-%H%M%S')}"
        key = f"{entry.key}-pruned-{ratio:.2f}" if not overrides else f"{entry.key}-pruned-plan"
        if self.finetune_steps.value() and not teacher:
            self.studio.message.emit("warning", "no teacher is open: pruning without the fine-tune")

        def done(path: Any) -> None:
            self.studio.message.emit("ok", f"pruned model saved to {path}")
            self.studio.open_model(str(path), role="pruned", key=key)  # it joins the plot as a reference

        data = self.studio.data_spec if isinstance(self.studio.data_spec, str) else "synthetic"
        self._start_long(
            f"Prune {entry.key}" + (f" + fine-tune {steps}" if steps else ""),
            prune_job,
            entry.spec,
            str(out),
            ratio,
            overrides,
            self.plan.criterion_name(),
            steps,
            teacher,
            self.studio.size,
            data,
            list(self.spare),
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
        ratio, overrides = self.effective_plan()
        model = self.target.model if self.target is not None and self.target.key == entry.key else entry.model
        self.studio.jobs.start(
            f"Export {Path(path).name}",
            export_job,
            model,
            path,
            ratio,
            overrides,
            self.plan.criterion_name(),
            list(self.spare),
            on_result=lambda r: self.studio.message.emit("ok", f"exported {r.get('path', path)}"),
            on_error=lambda t: self.studio.message.emit("error", f"ONNX export: {t}"),
        )

    def shutdown(self) -> None:
        self.cancel_jobs()
        for job in (self._measure_job, self._ref_job):
            if job is not None and job.active:
                self.studio.jobs.cancel(job)
