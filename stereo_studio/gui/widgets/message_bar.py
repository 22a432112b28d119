"""An inline message bar (no modal dialogs): errors, warnings and notices, readable by tests."""

from __future__ import annotations

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
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._close = QToolButton(text="✕")
        self._close.setToolTip("Dismiss this message")
        self._close.setAutoRaise(True)
        self._close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
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
        icon = {"error": "⚠", "warning": "⚠", "ok": "✓"}.get(level, "ℹ")
        self._label.setText(f"<span style='color:{color}'>{icon}</span>&nbsp; {text}")
        self._label.setToolTip(text)
        self.show()
        self._timer.stop()
        if level != "error":
            self._timer.start(int(1000 * (timeout_s or 8.0)))
        self.posted.emit(level, text)

    def errors(self) -> list[str]:
        return [text for level, text, _ in self.history if level == "error"]

    def text(self) -> str:
        return self.history[-1][1] if self.history else ""
