"""Small helpers shared by the sub-command modules."""

from __future__ import annotations

import json
import sys
from typing import Any

from stereo_studio.errors import StereoStudioError


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (the CLI contract's machine-readable output)."""
    json.dump(obj, sys.stdout, default=_jsonable)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def parse_size(text: str) -> tuple[int, int]:
    """'240x320' -> (240, 320) as (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise StereoStudioError(f"bad size '{text}': expected HxW, e.g. 240x320") from exc
    if h < 16 or w < 16 or h > 8192 or w > 8192:
        raise StereoStudioError(f"bad size '{text}': height and width must be between 16 and 8192")
    return h, w
