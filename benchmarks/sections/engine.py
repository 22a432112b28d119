"""Distill-then-prune engine: how long importance, estimates, pruning, a measured sweep point and an ONNX
export take on the student, and what pruning buys (params, MACs, latency) on both architectures."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import table

SIZE = (240, 320)




def _net(name: str) -> tuple[Any, str]:
    """The bundled trained model when there is one, else the untrained architecture."""
    from stereo_studio.models.storage import load_net, resolve_model

    if resolve_model(name) is not None:
        return load_net(name), f"bundled `{name}`"
    return load_net(f"arch:{name}"), f"untrained `{name}`"


def _ms(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(quick: bool) -> str:
    """Markdown for BENCHMARKS.md."""
    import torch

    from stereo_studio.engine.bench import measure_latency
    from stereo_studio.engine.export import export_onnx
    from stereo_studio.engine.importance import channel_importance, default_calib_batches
    from stereo_studio.engine.pruning import PruningGraph, estimate, macs_params, prune_model
    from stereo_studio.engine.sweep import measure_point, validation_samples

    threads = torch.get_num_threads()
    runs = 5 if quick else 20
    out: list[str] = []
    student, s_desc = _net("student")
    teacher, t_desc = _net("teacher")
    out.append(
        f"Student: {s_desc}; teacher: {t_desc}. fp32, {threads} torch threads, latency at "
        f"{SIZE[0]}x{SIZE[1]} (median of {runs} runs after warm-up), MACs from Torch-Pruning's counter."
    )

    # -- interactivity: graph, estimate, importance
    t0 = time.perf_counter()
    graph = PruningGraph(student)
    build_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    estimate(student, 0.5, size=SIZE)
    first_ms = (time.perf_counter() - t0) * 1000
    ratios = [i / 20 for i in range(19)]
    est_ms = statistics.median(_ms(lambda r=r: estimate(student, r, size=SIZE), 1) for r in ratios)
    rows = [
        ["DependencyGraph build (once per model)", f"{build_ms:.0f}"],
        ["estimate(): first call at a new size (one counting forward)", f"{first_ms:.0f}"],
        ["estimate(): any ratio after that (median of 19 ratios)", f"{est_ms:.2f}"],
    ]
    calib = default_calib_batches(2)
    for crit in ("l1", "l2", "bn", "lamp", "taylor"):
        fresh = PruningGraph(student)  # no cached scores
        t0 = time.perf_counter()
        fresh.scores(crit, calib if crit == "taylor" else None)
        rows.append(
            [
                f"channel importance `{crit}`"
                + (" (2 calibration pairs 128x160)" if crit == "taylor" else ""),
                f"{(time.perf_counter() - t0) * 1000:.0f}",
            ]
        )
    t0 = time.perf_counter()
    channel_importance(student, "l1")
    rows.append(["channel_importance() report, graph cached", f"{(time.perf_counter() - t0) * 1000:.0f}"])
    out.append("### Interactive costs on the student\n\n" + table(["operation", "ms"], rows))
    del graph

    # -- pruning results
    rows = []
    for name, model, ratios_ in (("student", student, (0.25, 0.5, 0.75)), ("teacher", teacher, (0.5,))):
        base = macs_params(model, SIZE)
        base_ms = measure_latency(model, size=SIZE, warmup=2, runs=runs)["median_ms"]
        rows.append([name, "0", f"{base['params']:,}", f"{base['macs'] / 1e9:.3f}", f"{base_ms:.1f}", "", ""])
        for r in ratios_:
            t0 = time.perf_counter()
            pruned = prune_model(model, r)
            prune_s = time.perf_counter() - t0
            est = estimate(model, r, size=SIZE)
            cost = macs_params(pruned, SIZE)
            ms = measure_latency(pruned, size=SIZE, warmup=2, runs=runs)["median_ms"]
            err = 100 * abs(est["macs"] - cost["macs"]) / cost["macs"]
            rows.append(
                [
                    name,
                    f"{r:g}",
                    f"{cost['params']:,}",
                    f"{cost['macs'] / 1e9:.3f}",
                    f"{ms:.1f}",
                    f"{prune_s:.2f}",
                    f"{err:.2f}",
                ]
            )
    out.append(
        "### Structured pruning (L1, round_to 8, protected head / output)\n\n"
        + table(["model", "ratio", "params", "GMAC", "latency ms", "prune s", "estimate MAC error %"], rows)
    )

    # -- a measured interactive point
    samples = validation_samples("synthetic", 4, SIZE)
    t0 = time.perf_counter()
    point = measure_point(student, 0.5, samples=samples, size=SIZE)
    point_s = time.perf_counter() - t0
    out.append(
        "### A measured sweep point\n\n`measure_point(student, 0.5)` (prune + params/MACs + latency + EPE "
        f"on 4 synthetic {SIZE[0]}x{SIZE[1]} pairs): **{point_s:.2f} s**; EPE {point.epe:.2f} px, "
        f"latency {point.latency_ms:.1f} ms."
    )

    # -- ONNX
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (
            ("student", student),
            ("student pruned 0.5", prune_model(student, 0.5)),
            ("teacher", teacher),
        ):
            t0 = time.perf_counter()
            res = export_onnx(model, Path(tmp) / "m.onnx", size=SIZE, time_runs=runs)
            total = time.perf_counter() - t0
            ort = "n/a" if res["ort_ms"] is None else f"{res['ort_ms']:.1f}"
            diff = "n/a" if res["max_abs_diff"] is None else f"{res['max_abs_diff']:.1e}"
            rows.append(
                [
                    name,
                    f"{res['bytes'] / 1e6:.2f}",
                    diff,
                    ort,
                    f"{res['torch_ms']:.1f}" if res["torch_ms"] else "n/a",
                    f"{total:.1f}",
                ]
            )
    out.append(
        "### ONNX export (dynamic H/W, checked at two sizes)\n\n"
        + table(["model", "MB", "max abs diff px", "onnxruntime ms", "torch ms", "export+check s"], rows)
    )
    return "\n\n".join(out)
