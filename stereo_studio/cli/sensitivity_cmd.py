"""`stereo-studio sensitivity`: prune each layer alone at several ratios and measure the EPE change."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sensitivity",
        help="per-layer pruning sensitivity",
        description="Prune every prunable layer alone at each ratio; report the EPE "
        "change on a few validation pairs, and a per-layer plan for a MAC budget.",
    )
    p.add_argument("--model", required=True, help="model spec: bundled name, architecture or folder")
    p.add_argument(
        "--data", default="synthetic", help="validation data with ground truth (default synthetic)"
    )
    p.add_argument("--ratios", default="0.25,0.5,0.75", help="comma-separated ratios (default 0.25,0.5,0.75)")
    p.add_argument("--val-pairs", type=int, default=8)
    p.add_argument("--size", default="240x320", help="HxW of synthetic pairs and of MACs (default 240x320)")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: every prunable one)")
    from stereo_studio.engine.importance import CRITERIA

    p.add_argument("--criterion", choices=list(CRITERIA), default="l1")
    p.add_argument("--recalibrate", action="store_true",
                   help="measure every row after re-estimating BatchNorm statistics on 8 pairs of --data")
    p.add_argument(
        "--target-macs",
        type=float,
        default=0.5,
        help="fraction of the MACs the suggested plan keeps (default 0.5)",
    )
    p.add_argument(
        "--plan-out",
        default=None,
        metavar="FILE.json",
        help="write the suggested plan here (usable as prune --ratios)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p, onnx=False)  # --trust-code
    p.set_defaults(func=run)


def parse_ratios(text: str) -> list[float]:
    from stereo_studio.errors import StereoStudioError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise StereoStudioError(f"bad ratio list '{text}': expected e.g. 0.25,0.5,0.75") from exc
    if not values or any(not 0.0 <= v < 1.0 for v in values):
        raise StereoStudioError(f"bad ratio list '{text}': ratios must be in [0, 1)")
    return values


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.sensitivity import sensitivity, suggest_plan
    from stereo_studio.models.storage import load_net

    size = parse_size(args.size)
    model = load_net(args.model)
    layers = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    job = sensitivity(
        model, args.data, parse_ratios(args.ratios), args.val_pairs, size, args.criterion, layers=layers,
        recalibrate=args.recalibrate,
    )
    table = run_with_progress(job, desc="sensitivity")
    plan = suggest_plan(table, args.target_macs, model=model, size=size)
    if args.plan_out:
        Path(args.plan_out).write_text(json.dumps(plan, indent=2))
    if args.json:
        out = table.to_json()
        out.update(model=args.model, suggested_plan=plan, target_macs=args.target_macs)
        print_json(out)
        return 0
    print(f"{args.model}: baseline EPE {table.base_epe:.3f} px, {table.base_macs / 1e9:.3f} GMAC")
    print(f"{'layer':32s} {'ratio':>5s} {'kept':>9s} {'dEPE':>8s} {'GMAC':>7s}")
    for r in table.rows:
        print(
            f"{r.layer:32s} {r.ratio:5.2f} {r.kept:4d}/{r.channels:<4d} "
            f"{r.delta_epe:+8.3f} {r.macs / 1e9:7.3f}"
        )
    critical = table.critical()
    if critical:
        print(f"critical (one cut alone at least doubles EPE; spare them: --spare {','.join(critical)})")
    print(f"suggested plan for {args.target_macs:.0%} MACs: {json.dumps(plan)}")
    return 0
