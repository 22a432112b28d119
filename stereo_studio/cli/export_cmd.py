"""`stereo-studio export`: ONNX export with dynamic height/width, checked against PyTorch."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a network to ONNX",
        description="Export to ONNX (dynamic H/W), compare with PyTorch, time it.",
    )
    p.add_argument("--model", required=True, help="model spec: bundled name, architecture or folder")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--size", default="240x320", help="HxW for the check and timing (default 240x320)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison and timing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p, onnx=False)  # --trust-code
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.engine.export import check_export_args, export_onnx
    from stereo_studio.models.storage import load_net

    size = parse_size(args.size)
    check_export_args(args.onnx, args.opset)  # before the model is loaded and traced
    model = load_net(args.model)
    result = export_onnx(
        model, args.onnx, opset=args.opset, check=not args.no_check, size=size
    )
    result["model"] = args.model
    if args.json:
        print_json(result)
        return 0
    print(
        f"exported {args.model} to {result['path']} ({result['bytes'] / 1e6:.2f} MB, opset {result['opset']})"
    )
    if result["max_abs_diff"] is not None:
        print(
            f"max |onnx - torch| = {result['max_abs_diff']:.2e} px; onnxruntime {result['ort_ms']:.1f} ms, "
            f"torch {result['torch_ms']:.1f} ms at {result['timed_size'][0]}x{result['timed_size'][1]}"
        )
    elif "note" in result:
        print(result["note"])
    return 0
