"""`stereo-studio --version`, and `gui --size` lists for screenshot sets at several window sizes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stereo_studio import __version__
from stereo_studio.cli import main
from stereo_studio.cli.gui_cmd import _window_sizes
from stereo_studio.errors import StereoStudioError


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"stereo-studio {__version__}"


def test_version_of_the_installed_command():
    proc = subprocess.run([sys.executable, "-m", "stereo_studio", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"stereo-studio {__version__}"


def test_window_sizes(capsys, tmp_path):
    assert _window_sizes("1280x720,1920x1080") == [(1280, 720), (1920, 1080)]
    assert _window_sizes(None) == []
    with pytest.raises(StereoStudioError, match="WxH"):
        _window_sizes("1280x720,big")
    out = str(tmp_path / "{panel}.png")
    assert main(["gui", "--screenshot", out, "--panel", "preview", "--size", "1280x720,1920x1080"]) == 2
    assert "{size}" in capsys.readouterr().err
    assert main(["gui", "--size", "1280x720,1920x1080"]) == 2
    assert "--screenshot" in capsys.readouterr().err
