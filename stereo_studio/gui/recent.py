"""What the window opens, by kind: recognising a dropped or chosen path, recent items and last folders.

Qt-free (the settings object is the only link to Qt). Kinds: model (a model folder or an .onnx file),
data (a dataset folder), video, recording (a raw recording folder), calibration (an OpenCV calibration file
or a Middlebury calib.txt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stereo_studio.data.video import VIDEO_SUFFIXES

KINDS = {
    "model": "Models",
    "data": "Datasets",
    "video": "Videos",
    "recording": "Recordings",
    "calibration": "Calibrations",
}
CALIB_SUFFIXES = (".yml", ".yaml", ".xml", ".json")
MAX_RECENT = 10
_KEYS = {"data": "data/recent"}  # the data box's list, kept under its original key


def classify(path: str | Path) -> tuple[str, Path] | None:
    """(kind, path to open) of a dropped or chosen path, or None when it is nothing the window opens.
    A file inside a model folder (config.json, model.safetensors, model.py) opens its folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "recording.json").is_file():
            return "recording", p
        if (p / "config.json").is_file() and any(
            (p / f).is_file() for f in ("model.safetensors", "model.py", "config.json")
        ):
            return "model", p
        return "data", p
    if not p.is_file():
        return None
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return "model", p
    if p.name in ("config.json", "model.safetensors", "model.py") and (p.parent / "config.json").is_file():
        return "model", p.parent
    if p.name == "recording.json":
        return "recording", p.parent
    if suffix in VIDEO_SUFFIXES:
        return "video", p
    if suffix in CALIB_SUFFIXES or p.name == "calib.txt":
        return "calibration", p
    return None


class Recent:
    """Recent items per kind (newest first) and the last folder a dialog of each kind used."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @staticmethod
    def _key(kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kind '{kind}' (known: {', '.join(KINDS)})")
        return _KEYS.get(kind, f"recent/{kind}")

    def items(self, kind: str) -> list[str]:
        return [str(v) for v in self.settings.get(self._key(kind), []) if isinstance(v, str)]

    def add(self, kind: str, path: str | Path) -> None:
        """Put `path` first in its kind's list and remember its folder for the next dialog."""
        text = str(path)
        if kind == "data" and text == "synthetic":
            return
        items = [text] + [i for i in self.items(kind) if i != text]
        self.settings.set(self._key(kind), items[:MAX_RECENT])
        self.settings.set(f"dirs/{kind}", str(Path(text).parent))  # the next dialog starts beside it

    def clear(self, kind: str) -> None:
        self.settings.set(self._key(kind), [])

    def last_dir(self, kind: str) -> str:
        """The folder the last dialog of this kind was in (else the most recent item's, else home)."""
        saved = self.settings.get(f"dirs/{kind}", "")
        if kind == "model" and not saved:
            saved = self.settings.get("models/last_dir", "")  # the Models panel's own record
        if saved and Path(str(saved)).is_dir():
            return str(saved)
        for item in self.items(kind):
            parent = Path(item).parent
            if parent.is_dir():
                return str(parent)
        return str(Path.home())
