"""The window's panels in one table: `main_window.py` builds tabs, docks, shortcuts and the View menu from it,
`app.py`'s screenshot mode waits for and stages each panel through it. Adding a panel is one row here.

A panel is a QWidget class taking the `Studio`; optional methods: `shutdown()` (the window is closing),
`focus_on(detail)` (shown for something, e.g. the 3D view for one model).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Wait = Callable[[Callable[[], bool], float], bool]  # wait(done, timeout_s) -> done in time


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its name (`--panel NAME`, `window.NAME`), tab title and tooltip, class ("module:Class"),
    whether it is a dock rather than a tab, and for the screenshot mode: `ready(window)` (shows its content)
    and `stage(window, wait, scratch_dir)` (give it something to show)."""

    name: str
    title: str
    tip: str
    factory: str
    dock: bool = False
    ready: Callable[[Any], bool] | None = None
    stage: Callable[[Any, Wait, str], None] | None = None

    def build(self, studio: Any) -> Any:
        module, _, cls = self.factory.partition(":")
        return getattr(importlib.import_module(module), cls)(studio)


# ----- screenshot readiness and staging
def _models_ready(window: Any) -> bool:
    """Every model measured, and a latency timed beside other work timed again once the window was quiet."""
    return bool(window.studio.models) and all(
        "error" in m.stats or ("latency_ms" in m.stats and "epe" in m.stats and not m.stats.get("contended"))
        for m in window.studio.models
    )


def _pruning_ready(window: Any) -> bool:
    return len(window.pruning.points) >= 1 and len(window.pruning.references) >= 2


def _stage_pruning(window: Any, wait: Wait, scratch: str) -> None:
    """Trade-off points of every kind: raw and recalibrated for a few MAC reductions, then (with a teacher
    open) a recovered one, and the opened models."""
    panel = window.pruning
    for ratio in (0.25, 0.5, 0.7):
        panel.slider.setValue(ratio)
        wait(lambda r=ratio: {"raw", "recalibrated"} <= panel.kinds(f"{r:g}"), 60.0)
    if panel.teacher_spec() is not None:
        wait(lambda: any(p.kind == "recovered" for p in panel.points), 120.0)
    wait(lambda: len(panel.references) >= len(window.studio.models), 60.0)


def _stage_distill(window: Any, wait: Wait, scratch: str) -> None:
    """A short distillation run, so the curves have points."""
    panel = window.distill
    panel.run_root.setText(scratch)
    panel.steps.setValue(60)
    panel.val_interval.setValue(15)
    panel.batch.setValue(2)
    panel.crop_h.setValue(96)
    panel.crop_w.setValue(160)
    panel.start()
    wait(lambda: not panel.running(), 180.0)


PANEL_SPECS: tuple[PanelSpec, ...] = (
    PanelSpec("preview", "Preview", "Disparity maps of every open model on the same frame",
              "stereo_studio.gui.preview_panel:PreviewPanel", ready=lambda w: w.preview.complete()),
    PanelSpec("models", "Models", "Open models: cost, accuracy, layers",
              "stereo_studio.gui.models_panel:ModelsPanel", ready=_models_ready),
    PanelSpec("importance", "Channel importance", "Per-layer channel importance",
              "stereo_studio.gui.importance_panel:ImportancePanel",
              ready=lambda w: w.importance.view is not None),
    PanelSpec("distill", "Distillation", "Distil a student from a teacher",
              "stereo_studio.gui.distill_panel:DistillPanel", stage=_stage_distill),
    PanelSpec("pruning", "Pruning", "Prune, see the accuracy / latency trade-off live",
              "stereo_studio.gui.pruning_panel:PruningPanel", ready=_pruning_ready, stage=_stage_pruning),
    PanelSpec("cloud", "3D view", "The point cloud of a model's disparity on the preview's frame",
              "stereo_studio.gui.cloud_view:CloudPanel", ready=lambda w: w.cloud.ready()),
    PanelSpec("jobs", "Jobs / log", "Every background job, with progress, cancel and the log",
              "stereo_studio.gui.jobs_panel:JobsPanel", dock=True),
)
PANELS: tuple[str, ...] = tuple(p.name for p in PANEL_SPECS)
TABS: tuple[str, ...] = tuple(p.name for p in PANEL_SPECS if not p.dock)


def panel_spec(name: str) -> PanelSpec:
    for spec in PANEL_SPECS:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown panel '{name}' (known: {', '.join(PANELS)})")
