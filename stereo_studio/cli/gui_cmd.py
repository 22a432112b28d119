"""`stereo-studio gui`: open the window (the default with no sub-command), or save a screenshot and exit."""

from __future__ import annotations

import argparse

from stereo_studio.errors import StereoStudioError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gui",
        help="open the Stereo Studio window",
        description="Open the window. With --screenshot: open it with its defaults (bundled models, "
        "synthetic "
        "source), wait for the first disparity map, save a PNG of the whole window and exit.",
    )
    p.add_argument("--screenshot", metavar="OUT.png", help="save a screenshot of the window and exit")
    from stereo_studio.gui.panels import PANELS  # Qt-free: the table of panels

    p.add_argument(
        "--panel",
        metavar="NAME",
        help=f"panel to show: {', '.join(PANELS)}; a comma-separated "
        "list or 'all' saves one screenshot per panel (OUT must then contain {panel})",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="with --screenshot: do not wait for the panel's measurements, only the first disparity",
    )
    p.add_argument(
        "--size",
        metavar="WxH",
        help="window size in pixels, width x height (e.g. 1440x900); with --screenshot a comma-separated "
        "list saves one set per size (OUT must then contain {size}, e.g. shots/{size}/{panel}.png)",
    )
    p.add_argument("--data", metavar="SPEC",
                   help="data source to open: 'synthetic' or a dataset folder (default: the saved one; "
                   "screenshots: synthetic)")
    p.add_argument("--settings", metavar="FILE.ini", help="keep the settings in this file instead")
    p.set_defaults(func=run)


def _window_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise StereoStudioError(f"bad window size '{text}': expected WxH, e.g. 1440x900") from exc
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise StereoStudioError(f"bad window size '{text}': width 320-8192, height 240-8192")
    return w, h


def _window_sizes(text: str | None) -> list[tuple[int, int]]:
    """'1280x720,1920x1080' -> [(1280, 720), (1920, 1080)]."""
    return [s for part in (text or "").split(",") if part.strip() and (s := _window_size(part.strip()))]


def run(args: argparse.Namespace) -> int:
    sizes = _window_sizes(getattr(args, "size", None))
    if len(sizes) > 1 and not getattr(args, "screenshot", None):
        raise StereoStudioError("several --size values are for --screenshot sets; the window opens at one")
    size = sizes[0] if sizes else None
    from stereo_studio.gui.app import run as run_window

    return run_window(
        screenshot=getattr(args, "screenshot", None),
        panel=getattr(args, "panel", None),
        size=size,
        settings_path=getattr(args, "settings", None),
        quick=bool(getattr(args, "quick", False)),
        sizes=sizes,
        data=getattr(args, "data", None),
    )
