"""Studio: measurements follow the data source (nothing measured on the previous data shows up later)."""

from __future__ import annotations

import threading

from stereo_studio.engine.jobs import Progress
from stereo_studio.gui import studio as studio_module
from stereo_studio.gui.studio import Studio


def test_a_measurement_of_the_previous_data_is_dropped(qtbot, settings, monkeypatch):
    release = threading.Event()

    def fake_measure(matcher, dataset, size):
        yield Progress(0, 1, "measuring", payload={"epe": 9.9, "data": dataset}, kind="stats")
        if dataset == "old":
            release.wait(30)  # still measuring when the data changes
            raise ValueError("the old dataset went away")
        return {"epe": 1.0, "data": dataset}

    monkeypatch.setattr(studio_module, "measure_entry", fake_measure)
    monkeypatch.setattr(studio_module, "open_data", lambda spec, size: spec)
    studio = Studio(settings)
    messages = []
    studio.message.connect(lambda level, text: messages.append((level, text)))
    first = studio.set_data("old")
    qtbot.waitUntil(lambda: not first.active and studio.dataset == "old", timeout=10_000)
    entry = studio.add_matcher(object(), "sgbm", "sgbm", "sgbm")
    qtbot.waitUntil(lambda: entry.stats.get("data") == "old", timeout=10_000)  # measuring the old data
    second = studio.set_data("new")
    qtbot.waitUntil(lambda: not second.active and studio.dataset == "new", timeout=10_000)
    release.set()  # the old measurement fails now, after the change
    qtbot.waitUntil(lambda: entry.stats.get("epe") == 1.0, timeout=10_000)
    qtbot.wait(200)
    assert entry.stats["data"] == "new" and "error" not in entry.stats
    assert messages == []  # no stale "measuring sgbm: ..." warning
    studio.jobs.cancel_all()
