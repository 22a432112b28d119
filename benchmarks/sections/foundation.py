"""Foundation: the machine's matmul peak, the synthetic generator's speed, and the cost of teacher, student
and SGBM (params, MACs, latency fp32 / bf16, peak memory, achieved GFLOP/s, ratios), cost-volume forms."""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.common import num, table, threads

NETS = ("teacher", "student")







def matmul_peaks(quick: bool) -> tuple[str, dict[str, float]]:
    import torch

    from stereo_studio.engine.bench import matmul_peak_gflops

    n = 128 if quick else 2048
    rows, peaks = [], {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        all_threads = matmul_peak_gflops(dtype, n=n)
        with threads(1):
            one = matmul_peak_gflops(dtype, n=n)
        peaks[label] = all_threads
        rows.append([label, f"{all_threads:.0f}", f"{one:.0f}"])
    text = (f"### Matmul peak (n = {n}, best of 5)\n\n"
            + table(["dtype", f"GFLOP/s, {torch.get_num_threads()} threads", "GFLOP/s, 1 thread"], rows))
    return text, peaks


def generator_speed(quick: bool) -> str:
    from stereo_studio.data.synthetic import SyntheticStereo

    h, w, count = (64, 128, 1) if quick else (256, 512, 20)
    data = SyntheticStereo(height=h, width=w, max_disp=min(64, w // 3), seed=0)
    with threads(1):
        data[0]
        t0 = time.perf_counter()
        for i in range(1, count + 1):
            data[i]
        seconds = time.perf_counter() - t0
    return (f"### Synthetic generator\n\n{count / seconds:.1f} pairs/s at {h}x{w} (max disparity "
            f"{data.max_disp:g}) on one core (torch and OpenCV threads = 1), {count} pairs, "
            f"{1000 * seconds / count:.0f} ms per pair.")


def model_target(name: str, max_disp: int, precision: str) -> tuple[Any, str]:
    """(spec or matcher to bench, what it is): the bundled model when it exists with this max disparity,
    else the untrained architecture (same layer widths as an unpruned bundled model, so the same cost)."""
    from stereo_studio.models.matchers import NetMatcher
    from stereo_studio.models.registry import build_model, default_config
    from stereo_studio.models.storage import models_dir

    if name == "sgbm":
        return "sgbm", "OpenCV SGBM"
    config = models_dir() / name / "config.json"
    bundled = int(json.loads(config.read_text()).get("max_disp", 0)) if config.is_file() else None
    if bundled == max_disp:
        return name, "bundled"
    why = "no bundled model" if bundled is None else f"bundled model has max disparity {bundled}"
    model = build_model(default_config(name, max_disp=max_disp))
    return NetMatcher(model, name=f"{name}-untrained", precision=precision), f"untrained ({why})"


def model_costs(quick: bool) -> str:
    from stereo_studio.engine.bench import bench_model
    from stereo_studio.models.matchers import bf16_is_native

    configs = [(48, 64, 16)] if quick else [(240, 320, 64), (384, 1248, 192)]
    runs, warmup, budget = (1, 0, 5.0) if quick else (20, 3, 20.0)
    peak_n = 128 if quick else 2048
    parts = ["### Teacher, student, SGBM",
             "Latency: `predict` on a synthetic uint8 pair (conversions included), median / p90 over up to "
             f"{runs} runs after {warmup} warm-up runs (fewer when a configuration exceeds {budget:.0f} s). "
             "MACs: Torch-Pruning's counter (convolutions and other modules; the correlation volume, "
             "soft-argmin and interpolation are not counted). Achieved GFLOP/s = 2 x MACs / latency, and its "
             "fraction of the matmul peak of the same dtype. Peak memory (fp32 rows): PyTorch tensor memory "
             "live at once during one call (SGBM: C heap in use, sampled)."]
    native = bf16_is_native()
    if not native:
        parts.append("bf16 is **not native** on this CPU (no AVX-512 BF16 / AMX): PyTorch runs slow "
                     "reference kernels, so bf16 is measured at the first size only, with at most 3 runs "
                     "(not at all in quick mode).")
    for index, (h, w, md) in enumerate(configs):
        rows, results = [], {}
        precisions = ("fp32", "bf16") if native or (index == 0 and not quick) else ("fp32",)
        for name in (*NETS, "sgbm"):
            for precision in ("fp32",) if name == "sgbm" else precisions:
                slow = precision == "bf16" and not native
                try:
                    spec, what = model_target(name, md, precision)
                    r = bench_model(spec, (h, w), max_disp=md, precision=precision,
                                    warmup=1 if slow else warmup, runs=min(runs, 3) if slow else runs,
                                    max_seconds=budget, peak_n=peak_n, memory=precision == "fp32")
                except Exception as exc:
                    rows.append([name, precision, "", f"failed: {type(exc).__name__}: {exc}"] + [""] * 7)
                    continue
                results[(name, precision)] = r
                macs = None if r["macs"] is None else r["macs"] / 1e9
                frac = r["fraction_of_peak"]
                rows.append([name, precision, what, f"{r['params']:,}", num(macs, ".2f"),
                             num(r["latency_ms"]), num(r["p90_ms"]), str(r["runs"]),
                             num(r.get("peak_memory_mb")), num(r["gflops"], ".0f"),
                             "n/a" if frac is None else f"{100 * frac:.1f} %"])
        parts.append(f"#### {h}x{w}, max disparity {md}")
        head = ["model", "precision", "weights", "params", "GMACs", "median ms", "p90 ms", "runs", "peak MB",
                "GFLOP/s", "of peak"]
        parts.append(table(head, rows))
        parts.append(ratios(results))
    return "\n\n".join(parts)


def ratios(results: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Student vs teacher vs SGBM, from the numbers of this run."""
    lines = ["Ratios (this run):"]
    t32, s32 = results.get(("teacher", "fp32")), results.get(("student", "fp32"))
    sg = results.get(("sgbm", "fp32"))
    if t32 and s32:
        lines.append(f"- teacher / student: params {t32['params'] / s32['params']:.1f}x, "
                     f"MACs {t32['macs'] / s32['macs']:.1f}x")
    for precision in ("fp32", "bf16"):
        t, s = results.get(("teacher", precision)), results.get(("student", precision))
        if t and s:
            ratio = t["latency_ms"] / s["latency_ms"]
            lines.append(f"- latency teacher / student ({precision}): {ratio:.1f}x")
        if s and sg:
            lines.append(f"- latency student ({precision}) / SGBM: {s['latency_ms'] / sg['latency_ms']:.2f}x")
        if t and sg:
            lines.append(f"- latency teacher ({precision}) / SGBM: {t['latency_ms'] / sg['latency_ms']:.2f}x")
    for name in NETS:
        a, b = results.get((name, "fp32")), results.get((name, "bf16"))
        if a and b:
            lines.append(f"- {name} bf16 speed-up over fp32: {a['latency_ms'] / b['latency_ms']:.2f}x")
    return "\n".join(lines) if len(lines) > 1 else "Ratios: not enough successful measurements."


def _median_ms(fn: Any, args: tuple, runs: int) -> float:
    import torch

    times = []
    with torch.inference_mode():
        fn(*args)
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(*args)
            times.append(1000 * (time.perf_counter() - t0))
    return sorted(times)[len(times) // 2]


def cost_volume_forms(quick: bool) -> str:
    """Loop vs vectorised (unfold) cost volumes at the shapes the nets build them."""
    import torch

    from stereo_studio.models import cost_volume as cv
    from stereo_studio.models.registry import default_config

    student, teacher = default_config("student"), default_config("teacher")
    sizes = [(48, 64, 16)] if quick else [(240, 320, 64), (384, 1248, 192)]
    runs = 2 if quick else 10
    gen = torch.Generator().manual_seed(0)
    rows = []
    for h, w, md in sizes:
        q = (1, 1, h // 4, w // 4)
        cases = [
            ("student correlation", student["corr_channels"], max(1, md // 4),
             lambda a, b, d, m: cv.correlation_volume(a, b, d, method=m)),
            ("teacher group-wise", teacher["gwc_channels"], 2 * -(-md // 8),
             lambda a, b, d, m, g=teacher["groups"]: cv.groupwise_correlation_volume(a, b, g, d, method=m)),
        ]
        for label, channels, disparities, fn in cases:
            shape = (q[0], channels, q[2], q[3])
            left, right = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
            ms = {m: _median_ms(fn, (left, right, disparities, m), runs) for m in ("loop", "unfold")}
            rows.append([label, f"{channels} x {q[2]} x {q[3]}, D {disparities}", f"{ms['loop']:.2f}",
                         f"{ms['unfold']:.2f}", f"{ms['loop'] / ms['unfold']:.2f}"])
    return ("### Cost volume: per-disparity loop vs vectorised (unfold)\n\n"
            f"Median of {runs} runs, {torch.get_num_threads()} threads, fp32; `DEFAULT_METHOD` is "
            f"`{cv.DEFAULT_METHOD}`.\n\n"
            + table(["volume", "features (C x H x W), disparities", "loop ms", "unfold ms", "loop / unfold"],
                     rows))


def measure(quick: bool) -> str:
    """The foundation section (markdown)."""
    peaks_text, _ = matmul_peaks(quick)
    parts = [peaks_text, generator_speed(quick), model_costs(quick), cost_volume_forms(quick)]
    return "\n\n".join(parts) + "\n"
