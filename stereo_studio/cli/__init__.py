"""`stereo-studio` command line. Each sub-command lives in its own module with `register(subparsers)`.

With no sub-command it opens the GUI. Errors print one clear line on stderr and exit non-zero
(set STEREO_STUDIO_DEBUG=1 to see the traceback instead).
"""

from __future__ import annotations

import argparse
import contextlib
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
    "cloud_cmd",
    "gui_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereo-studio",
        description="Distill-then-prune compression of real-time stereo networks. "
        "Run without a sub-command to open the window.",
    )
    from stereo_studio import __version__

    parser.add_argument("--version", action="version", version=f"stereo-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"stereo_studio.cli.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


# How each command's process is prepared before torch loads (`runtime.prepare_process`): inference
# commands measure this machine's fastest precision / threads / OpenMP wait policy on first use (a one-line
# notice, cached per machine) and apply them; the window applies the cached ones only (it must open at once);
# training commands run with passive OpenMP threads and register as a training job, so latency measurements
# wait for them (or say they ran alongside).
RUNTIME_ROLES = {"bench": "inference", "eval": "inference", "preview": "inference", "sweep": "inference",
                 "prune": "inference", "sensitivity": "inference", "gui": "inference-cached",
                 "train": "training", "distill": "training", "cloud": "inference"}


def _prepare_runtime(argv: list[str]) -> None:
    """Before the parser is built (command modules may import torch, after which OpenMP's wait policy is
    fixed): prepare this process for the command named first in `argv` (none: the window). A bench
    `--wait-policy` is applied here too, for the same reason. `--help` never triggers the probe."""
    command = next((a for a in argv if not a.startswith("-")), "gui") if argv else "gui"
    role = RUNTIME_ROLES.get(command)
    if role is None:
        return
    if role == "inference" and any(a in ("-h", "--help") for a in argv):
        role = "inference-cached"
    from stereo_studio import runtime

    runtime.prepare_process(role, force_probe="--reprobe" in argv)
    for i, arg in enumerate(argv):  # an explicit flag wins over the environment and the cache
        value = arg.split("=", 1)[1] if arg.startswith("--wait-policy=") else (
            argv[i + 1] if arg == "--wait-policy" and i + 1 < len(argv) else None)
        if value and value.upper() in ("ACTIVE", "PASSIVE") and "torch" not in sys.modules:
            runtime.set_wait_policy(value.upper())


def _runtime_for(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """A context registering training commands as training jobs (latency measurements wait for them)."""
    if RUNTIME_ROLES.get(args.command) != "training":
        return contextlib.nullcontext()
    from stereo_studio import runtime

    return runtime.training_running()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _prepare_runtime(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if importlib.util.find_spec("stereo_studio.cli.gui_cmd") is not None:  # the window exists: open it
            args = parser.parse_args(["gui"])
        else:
            parser.print_help()
            return 0
    try:
        with _runtime_for(args):
            if getattr(args, "json", False):  # stdout: JSON or nothing; every other write goes to stderr
                from stereo_studio.cli.common import json_stdout

                with json_stdout():
                    return int(args.func(args) or 0)
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("STEREO_STUDIO_DEBUG"):
            raise
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2


def error_line(exc: BaseException) -> str:
    """One line for the user: a StereoStudioError's message as is; anything else with its type name (not
    OpenCV's `error`, which would print as "error: error: ...")."""
    from stereo_studio.errors import StereoStudioError

    text = str(exc).strip()
    name = type(exc).__name__
    if not isinstance(exc, StereoStudioError) and name != "error":  # cv2.error's message names OpenCV
        text = text if text.startswith(name + ":") else f"{name}: {text}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
