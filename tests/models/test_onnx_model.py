"""An ONNX stereo network as a frozen model: the project's own teacher exported to ONNX gives the PyTorch
teacher's disparity, EPE and distillation; conventions come from the sidecar or the graph (layout, range,
channel order, mean / std, fixed size, padding, low-resolution output, scale and sign), and a wrong graph
fails with one message naming the file."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stereo_studio.engine.jobs import run_with_progress
from stereo_studio.errors import ModelError
from stereo_studio.models import onnx_net
from stereo_studio.models.onnx_net import OnnxMatcher, OnnxStereoNet, sidecar_path, write_sidecar
from stereo_studio.models.storage import load_matcher, load_model
from tests.models.byo_models import export_teacher_onnx


@pytest.fixture(scope="module")
def teacher_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_teacher_onnx(tmp_path_factory.mktemp("onnx") / "teacher.onnx")


@pytest.fixture(autouse=True)
def _no_overrides():
    onnx_net.set_onnx_overrides(None)
    yield
    onnx_net.set_onnx_overrides(None)


def _images(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from stereo_studio.engine.bench import synthetic_pair

    return synthetic_pair((h, w), 32, seed)


def _export(module: nn.Module, path: Path, shapes: list[tuple[int, ...]], names: list[str],
            dynamic: dict[int, str] | None = None) -> Path:
    """Export a toy network with torch's TorchScript exporter (dynamic axes `dynamic` on every input)."""
    inputs = tuple(torch.rand(*s) for s in shapes)
    axes = None
    if dynamic:
        axes = {n: dynamic for n in names} | {"out": {k: f"{v}_out" for k, v in dynamic.items()}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), inputs, str(path), input_names=names, output_names=["out"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


# ----------------------------------------------------------------------------------- the project's teacher


def test_onnx_teacher_gives_the_pytorch_teachers_disparity(teacher_onnx: Path) -> None:
    onnx = load_matcher(str(teacher_onnx))
    torch_teacher = load_matcher("teacher", precision="fp32")
    assert isinstance(onnx, OnnxMatcher) and onnx.max_disp == 64 and onnx.assumptions == []
    left, right = _images(52, 84)
    np.testing.assert_allclose(onnx.predict(left, right), torch_teacher.predict(left, right), atol=1e-3)
    net = load_model(str(teacher_onnx))  # what distillation uses as a teacher
    assert isinstance(net, OnnxStereoNet) and net.config["max_disp"] == 64
    batch = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    other = batch.flip(0)
    out = net(batch, other)  # the graph's batch is fixed at 1: pairs run one by one
    assert out.shape == (2, 1, 40, 56)
    torch.testing.assert_close(out[1:2], net(batch[1:2], other[1:2]), atol=1e-5, rtol=0)


def test_eval_cli_onnx_teacher_matches_pytorch_teacher(teacher_onnx: Path, capsys) -> None:
    from stereo_studio.cli import main

    results = {}
    for spec in ("teacher", str(teacher_onnx)):
        assert main(["eval", "--model", spec, "--data", "synthetic", "--limit", "2", "--size", "64x96",
                     "--precision", "fp32", "--json"]) == 0
        results[spec] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    a, b = results["teacher"], results[str(teacher_onnx)]
    assert b["max_disp"] == 64 and b["pairs"] == 2
    assert abs(a["epe"] - b["epe"]) <= 0.01 * a["epe"]


def test_aloe_epe_matches_pytorch_teacher(teacher_onnx: Path, aloe_q: Path) -> None:
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.engine.evaluate import evaluate

    epe = {}
    for spec in ("teacher", str(teacher_onnx)):
        matcher = load_matcher(spec, precision="fp32")
        result = run_with_progress(evaluate(matcher, open_dataset(str(aloe_q))), desc="eval", quiet=True)
        epe[spec] = result["epe"]
    assert abs(epe["teacher"] - epe[str(teacher_onnx)]) <= 0.01 * epe["teacher"]


def _distill(teacher: str, run: Path, **overrides) -> dict:
    from stereo_studio.engine.training import TrainConfig, train

    cfg = TrainConfig(arch="student", model_overrides={"agg_channels": 16}, teacher=teacher, steps=3,
                      batch_size=2, crop=(48, 64), val_pairs=1, val_interval=3, ckpt_interval=3,
                      log_interval=1, synthetic_pairs=4, precision="fp32", threads=1, cache_mb=50,
                      **overrides)
    run_with_progress(train(cfg, run), desc="distill", quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"loss": [r["loss"] for r in rows if r["kind"] == "step"],
            "val": json.loads((run / "summary.json").read_text())["validation"]}


def test_distill_from_onnx_teacher_as_from_pytorch_teacher(teacher_onnx: Path, tmp_path: Path) -> None:
    a = _distill("teacher", tmp_path / "pt")
    b = _distill(str(teacher_onnx), tmp_path / "onnx")
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-3)
    assert a["val"].keys() == b["val"].keys() and "val_gap" in b["val"]
    for key in a["val"]:
        assert b["val"][key] == pytest.approx(a["val"][key], rel=1e-3, abs=1e-3)


def test_feature_distillation_needs_a_pytorch_teacher(teacher_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"feature distillation .* needs a PyTorch teacher"):
        _distill(str(teacher_onnx), tmp_path / "feat", w_feat=1.0)


def test_frozen_onnx_is_refused_where_layers_are_needed(teacher_onnx: Path) -> None:
    from stereo_studio.models.storage import load_net

    with pytest.raises(ModelError, match=r"ONNX network, run frozen .* not pruned"):
        load_net(str(teacher_onnx))


