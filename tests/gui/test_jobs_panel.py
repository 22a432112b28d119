"""Jobs panel: lists jobs with status and progress, shows error messages (not tracebacks), cancels."""

from __future__ import annotations

import time

from stereo_studio.engine.jobs import Progress
from stereo_studio.errors import DataError
from stereo_studio.gui.jobs_panel import JobsPanel
from stereo_studio.gui.studio import Studio


def _ticks():
    i = 0
    while True:
        time.sleep(0.01)
        i += 1
        yield Progress(i, 1000, f"tick {i}")


def _broken():
    yield Progress(0, 1, "reading")
    raise DataError("dataset folder /data/x has no left images")


def test_jobs_listed_cancelled_and_failed(qtbot, settings, wait_job):
    studio = Studio(settings)
    panel = JobsPanel(studio)
    qtbot.addWidget(panel)
    running = studio.jobs.start("Ticking", _ticks)
    failing = studio.jobs.start("Broken", _broken)
    wait_job(failing)
    qtbot.waitUntil(lambda: running.fraction is not None and running.fraction > 0, timeout=10_000)
    rows = {title: (status, message) for title, status, message in panel.row_texts()}
    assert rows["Broken"] == ("failed", "dataset folder /data/x has no left images")
    assert rows["Ticking"][0] == "running" and rows["Ticking"][1].startswith("tick")
    panel.table.setCurrentItem(panel._items[running.id])
    panel.cancel_selected()
    wait_job(running, 10_000)
    qtbot.waitUntil(
        lambda: dict((t, s) for t, s, _ in panel.row_texts())["Ticking"] == "cancelled", timeout=5_000
    )
    studio.message.emit("error", "could not open model 'x': <bad>")
    assert "error could not open model 'x': <bad>" in panel.log.toPlainText()  # shown as text, not HTML
    panel.clear_finished()
    assert panel.row_texts() == []
