"""`stereo-studio prune`: structured pruning (DepGraph), optionally followed by a distillation fine-tune."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prune",
        help="prune a model's channels (and fine-tune it)",
        description="Structured channel pruning with Torch-Pruning's DependencyGraph; "
        "protected layers (per-disparity head, output) keep their width.",
    )
    p.add_argument("--model", required=True, help="model spec: bundled name, architecture or folder")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ratio", type=float, help="one pruning ratio for every prunable layer, e.g. 0.5")
    which.add_argument("--ratios", metavar="FILE.json", help='per-layer ratios: {"layer name": ratio, ...}')
    p.add_argument("--criterion", choices=["l1", "l2", "bn", "taylor", "lamp"], default="l1")
    p.add_argument(
        "--global-ranking",
        action="store_true",
        help="rank channels across layers (one threshold) instead of the same ratio per layer",
    )
    p.add_argument("--round-to", type=int, default=8, help="keep widths at multiples of this (default 8)")
    p.add_argument("--finetune-steps", type=int, default=0, help="distillation fine-tune steps (default 0)")
    p.add_argument("--teacher", default=None, help="teacher model spec for the fine-tune")
    p.add_argument("--data", default="synthetic", help="fine-tune data (default synthetic)")
    p.add_argument("--size", default="240x320", help="HxW at which MACs and latency are reported")
    p.add_argument("--out", required=True, metavar="PATH", help="folder of the pruned model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def read_ratios(path: str) -> dict[str, float]:
    """A per-layer ratio file: {"layer": ratio} or {"ratios": {"layer": ratio}}."""
    from stereo_studio.errors import StereoStudioError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise StereoStudioError(f"cannot read ratios file {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("ratios"), dict):
        data = data["ratios"]
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise StereoStudioError(f'ratios file {path} must hold {{"layer name": ratio, ...}}')
    return {str(k): float(v) for k, v in data.items()}


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.engine.bench import measure_latency
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.pruning import layer_widths, load_net, macs_params, prune_and_finetune
    from stereo_studio.errors import StereoStudioError

    size = parse_size(args.size)
    ratios = read_ratios(args.ratios) if args.ratios else None
    if args.finetune_steps > 0 and not args.teacher:
        raise StereoStudioError("--finetune-steps needs --teacher (the paper fine-tunes by distillation)")
    original = load_net(args.model)
    job = prune_and_finetune(
        args.model,
        args.out,
        ratio=args.ratio,
        ratios=ratios,
        criterion=args.criterion,
        round_to=args.round_to,
        global_ranking=args.global_ranking,
        finetune_steps=args.finetune_steps,
        teacher=args.teacher,
        data=args.data,
        size=size,
    )
    out = run_with_progress(job, desc="prune", quiet=False)
    pruned = load_net(str(out))
    before, after = macs_params(original, size), macs_params(pruned, size)
    lat_before = measure_latency(original, size=size, warmup=1, runs=5)["median_ms"]
    lat_after = measure_latency(pruned, size=size, warmup=1, runs=5)["median_ms"]
    result = {
        "model": args.model,
        "out": str(out),
        "ratio": args.ratio,
        "ratios": ratios,
        "criterion": args.criterion,
        "finetune_steps": args.finetune_steps,
        "size": list(size),
        "params_before": before["params"],
        "params_after": after["params"],
        "macs_before": before["macs"],
        "macs_after": after["macs"],
        "latency_ms_before": lat_before,
        "latency_ms_after": lat_after,
        "widths": layer_widths(pruned),
    }
    if args.json:
        print_json(result)
    else:
        print(f"pruned model saved to {out}")
        print(
            f"params {before['params']:,} -> {after['params']:,}   MACs {before['macs'] / 1e9:.3f} -> "
            f"{after['macs'] / 1e9:.3f} G   latency {lat_before:.1f} -> {lat_after:.1f} ms at {args.size}"
        )
    return 0