def test_bench_runs_an_onnx_model(teacher_onnx: Path) -> None:
    from stereo_studio.engine.bench import bench_model

    result = bench_model(str(teacher_onnx), size=(48, 64), warmup=1, runs=2, memory=False)
    assert result["latency_ms"] > 0 and result["params"] == 0 and result["max_disp"] == 64


def test_without_sidecar_the_graph_is_read_and_the_rest_assumed(teacher_onnx: Path, tmp_path: Path,
                                                                caplog) -> None:
    bare = Path(shutil.copy(teacher_onnx, tmp_path / "bare.onnx"))
    with caplog.at_level("WARNING", logger="stereo_studio.models"):
        matcher = OnnxMatcher(bare)
    text = "; ".join(matcher.assumptions)
    assert "multiple of 32" in text and "max disparity 192" in text and "[0, 1]" in text
    assert "bare.onnx" in caplog.text and "assumed" in caplog.text
    left, right = _images(50, 70)
    assert matcher.predict(left, right).shape == (50, 70)
    matcher = OnnxMatcher(bare, max_disp=64, conventions={"pad_multiple": 1})  # what --onnx-config gives
    np.testing.assert_allclose(matcher.predict(left, right), load_matcher("teacher", precision="fp32")
                               .predict(left, right), atol=1e-3)


# ----------------------------------------------------------------------------------- conventions


class _FirstChannel(nn.Module):
    """NHWC images; returns -2 x the first channel (a negative disparity of twice that), N x H x W."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return -2.0 * a[..., 0] + 0.0 * b[..., 0]


def test_layout_range_channels_mean_std_scale_and_sign(tmp_path: Path) -> None:
    path = _export(_FirstChannel(), tmp_path / "toy.onnx", [(1, 16, 24, 3)] * 2, ["img_a", "img_b"],
                   {0: "n", 1: "h", 2: "w"})
    write_sidecar(path, {"layout": "NHWC", "range": 255, "channels": "BGR", "mean": [10, 0, 0], "std": 2,
                         "disparity_scale": 0.5, "pad_multiple": 8, "max_disp": 40})
    matcher = OnnxMatcher(path)
    left, right = _images(30, 44)
    expected = (left[..., 2].astype(np.float32) - 10.0) / 2.0  # blue (BGR channel 0), normalised
    np.testing.assert_allclose(matcher.predict(left, right), expected, atol=1e-3)
    assert matcher.max_disp == 40 and any("sign flipped" in a for a in matcher.assumptions)
    assert any("'img_a' is the left image" in a for a in matcher.assumptions)
    batch = matcher.predict_batch([left, right], [right, left])  # dynamic batch: one run
    np.testing.assert_allclose(batch[1], (right[..., 2].astype(np.float32) - 10.0) / 2.0, atol=1e-3)


class _Constant(nn.Module):
    def __init__(self, value: float, pool: int = 1) -> None:
        super().__init__()
        self.value, self.pool = value, pool

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        x = left[:, :1] + right[:, :1]
        x = F.avg_pool2d(x, self.pool) if self.pool > 1 else x
        return x * 0.0 + self.value


def test_fixed_size_graph_resizes_in_and_scales_disparity_back(tmp_path: Path) -> None:
    path = _export(_Constant(5.0), tmp_path / "fixed.onnx", [(1, 3, 32, 48)] * 2, ["left", "right"])
    matcher = OnnxMatcher(path)
    assert matcher.runner.conventions.input_size == [32, 48]
    assert any("fixed input size 32x48" in a for a in matcher.assumptions)
    left, right = _images(64, 96)
    np.testing.assert_allclose(matcher.predict(left, right), 10.0, atol=1e-4)  # 5 px at half the width


def test_low_resolution_output_is_upsampled_and_scaled(tmp_path: Path) -> None:
    path = _export(_Constant(3.0, pool=4), tmp_path / "quarter.onnx", [(1, 3, 32, 48)] * 2, ["left", "right"],
                   {0: "n", 2: "h", 3: "w"})
    matcher = OnnxMatcher(path, conventions={"pad_multiple": 4})
    left, right = _images(30, 46)
    out = matcher.predict(left, right)
    assert out.shape == (30, 46)
    np.testing.assert_allclose(out, 12.0, atol=1e-4)
    assert any("1/4 of the input size" in a for a in matcher.assumptions)


class _OneInput(nn.Module):
    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return pair[:, :1]


class _TwoChannels(nn.Module):
    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.cat([left[:, :1], right[:, :1]], 1)


def test_wrong_graphs_fail_with_one_message_naming_the_file(tmp_path: Path) -> None:
    one = _export(_OneInput(), tmp_path / "one.onnx", [(1, 6, 32, 48)], ["pair"], {2: "h", 3: "w"})
    with pytest.raises(ModelError) as err:
        load_matcher(str(one))
    message = str(err.value)
    assert str(one) in message and "1 input(s)" in message and "two image inputs" in message

    two = _export(_TwoChannels(), tmp_path / "two.onnx", [(1, 3, 32, 48)] * 2, ["left", "right"],
                  {2: "h", 3: "w"})
    matcher = OnnxMatcher(two, conventions={"pad_multiple": 1})
    left, right = _images(32, 48)
    with pytest.raises(ModelError) as err:
        matcher.predict(left, right)
    message = str(err.value)
    assert str(two) in message and "N x 1 x H x W" in message and "(1, 2, 32, 48)" in message

    sidecar_path(two).write_text(json.dumps({"pad_mutliple": 8}))
    with pytest.raises(ModelError, match=r"two\.onnx\.json: unknown key\(s\) pad_mutliple"):
        OnnxMatcher(two)
    with pytest.raises(ModelError, match="ONNX model not found"):
        load_matcher(str(tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match=r"onnxruntime cannot load .*junk\.onnx"):
        load_model(str(tmp_path / "junk.onnx"))
