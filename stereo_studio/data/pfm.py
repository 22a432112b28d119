"""PFM (Portable Float Map) disparity files: read and write.

A PFM file is a text header (`PF` colour / `Pf` grey, then `width height`, then a scale whose sign gives the
byte order: negative = little-endian) followed by raw float32 rows stored bottom to top.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from stereo_studio.errors import DataError

_HEADER_TOKENS = re.compile(rb"\S+")


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file into a float32 array, H x W (grey) or H x W x 3 (colour), rows top to bottom."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read PFM file {path}: {exc.strerror or exc}") from exc
    # Header: type, "width height", scale, separated by whitespace; one whitespace byte ends it.
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        match = _HEADER_TOKENS.search(data, pos, min(len(data), 256))
        if match is None:
            raise DataError(f"malformed PFM file {path}: truncated header")
        tokens.append(match.group())
        pos = match.end()
    pos += 1  # the single whitespace character after the scale
    kind, width_s, height_s, scale_s = tokens
    if kind not in (b"PF", b"Pf"):
        raise DataError(f"malformed PFM file {path}: expected 'PF' or 'Pf', got {kind[:8]!r}")
    try:
        width, height, scale = int(width_s), int(height_s), float(scale_s)
    except ValueError as exc:
        raise DataError(f"malformed PFM file {path}: bad size or scale in header") from exc
    if width <= 0 or height <= 0 or scale == 0.0:
        raise DataError(f"malformed PFM file {path}: size {width}x{height}, scale {scale}")
    channels = 3 if kind == b"PF" else 1
    count = width * height * channels
    if len(data) - pos < count * 4:
        raise DataError(f"malformed PFM file {path}: expected {count * 4} bytes of data, "
                        f"found {len(data) - pos}")
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=pos).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(array.reshape(shape)))


def write_pfm(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a H x W or H x W x 3 array as a little-endian float32 PFM file (rows bottom to top)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        kind = b"Pf"
    elif array.ndim == 3 and array.shape[2] == 3:
        kind = b"PF"
    else:
        raise ValueError(f"PFM holds H x W or H x W x 3 arrays, got shape {array.shape}")
    height, width = array.shape[:2]
    body = np.ascontiguousarray(np.flipud(array)).astype("<f4").tobytes()
    Path(path).write_bytes(kind + b"\n" + f"{width} {height}\n-1.0\n".encode() + body)
