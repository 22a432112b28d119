"""Post-filters toggled per model on the preview, and SGBM's live tuning controls, both kept in the
settings."""

from __future__ import annotations


def test_post_filters_per_model(make_window, qtbot):
    from stereo_studio.live.postfilter import FILTERS

    window = make_window()
    preview = window.preview
    menu = preview._menus["sgbm"]
    assert set(menu.filter_actions) == set(FILTERS)  # one check per registered filter, with its help
    assert menu.filter_actions["guided"].toolTip().endswith("uses the left image")
    assert "video only" in menu.filter_actions["temporal"].toolTip()
    drawn = preview.frames_drawn
    menu.filter_actions["median"].setChecked(True)  # as a click in the menu does
    menu.filter_actions["hole"].setChecked(True)
    qtbot.waitUntil(lambda: preview.frame.outputs["sgbm"].post_filters == ("hole", "median"), timeout=30_000)
    assert preview.frames_drawn > drawn
    assert preview.frame.outputs["student"].post_filters == ()  # per model
    assert "filters" in preview._panes["sgbm"].title
    assert menu.text() == "⚙ filters: hole, median"
    assert window.studio.settings.get("preview/post_filters", {}) == {"sgbm": ["hole", "median"]}
    preview.set_post_filters("sgbm", ["temporal"])  # video only: a dataset pair ignores it
    qtbot.waitUntil(lambda: preview.frame.outputs["sgbm"].post_filters == (), timeout=30_000)
    assert menu.filters() == ["temporal"]
    preview.set_post_filters("sgbm", [])
    assert window.studio.settings.get("preview/post_filters", {}) == {}


def test_post_filters_are_restored(make_window, qtbot, settings):
    settings.set("preview/post_filters", {"sgbm": ["speckle"]})
    window = make_window(models=[("sgbm", "sgbm")])
    assert window.preview._menus["sgbm"].filters() == ["speckle"]
    qtbot.waitUntil(lambda: window.preview.frame.outputs["sgbm"].post_filters == ("speckle",), timeout=30_000)


def test_sgbm_tuning_live_and_saved(make_window, qtbot, settings):
    window = make_window(models=[("sgbm", "sgbm")])
    preview = window.preview
    tuner = preview.sgbm_tuner
    matcher = window.studio.entry("sgbm").matcher
    preview._menus["sgbm"].requested.emit("sgbm", "sgbm")  # "Tune SGBM parameters…" in its menu
    assert tuner.isVisible() and preview.sgbm_btn.isChecked()
    assert "P1 600, P2 2400" in tuner.derived.text()  # the automatic values, resolved by the engine
    drawn = preview.frames_drawn
    tuner.block.setValue(7)
    tuner.mode.setCurrentIndex(tuner.mode.findData("hh"))
    tuner.ndisp.setValue(32)
    assert (matcher.block_size, matcher.mode, matcher.num_disparities) == (7, "hh", 32)
    assert "P1 1176, P2 4704" in tuner.derived.text()
    qtbot.waitUntil(lambda: preview.frames_drawn > drawn, timeout=30_000)  # the pair again, new params
    saved = window.studio.settings.get("sgbm/params", {})
    assert saved["block_size"] == 7 and saved["mode"] == "hh" and saved["num_disparities"] == 32
    tuner.p1.setValue(5000)
    tuner.p2.setValue(100)  # P2 <= P1: the engine's message, the matcher keeps its last good values
    assert "P2 > P1" in window.messages.errors()[-1]
    assert matcher.p2 == 4704
    tuner.disp12.setValue(-1)
    assert tuner.disp12.text() == "off"
    window.close()
    # a new session: SGBM opens with the saved parameters
    again = make_window(models=[("sgbm", "sgbm")], settings_=settings)
    m = again.studio.entry("sgbm").matcher
    assert (m.block_size, m.mode, m.num_disparities) == (7, "hh", 32)
    assert again.preview.sgbm_tuner.values()["block_size"] == 7
    again.preview.sgbm_tuner.reset()
    assert (m.block_size, m.mode) == (5, "3way")
