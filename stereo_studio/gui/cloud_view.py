"""The 3D view: the metric point cloud of one model's disparity on the preview's frame, coloured by the image
or by depth.

Drawn with pyqtgraph's OpenGL view (`GLViewWidget`: drag to orbit, middle-drag / Ctrl+drag to pan, wheel to
zoom) where OpenGL works, e.g. a desktop or Xvfb with Mesa; elsewhere (Qt's offscreen platform, a machine
without OpenGL, `STEREO_STUDIO_GL=0`) with the engine's software renderer (`render_view`): drag to orbit,
wheel to zoom. The panel says which one is shown. Points and pictures are computed in workers
(`preview_frames.cloud_data`, `render_cloud`); this module only draws them.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from stereo_studio.gui import theme
from stereo_studio.gui.preview_frames import CloudData, PreviewFrame, cloud_data, render_cloud
from stereo_studio.gui.studio import Studio
from stereo_studio.gui.workers import JobRecord

ELEVATION, AZIMUTH = 15.0, -72.0  # the OpenGL camera's start: behind the cameras, above and to the right
YAW, PITCH = -18.0, -15.0  # the software view's start, about the same
MAX_RENDER = (900, 1600)  # the software view's largest picture (height, width)


@cache
def gl_status() -> tuple[bool, str]:
    """(OpenGL usable, why not): pyqtgraph.opengl importable (PyOpenGL), a platform with OpenGL and a
    context that can be created and made current. Checked once."""
    if os.environ.get("STEREO_STUDIO_GL", "").strip() == "0":
        return False, "turned off by STEREO_STUDIO_GL=0"
    from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

    platform = QGuiApplication.platformName()
    if platform in ("offscreen", "minimal", "vnc"):
        return False, f"Qt's '{platform}' platform has no OpenGL"
    try:
        import pyqtgraph.opengl  # noqa: F401 (needs PyOpenGL)
    except Exception as exc:
        return False, f"pyqtgraph.opengl unavailable ({type(exc).__name__}: {exc})"
    context = QOpenGLContext()
    if not context.create():
        return False, "no OpenGL context could be created"
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        if not surface.isValid() or not context.makeCurrent(surface):
            return False, "an OpenGL context could not be made current"
        context.doneCurrent()
    finally:
        surface.destroy()
    return True, ""


def export_cloud_dialog(parent: QWidget, studio: Studio, frame: PreviewFrame | None, model: str,
                        path: str | None = None) -> JobRecord | None:
    """Ask where to write `model`'s point cloud of `frame` (unless `path` is given) and write it in the
    background; the result (points, median depth) or the error (no calibration) goes to the message bar."""
    from pathlib import Path

    from PySide6.QtWidgets import QFileDialog

    from stereo_studio.gui.preview_frames import export_cloud

    if frame is None or frame.result is None or model not in frame.outputs:
        studio.message.emit("warning", f"no disparity of '{model}' to export yet")
        return None
    if path is None:
        start = Path(studio.settings.get("dirs/cloud", str(Path.home())))
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
        suggestion = str(start / f"{safe}-{frame.position if frame.position is not None else 0:04d}.ply")
        path, _ = QFileDialog.getSaveFileName(parent, f"Export the point cloud of {model}", suggestion,
                                              "PLY point clouds (*.ply);;All files (*)")
        if not path:
            return None
    if not path.lower().endswith(".ply"):
        path += ".ply"
    studio.settings.set("dirs/cloud", str(Path(path).parent))

    def done(info: dict) -> None:
        studio.message.emit(
            "ok", f"point cloud of {model} saved to {info['path']}: {info['points']:,} points, median depth "
            f"{info['median_depth']:.2f} {info['units']}"
        )

    return studio.jobs.start(
        f"Export point cloud ({model})", export_cloud, frame, model, path,
        on_result=done, on_error=lambda text: studio.message.emit("error", f"point cloud: {text}"),
    )


def _qimage(rgb: np.ndarray) -> QImage:
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb)
    return QImage(data.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class SoftwareCloudView(QWidget):
    """Shows the software renderer's picture; drag to orbit, wheel to zoom, double-click to reset.
    `changed` asks for a new picture (the angles, zoom or size changed)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMouseTracking(False)
        self.setCursor(Qt.OpenHandCursor)
        self.yaw, self.pitch = YAW, PITCH
        self.zoom = 1.0
        self.image: QImage | None = None
        self._drag: QPointF | None = None

    def reset(self) -> None:
        self.yaw, self.pitch, self.zoom = YAW, PITCH, 1.0
        self.changed.emit()

    def render_size(self) -> tuple[int, int]:
        return min(max(self.height(), 60), MAX_RENDER[0]), min(max(self.width(), 80), MAX_RENDER[1])

    def set_image(self, rgb: np.ndarray) -> None:
        self.image = _qimage(rgb)
        self.update()

    def paintEvent(self, _event: Any) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.transparent)
        if self.image is not None:
            size = self.image.size().scaled(self.size(), Qt.KeepAspectRatio)
            x, y = (self.width() - size.width()) / 2, (self.height() - size.height()) / 2
            painter.drawImage(QRectF(x, y, size.width(), size.height()), self.image)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._drag = event.position()
        self.setCursor(Qt.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is None:
            return
        delta = event.position() - self._drag
        self._drag = event.position()
        self.yaw = (self.yaw - 0.4 * delta.x() + 180.0) % 360.0 - 180.0
        self.pitch = max(-89.0, min(89.0, self.pitch + 0.4 * delta.y()))
        self.changed.emit()

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:
        self._drag = None
        self.setCursor(Qt.OpenHandCursor)

    def mouseDoubleClickEvent(self, _event: QMouseEvent) -> None:
        self.reset()

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        self.zoom = max(0.1, min(20.0, self.zoom * 1.15**steps))
        self.changed.emit()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.changed.emit()


def _gl_view_class() -> type:
    import pyqtgraph.opengl as gl

    class GLCloudView(gl.GLViewWidget):
        """pyqtgraph's OpenGL view with one scatter item; notes the renderer when initialised."""

        def __init__(self) -> None:
            super().__init__()
            self.renderer = ""
            self.setBackgroundColor(theme.PANEL)
            self.scatter = gl.GLScatterPlotItem(pos=np.zeros((1, 3), np.float32), size=2.0, pxMode=True)
            self.scatter.setGLOptions("opaque")
            self.addItem(self.scatter)
            self.setMinimumSize(240, 180)

        def initializeGL(self) -> None:
            super().initializeGL()
            try:
                from OpenGL import GL

                self.renderer = GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
            except Exception:  # the name is informative only
                self.renderer = "unknown renderer"

    return GLCloudView


class CloudPanel(QWidget):
    """The 3D view of the preview's current frame, for one model; follows the preview while it plays."""

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self.data: CloudData | None = None
        self.error = ""
        self._frame: PreviewFrame | None = None
        self._dirty = True
        self._job: JobRecord | None = None
        self._pending = False
        self._render_job: JobRecord | None = None
        self._render_pending = False
        self._rendered = False
        self._camera_set = False
        self.gl_ok, self.gl_reason = False, ""
        self.view: Any = None
        self._build()
        studio.frame_changed.connect(self._frame_changed)
        studio.models_changed.connect(self._fill_models)

    # ----- layout
    def _build(self) -> None:
        s = self.studio.settings
        self.model = QComboBox()
        self.model.setMinimumWidth(150)
        self.model.setToolTip("The model whose disparity becomes the point cloud")
        self.model.activated.connect(self._model_chosen)
        self.colour = QComboBox()
        self.colour.addItem("image colours", "image")
        self.colour.addItem("depth colours", "depth")
        self.colour.setCurrentIndex(1 if s.get("cloud/colour", "image") == "depth" else 0)
        self.colour.setToolTip("Colour the points from the left image or by their depth (colour map)")
        self.colour.currentIndexChanged.connect(self._colour_changed)
        self.point_size = QSpinBox()
        self.point_size.setRange(1, 8)
        self.point_size.setValue(int(s.get("cloud/point_size", 2)))
        self.point_size.setPrefix("point ")
        self.point_size.setSuffix(" px")
        self.point_size.setToolTip("Size of each point on screen")
        self.point_size.valueChanged.connect(self._point_size_changed)
        self.follow = QCheckBox("follow the preview")
        self.follow.setChecked(True)
        self.follow.setToolTip("Update the cloud with every new frame of the preview")
        self.follow.toggled.connect(lambda on: on and self.update_cloud())
        reset = QPushButton("Reset view")
        reset.setToolTip("Back to the first view of the cloud (software view: also a double-click)")
        reset.clicked.connect(self.reset_view)
        self.export_btn = QPushButton("Export PLY…")
        self.export_btn.setToolTip("Write this cloud as a binary PLY file (metric, coloured from the image)")
        self.export_btn.clicked.connect(self._export)
        top = QHBoxLayout()
        top.addWidget(QLabel("model"))
        top.addWidget(self.model)
        top.addWidget(self.colour)
        top.addWidget(self.point_size)
        top.addWidget(self.follow)
        top.addStretch(1)
        top.addWidget(reset)
        top.addWidget(self.export_btn)

        self.info = QLabel("")
        self.info.setProperty("role", "caption")
        self.info.setWordWrap(True)
        self.mode = QLabel("")
        self.mode.setProperty("role", "caption")
        self.mode.setWordWrap(True)
        self.message = QLabel("")
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {theme.MUTED}; font-size: 13px; padding: 24px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        foot = QHBoxLayout()
        foot.addWidget(self.info, 1)
        foot.addWidget(self.mode, 1)
        layout.addLayout(foot)
        self._show_message("The 3D view shows the preview's frame once a disparity map is drawn.")

    def _ensure_view(self) -> None:
        """Create the view on first show: OpenGL when it works here, else the software view."""
        if self.view is not None:
            return
        self.gl_ok, self.gl_reason = gl_status()
        if self.gl_ok:
            try:
                self.view = _gl_view_class()()
            except Exception as exc:  # PyOpenGL present but the view cannot be made: software instead
                self.gl_ok, self.gl_reason = False, f"OpenGL view failed ({type(exc).__name__}: {exc})"
        if not self.gl_ok:
            self.view = SoftwareCloudView()
            self.view.changed.connect(self._render)
        self.stack.addWidget(self.view)
        self.mode.setText(self.renderer_text())
        self.mode.setAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def renderer_text(self) -> str:
        if self.view is None:
            ok, why = gl_status()
            return "OpenGL (not started yet)" if ok else f"software view: {why}"
        if self.gl_ok:
            name = getattr(self.view, "renderer", "")
            name = f" ({name})" if name else ""
            return f"OpenGL view{name}: drag to orbit, Ctrl+drag or middle-drag to pan, wheel to zoom"
        return f"Software view (OpenGL unavailable: {self.gl_reason}): drag to orbit, wheel to zoom"

    # ----- state
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._ensure_view()
        if self._dirty:
            self.update_cloud()

    def ready(self) -> bool:
        """Shows a cloud (or says why there is none) for the current frame."""
        if self.error:
            return True
        if self.data is None:
            return False
        return self.gl_ok or self._rendered

    def focus_on(self, model: str) -> None:
        """Show `model`'s cloud (the preview's "Show in 3D view")."""
        self._fill_models()
        index = self.model.findText(model)
        if index >= 0:
            self.model.setCurrentIndex(index)
            self.studio.settings.set("cloud/model", model)
        self.update_cloud()

    def _model_chosen(self, _index: int) -> None:
        self.studio.settings.set("cloud/model", self.model.currentText())  # the user's choice is kept
        self.update_cloud()

    def _fill_models(self) -> None:
        frame = self.studio.frame
        keys = list(frame.outputs) if frame is not None else [m.key for m in self.studio.models]
        if [self.model.itemText(i) for i in range(self.model.count())] != keys:
            chosen = self.studio.settings.get("cloud/model", "")
            self.model.blockSignals(True)
            self.model.clear()
            self.model.addItems(keys)
            if chosen in keys:
                self.model.setCurrentText(chosen)
            self.model.blockSignals(False)

    def _frame_changed(self, _frame: Any) -> None:
        self._dirty = True
        if self.isVisible() and self.follow.isChecked():
            self.update_cloud()

    # ----- computing the cloud (latest request wins)
    def update_cloud(self) -> None:
        frame = self.studio.frame
        if frame is None:
            return
        self._ensure_view()
        self._fill_models()
        model = self.model.currentText()
        if not model:
            return
        if self._job is not None and self._job.active:
            self._pending = True
            return
        self._pending = False
        self._dirty = False
        self._frame = frame
        self._job = self.studio.jobs.start(
            "3D points", cloud_data, frame, model, self.studio.settings.get("preview/cmap", "turbo"),
            track=False, on_result=self._set_data, on_error=self._failed, on_finished=self._cloud_finished,
        )

    def _cloud_finished(self, _record: JobRecord) -> None:
        if self._pending:
            self.update_cloud()

    def _failed(self, text: str) -> None:
        self.data = None
        self._show_message(
            f"No 3D view of this frame: {text}\n\nA metric cloud needs a calibration: a dataset with "
            "calib.txt (Middlebury, ETH3D), a calibration file chosen in the preview (Calib…), or a "
            "calibrated video or camera."
        )
        self.info.setText("")

    def _show_message(self, text: str) -> None:
        self.error = text if "No 3D view" in text else ""
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self.export_btn.setEnabled(False)

    def _set_data(self, data: CloudData) -> None:
        self.data, self.error = data, ""
        self._ensure_view()
        self.stack.setCurrentWidget(self.view)
        self.export_btn.setEnabled(True)
        lo, hi = data.depth_range
        digits = 0 if data.units == "mm" else 2
        self.info.setText(
            f"<b>{data.model}</b> · {len(data.points):,} points · median depth "
            f"{data.median_depth:.{digits}f} {data.units} · depth colours {lo:.{digits}f} – "
            f"{hi:.{digits}f} {data.units} · calibration: {data.origin}"
        )
        self._draw()

    def _colour(self) -> str:
        return str(self.colour.currentData())

    def _colour_changed(self, _index: int) -> None:
        self.studio.settings.set("cloud/colour", self._colour())
        self._draw()

    def _point_size_changed(self, value: int) -> None:
        self.studio.settings.set("cloud/point_size", int(value))
        self._draw()

    def _draw(self) -> None:
        data = self.data
        if data is None or self.view is None:
            return
        if self.gl_ok:
            self.view.scatter.setData(pos=data.gl_points, color=data.rgba(self._colour()),
                                      size=float(self.point_size.value()))
            if not self._camera_set:
                self.reset_view()
            self.mode.setText(self.renderer_text())  # the renderer's name is known once GL started
        else:
            self._render()

    def reset_view(self) -> None:
        if self.view is None:
            return
        if self.gl_ok:
            from PySide6.QtGui import QVector3D

            data = self.data
            if data is None:
                return
            self._camera_set = True
            self.view.setCameraPosition(pos=QVector3D(*(float(v) for v in data.centre)),
                                        distance=3.3 * data.extent, elevation=ELEVATION, azimuth=AZIMUTH)
        else:
            self.view.reset()

    # ----- the software view's pictures (latest request wins)
    def _render(self) -> None:
        if self.gl_ok or self.data is None or self.view is None:
            return
        if self._render_job is not None and self._render_job.active:
            self._render_pending = True
            return
        self._render_pending = False
        view = self.view
        self._render_job = self.studio.jobs.start(
            "3D picture", render_cloud, self.data, self._colour(), view.yaw, view.pitch, view.render_size(),
            view.zoom, max(1, self.point_size.value()), track=False,
            on_result=self._rendered_image, on_finished=self._render_finished,
        )

    def _rendered_image(self, rgb: np.ndarray) -> None:
        if self.view is not None and not self.gl_ok:
            self.view.set_image(rgb)
            self._rendered = True

    def _render_finished(self, _record: JobRecord) -> None:
        if self._render_pending:
            self._render()

    def _export(self) -> None:
        if self.data is not None and self._frame is not None:
            export_cloud_dialog(self, self.studio, self._frame, self.data.model)

    def shutdown(self) -> None:
        for job in (self._job, self._render_job):
            if job is not None and job.active:
                self.studio.jobs.cancel(job)
