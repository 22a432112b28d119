"""Trim pyqtgraph's "Plot Options" context menu to what applies to the studio's plots.

Its Transforms (FFT, derivative, phase map), Downsample, Average, Alpha and Points entries are made for long
line traces: on scatter and bar items they raise (`ScatterPlotItem` has no `setFftMode` or `setAlpha`), and
an FFT of a loss curve or a trade-off front only misleads. Log axes and the grid stay."""

from __future__ import annotations

import pyqtgraph as pg

_HIDDEN_MENUS = ("Downsample", "Average", "Alpha", "Points")
_HIDDEN_TRANSFORMS = ("fftCheck", "derivativeCheck", "phasemapCheck", "subtractMeanCheck")


def trim_plot_menu(plot: pg.PlotItem | pg.PlotWidget) -> None:
    """Hide and disable the plot options that do not apply (idempotent)."""
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    ctrl = item.ctrl
    for name in _HIDDEN_MENUS:
        item.setContextMenuActionVisible(name, False)
    for group in (ctrl.decimateGroup, ctrl.averageGroup, ctrl.alphaGroup, ctrl.pointsGroup):
        group.setEnabled(False)
    for name in _HIDDEN_TRANSFORMS:
        box = getattr(ctrl, name, None)
        if box is not None:
            box.setChecked(False)
            box.setEnabled(False)
            box.setVisible(False)
