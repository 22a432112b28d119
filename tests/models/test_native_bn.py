"""`models/native_bn.py`: a model folder's BatchNorm statistics re-estimated on stored pairs, weights kept."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tests.models.scripts import load_script


def test_only_the_batchnorm_statistics_change_and_the_meta_says_so(tmp_path: Path) -> None:
    from stereo_studio.data.datasets import write_dataset
    from stereo_studio.data.synthetic import SyntheticStereo
    from stereo_studio.models.registry import build_model, default_config
    from stereo_studio.models.storage import load_model, save_model
    from stereo_studio.progress import drain

    torch.manual_seed(0)
    save_model(build_model(default_config("student")).eval(), tmp_path / "model", {"run": "some/run"})
    pairs = SyntheticStereo(height=48, width=64, max_disp=16, seed=5, length=3)
    drain(write_dataset(pairs, tmp_path / "data"))
    load_script("native_bn").main(tmp_path / "model", tmp_path / "data", 2, tmp_path / "out")

    before, after = load_model(tmp_path / "model"), load_model(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "config.json").read_text())["meta"]
    assert meta["run"] == "some/run"
    assert meta["bn_recalibrated"] == {"data": str(tmp_path / "data"), "pairs": 2}
    params_after = dict(after.named_parameters())
    assert all(torch.equal(p, params_after[name]) for name, p in before.named_parameters())
    norms = [(name, m) for name, m in before.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    after_modules = dict(after.named_modules())
    assert any(not torch.equal(m.running_mean, after_modules[name].running_mean) for name, m in norms)
