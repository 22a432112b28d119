"""Cost of a stereo model on this machine: parameters, MACs, latency, peak memory, matmul peak.

- MACs come from Torch-Pruning's `count_ops_and_params`, which counts module ops (convolutions, norms,
  linear, pooling, upsampling modules). Functional ops inside `forward` (correlation volume, soft-argmin,
  `F.interpolate`) are not counted, so MACs are a lower bound of the arithmetic.
- Latency is wall time of the whole call (for a matcher: `predict` on uint8 RGB images, conversions
  included, the same definition for networks and SGBM) on a synthetic pair, after warm-up. A bare network
  (`nn.Module`) is timed as a `NetMatcher` with the machine's inference settings (precision "auto"), so
  bench, sweep and the GUI report the same number for the same network. Every latency measurement takes
  the measuring queue (`stereo_studio.runtime.measuring`: one at a time, waits for training unless asked
  not to, then marked contended) and reports median, p10, p90 and the settings it ran with (threads,
  precision, OpenMP wait policy).
- Peak memory is the peak of tensor memory allocated by PyTorch during the call, from the profiler's
  allocation events (op granularity; memory held before the call, such as weights, is not counted).
  SGBM allocates outside PyTorch, so its peak is the growth of the C heap in use (glibc mallinfo2,
  sampled every 0.5 ms) instead.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_studio import runtime
from stereo_studio.errors import ModelError

_PEAK_CACHE: dict[tuple[torch.dtype, int, int], float] = {}


def count_params_macs(model: nn.Module, size: tuple[int, int] = (240, 320)) -> tuple[int, int]:
    """(parameters, MACs) of `model` on one H x W pair (module ops only, see module docstring)."""
    import torch_pruning as tp

    h, w = size
    left, right = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
    was_training = model.training
    model.eval()
    try:
        macs, params = tp.utils.count_ops_and_params(model, example_inputs=(left, right))
    finally:
        model.train(was_training)
    return int(params), int(macs)


def synthetic_pair(size: tuple[int, int], max_disp: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic, realistic H x W stereo pair (uint8 RGB) from the project generator, for timing.
    Tiny sizes are generated at 32 x 48 and resized (the generator needs room for its layers)."""
    import cv2

    from stereo_studio.data.synthetic import SyntheticStereo

    h, w = size
    gh, gw = max(h, 32), max(w, 48)
    sample = SyntheticStereo(height=gh, width=gw, max_disp=min(max_disp, max(8, gw // 3)), seed=seed)[0]
    if (gh, gw) == (h, w):
        return sample.left, sample.right
    return tuple(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) for img in (sample.left, sample.right))


def _as_call(target: Any, size: tuple[int, int], max_disp: int, precision: str = "auto") -> Callable[[], Any]:
    """A zero-argument call running `target` once on a prepared input (a network wrapped as a NetMatcher)."""
    left, right = synthetic_pair(size, max_disp)
    if hasattr(target, "predict"):
        return lambda: target.predict(left, right)
    if isinstance(target, nn.Module):
        from stereo_studio.models.matchers import NetMatcher

        matcher = NetMatcher(target, precision=precision)
        return lambda: matcher.predict(left, right)
    if callable(target):
        return lambda: target(left, right)
    raise TypeError(f"cannot time {type(target).__name__}: expected a matcher, an nn.Module or a callable")


def _precision_of(target: Any, precision: str) -> str | None:
    """The arithmetic a timed target runs in: a matcher's own, a network's resolved one, None for a
    callable."""
    if hasattr(target, "predict"):
        is_net = getattr(target, "model", None) is not None
        return str(getattr(target, "precision", "fp32")) if is_net else "fp32"
    if isinstance(target, nn.Module):
        from stereo_studio.models.matchers import resolve_precision

        return resolve_precision(precision)
    return None


def measure_latency(
    fn_or_matcher: Any,
    size: tuple[int, int] = (240, 320),
    warmup: int = 3,
    runs: int = 20,
    max_seconds: float | None = None,
    max_disp: int = 64,
    precision: str = "auto",
    while_training: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time one stereo call on a synthetic H x W pair: median / p10 / p90 / mean ms over `runs` calls after
    `warmup` calls. `fn_or_matcher` is a matcher (`.predict(left_u8, right_u8)`), an `nn.Module`
    (`forward(left, right)` on N x 3 x H x W tensors; timed as a `NetMatcher` in `precision`) or a callable
    `(left_u8, right_u8)`. `max_seconds` stops early (after at least 3 timed runs) when the budget is spent.

    Runs in the measuring queue: waits until no training job runs unless `while_training` (`on_wait` gets a
    message when it starts waiting). The result also has threads, precision, wait_policy (the settings used),
    contended / contended_by (registered work that ran meanwhile), waited_s and load_avg_1m (the OS load
    average when timing started: other work the registry cannot see)."""
    call = _as_call(fn_or_matcher, size, max_disp, precision)
    times: list[float] = []
    with runtime.measuring(while_training=while_training, on_wait=on_wait) as slot:
        load = runtime.load_average()
        for _ in range(max(0, warmup)):
            call()
        start = time.perf_counter()
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1000.0)
            if max_seconds is not None and len(times) >= 3 and time.perf_counter() - start > max_seconds:
                break
    return {
        "median_ms": statistics.median(times),
        "p10_ms": float(np.percentile(times, 10)),
        "p90_ms": float(np.percentile(times, 90)),
        "mean_ms": statistics.fmean(times),
        "runs": len(times),
        "threads": torch.get_num_threads(),
        "precision": _precision_of(fn_or_matcher, precision),
        "wait_policy": runtime.effective_wait_policy(),
        "contended": slot.contended,
        "contended_by": slot.contended_by,
        "waited_s": round(slot.waited_s, 3),
        "load_avg_1m": load,
    }


def _malloc_in_use() -> Callable[[], int]:
    """A function returning bytes currently malloc'd (glibc mallinfo2, all arenas), else the process RSS."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                    "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):  # not glibc (Windows, macOS, musl): the resident set size
        return _rss_reader()

    def in_use() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return in_use


def _rss_reader(platform: str | None = None) -> Callable[[], int]:
    """A function returning the process's resident memory in bytes, on any system: /proc/self/statm (Linux),
    GetProcessMemoryInfo (Windows), else getrusage's peak RSS (macOS, BSD: it only grows, so a peak shows
    when it exceeds the process's earlier one), else 0."""
    import sys

    platform = platform or sys.platform
    if platform.startswith("linux") and os.path.exists("/proc/self/statm"):
        page = os.sysconf("SC_PAGE_SIZE")

        def statm() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        return statm
    if platform == "win32":
        import ctypes
        from ctypes import wintypes

        class Counters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
                (n, ctypes.c_size_t)
                for n in ("PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                          "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage",
                          "PagefileUsage", "PeakPagefileUsage")
            ]

        kernel32, psapi = ctypes.WinDLL("kernel32"), ctypes.WinDLL("psapi")
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE

        def working_set() -> int:
            counters = Counters()
            counters.cb = ctypes.sizeof(counters)
            psapi.GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb)
            return int(counters.WorkingSetSize)

        return working_set
    try:
        import resource
    except ImportError:
        return lambda: 0
    scale = 1 if platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return lambda: int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def peak_malloc_mb(fn: Callable[[], Any], interval_s: float = 0.0005) -> float:
    """Peak growth (MB) of the C heap in use during `fn()`, sampled every `interval_s` in a thread: for
    native code outside PyTorch such as OpenCV's SGBM (glibc mallinfo2; process RSS where unavailable)."""
    in_use = _malloc_in_use()
    base = peak = in_use()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, in_use())
            done.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(0, peak - base) / 2**20


