"""Issue 10: outputs checked before the work, stdout carries JSON or nothing, one clear line per bad value,
and warnings when a result will be out of its range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from stereo_studio.cli import main

REPO = Path(__file__).resolve().parents[2]


def _error(capsys, *argv: str) -> str:
    """Run a command expected to fail: the one `error:` line it printed (nothing on stdout)."""
    assert main(list(argv)) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err
    return errors[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stereo_studio.models.registry import build_model, default_config
    from stereo_studio.models.storage import save_model

    torch.manual_seed(0)
    config = default_config("student", max_disp=16, feature_channels=[8, 16], corr_channels=8, ctx_channels=8,
                            agg_channels=16, low_res_channels=16, refine_channels=8)
    return save_model(build_model(config), tmp_path_factory.mktemp("tiny") / "tiny")


# ----------------------------------------------------------------------------------------- prune --out


def test_prune_refuses_an_existing_model_folder(capsys, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    out.mkdir()
    (out / "card.md").write_text("a card of the model that was here\n")
    args = ["prune", "--model", str(tiny_model), "--ratio", "0.5", "--size", "32x48", "--out", str(out)]
    assert "--force" in _error(capsys, *args)
    assert sorted(p.name for p in out.iterdir()) == ["card.md"]  # nothing written, nothing removed
    # its own source, even with --force
    assert "is the model being read" in _error(capsys, *args[:-1], str(tiny_model), "--force")
    before = (tiny_model / "model.safetensors").read_bytes()
    assert (tiny_model / "model.safetensors").read_bytes() == before
    # --force replaces the model and leaves no stale card describing the old one
    assert main([*args, "--force", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["params_after"] < result["params_before"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_prune_checks_the_finetune_folders_before_the_work(capsys, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    (tmp_path / "tuned-run").mkdir()
    (tmp_path / "tuned-run" / "config.json").write_text("{}")
    line = _error(capsys, "prune", "--model", str(tiny_model), "--ratio", "0.5", "--finetune-steps", "1",
                  "--teacher", str(tiny_model), "--out", str(out))
    assert "tuned-run already holds a fine-tuning run" in line
    assert not out.exists() and not (tmp_path / "tuned-pruned").exists()


@pytest.mark.parametrize("command", ["prune", "importance"])
@pytest.mark.parametrize("value", ["0", "-8"])
def test_round_to_must_be_positive(capsys, tiny_model: Path, tmp_path: Path, command: str, value: str):
    extra = ["--ratio", "0.5", "--out", str(tmp_path / "x")] if command == "prune" else []
    line = _error(capsys, command, "--model", str(tiny_model), "--round-to", value, *extra)
    assert "--round-to must be at least 1" in line


# ----------------------------------------------------------------------------------------- output paths


def test_calibrate_checks_out_before_searching_corners(capsys, tmp_path: Path) -> None:
    images = tmp_path / "no-images-here"
    assert "--out" in _error(capsys, "calibrate", "--images", str(images), "--out", str(tmp_path / "c.txt"))
    (tmp_path / "dir.yml").mkdir()
    line = _error(capsys, "calibrate", "--images", str(images), "--out", str(tmp_path / "dir.yml"))
    assert "is a folder" in line
    (tmp_path / "file").write_text("")
    line = _error(capsys, "calibrate", "--images", str(images), "--out", str(tmp_path / "file" / "c.yml"))
    assert "is not a folder" in line


def test_export_checks_out_and_opset_before_loading(capsys, tmp_path: Path) -> None:
    assert ".onnx" in _error(capsys, "export", "--model", "no-such-model", "--onnx", str(tmp_path / "m.pt"))
    line = _error(capsys, "export", "--model", "arch:student", "--onnx", str(tmp_path / "m.onnx"),
                  "--opset", "9")
    assert "opset must be between 11 and" in line


# ----------------------------------------------------------------------------------------- --json


def test_failing_json_command_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """Before: a failing export dumped ~88 KB of TorchScript graph on stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "stereo_studio", "export", "--model", "student", "--opset", "9",
         "--onnx", str(tmp_path / "m.onnx"), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1].startswith("error: ")


