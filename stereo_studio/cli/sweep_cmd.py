"""`stereo-studio sweep`: accuracy / latency / size trade-off over pruning ratios, with the Pareto front."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="trade-off sweep over pruning ratios",
        description="Prune at each ratio, measure params, MACs, latency, EPE, D1 and "
        "bad-3 (optionally after a short distillation fine-tune); mark the Pareto front.",
    )
    p.add_argument("--model", required=True, help="model spec: bundled name, architecture or folder")
    p.add_argument("--ratios", default="0,0.25,0.5,0.75", help="comma-separated ratios")
    p.add_argument(
        "--data", default="synthetic", help="validation data with ground truth (default synthetic)"
    )
    p.add_argument("--val-pairs", type=int, default=4)
    p.add_argument("--size", default="240x320", help="HxW of latency, MACs and synthetic pairs")
    p.add_argument("--criterion", choices=["l1", "l2", "bn", "taylor", "lamp"], default="l1")
    p.add_argument("--plan", default=None, metavar="FILE.json", help="also measure this per-layer plan")
    p.add_argument("--finetune-steps", type=int, default=0, help="also measure each point fine-tuned")
    p.add_argument("--teacher", default=None, help="teacher model spec for the fine-tune")
    p.add_argument("--json", action="store_true", help="print one JSON object per point, one per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.cli.prune_cmd import read_ratios
    from stereo_studio.cli.sensitivity_cmd import parse_ratios
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.sweep import sweep
    from stereo_studio.errors import StereoStudioError

    if args.finetune_steps > 0 and not args.teacher:
        raise StereoStudioError("--finetune-steps needs --teacher (fine-tuning distills from it)")
    plan = read_ratios(args.plan) if args.plan else None
    job = sweep(
        args.model,
        parse_ratios(args.ratios),
        args.data,
        args.val_pairs,
        args.finetune_steps,
        args.teacher,
        plan,
        parse_size(args.size),
        args.criterion,
    )
    points = run_with_progress(job, desc="sweep")
    if args.json:
        for p in points:
            print_json(p.to_json())
        return 0
    print(
        f"{'label':>6s} {'ft':>3s} {'params':>9s} {'GMAC':>7s} {'ms':>7s} "
        f"{'EPE':>7s} {'D1%':>6s} {'bad3%':>6s}"
    )
    for p in points:
        print(
            f"{p.label:>6s} {'yes' if p.finetuned else 'no':>3s} {p.params:9,d} {p.macs / 1e9:7.3f} "
            f"{p.latency_ms:7.1f} {p.epe:7.3f} {p.d1:6.2f} {p.bad3:6.2f}{'  *pareto' if p.pareto else ''}"
        )
    return 0
