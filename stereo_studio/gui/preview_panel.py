"""Preview panel: disparity maps of every open model on the same frame (dataset, video file, recording or
camera), with playback controls for seekable sources, per-model post-filters, SGBM tuning and point clouds."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
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
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from stereo_studio.gui import model_picker, theme
from stereo_studio.gui.playback_bar import PlaybackBar
from stereo_studio.gui.postfilter_box import ModelMenuButton
from stereo_studio.gui.preview_frames import (
    LiveSession,
    PreviewFrame,
    RecordSlot,
    dataset_frame,
    open_live_session,
)
from stereo_studio.gui.recent import Recent
from stereo_studio.gui.sgbm_tuner import SGBMTuner
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.widgets.image_views import ImagePane
from stereo_studio.gui.workers import JobRecord

ERROR_RANGE = (0.0, 5.0)
# Where frames come from, by kind (the combo box shows the titles; code asks for kinds, never positions).
SOURCE_KINDS = {"dataset": "Dataset", "video": "Video file", "recording": "Recording", "camera": "Camera"}
LIVE_KINDS = ("video", "recording", "camera")
MANY_COLUMNS = 4  # from this many disparity columns on, one shared colour bar (the last) keeps them legible


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
        self.recording = RecordSlot()
        self._record_path: Path | None = None
        self._last_recorded: tuple[str, int | None] | None = None
        self._last_draw = 0.0
        self._warned: set[str] = set()  # warnings already shown in the message bar
        self._panes: dict[str, ImagePane] = {}
        self._error_panes: dict[str, ImagePane] = {}
        self._hover_at: tuple[int, int] | None = None  # the pixel the read-out is about
        self._menus: dict[str, ModelMenuButton] = {}
        self._columns: list[str] = []  # the disparity columns on screen (models, then recorded disparities)
        self.hidden_models: set[str] = {
            k for k in studio.settings.get("preview/hidden", []) if isinstance(k, str)
        }
        self.post_filters: dict[str, list[str]] = {
            k: [n for n in v if isinstance(n, str)]
            for k, v in studio.settings.get("preview/post_filters", {}).items()
            if isinstance(v, list)
        }
        # a live source kept open (LiveSession), the one job using it, and what runs when that job ends
        self.session: LiveSession | None = None
        self._session_job: JobRecord | None = None
        self._session_pending: Any = None
        self._closing_sessions: list[LiveSession] = []
        self.playing = False
        self._session_gen = 0  # +1 per session opened: a late frame of an older session is dropped
        self._target: int | None = None  # the frame of a seekable source shown or asked for
        self._sgbm_done: set[int] = set()  # SGBM matchers given the saved parameters
        self._sgbm_stats = QTimer(self, singleShot=True, interval=1500)
        self._sgbm_stats.timeout.connect(self._remeasure_sgbm)
        self._build()
        studio.models_changed.connect(self._models_changed)
        studio.data_changed.connect(self._data_changed)

    # ----- layout
    def _build(self) -> None:
        s = self.studio.settings
        self.source = QComboBox()
        for kind, title in SOURCE_KINDS.items():
            self.source.addItem(title, kind)
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
        self.index_total = QLabel("of –")
        self.index_total.setToolTip("Pairs in the current data source")
        dl.addWidget(self.index_total)
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

        # recording controls (a raw recording folder written by Record)
        self.recording_path = QLineEdit(s.get("preview/recording", ""))
        self.recording_path.setPlaceholderText("recording folder (recording.json)")
        self.recording_path.setToolTip(
            "A raw recording (Record writes one beside each video) to step through"
        )
        rec_browse = QPushButton("Open…")
        rec_browse.setToolTip("Choose a recording folder")
        rec_browse.clicked.connect(self.open_recording_dialog)
        rs = QWidget()
        rl = QHBoxLayout(rs)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.recording_path, 1)
        rl.addWidget(rec_browse)

        self.calibration = QLineEdit(s.get("preview/calibration", ""))
        self.calibration.setPlaceholderText("calibration (optional)")
        self.calibration.setToolTip(
            "OpenCV calibration file (YAML/XML): rectifies video and camera frames and gives depth in m; "
            "with a dataset, the calibration of its point clouds (else the dataset's own calib.txt)"
        )
        calib_btn = QPushButton("Calib…")
        calib_btn.setToolTip("Choose an OpenCV stereo calibration file or a Middlebury calib.txt")
        calib_btn.clicked.connect(self.open_calibration_dialog)
        self.input_size = QComboBox()
        self.input_size.addItems(["240x320", "360x480", "480x640", "native"])
        self.input_size.setCurrentText(s.get("preview/input_size", "240x320"))
        self.input_size.setToolTip("Size the live frames are resized to before the models (H x W)")

        self.source_stack = QStackedWidget()
        self._source_pages = {"dataset": ds, "video": vs, "recording": rs, "camera": cs}
        for w in self._source_pages.values():
            self.source_stack.addWidget(w)
        self.start_btn = QPushButton("Start")
        self.start_btn.setProperty("primary", True)
        self.start_btn.setToolTip("Open and play the source / stop and close it")
        self.start_btn.clicked.connect(self.toggle_live)
        self.playback = PlaybackBar()
        self.playback.play_clicked.connect(self.toggle_play)
        self.playback.step_requested.connect(self.step)
        self.playback.seek_requested.connect(self.seek)

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
        self.range.setHandleLabelPosition(self.range.LabelPosition.NoLabel)  # one line: values at the edges
        self.range.setEdgeLabelMode(self.range.EdgeLabelMode.LabelIsValue)
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
        self.record_btn.setToolTip(
            "Record the left image and every disparity map to a video, and the raw disparities losslessly "
            "(16-bit PNG) in a folder beside it, which opens as a Recording source (Ctrl+R)"
        )
        self.record_btn.toggled.connect(self._record_toggled)
        self.sgbm_btn = QPushButton("SGBM…")
        self.sgbm_btn.setCheckable(True)
        self.sgbm_btn.setToolTip("Show / hide the SGBM tuning controls (saved with the settings)")
        self.sgbm_btn.toggled.connect(self.show_sgbm_tuner)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("colour map"))
        bottom.addWidget(self.cmap)
        bottom.addWidget(self.auto_range)
        bottom.addWidget(self.range, 1)
        bottom.addWidget(self.show_errors)
        bottom.addWidget(self.snapshot_btn)
        bottom.addWidget(self.record_btn)
        bottom.addWidget(self.sgbm_btn)

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

        self.sgbm_tuner = SGBMTuner()
        self.sgbm_tuner.set_values(s.get("sgbm/params", {}))
        self.sgbm_tuner.changed.connect(self._sgbm_changed)
        self._sgbm_box = QScrollArea()  # its natural height on small screens: it scrolls, never squashes
        self._sgbm_box.setWidget(self.sgbm_tuner)
        self._sgbm_box.setWidgetResizable(True)
        self._sgbm_box.setFrameShape(QScrollArea.NoFrame)
        self._sgbm_box.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._sgbm_box.setFixedWidth(self.sgbm_tuner.sizeHint().width() + 14)
        self._sgbm_box.setVisible(False)
        middle = QHBoxLayout()
        middle.addWidget(self.grid_host, 1)
        middle.addWidget(self._sgbm_box)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.playback)
        layout.addLayout(bottom)
        layout.addLayout(middle, 1)
        layout.addLayout(foot)

        for key, what, slot in (
            (Qt.Key_PageDown, "Next pair / one frame forward", lambda: self.step(1)),
            (Qt.Key_PageUp, "Previous pair / one frame back", lambda: self.step(-1)),
            # Ctrl+Shift+S (snapshot) is the window's toolbar action: a second one here made it ambiguous
            ("Ctrl+R", "Record on / off", self.record_btn.toggle),
            (Qt.Key_Space, "Play / pause a video or recording; start / stop a camera", self.toggle_play),
        ):
            shortcut = QShortcut(QKeySequence(key), self, activated=slot)
            shortcut.setProperty("what", f"Preview: {what}")
        self._source_changed(0)

    def _hook(self, pane: ImagePane) -> None:
        pane.hovered.connect(self._hover)
        pane.clicked.connect(self._hover)

    def _shown_models(self) -> list[Any]:
        return [m for m in self.studio.models if m.key not in self.hidden_models]

    def _column_keys(self, frame: PreviewFrame | None = None) -> list[str]:
        """The disparity columns: every shown model, then the disparities a played recording carries."""
        frame = frame if frame is not None else self.frame
        keys = [m.key for m in self._shown_models()]
        if frame is not None:
            models = {m.key for m in self.studio.models}
            keys += [k for k in frame.outputs
                     if k not in models and "(recorded)" in k and k not in self.hidden_models]
        return keys

    def _rebuild_grid(self) -> None:
        """Columns: left image (+ ground truth below), then one column per model: its menu (post-filters,
        3D view, export, hide), disparity and error map."""
        while self.grid.count():
            self.grid.takeAt(0)
        keys = self._column_keys()
        self._columns = keys
        for key in list(self._panes):
            if key not in keys:
                self._panes.pop(key).deleteLater()
                self._error_panes.pop(key).deleteLater()
                self._menus.pop(key).deleteLater()
        has_gt = self.frame is not None and self.frame.gt is not None
        errors = has_gt and self.show_errors.isChecked()
        self.grid.addWidget(self.left_pane, 1, 0)
        self.gt_pane.setVisible(has_gt)
        if has_gt:
            self.grid.addWidget(self.gt_pane, 2, 0)
        for col, key in enumerate(keys, start=1):
            entry = self.studio.entry(key)
            if key not in self._panes:
                pane = ImagePane(key, scalar=True, cmap=self.cmap.currentText())
                err = ImagePane(f"{key} error", scalar=True, cmap="inferno")
                self._hook(pane)
                self._hook(err)
                self._panes[key], self._error_panes[key] = pane, err
                if entry is not None and (extra := model_picker.tooltip_extra(entry.matcher)):
                    pane.setToolTip(f"{key}: {entry.spec}{extra}")  # ONNX: frozen, what was assumed
                menu = ModelMenuButton(key, self.post_filters.get(key, []), sgbm=self._is_sgbm(entry),
                                       recorded=entry is None)
                menu.filters_changed.connect(self.set_post_filters)
                menu.requested.connect(self._model_action)
                self._menus[key] = menu
            self.grid.addWidget(self._menus[key], 0, col)
            self.grid.addWidget(self._panes[key], 1, col)
            self._panes[key].show_colorbar(len(keys) < MANY_COLUMNS or col == len(keys))
            self._error_panes[key].show_colorbar(len(keys) < MANY_COLUMNS or col == len(keys))
            self._error_panes[key].setVisible(errors)
            if errors:
                self.grid.addWidget(self._error_panes[key], 2, col)
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 1 if c <= len(keys) else 0)
        self.grid.setRowStretch(0, 0)
        self.grid.setRowStretch(1, 1)
        self.grid.setRowStretch(2, 1 if has_gt else 0)
        if self.frame is not None:
            self._draw(self.frame)

    @staticmethod
    def _is_sgbm(entry: Any) -> bool:
        from stereo_studio.models.matchers import SGBMMatcher

        return entry is not None and isinstance(entry.matcher, SGBMMatcher)

    # ----- sources (chosen by kind)
    def source_kind(self) -> str:
        """dataset | video | recording | camera."""
        return str(self.source.currentData())

    def set_source_kind(self, kind: str) -> None:
        index = self.source.findData(kind)
        if index < 0:
            raise ValueError(f"unknown source kind '{kind}' (known: {', '.join(SOURCE_KINDS)})")
        self.source.setCurrentIndex(index)

    def _source_changed(self, _index: int) -> None:
        kind = self.source_kind()
        self.stop_live()
        self.source_stack.setCurrentWidget(self._source_pages[kind])
        live = kind in LIVE_KINDS
        self.start_btn.setVisible(live)
        self.input_size.setEnabled(kind in ("video", "camera"))
        self.playback.setVisible(kind in ("video", "recording"))
        self.playback.set_length(None)
        self.playback.set_position(None)
        self._target = None
        if not live:
            self.refresh()

    def _dialog(self, kind: str, title: str, pattern: str) -> str:
        recent = Recent(self.studio.settings)
        path, _ = QFileDialog.getOpenFileName(self, title, recent.last_dir(kind), pattern)
        return path

    def open_video_dialog(self) -> None:
        path = self._dialog("video", "Open a stereo video", "Videos (*.mp4 *.avi *.mkv *.mov *.m4v);;All (*)")
        if path:
            self.set_video(path, self.video_right.text().strip(), self.loop.isChecked())

    def open_recording_dialog(self) -> None:
        recent = Recent(self.studio.settings)
        path = QFileDialog.getExistingDirectory(self, "Open a recording folder", recent.last_dir("recording"))
        if path:
            self.set_recording(path)

    def open_calibration_dialog(self) -> None:
        path = self._dialog("calibration", "Open a calibration file",
                            "Calibration (*.yml *.yaml *.xml *.json calib.txt);;All (*)")
        if path:
            self.set_calibration(path)

    _browse_video = open_video_dialog  # the video page's Open… button

    def set_video(self, path: str, right: str = "", loop: bool = False) -> None:
        """Select the video source (one side-by-side file, or left + right files) and start it."""
        self.loop.setChecked(loop)
        self.set_source_kind("video")
        self.video_path.setText(path)
        self.video_right.setText(right)
        Recent(self.studio.settings).add("video", path)
        self.start_live()

    def set_recording(self, path: str) -> None:
        """Play a raw recording folder (written by Record): seekable, its recorded disparities shown beside
        the models."""
        self.set_source_kind("recording")
        self.recording_path.setText(str(path))
        Recent(self.studio.settings).add("recording", path)
        self.start_live()

    def set_calibration(self, path: str) -> None:
        """Use a calibration file: rectification and depth for videos and cameras (the source restarts),
        the point clouds of a dataset's pairs."""
        self.calibration.setText(str(path))
        self.studio.settings.set("preview/calibration", str(path))
        Recent(self.studio.settings).add("calibration", path)
        if self.session is not None:
            self._restart_session()
        elif self.source_kind() == "dataset":
            self.refresh()

    # ----- stepping: dataset pairs (bounded by the data's length) or frames of a seekable source
    def step(self, delta: int) -> None:
        """One pair / frame forward or back (latest request wins: steps are never queued up)."""
        kind = self.source_kind()
        if kind == "dataset":
            self.index_spin.setValue(max(0, min(self.index + delta, self.index_spin.maximum())))
            return
        session = self.session
        if session is None or not session.seekable or not session.length:
            return
        base = self._target if self._target is not None else -1
        target = max(0, min(base + delta, session.length - 1))
        self.pause()
        self.seek(target)

    def seek(self, index: int) -> None:
        """Show frame `index` of a seekable source (and play on from it when playing)."""
        session = self.session
        if session is None or not session.seekable:
            return
        index = max(0, min(int(index), (session.length or 1) - 1))
        self._target = index
        self.playback.set_position(index)
        if self.playing:
            self._use_session(lambda: self._play(index))
        else:
            self._use_session(lambda: self._frame_at(index))

    def _index_edited(self, value: int) -> None:
        self.index = value
        self.refresh()

    def _data_changed(self) -> None:
        """A new data source: the pair index is bounded by its length."""
        try:
            total = len(self.studio.dataset) if self.studio.dataset is not None else 0
        except TypeError:
            total = 0
        self.index_spin.blockSignals(True)
        self.index_spin.setRange(0, max(0, total - 1))
        self.index = min(self.index, max(0, total - 1))
        self.index_spin.setValue(self.index)
        self.index_spin.blockSignals(False)
        self.index_total.setText(f"of {total}" if total else "of –")
        self.refresh()

    def refresh(self) -> None:
        """Predict the current dataset pair with every shown model (in the background)."""
        if self.source_kind() != "dataset" or self.studio.dataset is None or not self._shown_models():
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
            {k: v for k, v in self.post_filters.items() if v},
            self.calibration.text().strip() or None,
            track=False,
            on_result=self._show_pair,
            on_error=self._failed,
            on_finished=self._step_finished,
        )

    def _show_pair(self, frame: PreviewFrame) -> None:
        """A dataset pair arrived: dropped if the user switched to a live source meanwhile (a late pair would
        replace the frame the video or camera shows)."""
        if self.source_kind() == "dataset" and self.session is None:
            self._show(frame)

    def _step_finished(self, _record: JobRecord) -> None:
        if self._step_pending:
            self.refresh()

    def _failed(self, text: str) -> None:
        self.status.setText("")
        self.studio.message.emit("error", f"preview: {text}")

    # ----- live sources: a LiveSession kept open, used by one job at a time
    def toggle_live(self) -> None:
        """The Start / Stop button: open and play the source, or stop and close it."""
        if self.source_kind() not in LIVE_KINDS:
            return
        if self.session is not None or self._session_busy():
            self.stop_live()
        else:
            self.start_live()

    def toggle_play(self) -> None:
        """Space: play / pause a video or recording (opening it first); start / stop a camera."""
        kind = self.source_kind()
        if kind not in LIVE_KINDS:
            return
        if self.session is None and not self._session_busy():
            self.start_live()
        elif kind == "camera" or (self.session is not None and not self.session.seekable):
            self.stop_live()
        elif self.playing:
            self.pause()
        else:
            self.resume()

    def _live_spec(self) -> tuple[Any, str]:
        kind = self.source_kind()
        if kind == "video":
            left, right = self.video_path.text().strip(), self.video_right.text().strip()
            if not left:
                raise ValueError("choose a video file first")
            self.studio.settings.set("preview/video", left)
            self.studio.settings.set("preview/video_right", right)
            return ((left, right), "pair") if right else (left, "sbs")
        if kind == "recording":
            folder = self.recording_path.text().strip()
            if not folder:
                raise ValueError("choose a recording folder first")
            self.studio.settings.set("preview/recording", folder)
            return folder, "sbs"
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

    def start_live(self, resume_at: int | None = None, play: bool = True) -> None:
        """Open the selected source in the background, then play it (from `resume_at` for a seekable
        source), or with `play` False show frame `resume_at` paused."""
        self.stop_live()
        try:
            spec, layout = self._live_spec()
        except ValueError as exc:
            self.studio.message.emit("warning", str(exc))
            return
        calib = self.calibration.text().strip() or None
        self.studio.settings.set("preview/calibration", calib or "")
        matchers = [(m.key, m.matcher) for m in self._shown_models()]
        if not matchers:
            self.studio.message.emit("warning", "no model is shown (View > Models in the preview)")
            return
        kind = self.source_kind()
        loop = kind == "video" and self.loop.isChecked()
        self.studio.settings.set("preview/loop", self.loop.isChecked())
        self._session_gen += 1
        gen = self._session_gen
        self.playing = play
        self.playback.set_playing(play)
        self.start_btn.setText("Stop")
        self.status.setText(f"opening the {SOURCE_KINDS[kind].lower()}…")
        filters = {k: v for k, v in self.post_filters.items() if v}
        self._session_job = self.studio.jobs.start(
            f"Open {SOURCE_KINDS[kind].lower()}",
            open_live_session,
            spec,
            layout,
            matchers,
            calib,
            None if kind == "recording" else self._input_size(),  # recorded at the models' input size
            loop,
            filters,
            track=False,
            on_result=lambda session, g=gen: self._session_opened(session, g, resume_at),
            on_error=lambda text, g=gen: self._session_failed(text, g),
            on_finished=lambda record, g=gen: self._session_done(record, g),
        )

    def _session_opened(self, session: LiveSession, gen: int, resume_at: int | None) -> None:
        if gen != self._session_gen:  # stopped (or replaced) while it opened
            self.studio.jobs.start("Close source", session.close, track=False)
            return
        self.session = session
        self.playback.set_length(session.length if session.seekable else None)
        self.status.setText("")
        if session.seekable and resume_at is not None:
            resume_at = max(0, min(resume_at, (session.length or 1) - 1))
            self._target = resume_at
        if self.playing:
            self._play(resume_at if session.seekable else None)
        elif session.seekable:
            self._frame_at(resume_at or 0)

    def _session_failed(self, text: str, gen: int) -> None:
        if gen != self._session_gen:
            return
        self._failed(text)
        self.playing = False
        self.playback.set_playing(False)
        self.start_btn.setText("Start")

    def _session_busy(self) -> bool:
        return self._session_job is not None and self._session_job.active

    def _use_session(self, action: Any) -> None:
        """Run `action` (it starts one job on the session) now, or when the job using the session ends; a
        newer request replaces a waiting one, and a playing job is stopped for it."""
        if self._session_busy():
            self._session_pending = action
            if self._session_job is not None and self._session_job.title.startswith("Live preview"):
                self.studio.jobs.cancel(self._session_job)
            return
        self._session_pending = None
        action()

    def _session_done(self, record: JobRecord, gen: int) -> None:
        if gen != self._session_gen or record is not self._session_job:
            return
        self._session_job = None
        action, self._session_pending = self._session_pending, None
        if action is not None and self.session is not None:
            action()

    def _play(self, start: int | None) -> None:
        session, gen = self.session, self._session_gen
        if session is None:
            return
        if session.seekable and session.length and start is not None and start >= session.length:
            start = 0  # at the end: play from the start again
        self.playing = True
        self.playback.set_playing(True)
        self._session_job = self.studio.jobs.start(
            f"Live preview ({SOURCE_KINDS[self.source_kind()].lower()})",
            session.play,
            start,
            self.recording,
            on_progress=lambda event, g=gen: self._live_event(event, g),
            on_error=lambda text, g=gen: g == self._session_gen and self._failed(text),
            on_finished=lambda record, g=gen: self._play_finished(record, g),
        )

    def _frame_at(self, index: int) -> None:
        session, gen = self.session, self._session_gen
        if session is None:
            return
        self._session_job = self.studio.jobs.start(
            "Preview frame",
            session.frame_at,
            index,
            track=False,
            on_result=lambda frame, g=gen: g == self._session_gen and self._show(frame),
            on_error=lambda text, g=gen: g == self._session_gen and self._failed(text),
            on_finished=lambda record, g=gen: self._session_done(record, g),
        )

    def pause(self) -> None:
        """Stop playing; the source stays open at the frame shown (step, seek, resume)."""
        self.playing = False
        self.playback.set_playing(False)
        self._session_pending = None
        job = self._session_job
        if job is not None and job.active and job.title.startswith("Live preview"):
            self.studio.jobs.cancel(job)

    def resume(self) -> None:
        """Play on after the frame shown (the prefetch thread read ahead: the source seeks back first)."""
        session = self.session
        if session is None:
            return
        start = None
        if session.seekable and self._target is not None:
            start = self._target + 1
        self.playing = True
        self.playback.set_playing(True)
        self._use_session(lambda: self._play(start))

    def stop_live(self) -> None:
        """Stop playing and close the source (in the background)."""
        self._session_gen += 1  # whatever is still in flight belongs to the old session now
        job = self._session_job
        if job is not None and job.active:
            self.studio.jobs.cancel(job)
        self._session_job = None
        self._session_pending = None
        if self.session is not None:
            session, self.session = self.session, None
            self.studio.jobs.start("Close source", session.close, track=False)
        self.playing = False
        self.playback.set_playing(False)
        self.start_btn.setText("Start")

    def _restart_session(self) -> None:
        """Open the source again where it is (other models, calibration or input size)."""
        if self.session is None and not self._session_busy():
            return
        at, playing = self._target, self.playing
        self.start_live(resume_at=at, play=playing)

    def live_running(self) -> bool:
        """A live source is opening or playing."""
        return self.playing and self._session_busy()

    def _live_event(self, event: Any, gen: int | None = None) -> None:
        if gen is not None and gen != self._session_gen:
            return
        if event.kind == "frame" and isinstance(event.payload, PreviewFrame):
            self._show(event.payload)
        elif event.kind == "error" and event.message:
            self.studio.message.emit("error", event.message)

    def _play_finished(self, record: JobRecord, gen: int) -> None:
        if gen != self._session_gen:
            return
        if record.status == "done":  # the stream ended (or its source failed): paused at the last frame
            self.playing = False
            self.playback.set_playing(False)
            self.status.setText("stream ended")
        self._session_done(record, gen)

    # ----- drawing
    def _models_changed(self) -> None:
        self._configure_new_sgbm()
        self._rebuild_grid()
        if self.source_kind() == "dataset":
            self.refresh()
        else:
            self._restart_session()  # the session's pipeline runs the models it was opened with

    def _show(self, frame: PreviewFrame) -> None:
        """A new frame arrived (dataset step or live stream)."""
        for text in frame.warnings:  # a scene beyond a model's range, a tiny image, a bad calibration
            if text not in self._warned:
                self._warned.add(text)
                self.studio.message.emit("warning", text)
        new_pair = (frame.name, frame.index) != self._last_recorded  # dataset: one frame per pair
        if self.recording.active and not self.live_running() and frame.result is not None and new_pair:
            self._last_recorded = (frame.name, frame.index)
            self.recording.write(frame.result)  # (live streams are recorded in their job)
        if self.recording.error:
            self.record_btn.setChecked(False)
        had_gt = self.frame is not None and self.frame.gt is not None
        self.frame = frame
        if self.source_kind() in ("video", "recording") and frame.position is not None:
            self.playback.set_position(frame.position)
            if self.playing or self._target is None:
                self._target = frame.position
        if self._column_keys(frame) != self._columns or had_gt != (frame.gt is not None):
            self._rebuild_grid()
        else:
            self._draw(frame)
        self.studio.set_frame(frame)

    def _draw(self, frame: PreviewFrame) -> None:
        self.left_pane.set_rgb(frame.left)
        where = Path(frame.name).name if "/" in frame.name or "\\" in frame.name else frame.name  # a file
        if frame.counter:
            where += ("<br>" if len(self._columns) >= MANY_COLUMNS else "  ") + f"({frame.counter})"
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
            if entry is None:
                parts.append("as recorded")
            elif out.ms is not None:
                parts.append(f"{out.ms:.0f} ms ({out.fps or 1000.0 / max(out.ms, 1e-3):.1f} FPS)")
                if out.post_filters:
                    parts.append(f"filters {out.filter_ms:.0f} ms")
            if out.metrics:
                parts.append(_fmt_metrics(out.metrics))
            if entry is not None and entry.untrained:
                parts[0] += f" <span style='color:{theme.WARN}'>[untrained]</span>"
            sep = "<br>" if len(self._columns) >= MANY_COLUMNS else "  ·  "  # narrow columns: a line each
            pane.set_title(parts[0] + "<br>" + sep.join(parts[1:]), 0.5 if self.live_running() else 0.0)
            if out.error is not None and key in self._error_panes:
                self._error_panes[key].set_scalar(out.error, ERROR_RANGE)
                self._error_panes[key].set_title(f"<b>{key}</b> error<br>|prediction − ground truth|")
            drawn = True
        self.status.setText(time.strftime("%H:%M:%S"))
        if self._hover_at is not None:  # the read-out follows the frame on screen
            self._hover(*self._hover_at)
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
        self._hover_at = (x, y)
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
            from stereo_studio.live.playback import RawRecorder, RecorderGroup, raw_folder_for
            from stereo_studio.live.recording import DisparityRecorder

            self._record_path = self._out_dir() / f"recording-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
            try:
                video = DisparityRecorder(self._record_path, fps=15.0)
                raw = RawRecorder(raw_folder_for(self._record_path), fps=15.0, source=self._source_text(),
                                  calib=self._frame_calib())
                recorder = RecorderGroup([video, raw])
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
            self.studio.message.emit(
                "info", f"recording left + disparity maps to {self._record_path}, raw disparities to "
                f"{raw_folder_for(self._record_path)}"
            )
            return
        error = self.recording.error
        old = self.recording.set(None)
        self.record_btn.setText("Record")
        if old is not None:
            old.close()
        if error:
            self.studio.message.emit("error", f"recording stopped: {error}")
        elif self._record_path is not None:
            from stereo_studio.live.playback import raw_folder_for

            raw = raw_folder_for(self._record_path)
            Recent(self.studio.settings).add("recording", raw)
            self.studio.message.emit(
                "ok", f"recording saved to {self._record_path} (raw disparities: {raw}; File > Open "
                "recording plays them)"
            )

    def _source_text(self) -> str:
        kind = self.source_kind()
        if kind == "dataset":
            return f"dataset {self.studio.data_spec}"
        if kind == "video":
            return f"video {self.video_path.text().strip()} {self.video_right.text().strip()}".strip()
        if kind == "recording":
            return f"recording {self.recording_path.text().strip()}"
        return f"camera {self.camera_left.value()}"

    def _frame_calib(self) -> dict | None:
        """The shown frame's depth calibration for a recording's header (None: none, or the frames carry
        it)."""
        from stereo_studio.errors import StereoStudioError
        from stereo_studio.gui.preview_frames import frame_calibration

        if self.frame is None or self.frame.result is None:
            return None
        try:
            return frame_calibration(self.frame).to_dict()
        except StereoStudioError:
            return None

    # ----- per model: visibility, post-filters, 3D view and point cloud
    def set_model_visible(self, key: str, visible: bool) -> None:
        """Hide a model from the preview without closing it (kept in the settings), or show it again."""
        if visible == (key not in self.hidden_models):
            return
        if visible:
            self.hidden_models.discard(key)
        else:
            self.hidden_models.add(key)
        self.studio.settings.set("preview/hidden", sorted(self.hidden_models))
        self._rebuild_grid()
        if self.source_kind() == "dataset":
            self.refresh()
        else:
            self._restart_session()

    def set_post_filters(self, key: str, names: list[str]) -> None:
        """The post-filters of one model (engine `postfilter.FILTERS` names), from the next frame on; the
        frame on screen is processed again when nothing plays."""
        from stereo_studio.live.postfilter import parse_filters

        names = list(parse_filters(names))
        if names:
            self.post_filters[key] = names
        else:
            self.post_filters.pop(key, None)
        self.studio.settings.set("preview/post_filters", self.post_filters)
        menu = self._menus.get(key)
        if menu is not None and menu.filters() != names:
            menu.set_filters(names)
        self._redo_frame(lambda session: session.set_post_filters(key, names))

    def _redo_frame(self, change_session: Any = None) -> None:
        """Show the current frame again after a setting changed (a playing stream picks it up by itself)."""
        if self.source_kind() == "dataset":
            self.refresh()
            return
        if self.session is not None and change_session is not None:
            change_session(self.session)  # an atomic swap in the pipeline: safe while a job plays
        session = self.session
        if session is not None and not self.playing and session.seekable and self._target is not None:
            self.seek(self._target)

    def _model_action(self, key: str, what: str) -> None:
        if what == "cloud":
            self.studio.panel_requested.emit("cloud", key)
        elif what == "export":
            self.export_cloud_dialog(key)
        elif what == "sgbm":
            self.show_sgbm_tuner(True)
        elif what == "hide":
            self.set_model_visible(key, False)

    def export_cloud_dialog(self, key: str, path: str | None = None) -> JobRecord | None:
        """Write `key`'s point cloud of the frame shown (asks where unless `path` is given)."""
        from stereo_studio.gui.cloud_view import export_cloud_dialog

        return export_cloud_dialog(self, self.studio, self.frame, key, path)

    def focus_on(self, detail: Any) -> None:
        if detail == "sgbm":
            self.show_sgbm_tuner(True)

    # ----- SGBM tuning (saved in the settings, applied to every open SGBM model)
    def show_sgbm_tuner(self, show: bool) -> None:
        self._sgbm_box.setVisible(bool(show))
        self.sgbm_btn.blockSignals(True)
        self.sgbm_btn.setChecked(bool(show))
        self.sgbm_btn.blockSignals(False)
        if show:
            self._show_sgbm_derived()

    def _sgbm_entries(self) -> list[Any]:
        return [m for m in self.studio.models if self._is_sgbm(m)]

    def _sgbm_changed(self, values: dict) -> None:
        from stereo_studio.errors import ModelError
        from stereo_studio.models.matchers import SGBMParams

        try:
            params = SGBMParams.from_dict(values)
        except ModelError as exc:
            self.studio.message.emit("error", f"SGBM: {exc}")
            return
        self.studio.settings.set("sgbm/params", params.to_dict())
        if self._apply_sgbm(params, self._sgbm_entries()):
            self._redo_frame()
            self._sgbm_stats.start()

    def _apply_sgbm(self, params: Any, entries: list[Any]) -> bool:
        from stereo_studio.errors import ModelError
        from stereo_studio.models.matchers import configure_sgbm

        try:
            for entry in entries:
                configure_sgbm(entry.matcher, params)
        except ModelError as exc:
            self.studio.message.emit("error", f"SGBM: {exc}")
            return False
        self._show_sgbm_derived()
        return bool(entries)

    def _configure_new_sgbm(self) -> None:
        """A newly opened SGBM model gets the saved parameters."""
        saved = self.studio.settings.get("sgbm/params", {})
        new = [m for m in self._sgbm_entries() if id(m.matcher) not in self._sgbm_done]
        self._sgbm_done.update(id(m.matcher) for m in new)
        if not saved or not new:
            self._show_sgbm_derived()
            return
        from stereo_studio.errors import ModelError
        from stereo_studio.models.matchers import SGBMParams

        try:
            params = SGBMParams.from_dict(saved)
        except ModelError as exc:
            self.studio.message.emit("warning", f"saved SGBM parameters ignored: {exc}")
            return
        self._apply_sgbm(params, new)

    def _show_sgbm_derived(self) -> None:
        entries = self._sgbm_entries()
        self.sgbm_btn.setEnabled(bool(entries) or self._sgbm_box.isVisible())
        if entries:
            m = entries[0].matcher
            self.sgbm_tuner.show_derived(m.p1, m.p2, m.num_disparities)

    def _remeasure_sgbm(self) -> None:
        """The Models panel's numbers of SGBM follow its parameters (measured again once edits settle)."""
        for entry in self._sgbm_entries():
            entry.stats.clear()
            self.studio.model_updated.emit(entry.key)
            self.studio.queue_stats(entry.key)

    def shutdown(self) -> None:
        self._sgbm_stats.stop()
        self.stop_live()
        if self.record_btn.isChecked():
            self.record_btn.setChecked(False)
