"""The Qt binding itself: the minimal reproduction of the PySide6 6.12.0 abort (issue 10).

PySide6 / shiboken6 6.12.0 return `True` from `SignalInstance.emit()` and `None` from
`QCoreApplication.processEvents()` without taking a reference. On Python 3.11 those singletons are
reference-counted, so every call takes one reference away from them, and after a few thousand calls the
process dies with `Fatal Python error: bool_dealloc` (or `none_dealloc`) in whichever thread drops the last
one. 6.7.3 to 6.11.3 are fine; `constraints.txt` pins a good version and `pyproject.toml` excludes 6.12.0.
This test runs on whichever binding is installed: an upgrade that brings the bug back fails here, not in a
user's window.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

REPRO = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    class Emitter(QObject):
        ping = Signal()

    app = QCoreApplication([])
    emitter = Emitter()

    def loss(call, n=200):  # references to True / None a call loses (0 for a correct binding)
        t, z = sys.getrefcount(True), sys.getrefcount(None)
        for _ in range(n):
            call()
        return round((t - sys.getrefcount(True)) / n, 2), round((z - sys.getrefcount(None)) / n, 2)

    print("emit", *loss(emitter.ping.emit), flush=True)
    print("processEvents", *loss(app.processEvents), flush=True)
    for _ in range(2 * max(sys.getrefcount(True), sys.getrefcount(None)) + 1000):
        emitter.ping.emit()  # more calls than True / None have references: a leak kills the process
        app.processEvents()
    print("survived", flush=True)
    """
)


def test_signal_emit_and_process_events_keep_their_references():
    proc = subprocess.run(
        [sys.executable, "-c", REPRO], capture_output=True, text=True, timeout=120, env=_env()
    )
    import PySide6

    where = f"PySide6 {PySide6.__version__} (constraints.txt pins a good version; 6.12.0 has this bug)"
    assert "emit 0.0 0.0" in proc.stdout, (
        f"SignalInstance.emit() loses references with {where}: {proc.stdout}"
    )
    assert "processEvents 0.0 0.0" in proc.stdout, f"processEvents() loses references with {where}"
    assert proc.returncode == 0 and "survived" in proc.stdout, f"{where}: {proc.stderr[-600:]}"


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
