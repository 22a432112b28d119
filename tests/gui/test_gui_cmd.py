"""`stereo-studio gui`: arguments, errors, and screenshots of every panel in a real X server (Xvfb)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stereo_studio.cli import build_parser, main
from stereo_studio.cli.gui_cmd import _window_size
from stereo_studio.errors import StereoStudioError
from stereo_studio.gui.main_window import PANELS

REPO = Path(__file__).resolve().parents[2]


def test_arguments():
    args = build_parser().parse_args(
        ["gui", "--screenshot", "x.png", "--panel", "pruning", "--size", "1200x800"]
    )
    assert (args.screenshot, args.panel, args.size) == ("x.png", "pruning", "1200x800")
    assert _window_size("1200x800") == (1200, 800)
    with pytest.raises(StereoStudioError, match="WxH"):
        _window_size("big")


def test_unknown_panel_is_a_clear_error(capsys, tmp_path):
    assert main(["gui", "--screenshot", str(tmp_path / "x.png"), "--panel", "nope"]) == 2
    assert "unknown panel 'nope'" in capsys.readouterr().err
    assert main(["gui", "--screenshot", str(tmp_path / "x.png"), "--panel", "all"]) == 2
    assert "{panel}" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)  # its subprocess may take up to 600 s
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_screenshots_under_xvfb(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), STEREO_STUDIO_SETTINGS=str(tmp_path / "s.ini"))
    env.pop("QT_QPA_PLATFORM", None)  # a real X server, not the offscreen platform
    out = tmp_path / "{panel}.png"
    cmd = [
        "xvfb-run",
        "-a",
        "-s",
        "-screen 0 1600x1000x24",
        sys.executable,
        "-m",
        "stereo_studio",
        "gui",
        "--screenshot",
        str(out),
        "--panel",
        "all",
        "--quick",
        "--size",
        "1280x800",
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PySide6.QtGui import QImage

    for name in PANELS:
        image = QImage(str(tmp_path / f"{name}.png"))
        assert not image.isNull(), name
        assert (image.width(), image.height()) == (1280, 800)
        assert (
            len({image.pixel(x, y) for x in range(0, 1280, 40) for y in range(0, 800, 40)}) > 8
        )  # not blank
