"""Shared test fixtures. Tests are small, deterministic and make their own data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
ALOE_Q = SHARED_DATA / "middlebury" / "trainingQ" / "Aloe"
CHESSBOARD = SHARED_DATA / "chessboard-stereo-calib"


@pytest.fixture(scope="session")
def aloe_q() -> Path:
    if not ALOE_Q.exists():
        pytest.skip(f"shared data not found at {ALOE_Q}")
    return ALOE_Q


@pytest.fixture(scope="session")
def chessboard_dir() -> Path:
    if not CHESSBOARD.exists():
        pytest.skip(f"shared data not found at {CHESSBOARD}")
    return CHESSBOARD
