"""Settings that persist between sessions (QSettings): last models, data source, camera, layout.

`STEREO_STUDIO_SETTINGS=/path/file.ini` (or `Settings(path)`) stores them in one INI file instead of the
platform location; tests always use a temporary file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings


class Settings:
    """Typed accessors over QSettings; values that are lists or dicts are stored as JSON."""

    def __init__(self, path: str | Path | None = None) -> None:
        path = path or os.environ.get("STEREO_STUDIO_SETTINGS")
        if path:
            self._qs = QSettings(str(path), QSettings.IniFormat)
        else:
            self._qs = QSettings("StereoStudio", "Stereo Studio")

    @property
    def location(self) -> str:
        return self._qs.fileName()

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._qs.value(key)
        if raw is None:
            return default
        if isinstance(default, (list, dict, bool, int, float)):
            try:
                value = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError:
                return default
            return value if isinstance(value, type(default)) else default
        return raw

    def set(self, key: str, value: Any) -> None:
        if isinstance(value, (list, dict, bool, int, float)):
            value = json.dumps(value)
        self._qs.setValue(key, value)

    def get_bytes(self, key: str) -> QByteArray | None:
        raw = self._qs.value(key)
        return raw if isinstance(raw, QByteArray) else None

    def set_bytes(self, key: str, value: QByteArray) -> None:
        self._qs.setValue(key, value)

    def sync(self) -> None:
        self._qs.sync()
