"""`stereo-studio` command line. Each sub-command lives in its own module with `register(subparsers)`.

With no sub-command it opens the GUI. Errors print one clear line on stderr and exit non-zero
(set STEREO_STUDIO_DEBUG=1 to see the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

# Sub-command modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "eval_cmd",
    "bench_cmd",
    "generate_cmd",
    "train_cmd",
    "distill_cmd",
    "importance_cmd",
    "prune_cmd",
    "sensitivity_cmd",
    "sweep_cmd",
    "export_cmd",
    "calibrate_cmd",
    "preview_cmd",
    "gui_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereo-studio",
        description="Distill-then-prune compression of real-time stereo networks. "
        "Run without a sub-command to open the window.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"stereo_studio.cli.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if importlib.util.find_spec("stereo_studio.cli.gui_cmd") is not None:  # the window exists: open it
            args = parser.parse_args(["gui"])
        else:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("STEREO_STUDIO_DEBUG"):
            raise
        from stereo_studio.errors import StereoStudioError

        message = str(exc) if isinstance(exc, StereoStudioError) else f"{type(exc).__name__}: {exc}"
        print(f"error: {message}".splitlines()[0], file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
