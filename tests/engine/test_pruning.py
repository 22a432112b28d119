"""Structured pruning of both architectures: smaller working models, protected widths, fast estimates; a ratio
is the fraction of MACs removed, widths round to the nearest allowed one, plans say what they remove."""

from __future__ import annotations

import pytest
import torch

from stereo_studio.engine.pruning import (
    allowed_widths,
    estimate,
    example_inputs,
    kept_channels,
    layer_widths,
    macs_params,
    plan,
    plan_widths,
    prunable_layers,
    prune_model,
    pruning_graph,
    recalibrate_bn,
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


def test_kept_channels_rounds_to_the_nearest_allowed_width() -> None:
    assert kept_channels(64, 0.5, 8) == 32
    assert kept_channels(48, 0.3, 8) == 32  # 33.6 -> 32
    assert kept_channels(48, 0.25, 8) == 40  # 36: a tie keeps the larger width
    assert kept_channels(16, 0.25, 8) == 16  # 12: a tie, 16 -> 16 (not half of it as "round down" did)
    assert kept_channels(16, 0.3, 8) == 8  # 11.2 -> 8
    assert kept_channels(16, 0.75, 8) == 8  # never below round_to: a layer is never removed whole
    assert kept_channels(6, 0.5, 8) == 6  # smaller than round_to: untouched
    assert kept_channels(48, 0.5, None) == 24
    assert kept_channels(20, 0.1, 8) == 20 and allowed_widths(20, 8) == [8, 16, 20]
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
    protected = {i.name: i.reason for i in prunable_layers(student) if i.protected}
    assert protected, "the disparity head / output layer must be protected"
    assert all(protected.values())  # each says why
    pruned = prune_model(student, 0.75)
    assert pruned.head.out_channels == student.disparities
    assert pruned.refine_out.out_channels == 1
    assert pruned.features.stem[0].in_channels == 3  # the first convolution still reads RGB
    widths = layer_widths(pruned)
    for info in prunable_layers(student):
        if not info.protected:
            assert widths[info.name] in allowed_widths(info.out_channels, 8), (info.name, widths[info.name])


def test_wrong_concat_mapping_is_protected(student: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch-Pruning maps cat([correlation volume, context]) wrongly: pruning ctx_proj.0 would remove the
    first disparity channels from agg_in (and corr_proj channels). The graph check protects that group."""
    info = next(i for i in prunable_layers(student) if i.name == "ctx_proj.0")
    assert info.protected and "cannot follow" in info.reason
    pruned = prune_model(student, 0.75)
    assert pruned.ctx_proj[0].out_channels == student.ctx_proj[0].out_channels
    assert pruned.corr_proj.out_channels == student.corr_proj.out_channels
    assert pruned.agg_in[0].in_channels == student.disparities + student.ctx_proj[0].out_channels
    # the probe alone (without the coupled-width rule) finds the same wrong mapping
    from stereo_studio.engine import pruning

    monkeypatch.setattr(pruning, "_WIDTH_TYPES", ())
    again = pruning.PruningGraph(student)
    assert next(i for i in again.layers if i.name == "ctx_proj.0").protected


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_ratio_is_the_fraction_of_macs_removed(arch: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(arch)
    base = macs_params(model, SIZE)["macs"]
    for ratio in (0.1, 0.25, 0.5, 0.75):
        p = plan(model, ratio)
        assert abs(p.macs_removed - ratio) < 0.04, (ratio, p.summary())
        real = 1.0 - macs_params(prune_model(model, ratio), SIZE)["macs"] / base
        assert abs(real - ratio) < 0.05, (ratio, real)
    uniform = plan(model, 0.5, allocation="uniform")
    asked = {lp.asked for lp in uniform.layers if not lp.protected}
    assert len(asked) == 1 and abs(uniform.macs_removed - 0.5) < 0.1  # one channel ratio for every layer


def test_plan_says_what_rounding_removed(student: torch.nn.Module) -> None:
    sixteen = next(i.name for i in prunable_layers(student) if not i.protected and i.out_channels == 16)
    p = plan(student, ratios={sixteen: 0.3})
    assert p.layer(sixteen).describe() == "removes 8 of 16 (ratio 0.30 -> 0.50 after rounding)"
    assert p.layer(sixteen).kept == 8 and p.ratio is None
    assert p.layer("refine_out").describe().startswith("protected (")
    p = plan(student, 0.3)
    assert f"{p.macs_removed:.1%}" in p.summary() and "asked 30%" in p.summary()
    doc = p.to_json()
    assert {"layers", "macs_removed", "summary", "size"} <= set(doc)
    for lp in p.layers:
        assert lp.kept in allowed_widths(lp.channels, 8) or lp.protected


def test_global_allocation_follows_importance(student: torch.nn.Module) -> None:
    model = build_model(student.config).eval()
    model.load_state_dict(student.state_dict())
    name = "low_res.conv1.0"
    with torch.no_grad():  # half of this layer's channels carry almost nothing: they go first
        model.get_submodule(name).weight[:32].mul_(1e-3)
        model.get_submodule("low_res.conv1.1").weight[:32].mul_(1e-3)
        model.get_submodule("low_res.conv2.0").weight[:, :32].mul_(1e-3)
    p = plan(model, 0.1)
    assert p.layer(name).kept == 32, p.layer(name).describe()
    spared = plan(model, 0.1, spare=[name])
    assert spared.layer(name).kept == 64 and spared.layer(name).protected and spared.spared == [name]
    assert abs(spared.macs_removed - 0.1) < 0.04  # the others make up for it


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
    widths = plan_widths(student, 0.5, round_to=None)
    est = estimate(student, 0.5, size=SIZE, round_to=None)
    assert est["macs"] == pytest.approx(0.5 * estimate(student, size=SIZE)["macs"], rel=0.02)
    channels = {i.name: i.out_channels for i in prunable_layers(student)}
    assert len({w / channels[name] for name, w in widths.items()}) > 1  # not one ratio for all


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_estimate_matches_the_real_pruned_model(arch: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(arch)
    assert estimate(model, size=SIZE) == macs_params(model, SIZE)
    for kwargs in ({"ratio": 0.5}, {"ratio": 0.3, "allocation": "uniform"}):
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
    pruned = prune_model(student, 0.4, criterion=criterion)
    assert macs_params(pruned, SIZE)["params"] < macs_params(student, SIZE)["params"]
    with torch.no_grad():
        assert pruned(*example_inputs(SIZE)).shape == (1, 1, *SIZE)


def test_recalibrated_statistics_are_those_of_the_pairs(student: torch.nn.Module) -> None:
    """One batch of all pairs: each BatchNorm's new running stats are the statistics of its input over all
    their pixels (checked on the first one, which sees the left then the right views: the average of the
    two), the weights and the original model are untouched."""
    pairs = [example_inputs((48, 64), seed=s) for s in range(3)] + [example_inputs((56, 72), seed=9)]
    before = {k: v.clone() for k, v in student.state_dict().items()}
    tuned = recalibrate_bn(student, pairs)
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())
    assert not tuned.training
    bn = tuned.features.stem[1]
    stats = []
    with torch.no_grad():
        for view in (0, 1):  # cropped to the common 48x64
            x = torch.cat([p[view][..., :48, :64] for p in pairs])
            x = student.features.stem[0](student.features.norm(x))
            stats.append((x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)))
    assert torch.allclose(bn.running_mean, (stats[0][0] + stats[1][0]) / 2, atol=1e-5)
    assert torch.allclose(bn.running_var, (stats[0][1] + stats[1][1]) / 2, rtol=1e-4, atol=1e-6)
    assert bn.momentum == student.features.stem[1].momentum
    for name, t in tuned.state_dict().items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(t, before[name]), name
    with pytest.raises(StereoStudioError, match="at least one"):
        recalibrate_bn(student, [])


def test_graph_is_cached(student: torch.nn.Module) -> None:
    assert pruning_graph(student) is pruning_graph(student)
