"""`stereo-studio generate`: pre-generate synthetic stereo pairs to a folder (MiddEval3 layout).

Reading pre-generated pairs back is much cheaper than generating them during training, which matters on a
2-core machine. Use a seed other than the evaluation seed (0) so training pairs stay held out.
"""

from __future__ import annotations

import argparse

from stereo_studio.cli.common import check_seed, parse_size, print_json


class _HelpFormatter(argparse.HelpFormatter):
    """Lists the generator variants, one per line, only when help is shown (the registry imports OpenCV)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest != "generator":
            return action.help
        from stereo_studio.data.synthetic import GENERATORS

        names = "\n".join(f"{name}: {cfg.description}" for name, cfg in GENERATORS.items())
        return f"generator variant (default: default):\n{names}".replace("%", "%%")

    def _split_lines(self, text: str, width: int) -> list[str]:
        if "\n" not in text:
            return super()._split_lines(text, width)
        import textwrap

        return [part for line in text.splitlines()
                for part in textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False)]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="write synthetic stereo pairs with ground truth to a folder",
                              formatter_class=_HelpFormatter)
    p.add_argument("--out", required=True, help="folder to write (one MiddEval3 scene folder per pair)")
    p.add_argument("--pairs", type=int, default=1000, help="number of pairs (default 1000)")
    p.add_argument("--size", default="256x512", help="HxW of each pair (default 256x512)")
    p.add_argument("--max-disp", type=int, default=64, help="disparities stay below this (default 64)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (evaluation uses 0; default 1)")
    p.add_argument("--generator", default="default", metavar="NAME",
                   help="generator variant (default: default)")
    p.add_argument("--photos", metavar="DIR",
                   help="folder of photographs for generators that paint surfaces with them (clutter-photo; "
                        "models/fetch_photos.sh fetches the recipe's set)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import cv2

    from stereo_studio.data.datasets import write_dataset
    from stereo_studio.data.photos import photo_library
    from stereo_studio.data.synthetic import SyntheticStereo, generator_config
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.errors import StereoStudioError

    if args.pairs < 1:
        raise StereoStudioError(f"--pairs must be at least 1, got {args.pairs}")
    check_seed(args.seed)
    if args.max_disp < 1:
        raise StereoStudioError(f"--max-disp must be at least 1, got {args.max_disp}")
    try:
        generator = generator_config(args.generator)
    except ValueError as exc:
        raise StereoStudioError(f"--generator: {exc}") from None
    if args.photos is not None:
        if generator.photo_prob == 0:
            raise StereoStudioError(f"--photos: generator {generator.name!r} paints no photographs; "
                                    "choose one that does (clutter-photo)")
        try:
            photos = photo_library(str(Path(args.photos).resolve()))
        except ValueError as exc:
            raise StereoStudioError(f"--photos: {exc}") from None
        generator = dataclasses.replace(generator, photo_dir=str(photos.folder))
    elif generator.photo_prob > 0:
        raise StereoStudioError(f"--generator {generator.name} paints surfaces with photographs: give "
                                "--photos DIR (models/fetch_photos.sh fetches the recipe's set)")
    cv2.setNumThreads(1)
    h, w = parse_size(args.size)
    ds = SyntheticStereo(height=h, width=w, max_disp=args.max_disp, seed=args.seed, length=args.pairs,
                         generator=generator)
    folder = run_with_progress(write_dataset(ds, args.out), desc="generate")
    if args.json:
        print_json({"out": str(folder), "pairs": args.pairs, "size": [h, w], "seed": args.seed,
                    "generator": generator.name, "photos": generator.photo_dir})
    else:
        print(f"wrote {args.pairs} pairs ({generator.name} generator) to {folder}")
    return 0
