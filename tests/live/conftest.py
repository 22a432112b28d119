"""Fixtures for the live tests (helpers live in live_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_helpers import write_sbs_video


@pytest.fixture
def sbs_video(tmp_path: Path) -> Path:
    return write_sbs_video(tmp_path / "sbs.avi", 12)


@pytest.fixture(scope="session")
def chessboard_calibration(chessboard_dir: Path):
    """The calibration of the shared chessboard set (computed once, about half a second)."""
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.live.calibration import calibrate_stereo

    return run_with_progress(calibrate_stereo(chessboard_dir, board=(9, 6), square_mm=25.0), quiet=True)
