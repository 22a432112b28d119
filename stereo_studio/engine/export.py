"""ONNX export of any Stereo Studio network (teacher, student, pruned) with dynamic height and width.

The graph is traced (TorchScript exporter; the dynamo exporter needs onnxscript, not a dependency) at a
size that is *not* a multiple of the network's padding, so the padding path is in the graph; then it is
checked against PyTorch at two sizes (max abs difference, px) and timed with onnxruntime. The graph runs at
any height and width, also below the disparity range (the cost volumes have no width-dependent branch).
Inputs: `left`, `right` N x 3 x H x W float RGB in [0, 1]; output `disparity` N x 1 x H x W.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_studio.errors import ModelError, StereoStudioError

TRACE_SIZE = (196, 292)  # not a multiple of 8: the replicate padding is traced too
CHECK_SIZES = ((196, 292), (240, 320))
MIN_OPSET = 11  # padding with traced (dynamic) sizes needs opset 11

# The tracer's warnings (shape-dependent branches it freezes, deprecations) are expected: silence them once,
# here, never with `warnings.catch_warnings()` inside the job (process-wide state, not thread-safe: export
# runs on a GUI worker thread).
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
warnings.filterwarnings("ignore", module=r"torch\.onnx(\.|$)")


def check_export_args(out_path: str | Path, opset: int) -> Path:
    """Refuse a bad output path or opset before any work (the CLI and the GUI call it up front too)."""
    try:
        from torch.onnx import _constants
    except ImportError:  # a private module: fall back to the highest opset torch 2.x's exporter knows
        _constants = None
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise StereoStudioError(f"ONNX output path must end in .onnx: {out_path}")
    if out_path.is_dir():
        raise StereoStudioError(f"ONNX output path {out_path} is a folder; give a file name")
    parent = out_path.parent
    while not parent.exists():  # created at the end: the nearest existing folder must be a writable folder
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise StereoStudioError(f"ONNX output path {out_path}: cannot write in {parent}")
    highest = int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))
    if not MIN_OPSET <= int(opset) <= highest:
        raise StereoStudioError(f"ONNX opset must be between {MIN_OPSET} and {highest}, got {opset}")
    return out_path


@contextlib.contextmanager
def _native_stdout_silenced():
    """The TorchScript exporter prints the whole graph on stdout (from C++) when it fails: send fd 1 to
    /dev/null meanwhile, so a failed export is one clear error and `--json` output stays JSON."""
    fd = 1  # native code writes to the process's stdout, whatever sys.stdout is
    sys.stdout.flush()
    _flush_native()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            try:
                yield
            finally:
                _flush_native()  # C stdio buffers what it printed: drop it before fd 1 is back
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def _flush_native() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def _resolve(model_spec: str | Path | nn.Module) -> nn.Module:
    from stereo_studio.models.storage import load_net

    return load_net(model_spec)


def _inputs(size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)


def unaligned(size: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
    """A size near `size` that is not a multiple of `multiple` (so padding is exercised)."""
    h, w = size
    return (h + 4 if h % multiple == 0 else h, w + 4 if w % multiple == 0 else w)


def export_onnx(
    model_spec: str | Path | nn.Module,
    out_path: str | Path,
    opset: int = 17,
    check: bool = True,
    trace_size: tuple[int, int] | None = None,
    check_sizes: tuple[tuple[int, int], ...] | None = None,
    time_runs: int = 5,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Export to `out_path` (.onnx) with dynamic H/W; with `check`, compare onnxruntime and PyTorch outputs
    at `check_sizes` and time both at the last size. `size` (H, W) sets both: trace at a nearby unaligned
    size, check there and at `size`. Returns path, bytes, opset, max_abs_diff (px, None unchecked),
    per-size diffs, ort_ms, torch_ms, onnxruntime (bool); `OUT.onnx.json` beside it (sidecar) states the
    network's conventions."""
    if size is not None:
        trace_size = trace_size or unaligned(size)
        check_sizes = check_sizes or (unaligned(size), tuple(size))
    trace_size = trace_size or TRACE_SIZE
    check_sizes = check_sizes or CHECK_SIZES
    out_path = check_export_args(out_path, opset)
    model = _resolve(model_spec)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    dyn = {2: "height", 3: "width"}
    try:
        buf = io.BytesIO()
        with torch.no_grad(), _native_stdout_silenced():
            torch.onnx.export(
                model,
                _inputs(trace_size, 0),
                buf,
                input_names=["left", "right"],
                output_names=["disparity"],
                dynamic_axes={"left": dyn, "right": dyn, "disparity": dyn},
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:
        raise ModelError(
            f"{type(model).__name__} cannot be exported to ONNX (opset {opset}): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        model.train(was_training)
    _check_inputs(buf.getvalue(), model)
    out_path.write_bytes(buf.getvalue())
    from stereo_studio.models.onnx_net import write_sidecar

    sidecar = write_sidecar(out_path, model)  # OUT.onnx.json: its conventions, for `--model OUT.onnx`
    result: dict[str, Any] = {
        "path": str(out_path),
        "sidecar": str(sidecar),
        "bytes": out_path.stat().st_size,
        "opset": opset,
        "arch": getattr(model, "config", {}).get("arch", type(model).__name__),
        "max_abs_diff": None,
        "diffs": {},
        "ort_ms": None,
        "torch_ms": None,
        "onnxruntime": importlib.util.find_spec("onnxruntime") is not None,
    }
    if not check:
        return result
    if not result["onnxruntime"]:
        result["note"] = "onnxruntime is not installed (pip install onnxruntime): not checked"
        return result
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(out_path), opts, providers=["CPUExecutionProvider"])
    diffs = {}
    for i, size in enumerate(check_sizes):
        left, right = _inputs(size, i + 1)
        with torch.inference_mode():
            ref = model.eval()(left, right).float().numpy()
        got = session.run(None, {"left": left.numpy(), "right": right.numpy()})[0]
        if got.shape != ref.shape:
            raise ModelError(
                f"ONNX output {got.shape} differs from PyTorch {ref.shape} at {size[0]}x{size[1]}"
            )
        diffs[f"{size[0]}x{size[1]}"] = float(np.abs(got - ref).max())
    model.train(was_training)
    result["diffs"] = diffs
    result["max_abs_diff"] = max(diffs.values())
    left, right = _inputs(check_sizes[-1], 99)
    feeds = {"left": left.numpy(), "right": right.numpy()}
    result["ort_ms"] = _median_ms(lambda: session.run(None, feeds), time_runs)
    with torch.inference_mode():
        result["torch_ms"] = _median_ms(lambda: model.eval()(left, right), time_runs)
    model.train(was_training)
    result["timed_size"] = list(check_sizes[-1])
    return result


def _check_inputs(data: bytes, model: nn.Module) -> None:
    """Refuse a graph whose output does not depend on both images (the trace left the tensor world)."""
    if importlib.util.find_spec("onnx") is None:
        return  # the optional extra is not installed: nothing to inspect the graph with
    import onnx

    names = {i.name for i in onnx.load_model_from_string(data).graph.input}
    if not {"left", "right"} <= names:
        missing = sorted({"left", "right"} - names)
        raise ModelError(
            f"{type(model).__name__} cannot be exported to ONNX: its traced output does not depend on "
            f"input(s) {missing} (the forward pass leaves PyTorch, e.g. through numpy)"
        )


def _median_ms(fn: Any, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)
