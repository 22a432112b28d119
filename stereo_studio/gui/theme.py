"""One coherent dark theme: Qt palette, a small style sheet and pyqtgraph defaults."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

BG = "#1d2026"
PANEL = "#252932"
BASE = "#1a1d23"
RAISED = "#2e333e"
BORDER = "#3a404c"
TEXT = "#e3e6ec"
MUTED = "#9aa3b2"
ACCENT = "#4da3ff"
OK = "#5cc98a"
WARN = "#f0b44c"
ERROR = "#ff6b6b"

# One colour per open model, reused by every plot so a model keeps its colour everywhere.
MODEL_COLORS = ["#4da3ff", "#ff9f43", "#5cc98a", "#c792ea", "#ff6b9a", "#3fd0d4", "#e0d05a", "#a0a8b8"]

STYLE = f"""
QWidget {{ color: {TEXT}; }}
QMainWindow, QDialog {{ background: {BG}; }}
QToolTip {{ background: {RAISED}; color: {TEXT}; border: 1px solid {BORDER}; padding: 4px; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; border-radius: 4px; top: -1px; background: {PANEL}; }}
QTabBar::tab {{ background: {BG}; color: {MUTED}; padding: 7px 16px; border: 1px solid transparent;
    border-top-left-radius: 4px; border-top-right-radius: 4px; margin-right: 2px; }}
QTabBar::tab:selected {{ background: {PANEL}; color: {TEXT}; border: 1px solid {BORDER};
    border-bottom-color: {PANEL}; }}
QTabBar::tab:hover:!selected {{ color: {TEXT}; }}
QGroupBox {{ border: 1px solid {BORDER}; border-radius: 5px; margin-top: 14px; padding: 8px 6px 6px 6px;
    font-weight: 600; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; }}
QPushButton {{ background: {RAISED}; border: 1px solid {BORDER}; border-radius: 4px; padding: 5px 12px; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:pressed {{ background: {BORDER}; }}
QPushButton:disabled {{ color: #6b7280; border-color: #30353f; }}
QPushButton[primary="true"] {{ background: #2b6cb0; border-color: #3b82c4; color: white; font-weight: 600; }}
QPushButton[primary="true"]:hover {{ background: #3478c0; }}
QComboBox, QSpinBox, QDoubleSpinBox, QLineEdit {{ background: {BASE}; border: 1px solid {BORDER};
    border-radius: 4px; padding: 3px 6px; min-height: 20px; }}
QComboBox:focus, QSpinBox:focus, QDoubleSpinBox:focus, QLineEdit:focus {{ border-color: {ACCENT}; }}
QTableWidget, QTreeWidget, QListWidget, QTableView, QTreeView {{ background: {BASE};
    alternate-background-color: #20242b; border: 1px solid {BORDER}; border-radius: 4px;
    gridline-color: {BORDER}; selection-background-color: #2b4f7a; }}
QHeaderView::section {{ background: {RAISED}; color: {MUTED}; border: none; border-right: 1px solid {BORDER};
    padding: 4px 6px; }}
QProgressBar {{ background: {BASE}; border: 1px solid {BORDER}; border-radius: 4px; text-align: center;
    min-height: 16px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QDockWidget::title {{ background: {RAISED}; padding: 5px 8px; text-align: left; }}
QStatusBar {{ background: {BG}; color: {MUTED}; }}
QLabel[role="value"] {{ font-size: 15px; font-weight: 600; }}
QLabel[role="caption"] {{ color: {MUTED}; }}
QLabel[role="badge"] {{ background: {WARN}; color: #1d2026; border-radius: 3px; padding: 1px 6px;
    font-weight: 700; }}
QLabel[role="title"] {{ font-size: 14px; font-weight: 700; }}
QSplitter::handle {{ background: {BORDER}; }}
QScrollBar:vertical {{ background: {BG}; width: 10px; }}
QScrollBar::handle:vertical {{ background: {RAISED}; border-radius: 4px; min-height: 24px; }}
QScrollBar:horizontal {{ background: {BG}; height: 10px; }}
QScrollBar::handle:horizontal {{ background: {RAISED}; border-radius: 4px; min-width: 24px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
"""


def apply_theme(app: QApplication) -> None:
    """Install the palette, style sheet, font and pyqtgraph colours on `app`."""
    app.setStyle("Fusion")
    pal = QPalette()
    for role, color in [
        (QPalette.Window, BG),
        (QPalette.WindowText, TEXT),
        (QPalette.Base, BASE),
        (QPalette.AlternateBase, "#20242b"),
        (QPalette.Text, TEXT),
        (QPalette.Button, RAISED),
        (QPalette.ButtonText, TEXT),
        (QPalette.Highlight, "#2b6cb0"),
        (QPalette.HighlightedText, "#ffffff"),
        (QPalette.ToolTipBase, RAISED),
        (QPalette.ToolTipText, TEXT),
        (QPalette.PlaceholderText, MUTED),
        (QPalette.Link, ACCENT),
    ]:
        pal.setColor(role, QColor(color))
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        pal.setColor(QPalette.Disabled, role, QColor("#6b7280"))
    app.setPalette(pal)
    font = QFont(app.font())
    font.setPointSizeF(max(font.pointSizeF(), 10.0))
    app.setFont(font)
    app.setStyleSheet(STYLE)
    pg.setConfigOptions(background=PANEL, foreground=MUTED, antialias=True, imageAxisOrder="row-major")


def model_color(index: int) -> str:
    """The colour of the `index`-th open model."""
    return MODEL_COLORS[index % len(MODEL_COLORS)]
