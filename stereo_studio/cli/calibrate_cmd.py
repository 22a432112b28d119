"""`stereo-studio calibrate`: stereo calibration from chessboard pairs, written as OpenCV YAML / XML."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate a stereo camera from chessboard image pairs",
        description="Find chessboard corners in left / right image pairs (image_list.xml, left/ + right/ "
        "folders, or leftNN / rightNN names), calibrate each camera, then the pair, compute the "
        "rectification and write K1, D1, K2, D2, R, T, E, F, R1, R2, P1, P2, Q to an OpenCV "
        "FileStorage file. T and the baseline are in metres.",
    )
    p.add_argument("--images", required=True, help="folder of chessboard image pairs (or an image_list.xml)")
    p.add_argument("--board", default="9x6", help="inner corners per row x per column (default 9x6)")
    p.add_argument("--square", type=float, default=25.0, help="chessboard square size in mm (default 25)")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.0,
        help="rectification scaling: 0 keeps only valid pixels, 1 keeps every source pixel",
    )
    p.add_argument("--out", required=True, help="calibration file to write (.yml, .yaml, .xml or .json)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import check_number, check_writable_file, print_json
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.live.calibration import CALIB_EXTENSIONS, calibrate_stereo, parse_board

    check_number(args.square, "--square (mm)", positive=True)
    check_number(args.alpha, "--alpha", minimum=0.0, maximum=1.0)
    board = parse_board(args.board)
    check_writable_file(args.out, "--out", sorted(CALIB_EXTENSIONS))  # before the corners are searched
    result = run_with_progress(
        calibrate_stereo(args.images, board, args.square, args.alpha), desc="calibrate"
    )
    path = result.calibration.save(args.out)
    summary = result.summary()
    summary["out"] = str(path)
    if args.json:
        print_json(summary)
    else:
        print(
            f"pairs used      {result.pairs_used}"
            + (f" (no board in: {', '.join(result.pairs_rejected)})" if result.pairs_rejected else "")
        )
        print(
            f"RMS reprojection {result.rms:.3f} px (left {result.rms_left:.3f}, right {result.rms_right:.3f})"
        )
        print(f"baseline        {summary['baseline_mm']:.1f} mm")
        print(
            f"mean |dy|       {result.mean_abs_dy:.3f} px after rectification (max {result.max_abs_dy:.2f})"
        )
        print(f"written         {path}")
    return 0
