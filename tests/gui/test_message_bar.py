"""The message bar shows a message whole, as plain text, and the log keeps it whole too."""

from __future__ import annotations

from PySide6.QtGui import Qt, QTextDocument  # QtGui's Qt namespace has mightBeRichText
from PySide6.QtWidgets import QLabel

from stereo_studio.gui.widgets.message_bar import MessageBar

# what a failing model load really says (a TypeError raised while building from a bad config)
MESSAGE = (
    "could not open model 'odd': config does not fit architecture 'student': "
    "'<' not supported between instances of 'str' and 'int' <b>(see config.json & the log)</b>"
)


def _rendered(label: QLabel) -> str:
    """The text a label draws: its text as is, or what is left of it once rendered as HTML."""
    text = label.text()
    fmt = label.textFormat()
    if fmt == Qt.TextFormat.PlainText or (fmt == Qt.TextFormat.AutoText and not Qt.mightBeRichText(text)):
        return text
    doc = QTextDocument()
    doc.setHtml(text)
    return doc.toPlainText()


def test_message_is_shown_whole_as_plain_text(qtbot):
    bar = MessageBar()
    qtbot.addWidget(bar)
    bar.post("error", MESSAGE)
    shown = " ".join(_rendered(label) for label in bar.findChildren(QLabel))
    assert MESSAGE in shown
    assert bar.text() == MESSAGE and bar.errors() == [MESSAGE]
    bar.post("info", "<b>not bold</b>")
    assert "<b>not bold</b>" in " ".join(_rendered(label) for label in bar.findChildren(QLabel))


def test_window_message_reaches_the_bar_and_the_log_whole(make_window):
    window = make_window(models=[("sgbm", "sgbm")])
    window.studio.message.emit("error", MESSAGE)
    assert MESSAGE in " ".join(_rendered(label) for label in window.messages.findChildren(QLabel))
    assert MESSAGE in window.jobs.log.toPlainText()
