"""`stereo-studio bench`: parameters, MACs, latency and peak memory of a model (or SGBM) at a size."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure params, MACs, latency and memory of a model or SGBM",
        description="Benchmark one model on a synthetic pair of the given size. Latency is the wall time of "
        "one prediction (uint8 images in, disparity out), median over the runs after warm-up.",
    )
    p.add_argument("--model", required=True,
                   help="sgbm | bundled model name | architecture name | model folder")
    p.add_argument("--size", default="240x320", help="input size HxW (default 240x320)")
    p.add_argument("--max-disp", type=int, default=None,
                   help="SGBM range / max disparity of an architecture built by name (default: own, SGBM 64)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch / OpenCV threads (default: all cores)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.errors import StereoStudioError

    size = parse_size(args.size)
    if args.runs < 1 or args.warmup < 0:
        raise StereoStudioError(f"--runs must be >= 1 and --warmup >= 0 (got {args.runs}, {args.warmup})")
    if args.max_disp is not None and args.max_disp < 1:
        raise StereoStudioError(f"--max-disp must be positive, got {args.max_disp}")
    if args.threads is not None:
        if args.threads < 1:
            raise StereoStudioError(f"--threads must be at least 1, got {args.threads}")
        import cv2
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    from stereo_studio.engine.bench import bench_model

    result = bench_model(args.model, size, max_disp=args.max_disp, precision=args.precision,
                         warmup=args.warmup, runs=args.runs, memory=not args.no_memory)
    if args.json:
        print_json(result)
    else:
        print(format_table(result))
    return 0


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def format_table(r: dict[str, Any]) -> str:
    """A readable summary of a `bench_model` result."""
    h, w = r["size"]
    macs = None if r["macs"] is None else r["macs"] / 1e9
    frac = r.get("fraction_of_peak")
    share = "" if frac is None else f" ({100 * frac:.1f} % of matmul peak)"
    rows = [
        ("model", f"{r['model']} ({r['precision']}, max disparity {r['max_disp']})"),
        ("size", f"{h}x{w}"),
        ("parameters", f"{r['params']:,}"),
        ("MACs", _fmt(macs, ".3f", " G")),
        ("latency", f"{r['latency_ms']:.2f} ms median, {r['p90_ms']:.2f} ms p90 "
                    f"({r['runs']} runs, {r['threads']} threads)"),
        ("achieved", _fmt(r.get("gflops"), ".1f", " GFLOP/s") + share),
        ("peak memory", _fmt(r.get("peak_memory_mb"), ".1f", " MB")),
    ]
    return "\n".join(f"{k:<12} {v}" for k, v in rows)
