"""ONNX export: dynamic H/W, numerically equal to PyTorch, refusals are clear."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stereo_studio.engine.export import export_onnx
from stereo_studio.engine.pruning import prune_model
from stereo_studio.errors import ModelError, StereoStudioError
from stereo_studio.models.registry import build_model, default_config

SIZES = ((68, 100), (96, 136))  # the first is not a multiple of 8: the padding path is exported


@pytest.mark.parametrize("which", ["student-pruned", "teacher"])
def test_onnx_matches_pytorch_at_two_sizes(which: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    arch = which.split("-")[0]
    model = build_model(default_config(arch)).eval()
    if which.endswith("pruned"):
        model = prune_model(model, 0.5)
    out = tmp_path / f"{which}.onnx"
    result = export_onnx(model, out, trace_size=SIZES[0], check_sizes=SIZES, time_runs=1)
    assert out.is_file() and result["bytes"] == out.stat().st_size
    assert set(result["diffs"]) == {"68x100", "96x136"}
    assert result["max_abs_diff"] < 1e-3
    assert result["ort_ms"] > 0 and result["torch_ms"] > 0


def test_export_refuses_what_it_cannot(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="sgbm"):
        export_onnx("sgbm", tmp_path / "x.onnx")
    model = build_model(default_config("student"))
    with pytest.raises(StereoStudioError, match=r"\.onnx"):
        export_onnx(model, tmp_path / "x.pt")

    class NotExportable(torch.nn.Module):
        def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(left.numpy() - right.numpy())  # leaves the graph

    with pytest.raises(ModelError, match="cannot be exported"):
        export_onnx(NotExportable(), tmp_path / "y.onnx", trace_size=(32, 32), check_sizes=((32, 32),))


def test_onnx_runs_below_the_disparity_range(tmp_path: Path) -> None:
    """Dynamic-size graphs used to fail in onnxruntime at widths below max_disp (a traced width branch)."""
    torch.manual_seed(0)
    model = build_model(default_config("student", max_disp=64)).eval()
    result = export_onnx(model, tmp_path / "small.onnx", trace_size=(68, 100),
                         check_sizes=((36, 52), (16, 16)), time_runs=1)
    assert set(result["diffs"]) == {"36x52", "16x16"} and result["max_abs_diff"] < 1e-3


def test_failed_export_prints_no_graph(tmp_path: Path, capfd) -> None:
    """The TorchScript exporter dumps its whole graph on stdout (from C++) when it fails."""

    class Unsupported(torch.nn.Module):
        def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
            return torch.linalg.svd(left - right)[0][:, :1]

    with pytest.raises(ModelError, match=r"cannot be exported to ONNX.*linalg_svd"):
        export_onnx(Unsupported(), tmp_path / "u.onnx", trace_size=(16, 16), check_sizes=((16, 16),))
    out, _ = capfd.readouterr()
    assert out == ""
    assert not (tmp_path / "u.onnx").exists()


def test_export_checks_path_and_opset_before_loading(tmp_path: Path, monkeypatch) -> None:
    import stereo_studio.engine.export as export

    monkeypatch.setattr(export, "_resolve", lambda spec: pytest.fail("the model was loaded first"))
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(StereoStudioError, match="is a folder"):
        export_onnx("student", tmp_path / "dir.onnx")
    with pytest.raises(StereoStudioError, match="opset must be between 11 and"):
        export_onnx("student", tmp_path / "x.onnx", opset=9)
    (tmp_path / "file").write_text("")
    with pytest.raises(StereoStudioError, match="cannot write in"):
        export_onnx("student", tmp_path / "file" / "sub" / "x.onnx")
