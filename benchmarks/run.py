"""The one benchmark entry point: `python -m benchmarks.run [--quick] [--out FILE] [--only NAME ...]`.

Writes the machine description, the date, then every known section (`benchmarks/sections/<name>.py`,
each `measure(quick) -> markdown`) in order with the time it took. A missing section gets a note, a
failing one its error; the others still run. The file is rewritten after each section, so an
interrupted run keeps what was measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import stereo_studio  # noqa: F401  first, before torch loads: applies this machine's measured OpenMP wait policy
from stereo_studio import runtime
from stereo_studio.runtime import cpu_model

SECTIONS = ["foundation", "engine", "live", "gui", "models"]  # the known sections, in report order


def all_sections() -> list[str]:
    """The known sections, then any other `benchmarks/sections/*.py` module (sorted by name)."""
    folder = Path(__file__).resolve().parent / "sections"
    extra = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__" and p.stem not in SECTIONS)
    return [*SECTIONS, *extra]


def cpu_flags() -> list[str]:
    """The SIMD features that matter for PyTorch on CPU (AVX2, AVX-512, AMX...)."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def machine_info() -> str:
    """Markdown lines describing the machine and the software."""
    import cv2
    import torch

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return "\n".join([
        f"- CPU: {cpu_model()} ({', '.join(cpu_flags()) or 'no AVX2'})",
        f"- cores available: {cores}; torch threads: {torch.get_num_threads()}; "
        f"load average at start: {load} (the machine is shared, so timings carry noise)",
        f"- Python {platform.python_version()}, torch {torch.__version__}, OpenCV {cv2.__version__}, "
        f"{platform.system()} {platform.release()}",
        f"- OpenMP wait policy of this process: {os.environ.get('OMP_WAIT_POLICY', 'default')} "
        "(from the runtime cache unless set in the environment; see the runtime section)",
    ])


def run_section(name: str, quick: bool) -> tuple[str, float]:
    """(markdown, seconds) of one section; a note when it does not exist, its error when it fails."""
    module_name = f"benchmarks.sections.{name}"
    t0 = time.perf_counter()
    if importlib.util.find_spec(module_name) is None:
        return f"_Section not available: `benchmarks/sections/{name}.py` does not exist yet._\n", 0.0
    try:
        body = importlib.import_module(module_name).measure(quick)
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc)[-6:])
        body = f"**Section failed**: `{type(exc).__name__}: {exc}`\n\n```\n{tb.rstrip()}\n```\n"
    return body, time.perf_counter() - t0


def write_report(out: Path, quick: bool = False, sections: Sequence[str] | None = None) -> str:
    """Measure `sections` (default: `all_sections()`) in order and write the report to `out`."""
    sections = all_sections() if sections is None else sections
    started = dt.datetime.now().astimezone()
    note = " Quick mode: tiny settings, the numbers are not meaningful." if quick else ""
    head = [
        "# Stereo Studio benchmarks",
        "",
        f"Written by `python -m benchmarks.run{' --quick' if quick else ''}` on "
        f"{started:%Y-%m-%d %H:%M %Z}.{note}",
        "",
        "## Machine",
        "",
        machine_info(),
        "",
    ]
    parts = ["\n".join(head)]
    out = Path(out)
    for name in sections:
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        body, seconds = run_section(name, quick)
        parts.append(f"## {name}\n\n_Took {seconds:.1f} s._\n\n{body.rstrip()}\n")
        out.write_text("\n".join(parts))
        print(f"[benchmarks] {name} done in {seconds:.1f} s", file=sys.stderr, flush=True)
    text = "\n".join(parts)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run, not real numbers)")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="report file (BENCHMARKS.md)")
    parser.add_argument("--only", nargs="+", choices=all_sections(), help="measure only these sections")
    args = parser.parse_args(argv)
    if not args.quick:  # before torch loads: the defaults every section reports come from a quiet measurement
        runtime.prepare_process("inference")
    write_report(args.out, quick=args.quick, sections=args.only)
    print(f"[benchmarks] wrote {args.out}", file=sys.stderr)
    return 0


def _exit_skipping_qt_teardown(code: int) -> None:
    """End the process. After the GUI sections ran, PySide6 objects destroyed in arbitrary order during
    interpreter finalisation aborted the full run (exit 134, "none_dealloc") once the report was written;
    skipping finalisation when a QApplication exists avoids that. Output is flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    qt = sys.modules.get("PySide6.QtWidgets")
    if qt is not None and qt.QApplication.instance() is not None:
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit_skipping_qt_teardown(main())
