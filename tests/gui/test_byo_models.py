"""Bring your own network in the window: an ONNX file opens in the Models panel (frozen: listed like SGBM,
kept out of importance and pruning, its conventions and assumptions shown) and teaches a distillation but
is never the student; a custom architecture's model.py runs only after a confirmation naming the file
("no" loads nothing and says why, "yes" loads it, and copies of the same code do not ask again)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from stereo_studio.gui import trust_dialog
from stereo_studio.models import custom_arch
from tests.models.byo_models import MODEL_PY, export_teacher_onnx, write_custom_model


@pytest.fixture(scope="module")
def teacher_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_teacher_onnx(tmp_path_factory.mktemp("onnx") / "teacher.onnx")


@pytest.fixture(autouse=True)
def _no_trust():
    custom_arch.reset_trust()
    yield
    custom_arch.reset_trust()


def _rows(panel) -> list[tuple[str, str]]:
    items = [panel.layers.topLevelItem(i) for i in range(panel.layers.topLevelItemCount())]
    return [(item.text(0), item.text(1)) for item in items]


def _combo(box) -> list[str]:
    return [box.itemText(i) for i in range(box.count())]


def _messages(window, level: str) -> list[str]:
    return [text for lvl, text, _ in window.messages.history if lvl == level]


def test_onnx_model_opens_frozen_with_its_conventions_and_assumptions(make_window, qtbot, teacher_onnx,
                                                                      tmp_path):
    bare = tmp_path / "bare.onnx"  # the same graph without its sidecar: conventions assumed
    shutil.copyfile(teacher_onnx, bare)
    window = make_window(models=[("sgbm", "sgbm")])
    window.show_panel("models")
    panel = window.models
    panel.open_path(str(teacher_onnx))
    panel.open_path(str(bare))
    qtbot.waitUntil(lambda: window.studio.entry("bare.onnx") is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.studio.entry("teacher.onnx") is not None, timeout=60_000)
    entry = window.studio.entry("teacher.onnx")
    assert entry.model is None and not entry.is_network and entry.spec == str(teacher_onnx)
    assert panel._item("teacher.onnx").text(1) == "model  · ONNX"
    panel.table.setCurrentItem(panel._item("teacher.onnx"))
    rows = _rows(panel)
    assert ("conventions", f"from {teacher_onnx}.json") in rows
    assert ("assumed", "nothing: every convention is stated") in rows
    assert '"max_disp": 64' in panel.config.toPlainText() and "ONNX" in panel.title.text()

    panel.table.setCurrentItem(panel._item("bare.onnx"))
    rows = _rows(panel)
    assumed = [text for label, text in rows if label == "assumed"]
    assert ("conventions", f"not stated: no {bare}.json (write it to state them)") in rows
    assert any("padded to a multiple of 32" in a for a in assumed)
    assert any("max disparity 192" in a for a in assumed)
    assert '"layout": "NCHW"' in panel.config.toPlainText()
    assert "padded to a multiple of 32" in panel._item("bare.onnx").toolTip(0)
    note = next(t for t in _messages(window, "warning") if str(bare) in t)  # said once, when opened
    assert "assumed" in note and "padded to a multiple of 32" in note
    assert not any(str(teacher_onnx) + ":" in t for t in _messages(window, "warning"))

    # frozen: not scored or pruned, but previewed like every open model
    assert "teacher.onnx" not in _combo(window.importance.model)
    assert "teacher.onnx" not in _combo(window.pruning.model)
    window.preview.refresh()
    qtbot.waitUntil(window.preview.complete, timeout=60_000)
    assert {"teacher.onnx", "bare.onnx"} <= set(window.preview.frame.outputs)
    assert "ONNX" in window.preview._panes["bare.onnx"].toolTip()
    assert not window.messages.errors()


def test_custom_model_runs_only_after_a_yes_naming_its_file(make_window, qtbot, tmp_path, monkeypatch):
    folder = write_custom_model(tmp_path / "pairnet", code=MODEL_PY + f"\n# {tmp_path}\n")  # fresh import
    code = (folder / "model.py").resolve()
    flag = folder / "imported.flag"
    window = make_window(models=[("sgbm", "sgbm")])
    asked: list[Path] = []
    answer = {"yes": False}

    def confirm(path, parent=None):
        asked.append(Path(path))
        return answer["yes"]

    monkeypatch.setattr(trust_dialog, "confirm_trust", confirm)
    window.models.open_path(str(folder))
    qtbot.waitUntil(lambda: any("did not open" in t for t in _messages(window, "warning")), timeout=30_000)
    assert asked == [code]
    declined = next(t for t in _messages(window, "warning") if "did not open" in t)
    assert str(code) in declined and "not run" in declined
    assert window.studio.entry("pairnet") is None and not window.studio.loading()
    assert not flag.exists()  # model.py never ran
    assert not window.messages.errors()

    answer["yes"] = True
    window.models.open_path(str(folder))
    qtbot.waitUntil(lambda: window.studio.entry("pairnet") is not None, timeout=60_000)
    assert asked == [code, code] and flag.exists()
    entry = window.studio.entry("pairnet")
    assert entry.is_network and entry.untrained  # no model.safetensors: build()'s initial weights
    assert "pairnet" in _combo(window.pruning.model) and "pairnet" in _combo(window.importance.model)

    # the same code elsewhere (what a pruned or fine-tuned copy carries) loads without asking again
    copy = tmp_path / "pairnet-copy"
    shutil.copytree(folder, copy)
    window.models.open_path(str(copy))
    qtbot.waitUntil(lambda: window.studio.entry("pairnet-copy") is not None, timeout=60_000)
    assert len(asked) == 2
    # edited code is new code: asked again
    edited = write_custom_model(tmp_path / "edited", code=MODEL_PY + "\n# edited\n")
    answer["yes"] = False
    window.models.open_path(str(edited))
    qtbot.waitUntil(lambda: len(asked) == 3, timeout=30_000)
    assert asked[-1] == (edited / "model.py").resolve()
    assert not window.messages.errors()


def test_the_trust_dialog_names_the_file_and_defaults_to_no(qtbot, monkeypatch, tmp_path):
    shown = []

    def exec_(box):
        shown.append((box.text(), box.defaultButton() is box.button(QMessageBox.No)))
        return QMessageBox.No

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    path = tmp_path / "net" / "model.py"
    assert trust_dialog.confirm_trust(path) is False
    assert str(path) in shown[0][0] and shown[0][1]


def test_distill_panel_takes_an_onnx_teacher_but_never_as_student(make_window, qtbot, tmp_path, teacher_onnx,
                                                                   wait_job):
    window = make_window(models=[("student", "student"), (str(teacher_onnx), "teacher")])
    window.show_panel("distill")
    panel = window.distill
    assert panel.teacher.currentText() == "teacher.onnx"  # the open teacher is the default
    assert "teacher.onnx" not in _combo(panel.start_from)
    config = panel.config()
    assert config.teacher == str(teacher_onnx) and config.w_feat == 0.0 and config.w_teacher > 0

    panel.start_from.addItem("teacher.onnx")  # even if it were offered, the student is refused
    panel.start_from.setCurrentText("teacher.onnx")
    panel.start()
    assert panel.job is None
    refused = window.messages.errors()[-1]
    assert str(teacher_onnx) in refused and "not trained or fine-tuned as a student" in refused
    panel._models_changed()
    assert "teacher.onnx" not in _combo(panel.start_from)

    # a short distillation from the ONNX teacher (outputs only) runs and its student opens
    panel.run_root.setText(str(tmp_path))
    panel.steps.setValue(2)
    panel.batch.setValue(1)
    panel.crop_h.setValue(64)
    panel.crop_w.setValue(96)
    panel.val_interval.setValue(2)
    for key, w in panel.knobs.items():
        if w.isEnabled() and key != "agg_blocks":
            w.setValue(min(w.value(), 16))
    panel.start()
    wait_job(panel.job, 180_000)
    assert panel.job.status == "done", panel.job.error
    qtbot.waitUntil(lambda: any(m.role == "distilled" for m in window.studio.models), timeout=60_000)


def test_pruning_panel_export_writes_the_sidecar_and_reopens_as_onnx(make_window, qtbot, tmp_path):
    window = make_window(models=[("student", "student")])
    out = tmp_path / "student.onnx"
    window.pruning.export_onnx(str(out))
    qtbot.waitUntil(lambda: any(str(out) in t for t in _messages(window, "ok")), timeout=120_000)
    assert Path(f"{out}.json").is_file()  # written by the engine's export: CLI and window alike
    window.models.open_path(str(out))
    qtbot.waitUntil(lambda: window.studio.entry("student.onnx") is not None, timeout=60_000)
    assert window.studio.entry("student.onnx").matcher.assumptions == []
    assert not window.messages.errors()
