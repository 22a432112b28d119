"""Channel importance: every criterion scores every channel, and `removed` names what pruning drops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stereo_studio.data.synthetic import SyntheticStereo
from stereo_studio.engine.importance import CRITERIA, channel_importance, sample_tensors
from stereo_studio.engine.pruning import prunable_layers, prune_model
from stereo_studio.errors import StereoStudioError
from stereo_studio.models.registry import build_model, default_config


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(default_config("student")).eval()
    with torch.no_grad():  # distinct BN scales so the bn criterion has something to rank
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.1, 1.0)
    return model


@pytest.fixture(scope="module")
def calib() -> list:
    ds = SyntheticStereo(height=64, width=96, max_disp=32, seed=5, length=2)
    return [sample_tensors(ds[i]) for i in range(2)]


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_scores_every_channel(student: torch.nn.Module, calib: list, criterion: str) -> None:
    report = channel_importance(student, criterion, calib_batches=calib)
    layers = {i.name: i for i in prunable_layers(student)}
    assert [l.name for l in report.layers] == list(layers)
    for layer in report.layers:
        assert layer.scores.shape == (layers[layer.name].out_channels,)
        assert np.isfinite(layer.scores).all()
        assert layer.protected == layers[layer.name].protected
        if not layer.protected:
            assert layer.scores.std() > 0, (criterion, layer.name)
    assert all(p.grad is None for p in student.parameters())  # taylor leaves no gradients behind
    doc = json.loads(json.dumps(report.to_json(ratio=0.5)))
    assert doc["criterion"] == criterion and len(doc["layers"]) == len(report.layers)


def test_removed_channels_are_the_ones_pruning_drops(student: torch.nn.Module) -> None:
    report = channel_importance(student, "l1")
    removed = report.removed(0.5)
    pruned = prune_model(student, 0.5, criterion="l1")
    original, after = dict(student.named_modules()), dict(pruned.named_modules())
    checked = 0
    for layer in report.layers:
        if layer.protected:
            assert layer.name not in removed
            continue
        drop = removed[layer.name]
        assert len(drop) == layer.channels - after[layer.name].out_channels
        keep = np.setdiff1d(np.arange(layer.channels), drop)
        bn_name = layer.name[:-1] + "1" if layer.name.endswith(".0") else None
        if bn_name and isinstance(original.get(bn_name), torch.nn.BatchNorm2d):
            assert torch.equal(after[bn_name].weight, original[bn_name].weight[torch.from_numpy(keep)])
            checked += 1
    assert checked >= 3


def test_a_zeroed_channel_ranks_last(student: torch.nn.Module) -> None:
    model = build_model(student.config).eval()
    model.load_state_dict(student.state_dict())
    name = next(i.name for i in prunable_layers(model) if not i.protected and len(i.members) == 1)
    conv = dict(model.named_modules())[name]
    before = channel_importance(model, "l1")  # cached scores must not survive the in-place edit below
    assert int(np.argmin(next(l for l in before.layers if l.name == name).scores)) != 5
    with torch.no_grad():
        conv.weight[5].zero_()
        model.get_submodule(name[:-1] + "1").weight[5] = 0.0
    for criterion in ("l1", "l2", "bn"):
        report = channel_importance(model, criterion)
        layer = next(l for l in report.layers if l.name == name)
        assert int(np.argmin(layer.scores)) == 5, criterion
        assert 5 in report.removed(0.25)[name]


def test_unknown_criterion_is_refused(student: torch.nn.Module) -> None:
    with pytest.raises(StereoStudioError, match="criterion"):
        channel_importance(student, "entropy")
