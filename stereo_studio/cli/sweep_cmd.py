"""`stereo-studio sweep`: accuracy / latency / size trade-off over pruning ratios, with the Pareto front."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="trade-off sweep over pruning ratios",
        description="Prune at each ratio (fraction of MACs removed), measure params, MACs, latency, EPE, "
        "D1 and bad-3 of each kind of point: raw (pruned as is), recalibrated (BatchNorm statistics "
        "re-estimated on a few pairs of --data) and, with --recover-steps, recovered (a short distillation "
        "from --teacher); mark the Pareto front of each kind.",
    )
    p.add_argument("--model", required=True, help="model spec: bundled name, architecture or folder")
    p.add_argument("--ratios", default="0,0.25,0.5,0.75",
                   help="comma-separated ratios: fractions of the MACs removed")
    p.add_argument(
        "--data", default="synthetic", help="validation data with ground truth (default synthetic)"
    )
    p.add_argument("--val-pairs", type=int, default=4)
    p.add_argument("--size", default="240x320", help="HxW of latency, MACs and synthetic pairs")
    from stereo_studio.engine.importance import CRITERIA

    p.add_argument("--criterion", choices=list(CRITERIA), default="l1")
    p.add_argument("--plan", default=None, metavar="FILE.json", help="also measure this per-layer plan")
    p.add_argument("--uniform", action="store_true",
                   help="remove the same fraction of channels in every layer instead of ranking globally")
    p.add_argument("--spare", default="", metavar="LAYERS",
                   help="comma-separated layers to keep whole (e.g. the critical ones of `sensitivity`)")
    p.add_argument("--no-recalibrate", action="store_true", help="no recalibrated points")
    p.add_argument("--calib-pairs", type=int, default=8,
                   help="pairs of --data the BatchNorm statistics are re-estimated on (default 8)")
    p.add_argument("--recover-steps", type=int, default=0, metavar="N",
                   help="also measure each point after N distillation steps from --teacher (recovered)")
    p.add_argument("--finetune-steps", type=int, default=0, help=argparse.SUPPRESS)  # old --recover-steps
    p.add_argument("--teacher", default=None, help="teacher model spec for recovered points")
    p.add_argument("--json", action="store_true", help="print one JSON object per point, one per line")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.cli.prune_cmd import read_ratios
    from stereo_studio.cli.sensitivity_cmd import parse_ratios
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.sweep import sweep
    from stereo_studio.errors import StereoStudioError

    steps = args.recover_steps or args.finetune_steps
    if steps < 0:
        raise StereoStudioError(f"--recover-steps must not be negative, got {steps}")
    if steps > 0 and not args.teacher:
        raise StereoStudioError("--recover-steps needs --teacher (recovered points are distilled from it)")
    if args.calib_pairs < 1:
        raise StereoStudioError(f"--calib-pairs must be at least 1, got {args.calib_pairs}")
    plan = read_ratios(args.plan) if args.plan else None
    job = sweep(
        args.model,
        parse_ratios(args.ratios),
        args.data,
        args.val_pairs,
        teacher=args.teacher,
        plan=plan,
        size=parse_size(args.size),
        criterion=args.criterion,
        recalibrate=not args.no_recalibrate,
        recover_steps=steps,
        calib_pairs=args.calib_pairs,
        allocation="uniform" if args.uniform else "global",
        spare=[n.strip() for n in args.spare.split(",") if n.strip()],
    )
    points = run_with_progress(job, desc="sweep")
    if args.json:
        for p in points:
            print_json(p.to_json())
        return 0
    print(
        f"{'label':>6s} {'kind':>12s} {'MACs-':>6s} {'params':>9s} {'GMAC':>7s} {'ms':>7s} "
        f"{'p10-p90':>11s} {'EPE':>7s} {'D1%':>6s} {'bad3%':>6s}"
    )
    for p in points:
        spread = f"{p.p10_ms:.1f}-{p.p90_ms:.1f}" if p.p10_ms is not None else "n/a"
        print(
            f"{p.label:>6s} {p.kind:>12s} {p.macs_removed:6.1%} {p.params:9,d} {p.macs / 1e9:7.3f} "
            f"{p.latency_ms:7.1f} {spread:>11s} {p.epe:7.3f} {p.d1:6.2f} {p.bad3:6.2f}"
            f"{'  *pareto' if p.pareto else ''}{'  (contended)' if p.contended else ''}"
        )
    if points and points[0].threads is not None:
        first = points[0]
        print(f"latency: median of a few runs, {first.threads} threads, {first.precision}, "
              f"OMP_WAIT_POLICY={first.wait_policy}")
    return 0
