"""Structured pruning of both architectures: smaller working models, protected widths, fast estimates."""

from __future__ import annotations

import pytest
import torch

from stereo_studio.engine.pruning import (
    estimate,
    example_inputs,
    kept_channels,
    layer_widths,
    macs_params,
    plan_widths,
    prunable_layers,
    prune_model,
)
from stereo_studio.errors import ModelError, StereoStudioError
from stereo_studio.models.registry import build_model, default_config

SIZE = (64, 96)


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(default_config(arch)).eval()


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    return _model("student")


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    return _model("teacher")


def test_kept_channels_rounds_down_to_multiples() -> None:
    assert kept_channels(64, 0.5, 8) == 32
    assert kept_channels(48, 0.25, 8) == 32  # 36 -> 32
    assert kept_channels(16, 0.75, 8) == 8  # never below round_to
    assert kept_channels(6, 0.5, 8) == 6  # smaller than round_to: untouched
    assert kept_channels(48, 0.5, None) == 24
    with pytest.raises(StereoStudioError):
        kept_channels(16, 1.0)


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_pruned_models_are_smaller_and_work(arch: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(arch)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    base = macs_params(model, SIZE)
    left, right = example_inputs((50, 70), seed=3)  # odd size: the network pads and crops back
    previous = base
    for ratio in (0.25, 0.5, 0.75) if arch == "student" else (0.25, 0.75):
        pruned = prune_model(model, ratio)
        cost = macs_params(pruned, SIZE)
        assert cost["params"] < previous["params"] and cost["macs"] < previous["macs"], ratio
        previous = cost
        with torch.no_grad():
            out = pruned(left, right)
        assert out.shape == (1, 1, 50, 70)
        assert torch.isfinite(out).all()
        changed = {n: list(t.shape) for n, t in pruned.state_dict().items() if t.shape != state[n].shape}
        assert changed and pruned.config["pruned_shapes"] == changed
    assert previous["macs"] < 0.5 * base["macs"]
    # the original is untouched
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_student_protected_layers_keep_their_width(student: torch.nn.Module) -> None:
    protected = {i.name for i in prunable_layers(student) if i.protected}
    assert protected, "the disparity head / output layer must be protected"
    pruned = prune_model(student, 0.75)
    assert pruned.head.out_channels == student.disparities
    assert pruned.refine_out.out_channels == 1
    assert pruned.features.stem[0].in_channels == 3  # the first convolution still reads RGB
    widths = layer_widths(pruned)
    for info in prunable_layers(student):
        if not info.protected:
            w = widths[info.name]
            assert w < info.out_channels and w % 8 == 0, (info.name, w)


def test_teacher_protected_layers_keep_their_width(teacher: torch.nn.Module) -> None:
    pruned = prune_model(teacher, 0.5)
    for name in ("gwc_proj", "cost_out", "mask.1"):
        assert layer_widths(pruned)[name] == layer_widths(teacher)[name], name
    assert pruned.features.stem[0].in_channels == 3


def test_per_layer_ratios_touch_only_those_layers(student: torch.nn.Module) -> None:
    name = next(i.name for i in prunable_layers(student) if not i.protected and i.out_channels >= 32)
    n = next(i.out_channels for i in prunable_layers(student) if i.name == name)
    pruned = prune_model(student, ratios={name: 0.5})
    before, after = layer_widths(student), layer_widths(pruned)
    diff = {k for k in before if before[k] != after[k]}
    members = next(i.members for i in prunable_layers(student) if i.name == name)
    assert diff == set(members) and after[name] == n // 2
    protected = next(i.name for i in prunable_layers(student) if i.protected)
    with pytest.raises(ModelError, match="protected"):
        plan_widths(student, ratios={protected: 0.5})
    with pytest.raises(ModelError, match="protected"):
        plan_widths(student, ratios={"head": 0.5})  # a coupled member of the protected output group
    with pytest.raises(ModelError, match="no prunable layer"):
        plan_widths(student, ratios={"nope": 0.5})
    member = next(i for i in prunable_layers(student) if not i.protected and len(i.members) > 1)
    assert plan_widths(student, ratios={member.members[-1]: 0.5}) == plan_widths(
        student, ratios={member.name: 0.5}
    )


def test_global_ranking_meets_the_overall_ratio(student: torch.nn.Module) -> None:
    widths = plan_widths(student, 0.5, global_ranking=True, round_to=None)
    total = sum(i.out_channels for i in prunable_layers(student) if not i.protected)
    kept = sum(widths.values())
    assert abs(kept - total / 2) <= 0.1 * total
    channels = {i.name: i.out_channels for i in prunable_layers(student)}
    assert len({w / channels[name] for name, w in widths.items()}) > 1  # not one ratio for all


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_estimate_matches_the_real_pruned_model(arch: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(arch)
    assert estimate(model, size=SIZE) == macs_params(model, SIZE)
    for kwargs in ({"ratio": 0.5}, {"ratio": 0.3, "global_ranking": True}):
        est = estimate(model, size=SIZE, **kwargs)
        real = macs_params(prune_model(model, criterion="l1", **kwargs), SIZE)
        assert est["macs"] == pytest.approx(real["macs"], rel=0.01), kwargs
        assert est["params"] == pytest.approx(real["params"], rel=0.01), kwargs


def test_prune_and_finetune_saves_a_loadable_distilled_model(tmp_path, student: torch.nn.Module) -> None:
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.engine.pruning import prune_and_finetune
    from stereo_studio.models.storage import load_model, save_model

    save_model(student, tmp_path / "student", {})
    # any network can teach; a student-sized one keeps this test short
    save_model(build_model(default_config("student", agg_channels=32)), tmp_path / "teacher", {})
    job = prune_and_finetune(
        tmp_path / "student",
        tmp_path / "out",
        ratio=0.5,
        finetune_steps=2,
        teacher=str(tmp_path / "teacher"),
        size=SIZE,
        batch_size=1,
        crop=(64, 128),
        val_pairs=1,
        precision="fp32",
        threads=1,
    )
    out = run_with_progress(job, quiet=True)
    assert out == tmp_path / "out"
    tuned = load_model(out)
    pruned = load_model(tmp_path / "out-pruned")
    assert layer_widths(tuned) == layer_widths(pruned) != layer_widths(student)
    assert tuned.meta.get("trained_steps") == 2
    changed = [
        k
        for k, v in tuned.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, pruned.state_dict()[k])
    ]
    assert changed  # the fine-tune updated the pruned weights


@pytest.mark.parametrize("criterion", ["bn", "lamp"])
def test_global_ranking_with_cross_layer_criteria(criterion: str, student: torch.nn.Module) -> None:
    pruned = prune_model(student, 0.4, criterion=criterion, global_ranking=True)
    assert macs_params(pruned, SIZE)["params"] < macs_params(student, SIZE)["params"]
    with torch.no_grad():
        assert pruned(*example_inputs(SIZE)).shape == (1, 1, *SIZE)
