"""Fixtures for the window tests: temporary settings, a small preview size and a fast model set."""

from __future__ import annotations

from pathlib import Path

import pytest

SIZE = (96, 128)  # small pairs: every prediction and measurement takes milliseconds
MODELS = [("student", "student"), ("sgbm", "sgbm")]


@pytest.fixture
def settings(tmp_path: Path):
    from stereo_studio.gui.settings import Settings

    return Settings(tmp_path / "settings.ini")


@pytest.fixture
def make_window(qtbot, settings):
    """make_window(models=..., size=..., restore=...) -> a shown MainWindow with its first disparity maps
    drawn for every model; closed (jobs cancelled) at teardown."""
    from stereo_studio.gui.main_window import MainWindow

    windows = []

    def make(models=MODELS, size=SIZE, restore: bool = False, settings_=None):
        window = MainWindow(settings_ or settings, restore=restore, models=models, size=size)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        qtbot.waitUntil(window.preview.complete, timeout=90_000)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def wait_job(qtbot):
    def wait(record, timeout: int = 60_000) -> None:
        qtbot.waitUntil(lambda: not record.active, timeout=timeout)

    return wait
