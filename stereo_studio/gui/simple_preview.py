"""The minimal preview window of `stereo-studio preview` without `--headless` (the full panel is the app's
Preview tab): a label showing the left view and every disparity map, driven by the pipeline job."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QApplication, QLabel

from stereo_studio.live.recording import mosaic
from stereo_studio.progress import JobRun


def run_preview_window(job: Any, recorder: Any, title: str) -> Any:
    """Show each frame of the pipeline `job` until the stream ends or the window closes (which cancels the
    job); write frames to `recorder` if given. Returns the last FrameResult."""
    _app = QApplication.instance() or QApplication([])  # kept alive while the window runs
    loop = QEventLoop()

    class Window(QLabel):
        def closeEvent(self, event) -> None:
            loop.quit()
            super().closeEvent(event)

    label = Window()
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWindowTitle(f"Stereo Studio preview: {title}")
    state: dict[str, Any] = {"last": None}

    run = JobRun(job)

    def step() -> None:
        event = run.next_event()
        if event is None:  # the stream ended
            timer.stop()
            label.close()
            return
        if event.kind != "frame":
            return
        result = state["last"] = event.payload
        if recorder is not None:
            recorder.write_result(result)
        rgb = mosaic(result)
        image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
        label.setPixmap(QPixmap.fromImage(image.copy()))
        label.setWindowTitle(
            f"Stereo Studio preview: {title}  {result.fps:.1f} FPS  {result.latency_ms:.0f} ms latency"
        )

    timer = QTimer()
    timer.timeout.connect(step)
    label.resize(960, 320)
    label.show()
    timer.start(0)
    try:
        loop.exec()  # ends when the window closes: at the end of the stream or by the user
    finally:
        timer.stop()
        job.close()
        label.deleteLater()
    return state["last"]
