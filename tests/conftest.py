"""Shared test fixtures. Tests are small, deterministic and make their own data."""

from __future__ import annotations

import faulthandler
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests never run the runtime-settings probe nor touch the user's runtime cache and measuring locks
# (stereo_studio.runtime): a fresh empty cache folder, probing off. Subprocesses inherit both.
_RUNTIME_DIR = Path(tempfile.mkdtemp(prefix="stereo-runtime-"))
os.environ["STEREO_STUDIO_RUNTIME_CACHE"] = str(_RUNTIME_DIR / "runtime.json")
os.environ["STEREO_STUDIO_RUNTIME_PROBE"] = "0"

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


# ----- hangs fail fast, with every thread's stack
# pytest-timeout (`timeout` in pyproject.toml, or @pytest.mark.timeout(N)) fails a test that runs too long
# and prints every thread's stack, but it needs the GIL to do so. A deadlock in which the main thread holds
# the GIL while it waits on a Qt mutex (issue 10's hang) would outlive it, so faulthandler's watchdog, which
# needs no GIL, dumps the stacks and ends the process GRACE_S later. (pytest's own `faulthandler_timeout` is
# one value for every test; this follows each test's timeout.)
GRACE_S = 60.0


def _timeout_s(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        return float(marker.args[0] if marker.args else marker.kwargs["timeout"] or 0.0)
    try:
        value = item.config.getoption("timeout", None) or item.config.getini("timeout")
    except ValueError:  # pytest-timeout is not installed
        return 0.0
    return float(value or 0.0)


def _stderr_fd(config: pytest.Config) -> int:
    """The stderr pytest's faulthandler plugin writes to (a copy made before output capturing began)."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        return config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return sys.__stderr__.fileno()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    timeout = _timeout_s(item)
    if timeout > 0:
        faulthandler.dump_traceback_later(timeout + GRACE_S, exit=True, file=_stderr_fd(item.config))
    try:
        return (yield)
    finally:
        if timeout > 0:
            faulthandler.cancel_dump_traceback_later()


# ----- the GUI's garbage collection
@pytest.fixture(autouse=True)
def _automatic_gc_outside_gui_tests(request: pytest.FixtureRequest):
    """The window's JobManager turns automatic garbage collection off for the whole process (cyclic garbage
    is collected on the GUI thread only, see stereo_studio.gui.workers). Tests without a window get automatic
    collection back; window tests collect on the main thread after each test."""
    workers = sys.modules.get("stereo_studio.gui.workers")
    in_gui = "qtbot" in request.fixturenames or request.node.path.parent.name == "gui"
    if workers is not None and not in_gui:
        workers.uninstall_gui_gc()
    yield
    if in_gui:
        gc.collect()  # on the main (GUI) thread: closed windows and their widgets go now


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's runtime cache folder goes with it (it was left in the temp folder after every run)."""
    shutil.rmtree(_RUNTIME_DIR, ignore_errors=True)
