"""pyqtgraph views for images and disparity maps: locked aspect, linked zoom, hover read-out, colour bar."""

from __future__ import annotations

import time
from functools import cache

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from stereo_studio.gui import theme


@cache
def colormap_lut(name: str) -> np.ndarray:
    """256 x 3 uint8 lookup table of the engine colour map `name` (the GUI does no colour math itself)."""
    from stereo_studio.live.colormap import colorize

    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :]
    return colorize(ramp, 0.0, 1.0, cmap=name)[0]


def pg_colormap(name: str) -> pg.ColorMap:
    lut = colormap_lut(name)
    return pg.ColorMap(np.linspace(0.0, 1.0, len(lut)), lut)


class ImagePane(pg.GraphicsLayoutWidget):
    """One titled image (RGB, or a scalar map drawn through a colour map with a colour bar).

    `hovered(x, y)` is emitted with integer pixel coordinates under the mouse, `clicked(x, y)` on click.
    """

    hovered = Signal(int, int)
    clicked = Signal(int, int)

    def __init__(
        self,
        title: str = "",
        scalar: bool = False,
        unit: str = "px",
        cmap: str = "turbo",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setMinimumSize(160, 120)
        self.setAntialiasing(False)  # nearest-pixel images: honest pixels and a cheaper repaint
        self.ci.layout.setContentsMargins(2, 2, 2, 2)
        self._title_time = 0.0
        self._title = self.addLabel(title, row=0, col=0, colspan=2, color=theme.TEXT, size="9pt")
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.scalar = scalar
        self.colorbar: pg.ColorBarItem | None = None
        self._shape: tuple[int, int] | None = None
        if scalar:
            self.colorbar = pg.ColorBarItem(
                values=(0, 1), colorMap=pg_colormap(cmap), label=f"[{unit}]", interactive=False, width=14
            )
            self.colorbar.setImageItem(self.image)
            self.addItem(self.colorbar, row=1, col=1)
        self.scene().sigMouseMoved.connect(self._moved)
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_title(self, text: str, min_interval_s: float = 0.0) -> None:
        """Set the title; with `min_interval_s`, changes closer together are skipped (a relayout of the
        title costs a repaint of the whole pane: live FPS read-outs update at most a few times a second)."""
        now = time.monotonic()
        if text == self._title.text or (min_interval_s and now - self._title_time < min_interval_s):
            return
        self._title_time = now
        self._title.setText(text, color=theme.TEXT, size="9pt")

    @property
    def title(self) -> str:
        return self._title.text

    def set_rgb(self, rgb: np.ndarray) -> None:
        self._set(rgb, levels=(0, 255))

    def set_scalar(self, values: np.ndarray, levels: tuple[float, float]) -> None:
        self._set(values, levels=levels)
        self.set_levels(levels)

    def set_levels(self, levels: tuple[float, float]) -> None:
        """Colour range; an unchanged range leaves the colour bar (and its cached axis drawing) alone."""
        if self.colorbar is None:
            self.image.setLevels(levels)
        elif tuple(self.colorbar.levels()) != tuple(levels):
            self.colorbar.setLevels(levels)

    def set_cmap(self, name: str) -> None:
        if self.colorbar is not None:
            self.colorbar.setColorMap(pg_colormap(name))

    def show_colorbar(self, show: bool) -> None:
        """Show or leave out the colour bar (panes sharing one range show it once: more room for images)."""
        if self.colorbar is None or show == self.has_colorbar():
            return
        if show:
            self.addItem(self.colorbar, row=1, col=1)
        else:
            self.ci.removeItem(self.colorbar)

    def has_colorbar(self) -> bool:
        return self.colorbar is not None and self.colorbar.scene() is not None

    def clear_image(self) -> None:
        self.image.clear()
        self._shape = None

    def has_image(self) -> bool:
        return self._shape is not None

    def _set(self, array: np.ndarray, levels: tuple[float, float]) -> None:
        self.image.setImage(array, autoLevels=False, levels=levels)
        if self._shape != array.shape[:2]:
            self._shape = array.shape[:2]
            self.view.autoRange(padding=0.0)

    def _pixel(self, scene_pos) -> tuple[int, int] | None:
        if self._shape is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.view.mapSceneToView(scene_pos)
        x, y = int(p.x()), int(p.y())
        h, w = self._shape
        return (x, y) if 0 <= x < w and 0 <= y < h else None

    def _moved(self, pos) -> None:
        pixel = self._pixel(pos)
        if pixel is not None:
            self.hovered.emit(*pixel)

    def _clicked(self, event) -> None:
        pixel = self._pixel(event.scenePos())
        if pixel is not None:
            self.clicked.emit(*pixel)
