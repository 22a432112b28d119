"""Channel importance panel: criteria from the engine's registry, a heat map on a scale that separates
channels, protected layers grayed with the reason, the plan's removed channels and its rounding per layer
follow the pruning slider (a MAC reduction), hover names them."""

from __future__ import annotations

import numpy as np


def test_criterion_ratio_rounding_and_protected_rows(make_window, qtbot):
    from stereo_studio.engine.importance import criterion_choices

    window = make_window(models=[("student", "student")])
    window.show_panel("importance")
    panel = window.importance
    assert [panel.criterion.itemData(i) for i in range(panel.criterion.count())] == [
        name for name, _ in criterion_choices()
    ]
    qtbot.waitUntil(lambda: panel.view is not None, timeout=60_000)
    assert panel.view.report.criterion == "l1"
    layers = panel.view.report.layers
    assert panel.view.heat.shape == (len(layers), max(layer.channels for layer in layers))
    # the display scale separates channels: the global rank spreads over [0, 1]
    values = panel.view.heat[np.isfinite(panel.view.heat)]
    assert values.min() < 0.1 and values.max() > 0.9 and np.mean(values > 0.8) < 0.5
    # protected layers: no colour, a gray overlay, grayed in the list with the reason
    row_p = next(i for i, layer in enumerate(layers) if layer.protected)
    layer_p = layers[row_p]
    assert np.isnan(panel.view.heat[row_p]).all()
    assert (panel.overlay.image[row_p, : layer_p.channels, 3] > 0).all()
    item = panel.layers.item(row_p)
    assert "protected" in item.text() and layer_p.reason in item.toolTip()

    panel.criterion.setCurrentIndex(panel.criterion.findData("bn"))
    qtbot.waitUntil(lambda: panel.view.report.criterion == "bn", timeout=60_000)
    panel.ratio.setValue(0.5)
    removed = panel.view.report.removed(0.5)
    overlay = panel.overlay.image
    red = (overlay[..., 0] == 255) & (overlay[..., 3] > 0)
    assert int(red.sum()) == sum(len(v) for v in removed.values()) > 0
    assert "asked 50% of the MACs" in panel.summary.text() and "→" in panel.summary.text()
    row = next(i for i, layer in enumerate(panel.view.report.layers) if layer.name in removed)
    panel.layers.setCurrentRow(row)
    layer = panel.view.report.layers[row]
    text = panel.describe(layer.name)
    assert text.startswith(f"removes {len(removed[layer.name])} of {layer.channels}")
    assert text in panel.layers.item(row).text()
    assert text in panel.bars_plot.getPlotItem().titleLabel.text
    window.pruning.slider.setValue(0.25)  # the pruning ratio drives the highlight
    assert panel.ratio.value() == 0.25
    panel.scale.setCurrentIndex(panel.scale.findData("layer"))
    assert panel.view.scale == "layer" and np.nanmax(panel.view.heat) == 1.0


def test_rounding_is_spelled_out():
    """A layer whose asked ratio rounds to another width says so (the issue's own example)."""
    import torch

    from stereo_studio.engine.importance import channel_importance
    from stereo_studio.gui.pruning_plan import arrows
    from stereo_studio.models.registry import build_model, default_config

    torch.manual_seed(0)
    report = channel_importance(build_model(default_config("student")).eval(), "l1")
    plans = {
        arrows(report.plan(r).layer(layer.name).describe())
        for r in (0.2, 0.3, 0.4)
        for layer in report.layers
        if not layer.protected
    }
    assert any("→" in text and "after rounding" in text for text in plans)
