"""`stereo-studio cloud`: a metric, coloured point cloud (binary PLY) of one frame from one model."""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cloud",
        help="write the 3D point cloud (binary PLY) of one pair / video frame / camera grab",
        description="Predict one frame's disparity with a model and write it as a metric point cloud "
        "coloured from the left view: binary little-endian PLY, x y z float32 + red green blue uchar, "
        "in the left rectified camera's frame (x right, y down, z forward), units in the header. "
        "Metric from a Middlebury / ETH3D calib.txt (the dataset's own when --calib is not given; mm) "
        "or an OpenCV calibration's Q (raw frames are rectified first; the calibration's units, m for "
        "`stereo-studio calibrate` files). Pixels without a valid disparity are skipped.",
    )
    p.add_argument("--model", required=True, help="sgbm | bundled model name | architecture | model folder")
    p.add_argument("--data", required=True,
                   help="a dataset folder, a video (side by side, or left.mp4,right.mp4), a recording "
                   "folder, a camera index (0 or 0,1) or 'synthetic'")
    p.add_argument("--index", type=int, default=0,
                   help="pair / frame index (camera: the grab after INDEX frames; default 0)")
    p.add_argument("--calib", default=None,
                   help="calib.txt (Middlebury / ETH3D) or an OpenCV calibration file (.yml/.xml/.json)")
    p.add_argument("--out", required=True, help="output .ply file")
    p.add_argument("--units", choices=["mm", "m"], default=None,
                   help="units of the points (default: the calibration's: mm for calib.txt, m for OpenCV)")
    p.add_argument("--max-depth", type=float, default=None,
                   help="drop points farther than this (in --units); default keep all")
    p.add_argument("--layout", choices=["sbs", "pair"], default="sbs",
                   help="videos / cameras: sbs (one side-by-side stream) or pair (two streams)")
    p.add_argument("--input-size", default=None, help="resize the frame to HxW before the model")
    p.add_argument("--max-disp", type=int, default=None,
                   help="SGBM range / max disparity of an untrained architecture (SGBM default: the "
                   "dataset's, rounded up to 16, else 64)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="network arithmetic (auto: bf16 where the CPU has it)")
    from stereo_studio.cli.live_options import add_post_filter_option, add_sgbm_option

    add_sgbm_option(p)
    add_post_filter_option(p, video=False)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
    p.set_defaults(func=run)


def _grab(source: Any, index: int) -> Any:
    """Frame `index` of a seekable source; else (cameras) the frame read after `index` others."""
    from stereo_studio.errors import SourceError

    if source.seekable:
        return source.read_at(index)
    frame = None
    for _ in range(index + 1):
        frame = source.read()
        if frame is None:
            raise SourceError(f"{source.name} ended before frame {index}")
    return frame


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import parse_size, print_json
    from stereo_studio.cli.live_options import configure_sgbm_matchers, post_filters, sgbm_params
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.live.pipeline import StereoPipeline
    from stereo_studio.live.pointcloud import DepthCalibration, calibration_for, export_point_cloud
    from stereo_studio.live.sources import open_source
    from stereo_studio.models.storage import load_matcher

    if args.index < 0:
        raise StereoStudioError(f"--index must be >= 0, got {args.index}")
    if args.max_disp is not None and args.max_disp < 1:
        raise StereoStudioError(f"--max-disp must be positive, got {args.max_disp}")
    if args.max_depth is not None and not args.max_depth > 0:
        raise StereoStudioError(f"--max-depth must be positive, got {args.max_depth}")
    if not str(args.out).lower().endswith(".ply"):
        raise StereoStudioError(f"--out {args.out}: the point cloud is written as PLY, use a .ply name")
    filters = post_filters(args, video=False)
    params = sgbm_params(args)
    input_size = parse_size(args.input_size) if args.input_size else None

    rectifier = depth_calib = None
    if args.calib is not None:
        if str(args.calib).lower().endswith(".txt"):
            depth_calib = DepthCalibration.load(args.calib)
        else:
            from stereo_studio.live.calibration import StereoCalibration
            from stereo_studio.live.rectify import Rectifier

            calib = StereoCalibration.load(args.calib)
            rectifier = Rectifier(calib) if calib.image_size is not None else calib

    with open_source(args.data, layout=args.layout) as src:
        if src.seekable and src.length is not None and args.index >= src.length:
            raise StereoStudioError(
                f"--index {args.index} is out of range: {src.name} has {src.length} frames"
            )
        frame = _grab(src, args.index)
    max_disp = args.max_disp
    if max_disp is None and args.model.strip().lower() == "sgbm":
        declared = frame.meta.get("max_disp") or (frame.meta.get("calib") or {}).get("ndisp")
        max_disp = max(16, math.ceil(float(declared) / 16) * 16) if declared else 64
    matcher = load_matcher(args.model, max_disp=max_disp, precision=args.precision)
    configure_sgbm_matchers([matcher], params)
    pipeline = StereoPipeline(None, [matcher], rectifier=rectifier, input_size=input_size,
                              post_filters=filters or None, error_maps=False)
    result = pipeline.process(frame)
    if depth_calib is None:
        depth_calib = calibration_for(result.meta, rectifier=pipeline.rectifier)
    name = next(iter(result.outputs))
    out = export_point_cloud(result, name, args.out, depth_calib, units=args.units, max_depth=args.max_depth)
    out.update(frame=frame.index, source=src.name, ms=result.outputs[name].ms, post_filters=list(filters))
    if result.gt is not None and result.valid is not None and pipeline.rectifier is None:
        import numpy as np

        gt_calib = depth_calib.to_units(out["units"])
        z = gt_calib.depth(np.where(result.valid, result.gt, np.nan).astype(np.float32))
        if np.isfinite(z).any():
            out["gt_median_depth"] = float(np.nanmedian(z))
    if args.json:
        print_json(out)
    else:
        extra = f" (ground truth {out['gt_median_depth']:.4g})" if "gt_median_depth" in out else ""
        print(f"wrote {out['points']} points to {out['path']} ({out['units']}); median depth "
              f"{out['median_depth']:.4g} {out['units']}{extra}")
    return 0
