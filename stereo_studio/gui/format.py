"""Short human formats for numbers shown in tables and labels."""

from __future__ import annotations

from typing import Any


def count(n: Any) -> str:
    """1234567 -> '1.23 M'; None -> '–'."""
    if n is None:
        return "–"
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def number(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    try:
        return f"{float(value):.{digits}f}{suffix}"
    except (TypeError, ValueError):
        return str(value)


def duration(seconds: Any) -> str:
    """Seconds -> '1 h 02 min' / '3 min 05 s' / '12 s'."""
    if seconds is None:
        return "–"
    s = int(max(0, float(seconds)))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
