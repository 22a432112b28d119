"""Studio: measurements follow the data source (nothing measured on the previous data shows up later)."""

from __future__ import annotations

import threading

import pytest

from stereo_studio.engine.jobs import Progress
from stereo_studio.gui import studio as studio_module
from stereo_studio.gui import theme
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


@pytest.mark.parametrize("shown", [True, False], ids=["listed job", "unlisted job (preview predictions)"])
def test_a_timing_beside_other_window_jobs_is_marked_and_redone_when_quiet(qtbot, settings, monkeypatch,
                                                                             shown):
    other_done, timing = threading.Event(), threading.Event()
    calls = []

    def fake_measure(matcher, dataset, size):
        calls.append(1)
        yield Progress(1, 3, "timing", payload={"params": 1}, kind="stats")
        if len(calls) == 1:
            timing.wait(30)  # the first timing lasts until the other job has started
        yield Progress(2, 3, "accuracy", payload={"latency_ms": 5.0 * len(calls), "contended": False},
                       kind="stats")
        return {"epe": 1.0}

    def other_work():
        yield Progress(0, 1, "busy")
        other_done.wait(30)
        return None

    monkeypatch.setattr(studio_module, "measure_entry", fake_measure)
    monkeypatch.setattr(studio_module, "open_data", lambda spec, size: spec)
    studio = Studio(settings)
    entry = studio.add_matcher(object(), "sgbm", "sgbm", "sgbm")
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=10_000)
    other = studio.jobs.start("Reference points", other_work, track=shown)
    qtbot.waitUntil(lambda: other.active, timeout=10_000)
    timing.set()
    qtbot.waitUntil(lambda: entry.stats.get("epe") == 1.0, timeout=10_000)
    assert entry.stats["contended"] is True and "Reference points" in entry.stats["contended_by"]
    qtbot.wait(3 * studio_module.QUIET_POLL_MS)
    assert len(calls) == 1  # not again while the other job runs
    other_done.set()
    qtbot.waitUntil(lambda: entry.stats.get("latency_ms") == 10.0, timeout=10_000)  # measured again, quiet
    qtbot.waitUntil(lambda: studio._stats_running is None, timeout=10_000)
    assert entry.stats["contended"] is False and len(calls) == 2
    studio.jobs.cancel_all()


def test_colours_follow_the_order_models_were_asked_for_not_the_load_order(qtbot, settings, monkeypatch):
    """A first start opens the default models side by side: the colours must not depend on which load ends
    first (the slow teacher took the second colour in one screenshot and the first in the next)."""
    release = threading.Event()

    def load(spec):
        if spec == "slow":
            release.wait(30)
        return object(), False

    monkeypatch.setattr(studio_module, "load_entry", load)
    monkeypatch.setattr(studio_module, "measure_entry", lambda matcher, dataset, size: iter(()))
    monkeypatch.setattr(studio_module, "open_data", lambda spec, size: spec)
    studio = Studio(settings)
    slow, fast = studio.open_model("slow"), studio.open_model("fast")
    qtbot.waitUntil(lambda: not fast.active, timeout=10_000)
    release.set()
    qtbot.waitUntil(lambda: not slow.active, timeout=10_000)
    colours = {m.key: m.color for m in studio.models}
    assert colours == {"slow": theme.model_color(0), "fast": theme.model_color(1)}
    studio.jobs.cancel_all()
