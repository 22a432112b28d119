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
    from stereo_studio.engine.importance import CRITERIA_REGISTRY

    p.add_argument("--criterion", choices=list(CRITERIA_REGISTRY), default="l1",
                   help="; ".join(f"{c.name}: {c.description}" for c in CRITERIA_REGISTRY.values()))
    p.add_argument("--ratio", type=float, default=None,
                   help="also show what this ratio (fraction of MACs removed) removes from each layer")
    p.add_argument("--round-to", type=int, default=8, help="keep widths at multiples of this (default 8)")
    p.add_argument("--calib", type=int, default=2, help="synthetic calibration pairs for taylor (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p, onnx=False)  # --trust-code
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import print_json
    from stereo_studio.engine.importance import channel_importance, default_calib_batches, get_criterion
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.models.storage import load_net

    if args.round_to < 1:
        raise StereoStudioError(f"--round-to must be at least 1 (1: no rounding), got {args.round_to}")
    model = load_net(args.model)
    if args.ratio is not None and not 0.0 <= args.ratio < 1.0:
        raise StereoStudioError(f"--ratio is the share of MACs removed: in [0, 1), got {args.ratio}")
    calib = None
    if get_criterion(args.criterion).needs_gradients:
        calib = default_calib_batches(args.calib, max_disp=int(model.config.get("max_disp", 64)))
    report = channel_importance(model, args.criterion, calib, round_to=args.round_to)
    if args.json:
        out = report.to_json(args.ratio)
        out["model"] = args.model
        print_json(out)
        return 0
    plan = report.plan(args.ratio) if args.ratio is not None else None
    print(
        f"{args.model}: {args.criterion} importance, {len(report.layers)} layer groups "
        f"({report.seconds * 1000:.0f} ms)"
    )
    print(f"{'layer':32s} {'ch':>4s} {'min':>9s} {'mean':>9s} {'max':>9s}  note")
    for layer in report.layers:
        s = layer.scores
        note = f"protected: {layer.reason}" if layer.protected else ""
        if plan is not None and not layer.protected:
            note = plan.layer(layer.name).describe()
        if layer.fallback:
            note += f" (scored by {layer.fallback})"
        print(f"{layer.name:32s} {layer.channels:4d} {s.min():9.3g} {s.mean():9.3g} {s.max():9.3g}  {note}")
    if plan is not None:
        print(f"ratio {args.ratio:g}: {plan.summary()}")
    return 0
