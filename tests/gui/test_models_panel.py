"""Models panel: built-in architectures, saved folders, bad files reported (no crash), measurements (latency
spread, settings, contention) and the inference settings chosen for this machine."""

from __future__ import annotations


def test_corrupt_model_folder_gives_a_message(make_window, tmp_path, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    bad = tmp_path / "broken-model"
    bad.mkdir()
    (bad / "config.json").write_text('{"arch": "student", "max_disp": 64}')
    (bad / "model.safetensors").write_bytes(b"this is not a safetensors file")
    window.models.open_path(str(bad / "model.safetensors"))
    qtbot.waitUntil(lambda: bool(window.messages.errors()), timeout=30_000)
    assert "broken-model" in window.messages.errors()[-1]
    assert window.messages.isVisible()
    assert [m.key for m in window.studio.models] == ["sgbm"]
    window.models.open_path(str(tmp_path / "missing"))
    qtbot.waitUntil(lambda: len(window.messages.errors()) == 2, timeout=30_000)
    assert window.isVisible()  # the app keeps running


def test_open_architecture_measures_it_and_lists_layers(make_window, qtbot):
    window = make_window(models=[("sgbm", "sgbm")])
    window.show_panel("models")
    panel = window.models
    panel.arch.setCurrentText("student")
    panel.add_architecture()
    qtbot.waitUntil(lambda: window.studio.entry("student") is not None, timeout=30_000)
    entry = window.studio.entry("student")
    qtbot.waitUntil(lambda: "epe" in entry.stats or "error" in entry.stats, timeout=60_000)
    assert entry.stats["params"] > 0 and entry.stats["macs"] > 0 and entry.stats["latency_ms"] > 0
    item = panel._item("student")
    assert item.text(2).endswith("k") or item.text(2).endswith("M")
    panel.table.setCurrentItem(item)
    qtbot.waitUntil(lambda: panel.layers.topLevelItemCount() > 3, timeout=10_000)
    names = [panel.layers.topLevelItem(i).text(0) for i in range(panel.layers.topLevelItemCount())]
    assert "features" in names
    assert '"arch": "student"' in panel.config.toPlainText()
    panel.remove_selected()
    assert window.studio.entry("student") is None


def test_runtime_settings_and_latency_spread_are_shown(make_window, qtbot):
    from stereo_studio import runtime

    window = make_window(models=[("student", "student")])
    window.show_panel("models")
    panel = window.models
    settings = runtime.inference_settings()
    text = panel.runtime.text()
    assert settings.precision in text and f"{settings.threads} thread" in text
    assert f"OMP_WAIT_POLICY {runtime.effective_wait_policy()}" in text
    assert settings.source["precision"] in text and "cache:" in panel.runtime.toolTip()
    entry = window.studio.entry("student")
    # the first timing may run beside the preview's first predictions: then it is timed again, quiet
    qtbot.waitUntil(lambda: "epe" in entry.stats and not entry.stats.get("contended"), timeout=60_000)
    qtbot.waitUntil(lambda: window.studio._stats_running is None, timeout=60_000)
    s = entry.stats
    assert s["p10_ms"] <= s["latency_ms"] <= s["p90_ms"]
    assert s["threads"] and s["precision"] and s["wait_policy"]
    item = panel._item("student")
    assert "–" in item.text(4) and "⚠" not in item.text(4)
    assert f"{s['threads']} thread" in item.toolTip(4) and "p10–p90" in item.toolTip(4)
    # measured while a training job runs: marked contended, never waiting for it
    with runtime.training_running():
        panel.table.setCurrentItem(item)
        panel.remeasure_selected()
        qtbot.waitUntil(lambda: "epe" in entry.stats, timeout=60_000)
    assert entry.stats["contended"] and "training" in entry.stats["contended_by"]
    assert "⚠" in item.text(4) and "contended" in item.toolTip(4)
    panel.measure_runtime()  # probing is off in the tests: the cache or the fallback, at once
    qtbot.waitUntil(lambda: panel.runtime_btn.isEnabled(), timeout=30_000)
    assert "thread" in panel.runtime.text()
