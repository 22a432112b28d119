"""`stereo-studio eval`: score a model (or SGBM) on a dataset: EPE, bad-x, D1 and time per pair."""

from __future__ import annotations

import argparse
import math
from typing import Any

SYNTHETIC_DEFAULT_LIMIT = 20
SYNTHETIC_SEED = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model or SGBM on a dataset (EPE, bad-x, D1, ms per pair)",
        description="Evaluate a model on a dataset with ground truth. Metrics are pixel-weighted over all "
        "valid pixels; bad-x and D1 are percentages.",
    )
    p.add_argument("--model", required=True,
                   help="sgbm | bundled model name | architecture name | model folder")
    p.add_argument("--data", required=True, help="dataset folder (any supported layout) or 'synthetic'")
    p.add_argument("--max-disp", type=int, default=None,
                   help="SGBM range / max disparity of an architecture built by name "
                   "(default: the model's own; SGBM: the dataset's, rounded up to 16, else 64)")
    p.add_argument("--limit", type=int, default=None,
                   help=f"evaluate at most K pairs (synthetic default {SYNTHETIC_DEFAULT_LIMIT})")
    p.add_argument("--size", default=None,
                   help="HxW: size of synthetic pairs; dataset pairs are resized to it (disparity scaled)")
    p.add_argument("--seed", type=int, default=SYNTHETIC_SEED, help="seed of synthetic pairs")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="network arithmetic (auto: bf16 where the CPU has it)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    from stereo_studio.cli.model_options import add_model_options

    add_model_options(p)  # --trust-code, --onnx-config
    from stereo_studio.cli.live_options import add_post_filter_option, add_sgbm_option

    add_sgbm_option(p)
    add_post_filter_option(p, video=False)
    p.set_defaults(func=run)


def _round16(value: float) -> int:
    return max(16, math.ceil(value / 16.0) * 16)


def dataset_max_disp(dataset: Any) -> float | None:
    """The dataset's declared max disparity (attribute, else the first pair's meta), or None."""
    value = getattr(dataset, "max_disp", None)
    if value is None:
        try:
            value = dataset[0].meta.get("max_disp")
        except (TypeError, IndexError, KeyError):
            value = None
    return float(value) if value else None


def run(args: argparse.Namespace) -> int:
    from stereo_studio.cli.common import check_max_disp, check_seed, parse_size, print_json
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.errors import StereoStudioError
    from stereo_studio.models.storage import load_matcher

    if args.limit is not None and args.limit < 1:
        raise StereoStudioError(f"--limit must be at least 1, got {args.limit}")
    check_max_disp(args.max_disp)
    check_seed(args.seed)
    from stereo_studio.cli.live_options import configure_sgbm_matchers, post_filters, sgbm_params

    filters, params = post_filters(args, video=False), sgbm_params(args)
    synthetic = args.data.strip().lower() == "synthetic"
    kwargs: dict[str, Any] = {"limit": args.limit}
    if args.size is not None:
        kwargs["size"] = parse_size(args.size)
    if synthetic:
        kwargs.update(limit=args.limit or SYNTHETIC_DEFAULT_LIMIT, seed=args.seed, max_disp=args.max_disp)
    dataset = open_dataset(args.data, **kwargs)

    max_disp = args.max_disp
    if max_disp is None and args.model.strip().lower() == "sgbm":
        declared = dataset_max_disp(dataset)
        max_disp = _round16(declared) if declared else 64
    matcher = load_matcher(args.model, max_disp=max_disp, precision=args.precision)
    configure_sgbm_matchers([matcher], params)
    job = evaluate(matcher, dataset, limit=kwargs["limit"], post_filters=filters or None)
    result = run_with_progress(job, desc="eval")
    if params is not None:
        result["sgbm"] = matcher.params()
    result["max_disp"] = int(getattr(matcher, "max_disp", max_disp or 0)) or None
    if args.json:
        print_json(_finite_or_none(result))
    else:
        print(format_table(result))
    return 0


def _finite_or_none(value: Any) -> Any:
    """NaN (a pair without valid pixels) becomes null, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def format_table(result: dict[str, Any]) -> str:
    """A readable summary of an `evaluate` result."""
    keys = ("epe", "bad0_5", "bad1", "bad2", "bad3", "d1")
    heads = ("EPE px", "bad-0.5 %", "bad-1 %", "bad-2 %", "bad-3 %", "D1 %")
    mean = result.get("per_image_mean", {})
    lines = [
        f"model {result['model']} (max disparity {result.get('max_disp')}) on {result['data']}: "
        f"{result['pairs']} pairs, {result['pixels']} valid pixels, {result['ms_per_pair']:.1f} ms per pair",
        f"{'':<16}" + "".join(f"{h:>11}" for h in heads),
        f"{'pixel-weighted':<16}" + "".join(f"{result[k]:>11.3f}" for k in keys),
    ]
    if mean:
        lines.append(f"{'per-image mean':<16}" + "".join(f"{mean[k]:>11.3f}" for k in keys))
    return "\n".join(lines)
