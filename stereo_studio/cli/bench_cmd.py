"""`stereo-studio bench`: parameters, MACs, latency and peak memory of a model (or SGBM) at a size."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure params, MACs, latency and memory of a model or SGBM",
        description="Benchmark one model on a synthetic pair of the given size. Latency is the wall time of "
        "one prediction (uint8 images in, disparity out): median and p10-p90 over the runs after warm-up, "
        "with the threads, precision and OpenMP wait policy used. Defaults are this machine's fastest "
        "settings, measured once on first use and cached. A measurement waits while a training job runs.",
    )
    p.add_argument("--model", required=True,
                   help="sgbm | bundled model name | architecture name | model folder")
    p.add_argument("--size", default="240x320", help="input size HxW (default 240x320)")
    p.add_argument("--max-disp", type=int, default=None,
                   help="SGBM range / max disparity of an architecture built by name (default: own, SGBM 64)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="network arithmetic (auto: the one measured fastest on this machine)")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch / OpenCV threads (default: the count measured fastest on this machine)")
    p.add_argument("--wait-policy", choices=["ACTIVE", "PASSIVE"], type=str.upper, default=None,
                   help="OpenMP wait policy (default: the one measured fastest; same as OMP_WAIT_POLICY)")
    p.add_argument("--while-training", action="store_true",
                   help="measure now even if a training job runs (the result is marked contended)")
    p.add_argument("--reprobe", action="store_true",
                   help="measure this machine's fastest default settings again first (and cache them)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.wait_policy:  # first: OpenMP reads it when torch loads
        _set_wait_policy(args.wait_policy)
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.errors import StereoStudioError

    size = parse_size(args.size)
    if args.runs < 1 or args.warmup < 0:
        raise StereoStudioError(f"--runs must be >= 1 and --warmup >= 0 (got {args.runs}, {args.warmup})")
    from stereo_studio.cli.common import check_max_disp

    check_max_disp(args.max_disp)
    if args.threads is not None and args.threads < 1:
        raise StereoStudioError(f"--threads must be at least 1, got {args.threads}")
    from stereo_studio import runtime
    from stereo_studio.engine.bench import bench_model

    runtime.apply_inference_threads(args.threads)
    result = bench_model(args.model, size, max_disp=args.max_disp, precision=args.precision,
                         warmup=args.warmup, runs=args.runs, memory=not args.no_memory,
                         while_training=args.while_training, on_wait=_say)
    if args.json:
        print_json(result)
    else:
        print(format_table(result))
    return 0


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _set_wait_policy(policy: str) -> None:
    """OMP_WAIT_POLICY for this process: OpenMP reads it once, when torch loads, so only before that."""
    import os

    from stereo_studio.errors import StereoStudioError

    if "torch" in sys.modules and (os.environ.get("OMP_WAIT_POLICY") or "").upper() != policy:
        raise StereoStudioError(f"--wait-policy {policy} cannot apply: torch is already loaded in this "
                                f"process (set OMP_WAIT_POLICY={policy} in the environment instead)")
    from stereo_studio.runtime import set_wait_policy

    set_wait_policy(policy)


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
        ("latency", f"{r['latency_ms']:.2f} ms median, p10-p90 {r.get('p10_ms', r['latency_ms']):.2f}-"
                    f"{r['p90_ms']:.2f} ms ({r['runs']} runs)"),
        ("settings", f"{r['precision']}, {_threads(r['threads'])}, OMP_WAIT_POLICY "
                     f"{r.get('wait_policy', 'default')}" + _contended(r)),
        ("achieved", _fmt(r.get("gflops"), ".1f", " GFLOP/s") + share),
        ("peak memory", _fmt(r.get("peak_memory_mb"), ".1f", " MB")),
    ]
    rt = r.get("runtime")
    if rt:
        rows.append(("defaults", f"{rt['precision']}, {_threads(rt['threads'])}, OMP_WAIT_POLICY "
                                 f"{rt['wait_policy']} (from {_sources(rt['source'])})"))
    return "\n".join(f"{k:<12} {v}" for k, v in rows)


def _threads(n: Any) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def _contended(r: dict[str, Any]) -> str:
    return f"; measured while {', '.join(r['contended_by'])} ran" if r.get("contended") else ""


def _sources(source: dict[str, str]) -> str:
    """'probe' / {'precision': 'env', ...} -> a short phrase."""
    kinds = sorted(set(source.values()))
    names = {"cache": "this machine's measurement", "probe": "a measurement just now",
             "env": "the environment", "fallback": "built-in defaults: not measured"}
    return ", ".join(names.get(k, k) for k in kinds)
