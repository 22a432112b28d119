"""An inline message bar (no modal dialogs): errors, warnings and notices, readable by tests.

Messages are plain text: they quote paths, configs and exception texts, where a `<` is common (an HTML label
would swallow everything after it)."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from stereo_studio.gui import theme

_COLORS = {"error": theme.ERROR, "warning": theme.WARN, "info": theme.ACCENT, "ok": theme.OK}


class MessageBar(QWidget):
    """Shows the latest message; every message is kept in `history` as (level, text, time)."""

    posted = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[tuple[str, str, float]] = []
        self.setAttribute(Qt.WA_StyledBackground, True)
        self._icon = QLabel()
        self._icon.setTextFormat(Qt.PlainText)
        self._icon.setAlignment(Qt.AlignTop)
        self._label = QLabel()
        self._label.setTextFormat(Qt.PlainText)  # the message as it is: never parsed as HTML
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self._close = QToolButton(text="✕")
        self._close.setToolTip("Dismiss this message")
        self._close.setAutoRaise(True)
        self._close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self._icon)
        layout.addWidget(self._label, 1)
        layout.addWidget(self._close)
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def post(self, level: str, text: str, timeout_s: float | None = None) -> None:
        """Show `text`; errors stay until dismissed, other levels fade after `timeout_s` (default 8 s)."""
        self.history.append((level, text, time.time()))
        color = _COLORS.get(level, theme.ACCENT)
        self.setStyleSheet(
            f"MessageBar {{ background: {theme.RAISED}; border-left: 4px solid {color}; "
            "border-radius: 3px; }"
        )
        self._icon.setText({"error": "⚠", "warning": "⚠", "ok": "✓"}.get(level, "ℹ"))
        self._icon.setStyleSheet(f"color: {color};")
        self._label.setText(text)
        self._label.setToolTip(f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>")  # rich, escaped
        self.show()
        self._timer.stop()
        if level != "error":
            self._timer.start(int(1000 * (timeout_s or 8.0)))
        self.posted.emit(level, text)

    def errors(self) -> list[str]:
        return [text for level, text, _ in self.history if level == "error"]

    def text(self) -> str:
        return self.history[-1][1] if self.history else ""
