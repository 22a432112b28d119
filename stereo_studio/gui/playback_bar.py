"""Playback controls of a seekable preview source (a video file or a recording): step back, play / pause,
step forward, a seek slider and the frame counter. Signals only: the Preview panel does the work."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QStyle, QToolButton, QWidget


class PlaybackBar(QWidget):
    """`play_clicked()`, `step_requested(delta)`, `seek_requested(index)`; `set_length`, `set_position`,
    `set_playing` reflect the source. While the slider is dragged the counter shows the target; the seek is
    asked for on release (keyboard and page clicks seek at once)."""

    play_clicked = Signal()
    step_requested = Signal(int)
    seek_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.length: int | None = None
        self.position: int | None = None
        self.playing = False
        icon = self.style().standardIcon  # the platform's media icons (no font needs the glyphs)
        self._icons = {"play": icon(QStyle.SP_MediaPlay), "pause": icon(QStyle.SP_MediaPause)}
        self.back_btn = QToolButton()
        self.back_btn.setIcon(icon(QStyle.SP_MediaSeekBackward))
        self.back_btn.setToolTip("One frame back (Page Up)")
        self.back_btn.clicked.connect(lambda: self.step_requested.emit(-1))
        self.play_btn = QToolButton()
        self.play_btn.setIcon(self._icons["play"])
        self.play_btn.setToolTip("Play / pause (Space)")
        self.play_btn.clicked.connect(self.play_clicked.emit)
        self.fwd_btn = QToolButton()
        self.fwd_btn.setIcon(icon(QStyle.SP_MediaSeekForward))
        self.fwd_btn.setToolTip("One frame forward (Page Down)")
        self.fwd_btn.clicked.connect(lambda: self.step_requested.emit(1))
        for b in (self.back_btn, self.play_btn, self.fwd_btn):
            b.setFixedWidth(34)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setToolTip("Seek: drag to a frame")
        self.slider.setRange(0, 0)
        self.slider.setPageStep(10)
        self.slider.sliderMoved.connect(self._moved)
        self.slider.sliderReleased.connect(lambda: self.seek_requested.emit(self.slider.value()))
        self.slider.valueChanged.connect(self._value_changed)
        self.counter = QLabel("frame – / –")
        self.counter.setProperty("role", "caption")
        self.counter.setMinimumWidth(120)
        self.counter.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.counter.setToolTip("The frame shown / frames in the source")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.back_btn, self.play_btn, self.fwd_btn):
            layout.addWidget(w)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.counter)
        self.set_length(None)

    def set_length(self, length: int | None) -> None:
        """Frames in the source (None: not seekable, e.g. a camera: only play / pause)."""
        self.length = length
        seekable = bool(length)
        for w in (self.back_btn, self.fwd_btn, self.slider):
            w.setEnabled(seekable)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, (length or 1) - 1))
        self.slider.blockSignals(False)
        self._show_counter(self.position)

    def set_position(self, position: int | None) -> None:
        """The frame on screen (0-based position in the source)."""
        self.position = position
        if position is not None and not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(int(position))
            self.slider.blockSignals(False)
        self._show_counter(position)

    def set_playing(self, playing: bool) -> None:
        self.playing = bool(playing)
        self.play_btn.setIcon(self._icons["pause" if playing else "play"])
        self.play_btn.setToolTip("Pause (Space)" if playing else "Play (Space)")

    def _show_counter(self, position: int | None) -> None:
        at = "–" if position is None else str(int(position) + 1)
        self.counter.setText(f"frame {at} / {self.length if self.length else '–'}")

    def _moved(self, value: int) -> None:
        self._show_counter(value)

    def _value_changed(self, value: int) -> None:
        if not self.slider.isSliderDown():  # keyboard or a click on the groove: seek now
            self.seek_requested.emit(value)
