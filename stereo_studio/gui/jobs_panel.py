"""Jobs / log panel: every running and finished job with progress, status, error message and cancel."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import theme
from stereo_studio.gui.format import duration
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.workers import JobRecord

_STATUS_COLORS = {
    "running": theme.ACCENT,
    "paused": theme.WARN,
    "done": theme.OK,
    "failed": theme.ERROR,
    "cancelled": theme.MUTED,
    "queued": theme.MUTED,
}


class JobsPanel(QWidget):
    """A table of jobs (title, status, progress, message, time) and the message log."""

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self._items: dict[int, QTreeWidgetItem] = {}
        self._bars: dict[int, QProgressBar] = {}
        self.table = QTreeWidget()
        self.table.setHeaderLabels(["job", "status", "progress", "message", "time"])
        self.table.setRootIsDecorated(False)
        self.table.setAlternatingRowColors(True)
        self.table.setToolTip("Every background job of this session; select one and press Cancel (Ctrl+.)")
        header = self.table.header()
        header.setSectionResizeMode(3, QHeaderView.Stretch)
        self.table.setColumnWidth(0, 220)
        self.table.setColumnWidth(1, 80)
        self.table.setColumnWidth(2, 140)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the selected job (Ctrl+.)")
        self.cancel_btn.clicked.connect(self.cancel_selected)
        self.clear_btn = QPushButton("Clear finished")
        self.clear_btn.setToolTip("Remove finished jobs from the list")
        self.clear_btn.clicked.connect(self.clear_finished)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setToolTip("Messages of this session (errors, warnings, notices)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_btn)
        buttons.addWidget(self.clear_btn)
        buttons.addStretch(1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        ll.addLayout(buttons)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(self.log)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)
        # Ctrl+. is the window's one Cancel shortcut (MainWindow.cancel_shortcut): it reaches cancel_selected
        studio.jobs.job_added.connect(self._added)
        studio.jobs.job_changed.connect(self._changed)
        studio.message.connect(self.append_log)
        for record in studio.jobs.records:
            self._added(record)
        self._clock = QTimer(self, interval=1000)
        self._clock.timeout.connect(self._tick)
        self._clock.start()

    def _tick(self) -> None:
        for record in self.studio.jobs.active():
            self._changed(record)

    def append_log(self, level: str, text: str) -> None:
        color = {"error": theme.ERROR, "warning": theme.WARN, "ok": theme.OK}.get(level, theme.MUTED)
        stamp = time.strftime("%H:%M:%S")
        self.log.appendHtml(
            f"<span style='color:{theme.MUTED}'>{stamp}</span> "
            f"<span style='color:{color}'>{level}</span> {_escape(text)}"
        )

    def _added(self, record: JobRecord) -> None:
        item = QTreeWidgetItem([record.title, record.status, "", record.message, ""])
        item.setData(0, Qt.UserRole, record.id)
        self.table.insertTopLevelItem(0, item)
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setTextVisible(True)
        self.table.setItemWidget(item, 2, bar)
        self._items[record.id], self._bars[record.id] = item, bar
        self._changed(record)

    def _changed(self, record: JobRecord) -> None:
        item = self._items.get(record.id)
        if item is None:
            return
        item.setText(1, record.status)
        item.setForeground(1, QColor(_STATUS_COLORS.get(record.status, theme.TEXT)))
        text = record.error or record.message
        item.setText(3, text)
        item.setToolTip(3, text)
        if record.error:
            item.setForeground(3, QColor(theme.ERROR))
        item.setText(4, duration(record.elapsed))
        bar = self._bars[record.id]
        if record.fraction is None and record.active:
            bar.setRange(0, 0)  # busy indicator
        else:
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * (record.fraction or (1.0 if record.status == "done" else 0.0))))

    def record(self, job_id: int) -> JobRecord | None:
        return next((r for r in self.studio.jobs.records if r.id == job_id), None)

    def cancel_selected(self) -> None:
        for item in self.table.selectedItems():
            record = self.record(item.data(0, Qt.UserRole))
            if record is not None:
                self.studio.jobs.cancel(record)

    def clear_finished(self) -> None:
        for record in [r for r in self.studio.jobs.records if not r.active]:
            item = self._items.pop(record.id, None)
            self._bars.pop(record.id, None)
            if item is not None:
                self.table.takeTopLevelItem(self.table.indexOfTopLevelItem(item))
            self.studio.jobs.records.remove(record)

    def row_texts(self) -> list[list[str]]:
        """(title, status, message) of every listed job, newest first (for tests and the screenshot)."""
        out = []
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            out.append([item.text(0), item.text(1), item.text(3)])
        return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
