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
    which.add_argument("--ratio", type=float,
                       help="fraction of the model's MACs to remove, e.g. 0.5 (allocated across layers by "
                       "global importance ranking)")
    which.add_argument("--ratios", metavar="FILE.json",
                       help='per-layer ratios, fractions of each layer\'s channels: {"layer": ratio, ...}')
    from stereo_studio.engine.importance import CRITERIA

    p.add_argument("--criterion", choices=list(CRITERIA), default="l1")
    p.add_argument("--uniform", action="store_true",
                   help="remove the same fraction of channels in every layer instead of ranking globally")
    p.add_argument("--global-ranking", action="store_true", help=argparse.SUPPRESS)  # now the default
    p.add_argument("--spare", default="", metavar="LAYERS",
                   help="comma-separated layers to keep whole (e.g. the critical ones of `sensitivity`)")
    p.add_argument("--recalibrate", type=int, default=0, metavar="PAIRS",
                   help="re-estimate BatchNorm statistics on this many pairs of --data after pruning "
                   "(default 0: off; 8 is plenty)")
    p.add_argument("--round-to", type=int, default=8, help="keep widths at multiples of this (default 8)")
    p.add_argument("--finetune-steps", type=int, default=0, help="distillation fine-tune steps (default 0)")
    p.add_argument("--teacher", default=None, help="teacher model spec for the fine-tune")
    p.add_argument("--data", default="synthetic", help="fine-tune data (default synthetic)")
    p.add_argument("--size", default="240x320", help="HxW at which MACs and latency are reported")
    p.add_argument("--out", required=True, metavar="PATH", help="folder of the pruned model")
    p.add_argument("--force", action="store_true",
                   help="replace the model in an existing --out folder (never the model being pruned)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
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


def _finetune_folders(out: Path, steps: int) -> tuple[Path, ...]:
    """Where `prune_and_finetune` also writes when it fine-tunes: the raw pruned model and the run."""
    return (out.parent / f"{out.name}-pruned", out.parent / f"{out.name}-run") if steps > 0 else ()


def check_outputs(args: argparse.Namespace) -> Path:
    """Every folder the command will write, checked before any work: refuse to overwrite a model (or a
    training run) without --force, and never write over the model being pruned."""
    from stereo_studio.cli.common import check_model_out
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.models.storage import resolve_model

    source = resolve_model(args.model)
    out = check_model_out(args.out, "--out", args.force, sources=[source])
    folders = _finetune_folders(out, args.finetune_steps)
    if folders:
        check_model_out(folders[0], "--out (its -pruned folder)", args.force, sources=[source])
        run = folders[1]
        if run.exists() and (run / "config.json").exists() and not args.force:
            raise StereoStudioError(f"{run} already holds a fine-tuning run: choose another --out or "
                                    "replace it with --force")
    return out


def clear_run_folder(runs: tuple[Path, ...]) -> None:
    """With --force: remove a previous fine-tuning run (only a folder that is one: config.json inside)."""
    import shutil

    for run in runs:
        if run.is_dir() and (run / "config.json").is_file():
            shutil.rmtree(run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import check_number, clear_stale_files, parse_size, print_json
    from stereo_studio.engine.bench import measure_latency
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.pruning import layer_widths, macs_params, prune_and_finetune
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.models.storage import load_net

    size = parse_size(args.size)
    if args.round_to < 1:
        raise StereoStudioError(f"--round-to must be at least 1 (1: no rounding), got {args.round_to}")
    if args.ratio is not None:
        check_number(args.ratio, "--ratio", minimum=0.0)
        if args.ratio >= 1:
            raise StereoStudioError(f"--ratio is the share of MACs removed: below 1, got {args.ratio}")
    if args.finetune_steps < 0:
        raise StereoStudioError(f"--finetune-steps must not be negative, got {args.finetune_steps}")
    ratios = read_ratios(args.ratios) if args.ratios else None
    if args.finetune_steps > 0 and not args.teacher:
        raise StereoStudioError("--finetune-steps needs --teacher (the paper fine-tunes by distillation)")
    out = check_outputs(args)
    original = load_net(args.model)
    if args.force:
        clear_run_folder(_finetune_folders(out, args.finetune_steps)[1:])
    job = prune_and_finetune(
        args.model,
        out,
        ratio=args.ratio,
        ratios=ratios,
        criterion=args.criterion,
        round_to=args.round_to,
        allocation="uniform" if args.uniform else "global",
        finetune_steps=args.finetune_steps,
        teacher=args.teacher,
        data=args.data,
        size=size,
        spare=[n.strip() for n in args.spare.split(",") if n.strip()],
        recalibrate=max(0, args.recalibrate),
    )
    out = run_with_progress(job, desc="prune", quiet=False)
    for folder in (out, *_finetune_folders(out, args.finetune_steps)[:1]):
        clear_stale_files(folder)  # a card or training record of the model that was replaced
    pruned = load_net(str(out))
    before, after = macs_params(original, size), macs_params(pruned, size)
    # an indication beside the result, so it never waits for a training job (then it says so)
    timed = [measure_latency(m, size=size, warmup=1, runs=5, while_training=True) for m in (original, pruned)]
    lat_before, lat_after = (t["median_ms"] for t in timed)
    contended = any(t.get("contended") for t in timed)
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
        "latency_contended": contended,
        "widths": layer_widths(pruned),
        "plan": dict(pruned.meta.get("pruning", {})),
    }
    if args.json:
        print_json(result)
    else:
        print(f"pruned model saved to {out}")
        plan = pruned.meta.get("pruning", {})
        for name, what in plan.get("layers", {}).items():
            print(f"  {name:32s} {what}")
        if plan.get("summary"):
            print(f"plan: {plan['summary']}")
        print(
            f"params {before['params']:,} -> {after['params']:,}   MACs {before['macs'] / 1e9:.3f} -> "
            f"{after['macs'] / 1e9:.3f} G   latency {lat_before:.1f} -> {lat_after:.1f} ms at {args.size}"
            + (" (measured while training ran: indicative only)" if contended else "")
        )
    return 0
