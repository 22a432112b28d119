"""The Pruning panel's plots: the accuracy-vs-latency trade-off and the per-layer sensitivity curves.

Trade-off: every measured pruning point is one of three kinds, each with its own symbol (`KIND_STYLE`): raw
(pruned as is), recalibrated (BatchNorm statistics re-estimated), recovered (a short distillation). Points of
one plan share a key: a later point of the same key and kind replaces the earlier one in place, and the
plan's best kind so far is drawn full size with its earlier kinds as small ghosts joined to it by a thin line
(the upgrade). One Pareto front per kind (`engine.sweep.pareto_front`). Latency error bars span p10-p90
where the measurement has them. Every opened model is a labelled star. Drawing only: no numbers are made
here.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from stereo_studio.gui import format as fmt
from stereo_studio.gui import theme
from stereo_studio.gui.widgets.plot_menu import trim_plot_menu

KINDS = ("raw", "recalibrated", "recovered")
# kind -> (symbol, colour, legend text)
KIND_STYLE = {
    "raw": ("o", theme.MUTED, "raw: pruned as is"),
    "recalibrated": ("s", theme.ACCENT, "recalibrated: BatchNorm statistics re-estimated"),
    "recovered": ("d", theme.OK, "recovered: short distillation from the teacher"),
}
SYMBOL_CHARS = {"o": "●", "s": "■", "d": "◆"}
SIZE, GHOST_SIZE = 11, 7


@dataclass
class PlotPoint:
    """One point on the plot: the plan it belongs to (`key`), the engine's `SweepPoint` and what restores
    the plan when it is clicked (`settings`, the panel's own)."""

    key: Hashable
    point: Any
    settings: Any = None

    @property
    def kind(self) -> str:
        return str(getattr(self.point, "kind", "raw") or "raw")


def spread(obj: Any) -> tuple[float, float] | None:
    """(p10, p90) latency of a point or reference when it was measured with them."""
    lo, hi = getattr(obj, "p10_ms", None), getattr(obj, "p90_ms", None)
    return (float(lo), float(hi)) if lo is not None and hi is not None else None


def latency_text(obj: Any) -> str:
    """'12.3 ms (p10-p90 11.8-13.1)' plus the settings and contention it was timed with, when known."""
    text = f"{obj.latency_ms:.1f} ms"
    band = spread(obj)
    if band is not None:
        text += f" (p10–p90 {band[0]:.1f}–{band[1]:.1f})"
    threads, policy = getattr(obj, "threads", None), getattr(obj, "wait_policy", None)
    settings = [
        f"{threads} thread{'s' if threads != 1 else ''}" if threads else "",
        str(getattr(obj, "precision", "") or ""),
        f"wait {policy}" if policy else "",
    ]
    settings = [s for s in settings if s]
    if settings:
        text += f" · {', '.join(settings)}"
    if getattr(obj, "contended", False):
        text += " · ⚠ contended (" + (", ".join(getattr(obj, "contended_by", ()) or ()) or "busy") + ")"
    return text


class TradeoffPlot(QWidget):
    """Latency vs EPE: pruning points by kind, a Pareto front per kind, opened models as stars."""

    point_clicked = Signal(object)  # the PlotPoint

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: dict[tuple[Hashable, str], PlotPoint] = {}
        self.references: dict[str, Any] = {}
        self.plot = pg.PlotWidget()
        trim_plot_menu(self.plot)
        self.plot.setLabel("bottom", "latency on this machine (median, p10–p90 bars)", units="ms")
        self.plot.setLabel("left", "EPE (lower is better)", units="px")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.getViewBox().setDefaultPadding(0.08)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setToolTip(
            "Each measured pruning point: latency vs accuracy, one symbol per kind. Click a point to "
            "restore its plan."
        )
        self.links = pg.PlotDataItem([], [], connect="pairs", pen=pg.mkPen(theme.BORDER, width=1))
        self.plot.addItem(self.links)
        self.errors = pg.ErrorBarItem(pen=pg.mkPen(theme.MUTED, width=1), beam=0.0)
        self.plot.addItem(self.errors)
        self.ref_errors = pg.ErrorBarItem(pen=pg.mkPen(theme.MUTED, width=1), beam=0.0)
        self.plot.addItem(self.ref_errors)
        self.fronts: dict[str, pg.PlotDataItem] = {}
        self.scatters: dict[str, pg.ScatterPlotItem] = {}
        for kind in KINDS:
            symbol, color, text = KIND_STYLE[kind]
            self.fronts[kind] = self.plot.plot(
                [], [], pen=pg.mkPen(color, width=2, style=Qt.DashLine), name=f"Pareto front ({kind})"
            )
            scatter = pg.ScatterPlotItem(
                symbol=symbol,
                size=SIZE,
                pen=pg.mkPen(theme.BG),
                brush=pg.mkBrush(color),
                hoverable=True,
                hoverSize=SIZE + 4,
                name=text,
                tip=self._tip,
            )
            scatter.sigClicked.connect(self._clicked)
            self.plot.addItem(scatter)
            self.scatters[kind] = scatter
        self.current = pg.ScatterPlotItem(
            size=SIZE + 8, pen=pg.mkPen(theme.TEXT, width=2), brush=pg.mkBrush(None), name="current"
        )
        self.plot.addItem(self.current)
        self.refs = pg.ScatterPlotItem(
            size=15, symbol="star", pen=pg.mkPen(theme.BG), hoverable=True, tip=self._ref_tip
        )
        self.plot.addItem(self.refs)
        self.ref_labels: list[pg.TextItem] = []

        key = QLabel(
            "  ".join(
                f"<span style='color:{KIND_STYLE[k][1]}'>{SYMBOL_CHARS[KIND_STYLE[k][0]]}</span> {k}"
                for k in KINDS
            )
            + " &nbsp;·&nbsp; - - - Pareto front of each kind &nbsp;·&nbsp; ★ opened models"
            " &nbsp;·&nbsp; ├┤ latency p10–p90 &nbsp;·&nbsp; ◯ current"
        )
        key.setProperty("role", "caption")
        key.setToolTip(
            "raw: the pruned model as is · recalibrated: its BatchNorm statistics re-estimated on a few "
            "pairs of the current data (under a second) · recovered: after a short distillation from the "
            "teacher (in the background; the point upgrades in place when it lands)"
        )
        key.setWordWrap(True)
        self.key = key
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot, 1)
        layout.addWidget(key)

    # ----- points
    @property
    def points(self) -> list[Any]:
        return [e.point for e in self.entries.values()]

    def add(self, key: Hashable, point: Any, settings: Any = None) -> PlotPoint:
        """Put `point` on the plot for the plan `key`: it replaces the point of the same key and kind."""
        entry = PlotPoint(key, point, settings)
        self.entries[(key, entry.kind)] = entry
        self.redraw()
        self.set_current(point)
        return entry

    def entry_of(self, point: Any) -> PlotPoint | None:
        return next((e for e in self.entries.values() if e.point is point), None)

    def kinds_of(self, key: Hashable) -> list[str]:
        return [k for k in KINDS if (key, k) in self.entries]

    def clear(self) -> None:
        self.entries.clear()
        self.redraw()
        self.current.setData([])

    def front(self, kind: str) -> list[Any]:
        """The Pareto front of one kind (engine), sorted by latency."""
        from stereo_studio.engine.sweep import pareto_front

        return pareto_front(self.points, kind=kind)

    def best(self, key: Hashable) -> PlotPoint | None:
        """The plan's most recovered point so far."""
        kinds = self.kinds_of(key)
        return self.entries[(key, kinds[-1])] if kinds else None

    def redraw(self) -> None:
        from stereo_studio.engine.sweep import pareto_front

        points = self.points
        pareto_front(points)  # marks `pareto` within each kind
        for kind in KINDS:
            front = [p for p in points if p.kind == kind and p.pareto]
            front.sort(key=lambda p: p.latency_ms)
            self.fronts[kind].setData([p.latency_ms for p in front], [p.epe for p in front])
            spots = []
            for entry in self.entries.values():
                if entry.kind != kind:
                    continue
                head = self.best(entry.key) is entry
                p = entry.point
                color = pg.mkColor(KIND_STYLE[kind][1])
                if not head:
                    color.setAlpha(140)
                contended = bool(getattr(p, "contended", False))
                spots.append(
                    {
                        "pos": (p.latency_ms, p.epe),
                        "data": entry,
                        "size": SIZE if head else GHOST_SIZE,
                        "brush": pg.mkBrush(None) if contended else pg.mkBrush(color),
                        "pen": pg.mkPen(color, width=2) if contended else pg.mkPen(theme.BG),
                    }
                )
            self.scatters[kind].setData(spots)
        xs: list[float] = []
        ys: list[float] = []
        keys = dict.fromkeys(key for key, _ in self.entries)
        for key in keys:
            chain = [self.entries[(key, k)].point for k in self.kinds_of(key)]
            for a, b in itertools.pairwise(chain):
                xs += [a.latency_ms, b.latency_ms]
                ys += [a.epe, b.epe]
        self.links.setData(xs, ys, connect="pairs")
        self._error_bars(self.errors, points)

    @staticmethod
    def _error_bars(item: pg.ErrorBarItem, objs: list[Any]) -> None:
        bands = [(o, spread(o)) for o in objs]
        bands = [(o, b) for o, b in bands if b is not None]
        if not bands:
            item.setData(x=None, y=None)
            item.setVisible(False)
            return
        x = np.array([o.latency_ms for o, _ in bands], dtype=float)
        item.setData(
            x=x,
            y=np.array([o.epe for o, _ in bands], dtype=float),
            left=np.maximum(x - np.array([b[0] for _, b in bands]), 0.0),
            right=np.maximum(np.array([b[1] for _, b in bands]) - x, 0.0),
        )
        item.setVisible(True)

    def set_current(self, point: Any | None) -> None:
        self.current.setData([] if point is None else [{"pos": (point.latency_ms, point.epe)}])

    def _tip(self, x: float, y: float, data: Any) -> str:
        if data is None:
            return ""
        p = data.point
        removed = getattr(p, "macs_removed", 0.0) or 0.0
        lines = [
            f"{p.label} · {data.kind}",
            f"{latency_text(p)}",
            f"EPE {y:.2f} px · bad-3 {p.bad3:.1f} %",
            f"{fmt.count(p.params)} params · {fmt.count(p.macs)} MACs"
            + (f" · removes {removed:.0%} of the MACs" if removed else ""),
        ]
        if p.pareto:
            lines.append(f"on the Pareto front of the {data.kind} points")
        lines.append("click to restore this plan")
        return "\n".join(lines)

    def _clicked(self, _item: Any, spots: Any, _ev: Any = None) -> None:
        if len(spots):
            entry = spots[0].data()
            self.set_current(entry.point)
            self.point_clicked.emit(entry)

    # ----- reference models
    def set_reference(self, ref: Any) -> None:
        self.references[ref.label] = ref
        self._draw_references()

    def clear_references(self) -> None:
        self.references.clear()
        self._draw_references()

    def set_references(self, refs: dict[str, Any]) -> None:
        self.references = dict(refs)
        self._draw_references()

    def _draw_references(self) -> None:
        refs = list(self.references.values())
        self.refs.setData(
            [
                {
                    "pos": (r.latency_ms, r.epe),
                    "data": r,
                    "brush": pg.mkBrush(None) if r.contended else pg.mkBrush(r.color),
                    "pen": pg.mkPen(r.color, width=2) if r.contended else pg.mkPen(theme.BG),
                }
                for r in refs
            ]
        )
        self._error_bars(self.ref_errors, refs)
        for label in self.ref_labels:
            self.plot.removeItem(label)
        self.ref_labels = []
        for r in refs:
            text = pg.TextItem(r.label + (" ⚠" if r.contended else ""), color=r.color, anchor=(0.5, 1.3))
            text.setPos(r.latency_ms, r.epe)
            self.plot.addItem(text)
            self.ref_labels.append(text)

    def _ref_tip(self, x: float, y: float, data: Any) -> str:
        if data is None:
            return ""
        return f"{data.label} (opened model)\n{latency_text(data)}\nEPE {y:.2f} px"