def test_json_stdout_sends_every_other_write_to_stderr() -> None:
    code = (
        "import os, sys\n"
        "from stereo_studio.cli.common import json_stdout, print_json\n"
        "with json_stdout():\n"
        "    os.write(1, b'native noise\\n')\n"
        "    print('python noise')\n"
        "    print_json({'ok': 1})\n"
        "print('after')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{"ok": 1}\nafter\n'
    assert "native noise" in proc.stderr and "python noise" in proc.stderr


# ----------------------------------------------------------------------------------------- bad values


def test_sgbm_on_an_image_narrower_than_its_range_is_one_clear_line(capsys) -> None:
    """Before: "error: error: OpenCV(...) Failed to allocate 18446744073709491153 bytes"."""
    line = _error(capsys, "eval", "--model", "sgbm", "--data", "synthetic", "--size", "32x48", "--max-disp",
                  "64", "--limit", "1")
    assert line.startswith("error: SGBM cannot match a 48 px wide image with 64 disparities")
    assert "--max-disp 32 or less" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "--model", "sgbm", "--data", "synthetic", "--seed", "-1"], "--seed must be between 0"),
        (["generate", "--out", "{tmp}/g", "--pairs", "1", "--seed", "-1"], "--seed must be between 0"),
        (["train", "--data", "synthetic", "--steps", "1", "--seed", "-1", "--out", "{tmp}/run"], "--seed"),
        (["train", "--data", "synthetic", "--steps", "1", "--lr", "nan", "--out", "{tmp}/run"],
         "--lr must be a finite number"),
        (["train", "--data", "synthetic", "--steps", "1", "--lr", "0", "--out", "{tmp}/run"],
         "--lr must be positive"),
        (["train", "--data", "synthetic", "--steps", "1", "--model-config", '{"agg_channels": -48}',
          "--out", "{tmp}/run"], "--model-config: config value agg_channels=-48 must not be negative"),
        (["train", "--data", "synthetic", "--steps", "1", "--model-config", '{"agg_channels": 60000}',
          "--out", "{tmp}/run"], "--model-config: these widths give"),
    ],
)
def test_bad_values_name_their_option(capsys, tmp_path: Path, argv: list[str], expected: str) -> None:
    line = _error(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert expected in line
    assert not (tmp_path / "run").exists()  # no stray run folder


def test_corrupt_run_config_names_the_file(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"arch": "student", ')
    line = _error(capsys, "train", "--data", "synthetic", "--steps", "1", "--out", str(run), "--resume")
    assert str(run / "config.json") in line and "unreadable" in line


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_minimum_max_disp_is_the_same_for_every_architecture(capsys, arch: str) -> None:
    from stereo_studio.errors import ModelError
    from stereo_studio.models.registry import MIN_MAX_DISP, build_model, default_config

    line = _error(capsys, "bench", "--model", f"arch:{arch}", "--size", "32x48", "--max-disp", "7")
    assert f"--max-disp must be at least {MIN_MAX_DISP}, got 7" in line
    with pytest.raises(ModelError, match=f"max_disp must be at least {MIN_MAX_DISP}"):
        build_model(default_config(arch, max_disp=MIN_MAX_DISP - 1))
    assert build_model(default_config(arch, max_disp=MIN_MAX_DISP)).config["max_disp"] == MIN_MAX_DISP


# ----------------------------------------------------------------------------------------- warnings


def test_eval_warns_when_the_scene_exceeds_the_models_range(capsys, tiny_model: Path) -> None:
    # synthetic 64x96 pairs have disparities up to 48 px: beyond a model trained with max_disp 16
    assert main(["eval", "--model", str(tiny_model), "--data", "synthetic", "--size", "64x96", "--limit", "2",
                 "--precision", "fp32", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert len(result["warnings"]) == 1 and "max disparity is 16" in result["warnings"][0]
    assert "(and 1 more of 2 pairs)" in result["warnings"][0]
    assert captured.err.count("warning: ") == 1 and "disparities reach 48 px" in captured.err


def test_eval_warns_when_the_image_is_too_small(capsys) -> None:
    assert main(["eval", "--model", "arch:student", "--data", "synthetic", "--size", "24x64", "--limit", "1",
                 "--precision", "fp32", "--json"]) == 0
    captured = capsys.readouterr()
    assert "too small for student-untrained" in json.loads(captured.out)["warnings"][0]
    assert "warning: " in captured.err


def test_calibrate_warns_about_an_absurd_rectification(capsys, chessboard_dir: Path, tmp_path: Path) -> None:
    """Left and right images paired wrongly: the calibration runs, but its error is absurd."""
    images = tmp_path / "shuffled"
    images.mkdir()
    lefts = sorted(chessboard_dir.glob("left*.jpg"))
    rights = sorted(chessboard_dir.glob("right*.jpg"))
    for i, (left, right) in enumerate(zip(lefts, rights[3:] + rights[:3], strict=True)):
        (images / f"left{i:02d}.jpg").write_bytes(left.read_bytes())
        (images / f"right{i:02d}.jpg").write_bytes(right.read_bytes())
    assert main(["calibrate", "--images", str(images), "--out", str(tmp_path / "c.yml"), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["warnings"] and "implausible" in summary["warnings"][0]
    assert "warning: calibration" in captured.err


# ----------------------------------------------------------------------------------------- packaging


def test_export_needs_no_extra() -> None:
    """ONNX export works out of the box: onnx and onnxruntime are default dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert {"onnx", "onnxruntime"} <= names
    assert "onnx" in project["optional-dependencies"]  # `pip install ".[test,onnx]"` still resolves


# ----------------------------------------------------------------------------------------- train --aug-scale


@pytest.mark.parametrize("value", ["0.7", "a,b", "1.3,0.7", "0,1"])
def test_train_refuses_a_bad_scale_range(capsys, tmp_path: Path, value: str) -> None:
    error = _error(capsys, "train", "--data", "synthetic", "--steps", "1", "--aug-scale", value,
                   "--out", str(tmp_path / "run"))
    assert error.startswith("error: --aug-scale: expected"), error
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------- train --ema


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_train_refuses_a_bad_weight_average_decay(capsys, tmp_path: Path, value: str) -> None:
    error = _error(capsys, "train", "--data", "synthetic", "--steps", "1", "--ema", value,
                   "--out", str(tmp_path / "run"))
    assert "ema must be a decay in [0, 1)" in error, error
    assert not (tmp_path / "run").exists()
