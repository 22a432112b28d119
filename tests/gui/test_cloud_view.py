"""The 3D view: the data path (points, colours), the software view under the offscreen platform, point-cloud
export from the preview, and the OpenGL view in a real X server (Xvfb)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from gui_scenes import BASELINE_M, FOCAL_PX, calibrated_scenes
from PySide6.QtCore import QPoint, Qt

from stereo_studio.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def _frame(dataset, index=0):
    from stereo_studio.gui.preview_frames import dataset_frame
    from stereo_studio.models.matchers import SGBMMatcher

    return dataset_frame(dataset, index, [("sgbm", SGBMMatcher(max_disp=32))])


def test_cloud_data_of_a_calibrated_pair(tmp_path):
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.gui.preview_frames import cloud_data, render_cloud

    frame = _frame(open_dataset(str(calibrated_scenes(tmp_path))))
    data = cloud_data(frame, "sgbm")
    n = len(data.points)
    assert n > 1000 and data.points.shape == (n, 3) and data.units == "mm"
    assert data.image_colours.shape == data.depth_colours.shape == (n, 3)
    assert data.image_rgba.shape == (n, 4) and float(data.image_rgba.max()) <= 1.0
    # depth = f B / d (mm); the OpenGL world is (x, z, -y): z up
    disp = frame.outputs["sgbm"].disparity
    d = float(np.median(disp[disp > 0]))
    assert data.median_depth == pytest.approx(FOCAL_PX * BASELINE_M * 1000 / d, rel=0.15)
    assert np.allclose(data.gl_points[:, 1], data.points[:, 2])
    assert np.allclose(data.gl_points[:, 2], -data.points[:, 1])
    picture = render_cloud(data, "depth", 20.0, -10.0, (60, 80), 1.0)
    assert picture.shape == (60, 80, 3) and len(np.unique(picture.reshape(-1, 3), axis=0)) > 10


def test_cloud_data_needs_a_calibration():
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.gui.preview_frames import cloud_data

    frame = _frame(open_dataset("synthetic", size=(64, 96)))
    with pytest.raises(DataError, match="calibration"):
        cloud_data(frame, "sgbm")


def test_software_view_offscreen_and_export(make_window, qtbot, tmp_path):
    from stereo_studio.gui.cloud_view import gl_status
    from stereo_studio.live.pointcloud import read_ply

    scenes = calibrated_scenes(tmp_path / "scenes")
    window = make_window(models=[("sgbm", "sgbm")])
    window.set_data(str(scenes))
    preview, cloud = window.preview, window.cloud
    qtbot.waitUntil(lambda: preview.frame.name == "scene0", timeout=30_000)
    ok, why = gl_status()
    assert not ok and "offscreen" in why  # Qt's offscreen platform has no OpenGL: the software view
    window.show_panel("cloud", "sgbm")
    qtbot.waitUntil(cloud.ready, timeout=30_000)
    assert cloud.data is not None and cloud.data.model == "sgbm"
    assert "Software view" in cloud.mode.text() and "offscreen" in cloud.mode.text()
    assert "points" in cloud.info.text() and "calib.txt" in cloud.info.text()
    view = cloud.view
    assert view.image is not None and view.image.width() > 0
    # drag orbits, the wheel zooms: each asks for a new picture
    first = view.image.copy()
    qtbot.mousePress(view, Qt.LeftButton, pos=view.rect().center())
    qtbot.mouseMove(view, view.rect().center() + QPoint(60, 20))
    qtbot.mouseRelease(view, Qt.LeftButton, pos=view.rect().center() + QPoint(60, 20))
    assert (view.yaw, view.pitch) != (-18.0, -15.0)
    qtbot.waitUntil(lambda: view.image != first, timeout=10_000)
    cloud.colour.setCurrentIndex(cloud.colour.findData("depth"))
    assert window.studio.settings.get("cloud/colour") == "depth"
    # the next pair: the cloud follows the preview
    before = cloud.data
    preview.step(1)
    qtbot.waitUntil(lambda: cloud.data is not before and cloud.data is not None, timeout=30_000)
    # export from the preview's model menu (a path given: no dialog)
    out = tmp_path / "cloud.ply"
    job = preview.export_cloud_dialog("sgbm", str(out))
    qtbot.waitUntil(lambda: not job.active, timeout=30_000)
    points, colours, info = read_ply(out)
    assert len(points) > 1000 and colours is not None and info["units"] == "mm"
    assert any(f"{len(points):,} points" in t for _, t, _ in window.messages.history)


def test_no_calibration_says_so_and_export_fails_clearly(make_window, qtbot, tmp_path):
    window = make_window(models=[("sgbm", "sgbm")])
    window.show_panel("cloud")
    cloud = window.cloud
    qtbot.waitUntil(cloud.ready, timeout=30_000)
    assert cloud.data is None and "calibration" in cloud.message.text()
    assert not cloud.export_btn.isEnabled()
    job = window.preview.export_cloud_dialog("sgbm", str(tmp_path / "x.ply"))
    qtbot.waitUntil(lambda: not job.active, timeout=30_000)
    assert "calibration" in window.messages.errors()[-1] and not (tmp_path / "x.ply").exists()


GL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from stereo_studio.gui.app import create_app
    from stereo_studio.gui.main_window import MainWindow
    from stereo_studio.gui.settings import Settings

    app = create_app()
    window = MainWindow(Settings(sys.argv[1]), restore=False, models=[("sgbm", "sgbm")], size=(96, 128),
                        data=sys.argv[2])
    window.resize(1000, 700)
    window.show()
    deadline = time.monotonic() + 120
    def wait(done):
        while not done() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
    wait(lambda: window.preview.frame is not None and window.preview.frame.name == "scene0")
    window.show_panel("cloud", "sgbm")
    wait(window.cloud.ready)
    wait(lambda: bool(window.cloud.view.renderer))
    image = window.grab().toImage()
    print("gl", window.cloud.gl_ok, "points", len(window.cloud.data.points), "renderer",
          window.cloud.view.renderer, "colours", len({image.pixel(x, y) for x in range(0, 1000, 20)
                                                       for y in range(150, 600, 20)}))
    window.close()
    """
)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_opengl_view_under_xvfb(tmp_path):
    scenes = calibrated_scenes(tmp_path / "scenes")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("QT_QPA_PLATFORM", None)  # a real X server (Mesa's llvmpipe), not the offscreen platform
    env.pop("STEREO_STUDIO_GL", None)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-c", GL_SCRIPT,
           str(tmp_path / "s.ini"), str(scenes)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(row for row in proc.stdout.splitlines() if row.startswith("gl "))
    words = line.split()
    assert words[1] == "True", line  # the OpenGL view, not the software fallback
    assert int(words[3]) > 1000
    assert int(words[-1]) > 8, line  # the grabbed window shows the cloud (not blank)
