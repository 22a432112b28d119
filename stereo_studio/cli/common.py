"""Small helpers shared by the sub-command modules: JSON output, option checks, output-path checks."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from stereo_studio.errors import StereoStudioError

_json_stream: TextIO | None = None  # the real stdout while a --json command runs (see json_stdout)


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (the CLI contract's machine-readable output)."""
    out = _json_stream or sys.stdout
    json.dump(obj, out, default=_jsonable)
    out.write("\n")
    out.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def json_stdout() -> Iterator[None]:
    """While a `--json` command runs, stdout carries only what `print_json` writes: anything else written to
    stdout, by Python or by native code (e.g. a TorchScript graph dumped by a failing ONNX export), goes to
    stderr. Stdout ends up holding the JSON object(s) or nothing."""
    global _json_stream
    real = sys.stdout
    real.flush()
    fd, err_fd = _fileno(real), _fileno(sys.stderr)
    saved = os.dup(fd) if fd is not None and err_fd is not None else None
    try:
        if saved is not None:
            os.dup2(err_fd, fd)  # native writes to fd 1 now land on stderr
            _json_stream = open(saved, "w", closefd=False, encoding="utf-8")  # noqa: SIM115
        else:  # stdout is not a file descriptor (captured in-process): redirect Python-level writes only
            _json_stream = real
        sys.stdout = sys.stderr
        yield
    finally:
        sys.stdout = real
        if saved is not None:
            with contextlib.suppress(Exception):
                _json_stream.flush()
            sys.stderr.flush()
            with contextlib.suppress(OSError, AttributeError):
                import ctypes

                ctypes.CDLL(None).fflush(None)  # what C stdio still buffers belongs to stderr too
            os.dup2(saved, fd)
            os.close(saved)
        _json_stream = None


def parse_size(text: str) -> tuple[int, int]:
    """'240x320' -> (240, 320) as (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise StereoStudioError(f"bad size '{text}': expected HxW, e.g. 240x320") from exc
    if h < 16 or w < 16 or h > 8192 or w > 8192:
        raise StereoStudioError(f"bad size '{text}': height and width must be between 16 and 8192")
    return h, w


# ------------------------------------------------------------------------------------------ option checks


def check_max_disp(value: int | None, option: str = "--max-disp") -> None:
    """The same lower bound for every architecture (and SGBM): `registry.MIN_MAX_DISP`."""
    from stereo_studio.models.registry import MIN_MAX_DISP

    if value is not None and value < MIN_MAX_DISP:
        raise StereoStudioError(f"{option} must be at least {MIN_MAX_DISP}, got {value}")


def check_seed(value: int | None, option: str = "--seed") -> None:
    if value is not None and not 0 <= value < 2**32:
        raise StereoStudioError(f"{option} must be between 0 and {2**32 - 1}, got {value}")


def check_number(value: float | None, option: str, minimum: float | None = None, positive: bool = False,
                 maximum: float | None = None) -> None:
    """A finite number (not NaN / inf), optionally > 0, >= `minimum`, <= `maximum`."""
    if value is None:
        return
    if not math.isfinite(value):
        raise StereoStudioError(f"{option} must be a finite number, got {value}")
    if positive and value <= 0:
        raise StereoStudioError(f"{option} must be positive, got {value}")
    if minimum is not None and value < minimum:
        raise StereoStudioError(f"{option} must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise StereoStudioError(f"{option} must be at most {maximum:g}, got {value:g}")


# ------------------------------------------------------------------------------------------ output paths


def check_writable_file(path: str | os.PathLike, option: str, suffixes: Iterable[str]) -> Path:
    """Before any work: `path` has one of `suffixes`, is not a folder, and its folder exists or can be made
    (nothing is created here)."""
    path = Path(path).expanduser()
    suffixes = tuple(suffixes)
    if path.suffix.lower() not in suffixes:
        raise StereoStudioError(f"{option} {path}: the file name must end in {' / '.join(suffixes)}")
    if path.is_dir():
        raise StereoStudioError(f"{option} {path} is a folder; give a file name")
    _check_parent(path, option)
    return path


def check_model_out(path: str | os.PathLike, option: str = "--out", force: bool = False,
                    sources: Iterable[Path | None] = ()) -> Path:
    """Before any work: `path` may receive a model folder. An existing non-empty folder (or a file) is
    refused unless `force`; a model's own source folder is always refused."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    for source in sources:
        if source is not None and Path(source).resolve() == resolved:
            raise StereoStudioError(f"{option} {path} is the model being read; choose another folder")
    if path.is_file():
        raise StereoStudioError(f"{option} {path} is a file; give a folder for the model")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise StereoStudioError(f"{option} {path} already exists and is not empty: choose another folder or "
                                "replace it with --force")
    _check_parent(path, option)
    return path


def clear_stale_files(path: Path) -> None:
    """After a model was (re)written into `path`: remove the card and training record a replaced model left
    (`save_model` writes only config.json and model.safetensors), so nothing describes the wrong model."""
    for name in ("card.md", "training.json"):
        (path / name).unlink(missing_ok=True)


def _check_parent(path: Path, option: str) -> None:
    parent = path.parent
    while not parent.exists():  # the nearest folder that exists must be a writable folder
        parent = parent.parent
    if not parent.is_dir():
        raise StereoStudioError(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StereoStudioError(f"{option} {path}: cannot write in {parent}")
