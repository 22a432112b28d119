"""Channel importance panel: scores per criterion, highlighted channels follow the ratio, hover names them."""

from __future__ import annotations

import numpy as np


def test_criterion_and_ratio(make_window, qtbot):
    window = make_window(models=[("student", "student")])
    window.show_panel("importance")
    panel = window.importance
    qtbot.waitUntil(lambda: panel.view is not None, timeout=60_000)
    assert panel.view.report.criterion == "l1"
    layers = panel.view.report.layers
    assert panel.view.heat.shape == (len(layers), max(layer.channels for layer in layers))
    panel.criterion.setCurrentIndex(panel.criterion.findData("bn"))
    qtbot.waitUntil(lambda: panel.view.report.criterion == "bn", timeout=60_000)
    panel.ratio.setValue(0.5)
    removed = panel.view.report.removed(0.5)
    overlay = panel.overlay.image
    assert int((overlay[..., 3] > 0).sum()) == sum(len(v) for v in removed.values()) > 0
    row = next(i for i, layer in enumerate(panel.view.report.layers) if layer.name in removed)
    panel.layers.setCurrentRow(row)
    layer = panel.view.report.layers[row]
    assert f"{len(removed[layer.name])} removed" in panel.bars_plot.getPlotItem().titleLabel.text
    assert np.isfinite(panel.view.heat[row, : layer.channels]).all()
    window.pruning.slider.setValue(0.25)  # the pruning ratio drives the highlight
    assert panel.ratio.value() == 0.25
