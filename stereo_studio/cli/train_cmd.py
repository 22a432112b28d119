"""`stereo-studio train`: supervised training of a stereo network (teacher or from-scratch student).

Also holds the options and the runner shared with `stereo-studio distill`. Works under
`torchrun --nproc_per_node N -m stereo_studio train ...` (DDP; only rank 0 prints and writes).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_common_arguments(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    """Options shared by `train` and `distill` (`distill --cache-only` has no --out: distill checks it)."""
    p.add_argument("--arch", default=None, help="architecture to build (default: student)")
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help='architecture overrides for --arch, e.g. \'{"agg_channels": 64}\' (or a .json file); '
                   "with --init-from, that model grown (wider widths, or a stage an option adds), "
                   "starting out predicting exactly what it did")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this model (bundled name, folder, pruned model), not a fresh --arch")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic', a dataset folder, a side-by-side video (distill only), or a "
                   "comma-separated list of them (mixed)")
    p.add_argument("--video-frames", type=int, default=500, help="frames taken from a video (default 500)")
    p.add_argument("--val-data", default=None, help="validation data (default: a held-out split)")
    p.add_argument("--val-pairs", type=int, default=8, help="validation pairs (default 8)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--out", required=out_required, metavar="RUN",
                   help="run folder (config, metrics, checkpoints, model)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", default="192x320", help="training crop HxW (default 192x320)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", choices=["cosine", "onecycle", "constant"], default="cosine")
    p.add_argument("--warmup", type=int, default=None, metavar="STEPS", help="warm-up steps")
    p.add_argument("--val-interval", type=int, default=500)
    p.add_argument("--ckpt-interval", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-disp", type=int, default=None, help="maximum disparity (default: the model's)")
    p.add_argument("--w-gt", type=float, default=None, help="weight of the ground-truth smooth-L1 loss")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="bf16 autocast or fp32 (auto: bf16 where the CPU has native bf16 kernels)")
    p.add_argument("--synthetic-size", default=None, metavar="HxW",
                   help="size of generated pairs (default: the crop + 32x64)")
    p.add_argument("--synthetic-pairs", type=int, default=4000, help="generated pairs (default 4000)")
    p.add_argument("--cache-mb", type=int, default=2000,
                   help="keep up to this many MB of training pairs in memory (default 2000; 0: off)")
    p.add_argument("--no-augment", action="store_true", help="no photometric augmentation")
    p.add_argument("--aug-scale", default=None, metavar="LO,HI",
                   help="resize each training pair by a random factor in [LO, HI] (log-uniform; disparity "
                        "scaled with it) before cropping, e.g. 0.7,1.3 (default: no scaling)")
    p.add_argument("--aug-scale-prob", type=float, default=1.0, metavar="P",
                   help="resize only this fraction of the pairs with --aug-scale; the others keep their "
                        "native scale (default 1: all)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep a moving average of the weights and BatchNorm statistics with this decay per "
                        "step (e.g. 0.999); validation scores it and it is the saved model (default 0: off)")
    p.add_argument("--edge-weight", type=float, default=0.0, metavar="W",
                   help="count pixels within 3 px of a depth edge (of the ground truth, else of the teacher"
                        "'s disparity) 1+W times in the losses (default 0: all pixels alike)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a stereo network on ground truth",
                              description="Supervised training (a teacher, or a from-scratch student).")
    add_common_arguments(p)
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p, onnx=False)  # --trust-code
    p.set_defaults(func=run)


def check_arguments(args: argparse.Namespace) -> None:
    """One clear line naming the option for each value that cannot work, before the run folder exists."""
    from stereo_studio.cli.common import check_max_disp, check_number, check_seed

    check_seed(args.seed)
    check_max_disp(args.max_disp)
    check_number(args.lr, "--lr", positive=True)
    check_number(args.weight_decay, "--weight-decay", minimum=0.0)
    for option in ("w_gt", "w_teacher", "w_feat"):
        check_number(getattr(args, option, None), "--" + option.replace("_", "-"), minimum=0.0)
    for option in ("steps", "batch_size", "val_interval", "ckpt_interval", "val_pairs", "video_frames",
                   "synthetic_pairs"):
        value = getattr(args, option)
        if value < 1:
            from stereo_studio.errors import StereoStudioError

            raise StereoStudioError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.warmup is not None and args.warmup < 0:
        from stereo_studio.errors import StereoStudioError

        raise StereoStudioError(f"--warmup must not be negative, got {args.warmup}")


MAX_PARAMS = 250_000_000  # 1 GB of fp32 weights: far beyond anything a 2-core CPU trains


def _check_model_config(arch: str, overrides: dict[str, Any]) -> None:
    """Build the architecture on the meta device (nothing allocated): a bad or absurd width names
    --model-config instead of failing deep in training (or allocating what it asks for)."""
    import torch

    from stereo_studio.errors import ModelError, StereoStudioError
    from stereo_studio.models.registry import architecture_names, build_model, default_config

    if arch not in architecture_names():
        return  # training names the unknown architecture
    try:
        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(default_config(arch, **overrides)).parameters())
    except ModelError as exc:
        raise StereoStudioError(f"--model-config: {exc}") from exc
    if params > MAX_PARAMS:
        raise StereoStudioError(f"--model-config: these widths give {params / 1e6:,.0f} M parameters "
                                f"({params * 4 / 1e9:.1f} GB of weights); at most {MAX_PARAMS / 1e6:.0f} M")


def config_from_args(args: argparse.Namespace, teacher: str | None = None) -> Any:
    """A TrainConfig from parsed arguments."""
    from stereo_studio.cli.common import parse_size
    from stereo_studio.engine.training import TrainConfig

    specs = [s.strip() for s in str(args.data).split(",") if s.strip()]
    overrides = _model_overrides(args.model_config)
    if overrides and not args.init_from:
        _check_model_config(args.arch or "student", overrides)
    return TrainConfig(
        arch=None if args.init_from else (args.arch or "student"),
        model_overrides=overrides,
        init_from=args.init_from,
        teacher=teacher,
        data=specs,
        val_data=args.val_data,
        val_pairs=args.val_pairs,
        val_interval=args.val_interval,
        steps=args.steps,
        batch_size=args.batch_size,
        crop=parse_size(args.crop),
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_steps=args.warmup,
        w_gt=args.w_gt,
        w_teacher=getattr(args, "w_teacher", None),
        w_feat=getattr(args, "w_feat", None) or 0.0,
        feat_names=[s for s in (getattr(args, "feat_names", "") or "").split(",") if s],
        ckpt_interval=args.ckpt_interval,
        seed=args.seed,
        precision=args.precision,
        threads=args.threads,
        max_disp=args.max_disp,
        synthetic_size=parse_size(args.synthetic_size) if args.synthetic_size else None,
        augment=not args.no_augment,
        aug_scale=_aug_scale(args.aug_scale),
        aug_scale_prob=args.aug_scale_prob,
        ema=args.ema,
        edge_weight=args.edge_weight,
        synthetic_pairs=args.synthetic_pairs,
        cache_mb=args.cache_mb,
        video_frames=args.video_frames,
        teacher_cache=getattr(args, "teacher_cache", None),
        **_prune_ready_fields(args),
    )


def _aug_scale(text: str | None) -> tuple[float, float] | None:
    """`--aug-scale LO,HI` as a range, one clear line when it is not one."""
    from stereo_studio.errors import StereoStudioError

    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise StereoStudioError(f"--aug-scale: expected LO,HI (e.g. 0.7,1.3), got {text!r}") from None
    if not 0 < lo <= hi:
        raise StereoStudioError(f"--aug-scale: expected 0 < LO <= HI, got {text!r}")
    return lo, hi


def _prune_ready_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The prune-ready options (`distill --prune-ready ...`; absent from `train`: defaults)."""
    if not getattr(args, "prune_ready", False):
        return {}
    return {"prune_ready": True, "sparsity_reg": args.sparsity_reg, "target_ratio": args.target_ratio,
            "sparsity_method": args.sparsity_method, "sparsity_start": args.sparsity_start}


