"""`stereo-studio distill`: train a student from a teacher's disparity (L1), with or without ground truth.

Unlabelled pair folders and videos are fine here: the teacher labels every pair.
"""

from __future__ import annotations

import argparse
from typing import Any

from stereo_studio.cli.train_cmd import add_common_arguments, run_training

# engine.losses.SPARSITY_METHODS, spelled out so that building the parser does not import torch (a test
# keeps the two equal)
SPARSITY_METHOD_CHOICES = ("group", "slimmable", "groupnorm", "bn")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "distill", help="distill a student from a teacher model",
        description="Distillation: the student learns the teacher's disparity (L1), optionally mixed with "
        "ground truth (--w-gt) and feature distillation (--w-feat). Also fine-tunes pruned models "
        "(--init-from).")
    p.add_argument("--teacher", required=True, metavar="MODEL", help="teacher model (bundled name or folder)")
    p.add_argument("--w-teacher", type=float, default=None,
                   help="weight of the L1 to the teacher (default 1)")
    p.add_argument("--w-feat", type=float, default=0.0,
                   help="weight of feature distillation (default 0: off)")
    p.add_argument("--feat-names", default="",
                   help="features to distill, comma-separated 'name' or 'student:teacher' (default: shared)")
    p.add_argument("--teacher-cache", default=None, metavar="DIR",
                   help="compute the teacher's disparity once per pair of the dataset folders (kept in DIR, "
                   "keyed by teacher, data and max disparity; reused by later runs) and crop it like the "
                   "images, instead of running the teacher on every batch; not for synthetic data or videos")
    p.add_argument("--cache-only", action="store_true",
                   help="only fill --teacher-cache (keyed as the run with these options would key it), then "
                   "stop: no training, no --out; for runs started later or side by side")
    ready = p.add_argument_group("prune-ready training (group sparsity, so that pruning costs little)")
    ready.add_argument("--prune-ready", action="store_true",
                       help="regularise the channel groups the pruning engine would remove at --target-ratio "
                       "towards zero; their norms are logged to metrics.jsonl (kind \"sparsity\")")
    ready.add_argument("--sparsity-reg", type=float, default=20.0,
                       help="regularisation strength (default 20: a channel meant to go loses lr x 20 of its "
                       "norm per step; for groupnorm / bn it is their gradient penalty, ~1e-4)")
    ready.add_argument("--target-ratio", type=float, default=0.5,
                       help="fraction of the MACs the student is made ready to lose (default 0.5)")
    ready.add_argument("--sparsity-start", type=float, default=0.0,
                       help="fraction of the steps trained at full width before the regularisation starts "
                       "(default 0; it then grows over a fifth of the steps)")
    ready.add_argument("--sparsity-method", choices=SPARSITY_METHOD_CHOICES, default="group",
                       help="group: group lasso on the channels meant to go (default); slimmable: the same "
                       "plus a second pass each step with them removed (the network learns to work pruned; "
                       "re-estimate BatchNorm statistics after pruning); groupnorm: Torch-Pruning's "
                       "GroupNormPruner; bn: its BNScalePruner (L1 on BN scales)")
    add_common_arguments(p, out_required=False)
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stereo_studio.errors import StereoStudioError

    if args.cache_only:
        return _cache_only(args)
    if not args.out:
        raise StereoStudioError("--out is required: the run folder (config, metrics, checkpoints, model)")
    return run_training(args, teacher=args.teacher, desc="distill")


def _cache_only(args: argparse.Namespace) -> int:
    """`--cache-only`: the teacher cache filled with a progress bar, its folder printed (or as JSON)."""
    import os

    from stereo_studio.cli.common import print_json
    from stereo_studio.cli.train_cmd import check_arguments, config_from_args
    from stereo_studio.errors import StereoStudioError

    if not args.teacher_cache:
        raise StereoStudioError("--cache-only needs --teacher-cache DIR (where the teacher's disparity goes)")
    if args.init_from and args.arch:
        raise StereoStudioError("give either --arch or --init-from, not both")
    check_arguments(args)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as training runs it (set before torch loads)
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.training import cache_teacher

    folder = run_with_progress(cache_teacher(config_from_args(args, args.teacher)), desc="teacher cache")
    if args.json:
        print_json({"teacher_cache": str(folder)})
    else:
        print(f"teacher cache complete in {folder}")
    return 0
