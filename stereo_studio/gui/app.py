"""Start the window: `main()` (the `stereo-studio-gui` entry point) and the screenshot mode of the CLI."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication

from stereo_studio.errors import StereoStudioError

READY_TIMEOUT_S = 240.0
SHUTDOWN_WAIT_MS = 20000  # at exit, how long the jobs still running get to stop before the process ends


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), themed."""
    from stereo_studio.gui.theme import apply_theme

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "stereo-studio", *(argv or [])])
        app.setApplicationName("Stereo Studio")
        app.setOrganizationName("StereoStudio")
        apply_theme(app)
    return app


def _wait(app: QApplication, done, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.02)
    return True


def run(
    screenshot: str | None = None,
    panel: str | None = None,
    size: tuple[int, int] | None = None,
    settings_path: str | None = None,
    quick: bool = False,
    sizes: list[tuple[int, int]] | None = None,
    data: str | None = None,
) -> int:
    """Open the window. With `screenshot`: wait for the first disparity maps of every default model, show
    `panel` (a name, a comma-separated list or "all"; OUT then contains "{panel}"), wait for the panel's
    content (unless `quick`), save a PNG of the whole window per panel and return 0; with several `sizes`
    one set per size (OUT then contains "{size}", e.g. shots/{size}/{panel}.png).
    `size` = (width, height); `data`: the data source to open (default synthetic)."""
    from stereo_studio.gui.main_window import MainWindow
    from stereo_studio.gui.panels import PANELS, panel_spec
    from stereo_studio.gui.settings import Settings

    panels = _panels(panel, PANELS)
    if screenshot and len(panels) > 1 and "{panel}" not in screenshot:
        raise StereoStudioError(
            "several panels need '{panel}' in the screenshot name, e.g. shots/{panel}.png"
        )
    sizes = list(sizes or ([size] if size is not None else []))
    if screenshot and len(sizes) > 1 and "{size}" not in screenshot:
        raise StereoStudioError(
            "several sizes need '{size}' in the screenshot name, e.g. shots/{size}/{panel}.png"
        )
    app = create_app()
    if screenshot:
        # The screenshot shows the defaults and leaves the user's saved session alone.
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="stereo-studio-shot-")
        settings = Settings(Path(tmp.name) / "settings.ini")
    else:
        settings = Settings(settings_path)
    window = MainWindow(settings, restore=not screenshot, data=data)
    if sizes:
        window.resize(*sizes[0])
    window.show()
    if not screenshot:
        code = app.exec()
        shut_down(window)
        return code
    try:
        if not _wait(app, lambda: window.preview.frames_drawn > 0, READY_TIMEOUT_S):
            raise StereoStudioError(f"no disparity map was drawn within {READY_TIMEOUT_S:.0f} s")
        _wait(app, window.preview.complete, 120.0)
        staged: set[str] = set()
        for width_height in sizes or [None]:
            if width_height is not None:
                window.resize(*width_height)
                window.fit_docks()
            for name in panels or ["preview"]:
                window.show_panel(name)
                if not quick:
                    _wait(app, lambda n=name: window.panel_ready(n), 120.0)
                    stage = panel_spec(name).stage
                    if stage is not None and name not in staged:  # once: the next sizes show the same
                        staged.add(name)
                        stage(window, lambda done, t: _wait(app, done, t), tmp.name)
                _wait(app, lambda: False, 0.4)  # let the last paint land
                w, h = width_height or (window.width(), window.height())
                tag = f"{w}x{h}"
                out = Path(screenshot.replace("{panel}", name).replace("{size}", tag))
                out.parent.mkdir(parents=True, exist_ok=True)
                if not window.grab().save(str(out)):
                    raise StereoStudioError(f"could not write the screenshot to {out}")
                print(out, flush=True)
    finally:
        window.close()
        app.processEvents()
    return 0


def shut_down(window: Any, wait_ms: int = SHUTDOWN_WAIT_MS) -> bool:
    """End the window's work before the process ends: close the window if the event loop ended without
    closing it (its `closeEvent` cancels every job), then wait for the pool's threads. A job thread still
    running (or still delivering its last signals) while the interpreter tears Qt's objects down fails with
    "Signal source has been deleted". True if every thread stopped in time."""
    from PySide6.QtCore import QThreadPool

    if window.isVisible():
        window.close()
    pool = QThreadPool.globalInstance()
    pool.clear()  # jobs queued but never started
    return bool(pool.waitForDone(wait_ms))


def _panels(text: str | None, known: tuple[str, ...]) -> list[str]:
    if not text:
        return []
    names = list(known) if text.strip() == "all" else [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StereoStudioError(f"unknown panel '{unknown[0]}' (choose from {', '.join(known)} or all)")
    return names


def main(argv: list[str] | None = None) -> int:
    """Entry point of `stereo-studio-gui`: open the window."""
    os.environ.setdefault("QT_API", "pyside6")
    del argv
    return run()


if __name__ == "__main__":
    sys.exit(main())
