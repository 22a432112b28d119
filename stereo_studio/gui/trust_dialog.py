"""The window's confirmation before a model folder's own Python code (`model.py`) runs.

Running a custom architecture's code is the user's explicit choice (the CLI's `--trust-code`), never silent.
A load in a worker thread that meets untrusted code returns `NeedsTrust` instead of failing (`load_or_ask`,
no Qt there); on the GUI thread `resolve` asks with a dialog naming the file and, on an explicit yes, trusts
exactly that content (`custom_arch.trust_code_file`), after which the caller loads again. Trust follows the
file's SHA-256, so pruned copies, sweep fine-tunes and fine-tuned results of the same code load without
asking again; an edited file asks again.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from stereo_studio.errors import ModelError


@dataclass(frozen=True)
class NeedsTrust:
    """A load stopped before running `path` (a model.py) because it is not trusted; `message` says so."""

    path: Path
    message: str


def load_or_ask(load: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Worker thread: `load(*args, **kwargs)`, or `NeedsTrust` when untrusted model code would have to run."""
    from stereo_studio.models.custom_arch import CodeNotTrustedError

    try:
        return load(*args, **kwargs)
    except CodeNotTrustedError as exc:
        return NeedsTrust(exc.path, str(exc))


def confirm_trust(path: Path, parent: QWidget | None = None) -> bool:
    """GUI thread: ask before running `path`; True only on an explicit Yes (No is the default button)."""
    box = QMessageBox(parent or QApplication.activeWindow())
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle("Run this model's code?")
    box.setTextFormat(Qt.RichText)
    box.setText(f"Opening this model runs its Python code:<br><br><b>{html.escape(str(path))}</b>")
    box.setInformativeText(
        "This file can do anything your user account can. Run it only if you trust where it came from "
        "(the command line asks for --trust-code). Copies of the same code (pruned or fine-tuned models) "
        "will not ask again in this session."
    )
    box.setStandardButtons(QMessageBox.Yes | QMessageBox.No)
    box.setDefaultButton(QMessageBox.No)
    return box.exec() == QMessageBox.Yes


def resolve(need: NeedsTrust, parent: QWidget | None = None) -> bool:
    """GUI thread: True when `need.path` may run now: it was trusted meanwhile (same content), or the user
    said yes (it is trusted from now on). False: the user declined; nothing ran."""
    from stereo_studio.models import custom_arch

    if custom_arch.is_trusted(need.path):
        return True
    if not confirm_trust(need.path, parent):
        return False
    with contextlib.suppress(ModelError):  # unreadable now: loading again reports it, naming the file
        custom_arch.trust_code_file(need.path)
    return True


def declined_message(spec: str, need: NeedsTrust) -> str:
    return (f"did not open model '{spec}': its code {need.path} was not run (you chose not to trust it; "
            "open it again to be asked again)")
