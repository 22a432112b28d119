"""`stereo-studio distill`: train a student from a teacher's disparity (L1), with or without ground truth.

Unlabelled pair folders and videos are fine here: the teacher labels every pair.
"""

from __future__ import annotations

import argparse
from typing import Any

from stereo_studio.cli.train_cmd import add_common_arguments, run_training


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
    add_common_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_training(args, teacher=args.teacher, desc="distill")
