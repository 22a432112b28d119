"""Your own PyTorch architecture (a model folder with model.py, written by the test, not the project's
student): trust, importance, pruning with protected layers from the graph and from config.json, sweep,
sensitivity, distillation as student and teacher, export, save and reload in a fresh process, and the one
clear message for each failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_studio.engine.jobs import run_with_progress
from stereo_studio.engine.pruning import macs_params, prune_model, pruning_graph
from stereo_studio.errors import ModelError
from stereo_studio.models import custom_arch
from stereo_studio.models.storage import load_matcher, load_model, load_net, save_model
from tests.models.byo_models import CONFIG, MODEL_PY, write_custom_model

REPO = Path(__file__).resolve().parents[2]
SIZE = (64, 128)


@pytest.fixture(autouse=True)
def _fresh_trust():
    custom_arch.reset_trust()
    yield
    custom_arch.reset_trust()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_custom_model(tmp_path / "pairnet")


def _pair(h: int = 52, w: int = 84) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)


def test_untrusted_code_never_runs(folder: Path) -> None:
    for load in (load_model, load_net, load_matcher):
        with pytest.raises(custom_arch.CodeNotTrustedError) as err:
            load(str(folder))
        assert str(folder / "model.py") in str(err.value) and "--trust-code" in str(err.value)
        assert err.value.path == (folder / "model.py").resolve()
    assert not (folder / "imported.flag").exists()


def test_trust_is_per_file_content(folder: Path) -> None:
    custom_arch.trust_code_file(folder / "model.py")  # what the window does after its confirmation
    model = load_model(folder)
    assert (folder / "imported.flag").exists()
    assert model.config == {k: v for k, v in CONFIG.items()} and model.meta["untrained"] is True
    (folder / "model.py").write_text(MODEL_PY + "\n# edited\n")
    with pytest.raises(custom_arch.CodeNotTrustedError):
        load_model(folder)


def test_importance_sees_protected_layers(folder: Path) -> None:
    from stereo_studio.engine.importance import channel_importance

    custom_arch.allow_custom_code()
    model = load_net(str(folder))
    report = channel_importance(model, "l1")
    layers = {layer.name: layer for layer in report.layers}
    assert layers["gate"].protected  # listed in config.json
    assert layers["refine.1"].protected  # the graph's output layer
    assert layers["encoder.0.0"].channels == 16 and not layers["encoder.0.0"].protected
    assert all(np.isfinite(layer.scores).all() for layer in report.layers)


def test_prune_save_and_reload_in_a_fresh_process(folder: Path, tmp_path: Path) -> None:
    custom_arch.allow_custom_code()
    model = load_model(folder)
    pruned = prune_model(model, 0.5)
    before, after = macs_params(model, SIZE), macs_params(pruned, SIZE)
    assert after["macs"] < 0.75 * before["macs"] and after["params"] < before["params"]
    assert pruned.gate.out_channels == 32 and pruned.encoder[0][0].out_channels < 16
    out = save_model(pruned, tmp_path / "pruned", {"note": "test"})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.py", "model.safetensors"]
    assert (out / "model.py").read_text() == MODEL_PY
    config = json.loads((out / "config.json").read_text())
    assert config["pruned_shapes"]["encoder.0.0.weight"][0] < 16 and config["protected_layers"] == ["gate"]
    assert config["meta"] == {"note": "test"} and "arch" not in config

    left, right = _pair()
    with torch.no_grad():
        expected = pruned.eval()(left, right).numpy()
    np.save(tmp_path / "left.npy", left.numpy())
    np.save(tmp_path / "right.npy", right.numpy())
    code = (
        "import sys, numpy as np, torch\n"
        "from stereo_studio.models import custom_arch\n"
        "from stereo_studio.models.storage import load_model\n"
        "try:\n"
        f"    load_model({str(out)!r})\n"
        "except custom_arch.CodeNotTrustedError:\n"
        "    print('refused first')\n"
        "custom_arch.allow_custom_code()\n"
        f"m = load_model({str(out)!r})\n"
        f"l, r = (torch.from_numpy(np.load({str(tmp_path)!r} + f'/{{n}}.npy')) for n in ('left', 'right'))\n"
        "with torch.no_grad():\n"
        f"    np.save({str(tmp_path / 'out.npy')!r}, m(l, r).numpy())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "refused first" in proc.stdout
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_pruned_model_prunes_again_and_fine_tunes_by_distillation(folder: Path, tmp_path: Path) -> None:
    """As student (init_from the pruned folder) and as teacher (the unpruned folder)."""
    from stereo_studio.engine.training import TrainConfig, train

    custom_arch.allow_custom_code()
    first = save_model(prune_model(load_model(folder), 0.3), tmp_path / "p30")
    second = prune_model(load_model(first), 0.3)  # pruned shapes accumulate
    assert second.encoder[1][0].out_channels <= load_model(first).encoder[1][0].out_channels
    cfg = TrainConfig(arch=None, init_from=str(first), teacher=str(folder), steps=2, batch_size=1,
                      crop=(48, 64), val_pairs=1, val_interval=2, ckpt_interval=2, log_interval=1,
                      synthetic_pairs=4, precision="fp32", threads=1, cache_mb=50, val_at_start=False)
    result = run_with_progress(train(cfg, tmp_path / "run"), desc="distill", quiet=True)
    tuned = load_model(result)
    assert (Path(result) / "model.py").read_text() == MODEL_PY
    assert tuned.encoder[0][0].out_channels == load_model(first).encoder[0][0].out_channels
    assert tuned.meta["trained_steps"] == 2


def test_sweep_and_sensitivity(folder: Path) -> None:
    from stereo_studio.engine.sensitivity import sensitivity
    from stereo_studio.engine.sweep import sweep

    custom_arch.allow_custom_code()
    points = run_with_progress(sweep(str(folder), [0.0, 0.5], "synthetic", val_pairs=1, size=SIZE),
                               desc="sweep", quiet=True)
    raw = {p.ratio: p for p in points if p.kind == "raw"}
    assert sorted(raw) == [0.0, 0.5] and raw[0.5].macs < raw[0.0].macs
    assert all(np.isfinite(p.epe) for p in points)
    table = run_with_progress(sensitivity(str(folder), "synthetic", [0.5], val_pairs=1, size=SIZE,
                                          layers=["aggregate.0.0"]), desc="sensitivity", quiet=True)
    assert [r.layer for r in table.rows] == ["aggregate.0.0"] and np.isfinite(table.rows[0].delta_epe)


def test_matcher_and_onnx_export(folder: Path, tmp_path: Path) -> None:
    from stereo_studio.engine.export import export_onnx

    custom_arch.allow_custom_code()
    matcher = load_matcher(str(folder))  # what preview and eval run
    left = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    assert matcher.predict(left, left).shape == (50, 70) and matcher.max_disp == 32
    result = export_onnx(load_net(str(folder)), tmp_path / "pairnet.onnx", size=(64, 96), time_runs=1)
    assert result["max_abs_diff"] < 1e-3


def test_graph_pruning_cannot_follow_names_the_file(tmp_path: Path) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "protected_layers"}
    folder = write_custom_model(tmp_path / "unprotected", config=config)
    custom_arch.allow_custom_code()
    with pytest.raises(ModelError) as err:
        prune_model(load_model(folder), 0.5)
    message = str(err.value)
    assert str(folder / "model.py") in message and "protected_layers" in message
    assert str(folder / "config.json") in message


@pytest.mark.parametrize(
    ("code", "config", "expected"),
    [
        ("import torch\n", CONFIG, "defines no build function"),
        (MODEL_PY.replace("return disp[..., :h, :w]", "return disp[:, 0, :h, :w]"), CONFIG,
         "expected disparity N x 1 x H x W"),
        (MODEL_PY.replace("return PairNet(", "return None and PairNet("), CONFIG,
         "expected a torch.nn.Module"),
        ("import torch\nraise ImportError('needs mmcv')\n", CONFIG,
         "failed to import: ImportError: needs mmcv"),
        (MODEL_PY, {"width": 16}, "must give \"max_disp\""),
        (MODEL_PY, {**CONFIG, "protected_layers": ["nope"]}, "names 'nope'"),
    ],
)
def test_clear_failures(tmp_path: Path, code: str, config: dict, expected: str) -> None:
    folder = write_custom_model(tmp_path / "bad", code, config)
    custom_arch.allow_custom_code()
    with pytest.raises(ModelError) as err:
        pruning_graph(load_model(folder))
    assert expected in str(err.value)
    assert str(folder) in str(err.value)


def test_weights_that_do_not_fit_name_both_files(folder: Path, tmp_path: Path) -> None:
    custom_arch.allow_custom_code()
    out = save_model(prune_model(load_model(folder), 0.5), tmp_path / "pruned")
    config = json.loads((out / "config.json").read_text())
    del config["pruned_shapes"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as err:
        load_model(out)
    assert "model.safetensors" in str(err.value) and "config.json" in str(err.value)
    assert "shape mismatches" in str(err.value)
