"""The window's shared state: the open models (compared everywhere), the data source, jobs and settings.

Qt-side bookkeeping only: every number comes from an engine call run through `JobManager`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from stereo_studio.gui import model_picker, trust_dialog
from stereo_studio.gui.settings import Settings
from stereo_studio.gui.theme import model_color
from stereo_studio.gui.workers import JobManager, JobRecord

log = logging.getLogger("stereo_studio.gui")

ACCURACY_STATS = ("epe", "bad2", "bad3", "d1", "pairs", "data", "error")  # what a data source decides
LATENCY_STATS = ("p10_ms", "p90_ms", "threads", "precision", "wait_policy", "contended", "contended_by")
PREVIEW_SIZE = (240, 320)  # small default inputs: the first disparity appears within a second or two
EVAL_PAIRS = 4
QUIET_POLL_MS = 500  # how often a contended measurement checks whether the window's jobs are done


@dataclass
class ModelEntry:
    """One open model: its matcher, where it came from and what was measured about it."""

    key: str
    spec: str
    matcher: Any
    role: str = "model"  # teacher | student | pruned | distilled | sgbm | model
    untrained: bool = False
    color: str = "#4da3ff"
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        return getattr(self.matcher, "model", None)

    @property
    def is_network(self) -> bool:
        return self.model is not None

    @property
    def label(self) -> str:
        return f"{self.key} (untrained)" if self.untrained else self.key


def load_entry(spec: str, max_disp: int | None = None) -> tuple[Any, bool]:
    """(matcher, untrained) for a model spec: runs in a worker thread."""
    from stereo_studio.models.custom_arch import WEIGHTS_NAME, custom_folder
    from stereo_studio.models.storage import architecture_spec, load_matcher

    untrained = architecture_spec(spec) is not None  # `arch:NAME`: asked for untrained weights explicitly
    folder = custom_folder(spec)  # a custom architecture without model.safetensors: build()'s initial weights
    untrained = untrained or (folder is not None and not (folder / WEIGHTS_NAME).is_file())
    return load_matcher(spec, max_disp=max_disp), untrained


def open_data(spec: str, size: tuple[int, int] = PREVIEW_SIZE) -> Any:
    """Open a data spec (`synthetic` or a dataset folder): runs in a worker thread."""
    from stereo_studio.data.datasets import open_dataset

    return open_dataset(spec, size=size) if spec == "synthetic" else open_dataset(spec)


def measure_entry(matcher: Any, dataset: Any, size: tuple[int, int]):
    """Job: params / MACs, latency at `size` (median, p10 / p90 and the settings it ran with) and accuracy on
    a few pairs of `dataset`."""
    from stereo_studio.engine.bench import count_params_macs, measure_latency
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import Progress

    stats: dict[str, Any] = {}
    model = getattr(matcher, "model", None)
    yield Progress(0, 3, "counting params / MACs")
    if model is not None:
        stats["params"], stats["macs"] = count_params_macs(model, size)
    else:
        stats["params"], stats["macs"] = 0, None
    yield Progress(1, 3, "timing", payload=dict(stats), kind="stats")
    # never waits for a training job (the window would show no latency for its whole run): the value is
    # marked contended instead, with what ran (runtime's measuring queue)
    lat = measure_latency(matcher, size, warmup=2, runs=10, max_seconds=3.0, while_training=True)
    stats["latency_ms"] = lat["median_ms"]
    stats.update({k: lat.get(k) for k in LATENCY_STATS})
    yield Progress(2, 3, "accuracy", payload=dict(stats), kind="stats")
    if dataset is not None:
        result = yield from evaluate(matcher, dataset, limit=EVAL_PAIRS)
        stats.update({k: result[k] for k in ("epe", "bad2", "bad3", "d1", "pairs") if k in result})
        stats["data"] = result.get("data", "")
    return stats


class Studio(QObject):
    """Open models + current data source + job manager + settings, with change signals."""

    models_changed = Signal()
    model_updated = Signal(str)  # key: its stats changed
    data_changed = Signal()
    message = Signal(str, str)  # level, text
    frame_changed = Signal(object)  # the preview drew a new frame (a PreviewFrame): the 3D view follows it
    panel_requested = Signal(str, object)  # show panel NAME for DETAIL (e.g. the 3D view of one model)

    def __init__(self, settings: Settings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.jobs = JobManager(self)
        self.models: list[ModelEntry] = []
        self.size = PREVIEW_SIZE
        self.data_spec = "synthetic"
        self.dataset: Any = None
        self.frame: Any = None  # the PreviewFrame the preview shows
        self._color_index: dict[str, int] = {}  # key -> index into theme.MODEL_COLORS (kept in the settings)
        self._loading: set[str] = set()
        self._order: dict[str, int] = {}
        self._stats_queue: list[str] = []
        self._stats_running: JobRecord | None = None
        self._quiet_retried: set[str] = set()  # keys measured again after a contended timing
        self._data_generation = 0  # +1 per data source opened: a measurement of older data is stale
        self.stats_enabled = True

    # ----- models
    def entry(self, key: str) -> ModelEntry | None:
        return next((m for m in self.models if m.key == key), None)

    def networks(self) -> list[ModelEntry]:
        return [m for m in self.models if m.is_network]

    def unique_key(self, base: str) -> str:
        keys = {m.key for m in self.models} | self._loading
        if base not in keys:
            return base
        i = 2
        while f"{base}-{i}" in keys:
            i += 1
        return f"{base}-{i}"

    def open_model(self, spec: str, role: str = "model", key: str | None = None) -> JobRecord:
        """Load `spec` in the background; the model joins `models` when loaded, errors go to `message`."""
        from pathlib import Path

        from stereo_studio.models.storage import ARCH_PREFIX

        key = self.unique_key(key or Path(spec.removeprefix(ARCH_PREFIX)).name or spec)
        self._loading.add(key)
        self._order.setdefault(key, len(self._order))
        self._color_for(key)  # reserved now: models loading side by side finish in any order

        asked: list[trust_dialog.NeedsTrust] = []  # its model.py is not trusted: asked once the job ended

        def done(result: Any) -> None:
            if isinstance(result, trust_dialog.NeedsTrust):
                record.status, record.message = "cancelled", f"asks before running {result.path}"
                asked.append(result)
                return
            matcher, untrained = result
            self.add_matcher(matcher, key, spec, role, untrained)
            note = model_picker.onnx_note(matcher)  # an ONNX network opened on assumed conventions
            if note:
                self.message.emit("warning", note)

        def failed(text: str) -> None:
            self.message.emit("error", f"could not open model '{spec}': {text}")

        def finished(_record: JobRecord) -> None:
            self._loading.discard(key)
            self.models_changed.emit()
            if asked:  # the confirmation names the file; yes: trusted (that content) and loaded again
                if trust_dialog.resolve(asked[0]):
                    self.open_model(spec, role=role, key=key)
                else:
                    self.message.emit("warning", trust_dialog.declined_message(spec, asked[0]))

        record = self.jobs.start(
            f"Load model {key}", trust_dialog.load_or_ask, load_entry, spec,
            on_result=done, on_error=failed, on_finished=finished,
        )
        return record

    def add_matcher(
        self, matcher: Any, key: str, spec: str, role: str = "model", untrained: bool = False
    ) -> ModelEntry:
        """Add an already loaded matcher (e.g. the result of a distillation or pruning job)."""
        if self.entry(key) is not None:
            key = self.unique_key(key)
        entry = ModelEntry(key, spec, matcher, role, untrained, model_color(self._color_for(key)))
        self._order.setdefault(key, len(self._order))
        self.models.append(entry)
        self.models.sort(key=lambda m: self._order.get(m.key, 1 << 30))
        self._loading.discard(key)
        self.models_changed.emit()
        self.queue_stats(key)
        self._remember_models()
        return entry

    def _color_for(self, key: str) -> int:
        """A model keeps its colour across restarts (saved per key); a new key takes the first colour no
        open or loading model has."""
        saved = self.settings.get("models/colors", {})
        keys = {m.key for m in self.models} | self._loading
        used = {self._color_index[k] for k in keys if k in self._color_index and k != key}
        index = saved.get(key)
        if not isinstance(index, int) or index in used:
            index = next(i for i in range(len(used) + 1) if i not in used)
        self._color_index[key] = index
        saved[key] = index
        self.settings.set("models/colors", saved)
        return index

    def set_frame(self, frame: Any) -> None:
        """The preview shows `frame` now (the 3D view and the Export menu use it)."""
        self.frame = frame
        self.frame_changed.emit(frame)

    def remove_model(self, key: str) -> None:
        self.models = [m for m in self.models if m.key != key]
        self.models_changed.emit()
        self._remember_models()

    def loading(self) -> bool:
        return bool(self._loading)

    def _remember_models(self) -> None:
        self.settings.set("models/open", [[m.spec, m.role, m.key] for m in self.models])

    # ----- stats (one measurement at a time, so timings do not disturb each other)
    def queue_stats(self, key: str) -> None:
        if key not in self._stats_queue:
            self._stats_queue.append(key)
        self._next_stats()

    def refresh_all_stats(self) -> None:
        """Measure every model again (the data changed): accuracy numbers of the old data go now, and a
        measurement still running on the old data is cancelled (its late result or error is dropped)."""
        if self._stats_running is not None:
            self.jobs.cancel(self._stats_running)
        self._quiet_retried.clear()
        for m in self.models:
            for name in ACCURACY_STATS:
                m.stats.pop(name, None)
            self.queue_stats(m.key)

    def _next_stats(self) -> None:
        if self._stats_running is not None or not self._stats_queue or not self.stats_enabled:
            return
        key = self._stats_queue.pop(0)
        entry = self.entry(key)
        if entry is None:
            self._next_stats()
            return

        generation = self._data_generation

        def stale() -> bool:  # measured on a data source that has been replaced since
            return generation != self._data_generation

        window_jobs: set[str] = set()  # the window's other jobs running as the latency timing starts / ends
        timed = False

        def progress(event: Any) -> None:
            nonlocal timed
            if event.kind == "stats" and isinstance(event.payload, dict) and not stale():
                if not timed:
                    window_jobs.update(r.title for r in self.jobs.busy() if r is not self._stats_running)
                    timed = "latency_ms" in event.payload
                payload = dict(event.payload)
                if "latency_ms" in payload and window_jobs:
                    payload["contended"] = True
                    payload["contended_by"] = sorted({*(payload.get("contended_by") or ()), *window_jobs})
                entry.stats.update(payload)
                self.model_updated.emit(key)

        def done(stats: dict[str, Any]) -> None:
            if stale():
                return
            if window_jobs:  # keep the mark the timing got; time it again once the window is quiet (once:
                # a measurement's own updates may start panel jobs, which must not make it loop)
                stats = {**stats, "contended": True,
                         "contended_by": sorted({*(stats.get("contended_by") or ()), *window_jobs})}
                if key not in self._quiet_retried:
                    self._quiet_retried.add(key)
                    self._remeasure_when_quiet(key)
            else:
                self._quiet_retried.discard(key)
            entry.stats.update(stats)
            self.model_updated.emit(key)

        def failed(text: str) -> None:
            if stale():
                log.info("dropped a failure measuring %s on the previous data: %s", key, text)
                return
            entry.stats["error"] = text
            self.model_updated.emit(key)
            self.message.emit("warning", f"measuring {key}: {text}")

        def finished(_record: JobRecord) -> None:
            self._stats_running = None
            self._next_stats()

        self._stats_running = self.jobs.start(
            f"Measure {key}",
            measure_entry,
            entry.matcher,
            self.dataset,
            self.size,
            on_progress=progress,
            on_result=done,
            on_error=failed,
            on_finished=finished,
        )

    def _remeasure_when_quiet(self, key: str) -> None:
        """Measure `key` again once no other job of the window runs (once per contended measurement; given up
        if the model is closed)."""

        def check() -> None:
            if self.entry(key) is None:
                return
            if self.jobs.busy():
                QTimer.singleShot(QUIET_POLL_MS, self, check)
                return
            self.queue_stats(key)

        QTimer.singleShot(QUIET_POLL_MS, self, check)

    def stats_busy(self) -> bool:
        """True while the stats queue measures models (a panel's own timings can wait for it: evaluating a
        model beside a timing disturbs it)."""
        return self._stats_running is not None or (bool(self._stats_queue) and self.stats_enabled)

    def set_stats_enabled(self, enabled: bool) -> None:
        self.stats_enabled = enabled
        self._next_stats()

    # ----- data
    def set_data(self, spec: str, on_finished: Callable[[JobRecord], None] | None = None) -> JobRecord:
        """Open a data source in the background; `data_changed` fires when it is ready."""

        def done(dataset: Any) -> None:
            self.dataset, self.data_spec = dataset, spec
            self._data_generation += 1
            self.settings.set("data/spec", spec)
            self.data_changed.emit()
            self.refresh_all_stats()

        def failed(text: str) -> None:
            self.message.emit("error", f"could not open data '{spec}': {text}")

        return self.jobs.start(
            f"Open data {spec}",
            open_data,
            spec,
            self.size,
            on_result=done,
            on_error=failed,
            on_finished=on_finished,
        )
