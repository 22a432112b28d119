"""`stereo-studio importance`: per-channel importance of every prunable layer of a model."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "importance",
        help="channel importance per prunable layer",
        description="Score every output channel of every prunable layer group.",
    )
    p.add_argument("--model", required=True, help="model spec: bundled name, architecture or folder")
    p.add_argument("--criterion", choices=["l1", "l2", "bn", "taylor", "lamp"], default="l1")
    p.add_argument("--ratio", type=float, default=None, help="also list the channels this ratio removes")
    p.add_argument("--round-to", type=int, default=8, help="keep widths at multiples of this (default 8)")
    p.add_argument("--calib", type=int, default=2, help="synthetic calibration pairs for taylor (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import print_json
    from stereo_studio.engine.importance import channel_importance, default_calib_batches
    from stereo_studio.engine.pruning import load_net

    model = load_net(args.model)
    calib = None
    if args.criterion == "taylor":
        calib = default_calib_batches(args.calib, max_disp=int(model.config.get("max_disp", 64)))
    report = channel_importance(model, args.criterion, calib, round_to=args.round_to)
    if args.json:
        out = report.to_json(args.ratio)
        out["model"] = args.model
        print_json(out)
        return 0
    removed = report.removed(args.ratio) if args.ratio is not None else {}
    print(
        f"{args.model}: {args.criterion} importance, {len(report.layers)} layer groups "
        f"({report.seconds * 1000:.0f} ms)"
    )
    print(f"{'layer':32s} {'ch':>4s} {'min':>9s} {'mean':>9s} {'max':>9s}  note")
    for layer in report.layers:
        s = layer.scores
        note = "protected" if layer.protected else ""
        if layer.name in removed:
            note = f"-{len(removed[layer.name])} at {args.ratio:g}"
        print(f"{layer.name:32s} {layer.channels:4d} {s.min():9.3g} {s.mean():9.3g} {s.max():9.3g}  {note}")
    return 0
