"""The scripts under `models/` (not a package) imported as modules by their tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def load_script(name: str) -> ModuleType:
    """`models/<name>.py` as a module."""
    spec = importlib.util.spec_from_file_location(f"models_{name}", MODELS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
