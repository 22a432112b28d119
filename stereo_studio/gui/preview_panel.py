"""Preview panel: disparity maps of every open model on the same frame (dataset, video file or camera)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from stereo_studio.gui import theme
from stereo_studio.gui.preview_frames import PreviewFrame, RecordSlot, dataset_frame, live_frames
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.image_views import ImagePane
from stereo_studio.gui.workers import JobRecord

ERROR_RANGE = (0.0, 5.0)


def _fmt_metrics(metrics: dict[str, float]) -> str:
    parts = []
    if "epe" in metrics:
        parts.append(f"EPE {metrics['epe']:.2f}")
    if "bad3" in metrics:
        parts.append(f"bad-3 {metrics['bad3']:.1f} %")
    return " · ".join(parts)


class PreviewPanel(QWidget):
    """Left image, ground truth and per-model disparity + error maps, with the source and display controls."""

    frame_shown = Signal()  # a frame with at least one disparity map was drawn

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.frame: PreviewFrame | None = None
        self.frames_drawn = 0
        self.index = 0
        self._step_job: JobRecord | None = None
        self._step_pending = False
        self._live_job: JobRecord | None = None
        self.recording = RecordSlot()
        self._record_path: Path | None = None
        self._last_recorded: tuple[str, int | None] | None = None
        self._last_draw = 0.0
        self._panes: dict[str, ImagePane] = {}
        self._error_panes: dict[str, ImagePane] = {}
        self.hidden_models: set[str] = set()
        self._build()
        studio.models_changed.connect(self._models_changed)
        studio.data_changed.connect(self.refresh)

    # ----- layout
    def _build(self) -> None:
        s = self.studio.settings
        self.source = QComboBox()
        self.source.addItems(["Dataset", "Video file", "Camera"])
        self.source.setToolTip("Where the stereo frames come from")
        self.source.currentIndexChanged.connect(self._source_changed)

        # dataset controls
        self.prev_btn = QPushButton("◀")
        self.prev_btn.setToolTip("Previous pair (Page Up)")
        self.prev_btn.clicked.connect(lambda: self.step(-1))
        self.index_spin = QSpinBox()
        self.index_spin.setRange(0, 9999)
        self.index_spin.setToolTip("Index of the pair in the current data source")
        self.index_spin.valueChanged.connect(self._index_edited)
        self.next_btn = QPushButton("▶")
        self.next_btn.setToolTip("Next pair (Page Down)")
        self.next_btn.clicked.connect(lambda: self.step(1))
        ds = QWidget()
        dl = QHBoxLayout(ds)
        dl.setContentsMargins(0, 0, 0, 0)
        for w in (self.prev_btn, self.index_spin, self.next_btn):
            dl.addWidget(w)
        self.prev_btn.setFixedWidth(40)
        self.next_btn.setFixedWidth(40)
        self.index_spin.setFixedWidth(90)
        self.pair_name = QLabel("")
        self.pair_name.setProperty("role", "caption")
        dl.addWidget(self.pair_name)
        dl.addStretch(1)

        # video controls
        self.video_path = QLineEdit(s.get("preview/video", ""))
        self.video_path.setPlaceholderText("side-by-side video, or left video")
        self.video_path.setToolTip("Video file: one side-by-side stereo video, or the left view")
        self.video_right = QLineEdit(s.get("preview/video_right", ""))
        self.video_right.setPlaceholderText("right video (optional)")
        self.video_right.setToolTip("Right-view video when the views are two files")
        self.loop = QCheckBox("loop")
        self.loop.setChecked(bool(s.get("preview/loop", True)))
        self.loop.setToolTip("Start the video again at its end")
        browse = QPushButton("Open…")
        browse.setToolTip("Choose a video file")
        browse.clicked.connect(self._browse_video)
        vs = QWidget()
        vl = QHBoxLayout(vs)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.addWidget(self.video_path, 2)
        vl.addWidget(self.video_right, 1)
        vl.addWidget(browse)
        vl.addWidget(self.loop)

        # camera controls
        self.camera_left = QSpinBox()
        self.camera_left.setRange(0, 63)
        self.camera_left.setValue(int(s.get("preview/camera", 0)))
        self.camera_left.setToolTip("Camera device index (the side-by-side device, or the left camera)")
        self.camera_layout = QComboBox()
        self.camera_layout.addItems(["side-by-side device", "two devices"])
        self.camera_layout.setToolTip("One device delivering both views side by side, or two devices")
        self.camera_right = QSpinBox()
        self.camera_right.setRange(0, 63)
        self.camera_right.setValue(int(s.get("preview/camera_right", 1)))
        self.camera_right.setToolTip("Right camera device index (two devices)")
        cs = QWidget()
        cl = QHBoxLayout(cs)
        cl.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("device"), self.camera_left, self.camera_layout, QLabel("right"), self.camera_right):
            cl.addWidget(w)

        self.calibration = QLineEdit(s.get("preview/calibration", ""))
        self.calibration.setPlaceholderText("calibration (optional)")
        self.calibration.setToolTip(
            "OpenCV calibration file (YAML/XML): rectifies frames and gives depth in m"
        )
        calib_btn = QPushButton("Calib…")
        calib_btn.setToolTip("Choose an OpenCV stereo calibration file")
        calib_btn.clicked.connect(self._browse_calibration)
        self.input_size = QComboBox()
        self.input_size.addItems(["240x320", "360x480", "480x640", "native"])
        self.input_size.setCurrentText(s.get("preview/input_size", "240x320"))
        self.input_size.setToolTip("Size the live frames are resized to before the models (H x W)")

        self.source_stack = QStackedWidget()
        for w in (ds, vs, cs):
            self.source_stack.addWidget(w)
        self.start_btn = QPushButton("Start")
        self.start_btn.setProperty("primary", True)
        self.start_btn.setToolTip("Start / stop the live stream (Space)")
        self.start_btn.clicked.connect(self.toggle_live)

        top = QHBoxLayout()
        top.addWidget(self.source)
        top.addWidget(self.source_stack, 1)
        top.addWidget(self.input_size)
        top.addWidget(self.calibration)
        top.addWidget(calib_btn)
        top.addWidget(self.start_btn)

        # display controls
        from stereo_studio.live.colormap import colormap_names

        self.cmap = QComboBox()
        self.cmap.addItems(colormap_names())
        self.cmap.setCurrentText(s.get("preview/cmap", "turbo"))
        self.cmap.setToolTip("Colour map of the disparity")
        self.cmap.currentTextChanged.connect(self._cmap_changed)
        self.auto_range = QCheckBox("auto range")
        self.auto_range.setChecked(True)
        self.auto_range.setToolTip("Fit the disparity range to the frame (ground truth when there is one)")
        self.auto_range.toggled.connect(lambda _: self._apply_levels())
        self.range = QLabeledDoubleRangeSlider(Qt.Horizontal)
        self.range.setRange(0.0, 192.0)
        self.range.setValue((0.0, 64.0))
        self.range.setDecimals(0)
        self.range.setToolTip("Disparity range shown by the colour map (px)")
        self.range.valueChanged.connect(self._range_moved)
        self.show_errors = QCheckBox("error maps")
        self.show_errors.setChecked(True)
        self.show_errors.setToolTip("Show |prediction − ground truth| under each model (when there is GT)")
        self.show_errors.toggled.connect(lambda _: self._rebuild_grid())
        self.snapshot_btn = QPushButton("Snapshot")
        self.snapshot_btn.setToolTip("Save the current disparity maps as PNG (Ctrl+Shift+S)")
        self.snapshot_btn.clicked.connect(self.snapshot)
        self.record_btn = QPushButton("Record")
        self.record_btn.setCheckable(True)
        self.record_btn.setToolTip("Record the disparity of the first model to a video (Ctrl+R)")
        self.record_btn.toggled.connect(self._record_toggled)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("colour map"))
        bottom.addWidget(self.cmap)
        bottom.addWidget(self.auto_range)
        bottom.addWidget(self.range, 1)
        bottom.addWidget(self.show_errors)
        bottom.addWidget(self.snapshot_btn)
        bottom.addWidget(self.record_btn)

        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.left_pane = ImagePane("left image")
        self.gt_pane = ImagePane("<b>ground truth</b><br>&nbsp;", scalar=True, cmap=self.cmap.currentText())
        self._hook(self.left_pane)
        self._hook(self.gt_pane)

        self.readout = QLabel("hover a map to read disparity")
        self.readout.setProperty("role", "caption")
        self.status = QLabel("")
        self.status.setProperty("role", "caption")
        foot = QHBoxLayout()
        foot.addWidget(self.readout, 1)
        foot.addWidget(self.status)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(bottom)
        layout.addWidget(self.grid_host, 1)
        layout.addLayout(foot)

        QShortcut(QKeySequence(Qt.Key_PageDown), self, activated=lambda: self.step(1))
        QShortcut(QKeySequence(Qt.Key_PageUp), self, activated=lambda: self.step(-1))
        QShortcut(QKeySequence("Ctrl+Shift+S"), self, activated=self.snapshot)
        QShortcut(QKeySequence("Ctrl+R"), self, activated=self.record_btn.toggle)
        QShortcut(QKeySequence(Qt.Key_Space), self, activated=self.toggle_live)
        self._source_changed(0)

    def _hook(self, pane: ImagePane) -> None:
        pane.hovered.connect(self._hover)
        pane.clicked.connect(self._hover)

    def _shown_models(self) -> list[Any]:
        return [m for m in self.studio.models if m.key not in self.hidden_models]

    def _rebuild_grid(self) -> None:
        """Columns: left image (+ ground truth below), then one column per model (disparity, error map)."""
        while self.grid.count():
            self.grid.takeAt(0)
        keys = [m.key for m in self._shown_models()]
        for key in list(self._panes):
            if key not in keys:
                self._panes.pop(key).deleteLater()
                self._error_panes.pop(key).deleteLater()
        has_gt = self.frame is not None and self.frame.gt is not None
        errors = has_gt and self.show_errors.isChecked()
        self.grid.addWidget(self.left_pane, 0, 0)
        self.gt_pane.setVisible(has_gt)
        if has_gt:
            self.grid.addWidget(self.gt_pane, 1, 0)
        for col, entry in enumerate(self._shown_models(), start=1):
            if entry.key not in self._panes:
                pane = ImagePane(entry.key, scalar=True, cmap=self.cmap.currentText())
                err = ImagePane(f"{entry.key} error", scalar=True, cmap="inferno")
                self._hook(pane)
                self._hook(err)
                self._panes[entry.key], self._error_panes[entry.key] = pane, err
            self.grid.addWidget(self._panes[entry.key], 0, col)
            self._error_panes[entry.key].setVisible(errors)
            if errors:
                self.grid.addWidget(self._error_panes[entry.key], 1, col)
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 1)
        for r in range(2):
            self.grid.setRowStretch(r, 1 if r == 0 or has_gt else 0)
        if self.frame is not None:
            self._draw(self.frame)

    # ----- sources
    def _source_changed(self, index: int) -> None:
        self.stop_live()
        self.source_stack.setCurrentIndex(index)
        live = index > 0
        self.start_btn.setVisible(live)
        self.calibration.setEnabled(live)
        self.input_size.setEnabled(live)
        if not live:
            self.refresh()

    def _browse_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a stereo video", "", "Videos (*.mp4 *.avi *.mkv *.mov);;All (*)"
        )
        if path:
            self.video_path.setText(path)

    def _browse_calibration(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a calibration file", "", "OpenCV (*.yml *.yaml *.xml);;All (*)"
        )
        if path:
            self.calibration.setText(path)

    def set_video(self, path: str, right: str = "", loop: bool = False) -> None:
        """Select the video source (one side-by-side file, or left + right files) and start it."""
        self.loop.setChecked(loop)
        self.source.setCurrentIndex(1)
        self.video_path.setText(path)
        self.video_right.setText(right)
        self.start_live()

    # ----- dataset stepping (latest request wins: never queued up)
    def step(self, delta: int) -> None:
        if self.source.currentIndex() != 0:
            return
        self.index_spin.setValue(max(0, self.index + delta))

    def _index_edited(self, value: int) -> None:
        self.index = value
        self.refresh()

    def refresh(self) -> None:
        """Predict the current dataset pair with every shown model (in the background)."""
        if self.source.currentIndex() != 0 or self.studio.dataset is None or not self._shown_models():
            return
        if self._step_job is not None and self._step_job.active:
            self._step_pending = True
            return
        self._step_pending = False
        matchers = [(m.key, m.matcher) for m in self._shown_models()]
        self.status.setText("predicting…")
        self._step_job = self.studio.jobs.start(
            "Preview pair",
            dataset_frame,
            self.studio.dataset,
            self.index,
            matchers,
            track=False,
            on_result=self._show,
            on_error=self._failed,
            on_finished=self._step_finished,
        )

    def _step_finished(self, _record: JobRecord) -> None:
        if self._step_pending:
            self.refresh()

    def _failed(self, text: str) -> None:
        self.status.setText("")
        self.studio.message.emit("error", f"preview: {text}")

    # ----- live sources
    def toggle_live(self) -> None:
        if self.source.currentIndex() == 0:
            return
        if self._live_job is not None and self._live_job.active:
            self.stop_live()
        else:
            self.start_live()

    def _live_spec(self) -> tuple[Any, str]:
        if self.source.currentIndex() == 1:
            left, right = self.video_path.text().strip(), self.video_right.text().strip()
            if not left:
                raise ValueError("choose a video file first")
            self.studio.settings.set("preview/video", left)
            self.studio.settings.set("preview/video_right", right)
            return ((left, right), "pair") if right else (left, "sbs")
        self.studio.settings.set("preview/camera", self.camera_left.value())
        self.studio.settings.set("preview/camera_right", self.camera_right.value())
        if self.camera_layout.currentIndex() == 1:
            return (self.camera_left.value(), self.camera_right.value()), "pair"
        return self.camera_left.value(), "sbs"

    def _input_size(self) -> tuple[int, int] | None:
        text = self.input_size.currentText()
        self.studio.settings.set("preview/input_size", text)
        if text == "native":
            return None
        h, w = text.split("x")
        return int(h), int(w)

    def start_live(self) -> None:
        self.stop_live()
        try:
            spec, layout = self._live_spec()
        except ValueError as exc:
            self.studio.message.emit("warning", str(exc))
            return
        calib = self.calibration.text().strip() or None
        self.studio.settings.set("preview/calibration", calib or "")
        matchers = [(m.key, m.matcher) for m in self._shown_models()]
        name = "video" if self.source.currentIndex() == 1 else "camera"
        self.studio.settings.set("preview/loop", self.loop.isChecked())
        self.start_btn.setText("Stop")
        self._live_job = self.studio.jobs.start(
            f"Live preview ({name})",
            live_frames,
            spec,
            layout,
            matchers,
            calib,
            self._input_size(),
            self.recording,
            self.source.currentIndex() == 1 and self.loop.isChecked(),
            on_progress=self._live_event,
            on_error=self._failed,
            on_finished=self._live_finished,
        )

    def stop_live(self) -> None:
        if self._live_job is not None and self._live_job.active:
            self.studio.jobs.cancel(self._live_job)
        self._live_job = None
        self.start_btn.setText("Start")

    def live_running(self) -> bool:
        return self._live_job is not None and self._live_job.active

    def _live_event(self, event: Any) -> None:
        if event.kind == "frame" and isinstance(event.payload, PreviewFrame):
            self._show(event.payload)
        elif event.kind == "error" and event.message:
            self.studio.message.emit("error", event.message)

    def _live_finished(self, record: JobRecord) -> None:
        if record is self._live_job or self._live_job is None:
            self.start_btn.setText("Start")
            if record.status == "done":
                self.status.setText("stream ended")

    # ----- drawing
    def _models_changed(self) -> None:
        self._rebuild_grid()
        self.refresh()

    def _show(self, frame: PreviewFrame) -> None:
        """A new frame arrived (dataset step or live stream)."""
        new_pair = (frame.name, frame.index) != self._last_recorded  # dataset: one frame per pair
        if self.recording.active and not self.live_running() and frame.result is not None and new_pair:
            self._last_recorded = (frame.name, frame.index)
            self.recording.write(frame.result)  # (live streams are recorded in their job)
        if self.recording.error:
            self.record_btn.setChecked(False)
        had_gt = self.frame is not None and self.frame.gt is not None
        self.frame = frame
        if set(frame.outputs) != set(self._panes) or had_gt != (frame.gt is not None):
            self._rebuild_grid()
        else:
            self._draw(frame)

    def _draw(self, frame: PreviewFrame) -> None:
        self.left_pane.set_rgb(frame.left)
        where = frame.name
        if frame.index is not None and frame.total:
            where += f"  ({frame.index + 1} / {frame.total})"
        if frame.fps:
            where += f"  ·  {frame.fps:.1f} FPS end to end"
        self.left_pane.set_title(f"<b>left image</b><br>{where}", 0.5 if self.live_running() else 0.0)
        self.pair_name.setText(frame.name)
        if self.auto_range.isChecked():
            lo, hi = frame.levels  # whole pixels: the colour bar stays put while a stream plays
            self.range.blockSignals(True)
            self.range.setValue((float(math.floor(lo)), float(math.ceil(hi))))
            self.range.blockSignals(False)
        levels = self._levels()
        if frame.gt is not None:
            self.gt_pane.set_scalar(frame.gt, levels)
        drawn = False
        for key, out in frame.outputs.items():
            pane = self._panes.get(key)
            if pane is None:
                continue
            pane.set_scalar(out.disparity, levels)
            entry = self.studio.entry(key)
            color = entry.color if entry is not None else theme.TEXT
            parts = [f"<b style='color:{color}'>{key}</b>"]
            if out.ms is not None:
                parts.append(f"{out.ms:.0f} ms ({out.fps or 1000.0 / max(out.ms, 1e-3):.1f} FPS)")
            if out.metrics:
                parts.append(_fmt_metrics(out.metrics))
            if entry is not None and entry.untrained:
                parts[0] += f" <span style='color:{theme.WARN}'>[untrained]</span>"
            pane.set_title(parts[0] + "<br>" + "  ·  ".join(parts[1:]), 0.5 if self.live_running() else 0.0)
            if out.error is not None and key in self._error_panes:
                self._error_panes[key].set_scalar(out.error, ERROR_RANGE)
                self._error_panes[key].set_title(f"<b>{key}</b> error<br>|prediction − ground truth|")
            drawn = True
        self.status.setText(time.strftime("%H:%M:%S"))
        if drawn:
            self.frames_drawn += 1
            self.frame_shown.emit()

    def complete(self) -> bool:
        """Whether the last drawn frame shows every open model (and no model is still loading)."""
        if self.frame is None or self.studio.loading():
            return False
        return all(m.key in self.frame.outputs for m in self._shown_models())

    def _levels(self) -> tuple[float, float]:
        lo, hi = self.range.value()
        return float(lo), float(max(hi, lo + 1.0))

    def _apply_levels(self) -> None:
        if self.auto_range.isChecked() and self.frame is not None:
            self.range.blockSignals(True)
            self.range.setValue(self.frame.levels)
            self.range.blockSignals(False)
        levels = self._levels()
        for pane in [self.gt_pane, *self._panes.values()]:
            pane.set_levels(levels)

    def _range_moved(self, _value: Any) -> None:
        self.auto_range.setChecked(False)
        self._apply_levels()

    def _cmap_changed(self, name: str) -> None:
        self.studio.settings.set("preview/cmap", name)
        for pane in [self.gt_pane, *self._panes.values()]:
            pane.set_cmap(name)

    def _hover(self, x: int, y: int) -> None:
        frame = self.frame
        if frame is None:
            return
        parts = [f"x {x}, y {y}"]
        if frame.gt is not None and y < frame.gt.shape[0] and x < frame.gt.shape[1]:
            parts.append(f"GT {frame.gt[y, x]:.2f} px")
        for key, out in frame.outputs.items():
            if y < out.disparity.shape[0] and x < out.disparity.shape[1]:
                d = float(out.disparity[y, x])
                text = f"{key} {d:.2f} px"
                if out.depth is not None:
                    text += f" = {float(out.depth[y, x]):.2f} m"
                parts.append(text)
        self.readout.setText("   ·   ".join(parts))

    # ----- snapshot / recording
    def _out_dir(self) -> Path:
        default = str(Path.home() / "stereo-studio-snapshots")
        return Path(self.studio.settings.get("preview/snapshots", default))

    def snapshot(self, directory: str | None = None) -> Path | None:
        """Save the view as PNG, plus the engine's per-model files (16-bit disparity, colour, error)."""
        if self.frame is None or self.frame.result is None:
            self.studio.message.emit("warning", "nothing to snapshot yet")
            return None
        out = Path(directory) if directory else self._out_dir()
        stem = f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{self.frame.index or 0:04d}"
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.studio.message.emit("error", f"cannot create {out}: {exc}")
            return None
        view = out / f"{stem}_view.png"
        if not self.grid_host.grab().save(str(view)):
            self.studio.message.emit("error", f"could not write {view}")
            return None
        from stereo_studio.live.recording import save_snapshot

        self.studio.jobs.start(
            "Snapshot",
            save_snapshot,
            out,
            self.frame.result,
            stem,
            track=False,
            on_error=lambda t: self.studio.message.emit("error", f"snapshot: {t}"),
        )
        self.studio.message.emit("ok", f"snapshot saved to {view}")
        return view

    def _record_toggled(self, on: bool) -> None:
        if on:
            from stereo_studio.live.recording import DisparityRecorder

            self._record_path = self._out_dir() / f"recording-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
            try:
                recorder = DisparityRecorder(self._record_path, fps=15.0)
            except Exception as exc:
                self.studio.message.emit("error", f"cannot record: {exc}")
                self.record_btn.setChecked(False)
                return
            self.recording.set(recorder)
            self._last_recorded = None
            if self.frame is not None and self.frame.result is not None and not self.live_running():
                self._last_recorded = (self.frame.name, self.frame.index)
                self.recording.write(self.frame.result)  # the pair on screen is the first frame
            self.record_btn.setText("● Recording")
            self.studio.message.emit("info", f"recording left + disparity maps to {self._record_path}")
            return
        error = self.recording.error
        old = self.recording.set(None)
        self.record_btn.setText("Record")
        if old is not None:
            old.close()
        if error:
            self.studio.message.emit("error", f"recording stopped: {error}")
        elif self._record_path is not None:
            self.studio.message.emit("ok", f"recording saved to {self._record_path}")

    def shutdown(self) -> None:
        self.stop_live()
        if self.record_btn.isChecked():
            self.record_btn.setChecked(False)
