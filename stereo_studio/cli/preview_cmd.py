"""`stereo-studio preview`: live disparity from cameras, videos or datasets, headless or in a small window."""

from __future__ import annotations

import argparse
import sys
from typing import Any

SYNTHETIC_DEFAULT_FRAMES = 20
SGBM_DEFAULT_MAX_DISP = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "preview",
        help="run models on a live stereo stream (camera, video, folder) and show or measure it",
        description="Per frame: grab, split / rectify, resize, infer (every --model), colour-map; with "
        "ground truth also EPE / bad-3. --headless runs without a window and reports FPS and "
        "per-stage mean ms.",
    )
    p.add_argument(
        "--source",
        required=True,
        help="camera index (0), two cameras (0,1), a video, two videos (l.mp4,r.mp4), "
        "an image-pair / dataset folder, or 'synthetic'",
    )
    p.add_argument(
        "--layout",
        choices=["sbs", "pair"],
        default="sbs",
        help="sbs: one side-by-side stream split in halves; pair: two streams (default sbs)",
    )
    p.add_argument("--calib", default=None, help="calibration file (OpenCV YAML / XML) to rectify raw frames")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="sgbm | bundled model | architecture | model folder; repeat for several (default sgbm)",
    )
    p.add_argument(
        "--max-disp",
        type=int,
        default=None,
        help=f"disparity range of SGBM / untrained architectures (SGBM default {SGBM_DEFAULT_MAX_DISP})",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="network arithmetic (auto: bf16 where the CPU has it)",
    )
    p.add_argument("--frames", type=int, default=None, help="stop after N frames (default: the whole stream)")
    p.add_argument("--size", default=None, help="frame size HxW of one view (cameras: requested size)")
    p.add_argument("--input-size", default=None, help="resize frames to HxW before the models")
    p.add_argument("--fps", type=float, default=None, help="camera frame rate / playback rate of files")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="play files at their frame rate and drop frames the models cannot keep up with "
        "(always on for cameras)",
    )
    p.add_argument("--loop", action="store_true", help="restart videos and folders at their end")
    p.add_argument("--cmap", default="turbo", help="colour map (turbo, inferno, jet, viridis, ...)")
    p.add_argument(
        "--range", default=None, metavar="MIN:MAX", help="fixed disparity colour range (default auto)"
    )
    p.add_argument(
        "--record", default=None, help="record the colour-mapped disparity to a video (.mp4 / .avi)"
    )
    p.add_argument(
        "--record-raw",
        default=None,
        metavar="DIR",
        help="record losslessly to a new folder: the views (PNG) and every model's disparity as 16-bit PNG "
        "(value / 256 = px, 0 = invalid) with timestamps in frames.csv; open it again with --source DIR",
    )
    p.add_argument(
        "--start", type=int, default=0, help="begin at frame / pair N (videos, recordings, datasets)"
    )
    p.add_argument(
        "--snapshot",
        default=None,
        metavar="DIR",
        help="save the last frame (left, 16-bit and colour disparity PNGs) to DIR",
    )
    p.add_argument("--headless", action="store_true", help="no window: run and report")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
    from stereo_studio.cli.live_options import add_post_filter_option, add_sgbm_option

    add_sgbm_option(p)
    add_post_filter_option(p)
    p.set_defaults(func=run)


def _parse_range(text: str) -> tuple[float, float]:
    from stereo_studio.errors import StereoStudioError

    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise StereoStudioError(f"bad --range '{text}': expected MIN:MAX, e.g. 0:64") from exc
    if not hi > lo:
        raise StereoStudioError(f"bad --range '{text}': MAX must be larger than MIN")
    return lo, hi


