"""Pruning panel: the slider updates params / MACs at once and adds a measured point; drags are throttled;
clicking a point restores it; per-layer overrides; prune without fine-tune opens the pruned model."""

from __future__ import annotations


def _ready(window, qtbot):
    window.show_panel("pruning")
    panel = window.pruning
    qtbot.waitUntil(lambda: panel.target is not None, timeout=60_000)
    qtbot.waitUntil(lambda: len(panel.points) >= 1, timeout=60_000)  # the unpruned point
    return panel


def test_slider_adds_a_point_and_restores_it(make_window, qtbot):
    window = make_window()
    panel = _ready(window, qtbot)
    assert panel.model.currentText() == "student"
    assert "(100 %)" in panel.params.text()
    measures = [r for r in window.studio.jobs.records if r.title.startswith("Measure point")]
    for value in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5):  # a drag: nothing queues up
        panel.slider.setValue(value)
        qtbot.wait(5)
    qtbot.waitUntil(lambda: any(abs((p.ratio or 0) - 0.5) < 1e-6 for p in panel.points), timeout=60_000)
    started = [r for r in window.studio.jobs.records if r.title.startswith("Measure point")]
    assert len(started) - len(measures) <= 3
    qtbot.waitUntil(lambda: "(100 %)" not in panel.params.text(), timeout=10_000)
    point = next(p for p in panel.points if abs((p.ratio or 0) - 0.5) < 1e-6)
    unpruned = next(p for p in panel.points if not p.ratio)
    assert point.params < unpruned.params and point.macs < unpruned.macs
    assert panel.scatter.points().size == len(panel.points)
    assert any(p.pareto for p in panel.points)
    kept = int(panel.table.item(1, 3).text())
    assert kept < int(panel.table.item(1, 1).text()) or panel.target.layers[1].protected
    panel.restore_point(unpruned)
    assert panel.slider.value() == 0.0
    qtbot.waitUntil(lambda: "(100 %)" in panel.params.text(), timeout=10_000)
    qtbot.waitUntil(lambda: "sgbm" in panel.references and "student" in panel.references, timeout=60_000)


def test_layer_override_and_prune(make_window, qtbot, tmp_path, wait_job):
    window = make_window(models=[("student", "student")])
    window.studio.settings.set("distill/run_root", str(tmp_path))
    panel = _ready(window, qtbot)
    name, spin = next(iter(panel._spins.items()))
    spin.setValue(0.5)
    ratio, plan = panel.effective_plan()
    assert ratio == 0.0 and plan[name] == 0.5 and len(plan) == len(panel._spins)
    qtbot.waitUntil(lambda: any(p.ratio is None for p in panel.points), timeout=60_000)
    panel.finetune_steps.setValue(0)
    panel.prune_and_finetune()
    qtbot.waitUntil(lambda: window.studio.entry("student-pruned-plan") is not None, timeout=60_000)
    pruned = window.studio.entry("student-pruned-plan")
    assert pruned.role == "pruned" and "pruned_shapes" in pruned.matcher.config
    assert list(tmp_path.glob("pruned-student-*/config.json"))
    panel.reset_overrides()
    assert panel.effective_plan() == (0.0, {})
