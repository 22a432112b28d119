"""Distillation panel: start, pause, resume, cancel a short run with live curves; a finished run lands in
the models list; a stopped run can be resumed; the prune-ready control and its group-norm plot."""

from __future__ import annotations

from pathlib import Path


def _small(panel, tmp_path, steps: int) -> None:
    panel.run_root.setText(str(tmp_path))
    panel.steps.setValue(steps)
    panel.batch.setValue(1)
    panel.crop_h.setValue(64)
    panel.crop_w.setValue(96)
    panel.val_interval.setValue(3)
    for key, w in panel.knobs.items():  # a narrow student: fast steps
        if w.isEnabled() and key != "agg_blocks":
            w.setValue(min(w.value(), 16))


def test_start_pause_cancel_resume_and_finish(make_window, qtbot, tmp_path, wait_job):
    window = make_window(models=[("student", "student")])
    window.show_panel("distill")
    panel = window.distill
    _small(panel, tmp_path, steps=8)
    # an untrained architecture is no teacher: ground truth only
    assert panel.teacher.currentText() == "none (ground truth only)"
    panel.start()
    assert panel.running() and not panel.start_btn.isEnabled()
    qtbot.waitUntil(lambda: len(panel.curves.get("loss", ([], []))[0]) >= 1, timeout=90_000)
    panel.toggle_pause()
    qtbot.waitUntil(lambda: panel.job.status == "paused", timeout=30_000)
    assert panel.pause_btn.text() == "Resume"
    steps = len(panel.curves["loss"][0])
    qtbot.wait(300)
    assert len(panel.curves["loss"][0]) <= steps + 1  # at most the step in flight
    panel.toggle_pause()
    qtbot.waitUntil(lambda: panel.job.status == "running", timeout=30_000)
    qtbot.waitUntil(lambda: bool(panel.last_checkpoint), timeout=90_000)
    assert any("epe" in k for k in panel.curves) and panel.rate.text() != "–" and panel.eta.text() != "–"
    panel.cancel()
    wait_job(panel.job)
    assert panel.job.status == "cancelled" and panel.start_btn.isEnabled()
    run_dir = Path(panel.run_dir)
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert not any(m.role == "distilled" for m in window.studio.models)
    panel.resume(str(run_dir))
    qtbot.waitUntil(lambda: bool(panel.curves.get("loss")), timeout=90_000)
    assert panel.curves["loss"][0][0] > 1  # continued from the checkpoint, not from step 0
    wait_job(panel.job, 120_000)
    assert panel.job.status == "done", panel.job.error
    qtbot.waitUntil(lambda: any(m.role == "distilled" for m in window.studio.models), timeout=60_000)
    entry = next(m for m in window.studio.models if m.role == "distilled")
    assert Path(entry.spec) == run_dir / "model" and not entry.untrained


def test_prune_ready_control_gives_the_config_and_plots_group_norms(make_window, qtbot, tmp_path, wait_job):
    from stereo_studio.gui.distill_panel import SPARSITY_CURVES

    window = make_window(models=[("student", "student")])
    window.show_panel("distill")
    panel = window.distill
    _small(panel, tmp_path, steps=20)
    panel.val_interval.setValue(20)
    assert not panel.config().prune_ready and not panel.sparsity_plot.isVisible()
    panel.prune_ready.setChecked(True)
    assert panel.sparsity_plot.isVisible()
    panel.sparsity_reg.setValue(50.0)
    panel.target_ratio.setValue(0.4)
    panel.sparsity_method.setCurrentText("groupnorm")
    config = panel.config()
    assert config.prune_ready and config.sparsity_reg == 50.0 and config.target_ratio == 0.4
    assert config.sparsity_method == "groupnorm"
    panel.start()
    wait_job(panel.job, 180_000)
    assert panel.job.status == "done", panel.job.error
    for key, legend in SPARSITY_CURVES:
        xs, ys = panel.curves[key]
        assert xs == [10, 20] and len(ys) == 2, key
        assert panel.lines[key].name() == legend
    assert 0.0 <= panel.curves["go_shrunk"][1][-1] <= 1.0
