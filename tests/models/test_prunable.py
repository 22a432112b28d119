"""Both architectures trace in DependencyGraph and prune at 0.5 into working, smaller models."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch_pruning as tp

from stereo_studio.models.registry import build_model, default_config


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_magnitude_prune_half(arch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(default_config(arch)).eval()
    example = (torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96))
    ignored = model.pruning_ignored_layers()
    widths = {id(m): m.weight.shape[0] for m in ignored}
    macs0, params0 = tp.utils.count_ops_and_params(model, example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Maximum recursive depth reached!" is harmless here
        tp.DependencyGraph().build_dependency(model, example_inputs=example)
        pruner = tp.pruner.MagnitudePruner(
            model, example, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5,
            ignored_layers=ignored, round_to=8,
        )
        pruner.step()
    macs1, params1 = tp.utils.count_ops_and_params(model, example)
    assert macs1 < 0.5 * macs0 and params1 < 0.5 * params0
    assert {id(m): m.weight.shape[0] for m in ignored} == widths  # protected widths kept
    with torch.no_grad():
        disp = model(torch.rand(2, 3, 37, 53), torch.rand(2, 3, 37, 53))
    assert disp.shape == (2, 1, 37, 53) and torch.isfinite(disp).all()
    model.train()
    out, feats = model(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48), return_features=True)
    out.mean().backward()
    assert feats["logits"].shape[1] == model.disparities