def _load_matchers(args: argparse.Namespace) -> list[Any]:
    from stereo_studio.models.storage import load_matcher

    matchers = []
    for spec in args.model or ["sgbm"]:
        max_disp = args.max_disp
        if max_disp is None and spec.strip().lower() == "sgbm":
            max_disp = SGBM_DEFAULT_MAX_DISP
        matchers.append(load_matcher(spec, max_disp=max_disp, precision=args.precision))
    return matchers


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import check_max_disp, check_number, parse_size, print_json
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.live.calibration import StereoCalibration
    from stereo_studio.live.pipeline import StereoPipeline
    from stereo_studio.live.recording import DisparityRecorder, save_snapshot
    from stereo_studio.live.sources import open_source

    if args.frames is not None and args.frames < 1:
        raise StereoStudioError(f"--frames must be at least 1, got {args.frames}")
    check_max_disp(args.max_disp)
    check_number(args.fps, "--fps", positive=True)
    from stereo_studio.cli.live_options import configure_sgbm_matchers, post_filters, sgbm_params

    filters, params = post_filters(args), sgbm_params(args)
    if args.start < 0:
        raise StereoStudioError(f"--start must be >= 0, got {args.start}")
    size = parse_size(args.size) if args.size else None
    input_size = parse_size(args.input_size) if args.input_size else None
    disp_range = _parse_range(args.range) if args.range else None
    limit = None
    if args.source.strip().lower() == "synthetic":
        limit = args.frames or SYNTHETIC_DEFAULT_FRAMES
    matchers = _load_matchers(args)
    configure_sgbm_matchers(matchers, params)

    calib = StereoCalibration.load(args.calib) if args.calib else None
    with open_source(
        args.source, layout=args.layout, size=size, fps=args.fps, loop=args.loop, limit=limit
    ) as src:
        if calib is not None and src.size is not None:
            calib.check_size(src.size, what=f"the frames of {src.name}")
        if args.start:
            src.seek(args.start)
        pipeline = StereoPipeline(
            src,
            matchers,
            rectifier=calib,
            input_size=input_size,
            colormap=args.cmap,
            disp_range=disp_range,
            realtime=True if args.realtime else None,
            post_filters=filters or None,
        )
        recorder = DisparityRecorder(args.record, fps=src.fps or 30.0) if args.record else None
        raw = _raw_recorder(args.record_raw, src, calib) if args.record_raw else None
        if raw is not None:
            from stereo_studio.live.playback import RecorderGroup

            recorder = RecorderGroup([recorder, raw])
        try:
            job = pipeline.run(max_frames=args.frames)
            if args.headless:
                last = _run_headless(job, recorder)
            else:  # Qt only on this path: the engine and the headless run never import it
                from stereo_studio.gui.simple_preview import run_preview_window

                last = run_preview_window(job, recorder, src.name)
        finally:
            if recorder is not None:
                recorder.close()
        summary = pipeline.summary()
    if args.snapshot and last is not None:
        summary["snapshot"] = {k: str(v) for k, v in save_snapshot(args.snapshot, last).items()}
    if args.record:
        summary["recorded"] = {"path": str(args.record), "frames": recorder.frames}
    if raw is not None:
        summary["recorded_raw"] = {"path": str(raw.path), "frames": raw.frames, "models": list(raw.models)}
    out = {"frames": summary["frames"], "fps": summary["fps"]}
    out.update({stage: summary["ms"][stage] for stage in ("grab", "rectify", "infer", "colormap")})
    out.update(summary)
    if args.json:
        print_json(out)
    else:
        _print_summary(out)
    if summary["error"]:
        print(f"error: {summary['error']}", file=sys.stderr)
        return 1
    return 0


def _raw_recorder(directory: str, src: Any, calib: Any) -> Any:
    """A lossless recorder, with the depth calibration of rectified frames when one is known."""
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.live.playback import RawRecorder

    depth = None
    if calib is not None:
        from stereo_studio.live.pointcloud import DepthCalibration

        try:
            depth = DepthCalibration.from_stereo_calibration(calib).to_dict()
        except StereoStudioError:
            depth = None  # no image size in the file: the recording just has no calibration
    return RawRecorder(directory, fps=src.fps, source=src.name, calib=depth)


def _run_headless(job, recorder) -> Any:
    """Drive the pipeline job with a progress bar on stderr; Ctrl-C ends a camera preview with its summary.
    Returns the last FrameResult."""
    from tqdm import tqdm

    last = None
    with tqdm(desc="preview", unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        try:
            for event in job:
                if event.kind == "warning":  # each kind once per run
                    tqdm.write(f"warning: {event.message}", file=sys.stderr)
                if event.kind != "frame":
                    continue
                last = event.payload
                if recorder is not None:
                    recorder.write_result(last)
                bar.total = event.total
                bar.update(1)
                bar.set_postfix(fps=f"{event.metrics['fps']:.1f}", refresh=False)
        except KeyboardInterrupt:
            pass
        finally:
            job.close()
    return last


def _print_summary(out: dict[str, Any]) -> None:
    print(f"frames   {out['frames']}  ({out['fps']:.1f} FPS end to end)")
    print("stage ms " + "  ".join(f"{k} {out[k]:.1f}" for k in ("grab", "rectify", "infer", "colormap")))
    lat = out.get("latency_ms") or {}
    if lat:
        print(f"latency  mean {lat['mean']:.1f} ms, p95 {lat['p95']:.1f} ms (capture to display)")
    if out.get("dropped"):
        print(f"dropped  {out['dropped']} of {out['captured']} captured frames")
    for name, m in (out.get("models") or {}).items():
        extra = f"  EPE {m['epe']:.2f}  bad-3 {m['bad3']:.1f} %" if "epe" in m else ""
        print(f"model    {name}: {m['ms']:.1f} ms{extra}")
