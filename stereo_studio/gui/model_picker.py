"""Picking a model from disk and telling the panels what kind of model an open one is.

A model on disk is a saved model folder, a custom architecture's folder (its `model.py` runs only when the
user trusts it: `trust_dialog`) or an `.onnx` file: a frozen network run with onnxruntime. An ONNX model
has no PyTorch module (`ModelEntry.model` is None), so like SGBM it stays out of the importance and pruning
panels; it is previewed, measured and can be a distillation teacher (outputs only), never a student. Its
conventions come from `net.onnx.json` or the graph, and what was assumed is shown (`onnx_rows`,
`onnx_note`). GUI-thread helpers only: no maths, nothing slow.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QWidget

from stereo_studio.gui import theme

MODEL_FILTER = (
    "Models (*.onnx config.json model.safetensors model.py);;ONNX networks (*.onnx);;All files (*)"
)
OPEN_TIP = (
    "Open a saved model: an .onnx file (frozen, run with onnxruntime), or any file of a model folder "
    "(config.json, model.safetensors; a custom architecture's model.py runs only if you trust it) (Ctrl+O)"
)


def pick_model(parent: QWidget, start: str) -> str | None:
    """A file dialog for a model: an .onnx file, or a file inside a model folder (its folder is opened)."""
    path, _ = QFileDialog.getOpenFileName(
        parent, "Open a model: an .onnx file, or the config.json of a model folder", start, MODEL_FILTER
    )
    return model_spec(path) if path else None


def model_spec(path: str) -> str:
    """The model spec of a chosen path: an .onnx file as is, a file inside a model folder -> the folder."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() != ".onnx":
        p = p.parent
    return str(p)


def onnx_info(matcher: Any) -> dict[str, Any] | None:
    """For an ONNX model: its path, sidecar, conventions and assumptions (`params()["onnx"]`); else None."""
    from stereo_studio.models.onnx_net import OnnxMatcher

    return matcher.params()["onnx"] if isinstance(matcher, OnnxMatcher) else None


def is_onnx(matcher: Any) -> bool:
    return onnx_info(matcher) is not None


def onnx_rows(info: dict[str, Any]) -> list[list[str]]:
    """Rows (label, text, "") for the Models panel's details of an ONNX model."""
    sidecar = info.get("sidecar")
    rows = [
        ["ONNX network", "frozen, run with onnxruntime: previewed, measured, a distillation teacher "
                         "(outputs only); not scored, pruned or trained", ""],
        ["conventions", f"from {sidecar}" if sidecar else
         f"not stated: no {info['path']}.json (write it to state them)", ""],
    ]
    assumed = [["assumed", text, ""] for text in info.get("assumptions") or []]
    return rows + (assumed or [["assumed", "nothing: every convention is stated", ""]])


def onnx_note(matcher: Any) -> str | None:
    """One message for the message bar when an ONNX model was opened on assumptions; else None."""
    info = onnx_info(matcher)
    if info is None or not info.get("assumptions"):
        return None
    where = f"not all stated in {info['sidecar']}" if info.get("sidecar") else f"no {info['path']}.json"
    return f"{info['path']}: conventions {where}; assumed: {'; '.join(info['assumptions'])}"


def tooltip_extra(matcher: Any) -> str:
    """Extra tooltip lines for a model (ONNX: frozen, and what was assumed); "" for others."""
    info = onnx_info(matcher)
    if info is None:
        return ""
    assumed = info.get("assumptions") or []
    text = "\nONNX network (frozen, onnxruntime)"
    return text + ("\nassumed: " + "; ".join(assumed) if assumed else "\nconventions: all stated")


def badge(matcher: Any) -> str:
    """A rich-text badge after a model's name: "ONNX · frozen" for an ONNX model."""
    if not is_onnx(matcher):
        return ""
    return f"  <span style='color:{theme.MUTED}'>{html.escape('ONNX · frozen')}</span>"


def teacher_entries(studio: Any) -> list[Any]:
    """Open models that can teach a distillation: trained networks (built-in or custom) and ONNX networks."""
    return [m for m in studio.models if not m.untrained and (m.is_network or is_onnx(m.matcher))]


def check_student(entry: Any) -> None:
    """ModelError when `entry` cannot be a student (an ONNX network is frozen)."""
    if entry is not None and is_onnx(entry.matcher):
        from stereo_studio.models.onnx_net import frozen_error

        raise frozen_error(entry.spec, "trained or fine-tuned as a student")
