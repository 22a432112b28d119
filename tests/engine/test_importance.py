"""Channel importance: every criterion is what it says (hand computations on a tiny network with known weights
and gradients: swapping any two criteria fails), every criterion scores every channel of the student,
`removed` names what pruning drops, and the display scale separates channels."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
import torch
from torch import nn

from stereo_studio.data.batches import sample_to_tensors
from stereo_studio.data.synthetic import SyntheticStereo
from stereo_studio.engine.importance import (
    CRITERIA,
    CRITERIA_REGISTRY,
    accumulate_taylor_grads,
    channel_importance,
    criterion_choices,
    get_criterion,
)
from stereo_studio.engine.pruning import prunable_layers, prune_model
from stereo_studio.errors import StereoStudioError
from stereo_studio.models.registry import build_model, default_config


class Tiny(nn.Module):
    """conv1 (3->4) + bn1 + relu -> conv2 (4->6) + bn2 + relu -> out (6->1): two prunable groups."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.out = nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(left - right)))
        return self.out(torch.relu(self.bn2(self.conv2(x))))


@pytest.fixture
def tiny() -> Tiny:
    torch.manual_seed(3)
    model = Tiny().eval()
    with torch.no_grad():  # distinct, sign-mixed values everywhere (BN scales included)
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
        for bn in (model.bn1, model.bn2):
            bn.running_var.uniform_(0.5, 2.0)
            bn.running_mean.uniform_(-0.5, 0.5)
    return model


def _tiny_batches() -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(11)
    out = []
    for _ in range(2):
        left, right = torch.rand(1, 3, 16, 24, generator=g), torch.rand(1, 3, 16, 24, generator=g)
        target = torch.rand(1, 1, 16, 24, generator=g) * 4
        out.append((left, right, target, torch.ones(1, 1, 16, 24, dtype=torch.bool)))
    return out


def _hand(model: Tiny, grads: dict[str, torch.Tensor]) -> dict[str, dict[str, np.ndarray]]:
    """Each criterion of the two groups, by hand from the definitions in engine/importance.py."""
    def d(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    out: dict[str, dict[str, np.ndarray]] = {}
    groups = {"conv1": ("conv1", "bn1", "conv2"), "conv2": ("conv2", "bn2", "out")}
    for root, (conv, bn, reader) in groups.items():
        w = d(getattr(model, conv).weight)  # out filters: rows
        gamma = d(getattr(model, bn).weight)
        r = d(getattr(model, reader).weight).transpose(1, 0, 2, 3)  # the reader's input slices: rows
        gw, gg = d(grads[f"{conv}.weight"]), d(grads[f"{bn}.weight"])
        gr = d(grads[f"{reader}.weight"]).transpose(1, 0, 2, 3)
        n = w.shape[0]
        l1 = np.abs(w).reshape(n, -1).sum(1) + np.abs(gamma) + np.abs(r).reshape(n, -1).sum(1)
        sq = (w**2).reshape(n, -1).sum(1) + gamma**2 + (r**2).reshape(n, -1).sum(1)
        taylor = (np.abs(w * gw).reshape(n, -1).sum(1) + np.abs(gamma * gg)
                  + np.abs(r * gr).reshape(n, -1).sum(1))
        order = np.argsort(sq, kind="stable")
        lamp = np.empty(n)
        for pos, c in enumerate(order):
            lamp[c] = sq[c] / sq[order[pos:]].sum()
        out[root] = {"l1": l1, "l2": np.sqrt(sq), "bn": np.abs(gamma), "taylor": taylor, "lamp": lamp}
    return out


def test_criteria_match_hand_computations(tiny: Tiny) -> None:
    batches = _tiny_batches()
    # the gradients Taylor uses, computed here independently: the summed L1 disparity loss of each batch
    tiny.zero_grad()
    for left, right, target, valid in batches:
        (tiny(left, right) - target).abs()[valid].mean().backward()
    grads = {n: p.grad.clone() for n, p in tiny.named_parameters()}
    tiny.zero_grad(set_to_none=True)
    expected = _hand(tiny, grads)
    assert set(CRITERIA) == {"l1", "l2", "bn", "taylor", "lamp"}
    for criterion in CRITERIA:
        report = channel_importance(tiny, criterion, calib_batches=batches, example_size=(16, 24))
        layers = {layer.name: layer for layer in report.layers}
        assert layers["out"].protected and "output" in layers["out"].reason
        for root in ("conv1", "conv2"):
            got = layers[root].scores
            want = expected[root][criterion]
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"{criterion} {root}")
    # the hand values of any two criteria differ: a swapped pair would fail above
    for a, b in combinations(CRITERIA, 2):
        for root in ("conv1", "conv2"):
            assert not np.allclose(expected[root][a], expected[root][b], rtol=1e-3), (a, b, root)
    # accumulate_taylor_grads computes the same gradients
    accumulate_taylor_grads(tiny, batches)
    for n, p in tiny.named_parameters():
        torch.testing.assert_close(p.grad, grads[n])