def peak_memory_mb(fn: Callable[[], Any]) -> float:
    """Peak PyTorch tensor memory (MB) live at once during `fn()`, above what was live before the call.

    Built from the PyTorch profiler's allocation events: each op's own net allocation, and each free,
    summed in time order (so a transient buffer allocated and freed inside one op is not seen)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "99")  # silence the profiler's start/stop lines on stderr
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    steps = sorted(
        (e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage
    )
    live = peak = 0
    for _, delta in steps:
        live += delta
        peak = max(peak, live)
    return peak / 2**20


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """Best achieved GFLOP/s of an n x n matmul in `dtype` with the current thread count (cached).

    When one n x n product would take over ~1 s (e.g. bf16 on a CPU without native bf16, which runs a
    slow reference path), n is reduced (not below 256), and repeats stop after ~2 s."""
    key = (dtype, n, torch.get_num_threads())
    if key not in _PEAK_CACHE:
        gen = torch.Generator().manual_seed(0)
        probe = min(n, 256)
        a = torch.randn(probe, probe, generator=gen).to(dtype)
        torch.mm(a, a)  # library warm-up
        t0 = time.perf_counter()
        torch.mm(a, a)
        estimate = (time.perf_counter() - t0) * (n / probe) ** 3
        if estimate > 1.0:
            n = max(probe, int(n * (1.0 / estimate) ** (1 / 3)) // 64 * 64)
        a = torch.randn(n, n, generator=gen).to(dtype)
        b = torch.randn(n, n, generator=gen).to(dtype)
        torch.mm(a, b)  # warm-up at size
        best, start = float("inf"), time.perf_counter()
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() - start > 2.0:
                break
        _PEAK_CACHE[key] = 2.0 * n**3 / best / 1e9
    return _PEAK_CACHE[key]


def _matcher_dtype(matcher: Any) -> torch.dtype:
    precision = str(getattr(matcher, "precision", "fp32")).lower()
    return torch.bfloat16 if precision in ("bf16", "bfloat16", "torch.bfloat16") else torch.float32


def bench_model(
    spec: Any,
    size: tuple[int, int] = (240, 320),
    max_disp: int | None = None,
    precision: str = "auto",
    warmup: int = 3,
    runs: int = 20,
    max_seconds: float | None = None,
    memory: bool = True,
    peak_n: int = 2048,
    while_training: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark a model spec (`sgbm`, bundled name, architecture name or folder), or a ready matcher,
    at `size` = (height, width).

    Returns model, size, max_disp, precision, params, macs, latency_ms (median), p10_ms, p90_ms, mean_ms,
    runs, threads, wait_policy, contended, contended_by, waited_s, load_avg_1m, gflops (2 * MACs /
    latency), peak_gflops (matmul peak of the model's dtype), fraction_of_peak, peak_memory_mb and runtime
    (this machine's chosen inference settings and where they came from, see `stereo_studio.runtime`). SGBM has
    params 0 and macs / gflops / fraction_of_peak None: it is not a network and its work is not MACs; its
    default range is 64 (less on images narrower than 128 px, which SGBM cannot search 64 disparities in).
    Latency and the matmul peak are measured in one turn of the measuring queue (see `measure_latency`)."""
    if hasattr(spec, "predict"):
        matcher = spec
    else:
        from stereo_studio.models.storage import load_matcher

        if str(spec).strip().lower() == "sgbm" and max_disp is None:
            max_disp = min(64, max(16, size[1] // 2 // 16 * 16))  # SGBM needs a range below the width
        matcher = load_matcher(str(spec), max_disp=max_disp, precision=precision)
    model = getattr(matcher, "model", None)
    md = int(getattr(matcher, "max_disp", max_disp or 64))
    result: dict[str, Any] = {
        "model": str(getattr(matcher, "name", spec)),
        "size": [int(size[0]), int(size[1])],
        "max_disp": md,
        "precision": "fp32" if model is None else str(getattr(matcher, "precision", "fp32")),
    }
    if model is not None:
        try:
            params, macs = count_params_macs(model, size)
        except Exception as exc:  # the counter traces the real forward; report, don't guess
            raise ModelError(f"could not count MACs of '{spec}' at {size[0]}x{size[1]}: {exc}") from exc
    else:
        params, macs = 0, None
    peak = None
    with runtime.measuring(while_training=while_training, on_wait=on_wait) as slot:
        lat = measure_latency(matcher, size, warmup=warmup, runs=runs, max_seconds=max_seconds, max_disp=md)
        if macs:
            peak = matmul_peak_gflops(_matcher_dtype(matcher), n=peak_n)
    result.update(params=params, macs=macs, latency_ms=lat["median_ms"], p10_ms=lat["p10_ms"],
                  p90_ms=lat["p90_ms"], mean_ms=lat["mean_ms"], runs=lat["runs"], threads=lat["threads"],
                  wait_policy=lat["wait_policy"], contended=slot.contended, contended_by=slot.contended_by,
                  waited_s=round(slot.waited_s, 3), load_avg_1m=lat["load_avg_1m"])
    if macs and peak:
        gflops = 2.0 * macs / (lat["median_ms"] / 1000.0) / 1e9
        result.update(gflops=gflops, peak_gflops=peak, fraction_of_peak=gflops / peak)
    else:
        result.update(gflops=None, peak_gflops=None, fraction_of_peak=None)
    if memory:
        call = _as_call(matcher, size, md)
        result["peak_memory_mb"] = peak_memory_mb(call) if model is not None else peak_malloc_mb(call)
    result["runtime"] = runtime.inference_settings().to_json()
    return result
