"""Helpers shared by the benchmark sections: thread control and markdown tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block with `n` torch and OpenCV threads, restoring the previous counts."""
    import cv2
    import torch

    before_t, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before_t)
        cv2.setNumThreads(before_cv)


def table(head: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float | None, spec: str = ".1f") -> str:
    """A number formatted with `spec`, or n/a."""
    return "n/a" if value is None else format(value, spec)