def _model_overrides(text: str | None) -> dict[str, Any]:
    import json
    from pathlib import Path

    from stereo_studio.errors import StereoStudioError

    if not text:
        return {}
    source = Path(text).read_text() if text.strip().endswith(".json") and Path(text).is_file() else text
    try:
        value = json.loads(source)
    except json.JSONDecodeError as exc:
        raise StereoStudioError(f"--model-config is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StereoStudioError("--model-config must be a JSON object, e.g. '{\"agg_channels\": 64}'")
    return value


def run_training(args: argparse.Namespace, teacher: str | None, desc: str) -> int:
    """Run the training job with a progress bar; print where the model went (or a JSON summary)."""
    # Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a busy machine spinning
    # threads burn their time slices (measured here: 2.6 vs 0.55 CPU-s per student step); set it to ACTIVE
    # to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import json
    from pathlib import Path

    from stereo_studio.cli.common import print_json
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.training import train

    if args.init_from and args.arch:
        from stereo_studio.errors import StereoStudioError

        raise StereoStudioError("give either --arch or --init-from, not both")
    check_arguments(args)
    from stereo_studio.models.onnx_net import frozen_error, is_onnx_spec

    if args.init_from and is_onnx_spec(args.init_from):  # frozen: a teacher, never a student
        raise frozen_error(args.init_from, "trained or fine-tuned (give it as --teacher)")
    config = config_from_args(args, teacher)
    main_rank = os.environ.get("RANK", "0") == "0"
    job = _echo_events(train(config, args.out, resume=args.resume), quiet=not main_rank)
    model_dir = run_with_progress(job, desc=desc, quiet=not main_rank)
    if not main_rank:
        return 0
    if args.json:
        summary_path = Path(args.out) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"model": str(model_dir)}
        print_json(summary)
    else:
        print(f"model saved to {model_dir}")
    return 0


def _echo_events(job: Any, quiet: bool) -> Any:
    """Pass a job through, printing validation and checkpoint events as lines above the progress bar."""
    from tqdm import tqdm

    from stereo_studio.engine.jobs import JobRun

    with JobRun(job) as run:
        for event in run:
            if not quiet and event.kind in ("validation", "checkpoint"):
                tqdm.write(f"step {event.step}: {event.message}", file=sys.stderr)
            yield event
    return run.result


def run(args: argparse.Namespace) -> int:
    return run_training(args, teacher=None, desc="train")