class SensitivityPlot(pg.PlotWidget):
    """One line per layer: its EPE increase when pruned alone at each ratio; critical layers drawn thick."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        trim_plot_menu(self)
        self.setLabel("bottom", "fraction of this layer's channels removed")
        self.setLabel("left", "EPE increase", units="px")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.addLegend(offset=(10, 10))
        self.setToolTip(
            "Sensitivity: each line is one layer pruned alone (BatchNorm statistics re-estimated); thick "
            "lines are critical layers, which the slider's plans leave whole"
        )
        self.rows: dict[str, tuple[list[float], list[float]]] = {}
        self.lines: dict[str, pg.PlotDataItem] = {}

    def reset(self) -> None:
        self.clear()
        self.addLegend(offset=(10, 10))
        self.rows.clear()
        self.lines.clear()

    def add_row(self, row: Any) -> None:
        xs, ys = self.rows.setdefault(row.layer, ([0.0], [0.0]))
        xs.append(row.ratio)
        ys.append(row.delta_epe)
        if row.layer not in self.lines:
            color = theme.MODEL_COLORS[len(self.lines) % len(theme.MODEL_COLORS)]
            self.lines[row.layer] = self.plot(
                [], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=5, symbolBrush=color,
                name=row.layer,
            )
        self.lines[row.layer].setData(xs, ys)

    def mark_critical(self, names: list[str]) -> None:
        for name, line in self.lines.items():
            pen = line.opts["pen"]
            color = pg.mkPen(pen).color()
            line.setPen(pg.mkPen(color, width=5 if name in names else 1.5))