def test_registry_drives_the_choices() -> None:
    assert [name for name, _ in criterion_choices()] == list(CRITERIA) == list(CRITERIA_REGISTRY)
    assert get_criterion("taylor").needs_gradients and not get_criterion("l1").needs_gradients
    assert get_criterion("lamp").comparable and get_criterion("bn").comparable
    assert not get_criterion("l2").comparable
    import argparse

    from stereo_studio.cli import importance_cmd, prune_cmd, sensitivity_cmd, sweep_cmd

    for module in (importance_cmd, prune_cmd, sensitivity_cmd, sweep_cmd):
        parser = argparse.ArgumentParser()
        module.register(parser.add_subparsers())
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        cmd = next(iter(sub.choices.values()))
        choices = next(a.choices for a in cmd._actions if "--criterion" in a.option_strings)
        assert list(choices) == list(CRITERIA), module.__name__


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
    return [sample_to_tensors(ds[i]) for i in range(2)]


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
    assert "removes" in doc["plan"]["summary"]


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
        drop = removed.get(layer.name, np.zeros(0, int))
        assert len(drop) == layer.channels - after[layer.name].out_channels
        keep = np.setdiff1d(np.arange(layer.channels), drop)
        bn_name = layer.name[:-1] + "1" if layer.name.endswith(".0") else None
        if len(drop) and bn_name and isinstance(original.get(bn_name), torch.nn.BatchNorm2d):
            assert torch.equal(after[bn_name].weight, original[bn_name].weight[torch.from_numpy(keep)])
            checked += 1
    assert checked >= 3
    text = report.to_json(0.5)
    assert any("removes" in l.get("plan", "") for l in text["layers"])


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
        row = [l.name for l in report.layers].index(name)
        layer = report.layers[row]
        assert int(np.argmin(layer.scores)) == 5, criterion
        assert report.display_scores()[row][5] == 0.0, criterion  # first to go in the global ranking


def test_display_scale_separates_channels() -> None:
    from stereo_studio.models.storage import load_net

    model = load_net("student")
    for criterion in ("l1", "l2", "bn"):
        report = channel_importance(model, criterion)
        shown = report.display_scores()
        free = np.concatenate([s for s, l in zip(shown, report.layers, strict=True) if not l.protected])
        assert free.min() == 0.0 and free.max() == 1.0
        assert np.mean(free > 0.8) < 0.25, criterion  # raw scores / layer max: 91-100 % were above 0.8
        for s, layer in zip(shown, report.layers, strict=True):
            assert np.isnan(s).all() == layer.protected
        within = report.display_scores("layer")
        assert all(np.nanmax(s) == 1.0 for s, l in zip(within, report.layers, strict=True)
                   if not l.protected and l.channels > 1)


def test_unknown_criterion_is_refused(student: torch.nn.Module) -> None:
    with pytest.raises(StereoStudioError, match="criterion"):
        channel_importance(student, "entropy")
