"""Prune-ready training: the group-sparsity term is what it says, acts only on the channels meant to go,
shrinks them, is logged as it goes, resumes exactly, and is reachable from `distill --prune-ready`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stereo_studio.engine import losses
from stereo_studio.engine.jobs import JobRun
from stereo_studio.engine.losses import PruneReadyRegularizer
from stereo_studio.engine.training import TrainConfig, _config_differences, train
from stereo_studio.models.registry import build_model, default_config

TINY_STUDENT = {"feature_channels": [16, 16], "corr_channels": 8, "ctx_channels": 8, "agg_channels": 32,
                "agg_blocks": 1, "low_res_channels": 0, "refine_channels": 16}


def tiny(**overrides) -> TrainConfig:
    base = {"arch": "student", "model_overrides": dict(TINY_STUDENT), "data": ["synthetic"], "steps": 6,
            "batch_size": 2, "crop": (32, 64), "synthetic_size": (40, 80), "max_disp": 16, "val_pairs": 2,
            "val_interval": 3, "ckpt_interval": 3, "log_interval": 1, "precision": "fp32", "threads": 1,
            "lr": 2e-3, "warmup_steps": 0, "prune_ready": True, "sparsity_reg": 0.05, "target_ratio": 0.5}
    base.update(overrides)
    return TrainConfig(**base)


def _run(job) -> tuple[list, object]:
    events = []
    with JobRun(job) as run:
        for event in run:
            events.append(event)
    return events, run.result


@pytest.fixture
def student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(default_config("student", max_disp=16, **TINY_STUDENT)).train()


def test_the_term_is_group_lasso_on_the_channels_meant_to_go(student: torch.nn.Module) -> None:
    reg = PruneReadyRegularizer(student, reg=5.0, target_ratio=0.5)
    reg.update()
    assert reg.selected and all(len(v) for v in reg.selected.values())
    protected = {i.name for i in reg.graph.layers if i.protected}
    assert not protected & set(reg.selected)
    reg.load_state({"agg.0.conv1.0": [0, 3, 5], "features.down.0": [1]})  # as a checkpoint would restore
    with torch.no_grad():
        student.agg[0].conv1[1].bias.uniform_(-1, 1)  # BN shifts go too
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    student(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)).mean().backward()
    grads = {n: p.grad.clone() for n, p in student.named_parameters()}
    reg.regularize()  # "group" leaves the gradients alone (Adam would normalise a gradient penalty away)
    assert all(torch.equal(p.grad, grads[n]) for n, p in student.named_parameters())
    reg.after_step(lr=0.01)
    # the proximal step: every coupled slice of channel c times max(0, 1 - lr * reg / ||c||), where ||c|| is
    # the norm of its filter, BN scale and shift, and the input slice of agg.0.conv2.0 that reads it
    chans = torch.tensor([0, 3, 5])
    names = ("agg.0.conv1.0.weight", "agg.0.conv1.1.weight", "agg.0.conv1.1.bias", "agg.0.conv2.0.weight")
    conv, gamma, beta, reader = (before[n] for n in names)
    sq = (conv[chans].pow(2).flatten(1).sum(1) + gamma[chans] ** 2 + beta[chans] ** 2
          + reader[:, chans].pow(2).transpose(0, 1).flatten(1).sum(1))
    factor = (1 - 0.01 * 5.0 / sq.sqrt()).clamp(min=0)
    now = dict(student.named_parameters())
    torch.testing.assert_close(now[names[0]][chans], conv[chans] * factor.view(-1, 1, 1, 1))
    torch.testing.assert_close(now[names[1]][chans], gamma[chans] * factor)
    torch.testing.assert_close(now[names[2]][chans], beta[chans] * factor)
    torch.testing.assert_close(now[names[3]][:, chans], reader[:, chans] * factor.view(1, -1, 1, 1))
    others = torch.tensor(sorted(set(range(conv.shape[0])) - {0, 3, 5}))
    assert torch.equal(now[names[0]][others], conv[others]) and torch.equal(now[names[3]][:, others],
                                                                              reader[:, others])
    assert not torch.equal(now["features.down.0.weight"][1], before["features.down.0.weight"][1])
    assert torch.equal(now["features.down.0.weight"][0], before["features.down.0.weight"][0])
    changed = {n for n, p in now.items() if not torch.equal(p, before[n])}
    assert not changed & {"refine_out.weight", "refine_out.bias", "ctx_proj.1.weight", "head.bias"}
    reg.after_step(lr=1.0)  # a step larger than the norm: exactly zero, not past it
    assert not now[names[0]][chans].any() and not now[names[2]][chans].any()


def test_channels_meant_to_go_shrink(student: torch.nn.Module) -> None:
    reg = PruneReadyRegularizer(student, reg=5.0, target_ratio=0.5)
    reg.update()
    start = reg.stats()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2, weight_decay=0.0)
    torch.manual_seed(1)
    for _ in range(40):
        left, right = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
        opt.zero_grad()
        student(left, right).float().sub(4.0).abs().mean().backward()
        reg.regularize()
        opt.step()
        reg.after_step(1e-2)
    end = reg.stats()
    assert end["go_norm_median"] < 0.3 * start["go_norm_median"] and end["go_shrunk"] > 0.5, (start, end)
    assert end["keep_norm_q10"] > 0.5 * start["keep_norm_q10"]


@pytest.mark.parametrize("method", ["groupnorm", "bn"])
def test_torch_pruning_regularisers_build_on_the_same_groups(student: torch.nn.Module, method: str) -> None:
    reg = PruneReadyRegularizer(student, reg=1e-3, target_ratio=0.5, method=method)
    reg.update()
    student(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)).mean().backward()
    before = {n: p.grad.clone() for n, p in student.named_parameters()}
    reg.regularize()
    changed = {n for n, p in student.named_parameters() if not torch.equal(p.grad, before[n])}
    assert changed and not changed & {"ctx_proj.1.weight", "refine_out.bias"}  # protected groups: untouched
    assert set(reg.stats()) >= {"go_norm_median", "go_shrunk", "all_shrunk"}


def test_prune_ready_training_logs_and_resumes_exactly(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(losses, "SPARSITY_UPDATE_STEPS", 2)  # re-select between checkpoints: state is saved
    cfg = tiny()
    events, model_dir = _run(train(cfg, tmp_path / "full"))
    sparse = [e for e in events if e.kind == "sparsity"]
    assert [e.step for e in sparse] == [1, 2, 3, 4, 5, 6]
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if r["kind"] == "sparsity"]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]
    assert {"go_norm_median", "go_norm_q90", "keep_norm_q10", "go_shrunk", "all_shrunk"} <= set(logged[0])
    meta = json.loads((model_dir / "config.json").read_text())["meta"]
    assert meta["prune_ready"]["method"] == "group" and meta["prune_ready"]["target_ratio"] == 0.5

    job = train(cfg, tmp_path / "cut")
    for event in job:
        if event.kind == "step" and event.step == 4:
            break
    job.close()
    resumed, _ = _run(train(cfg, tmp_path / "cut", resume=True))
    a = {e.step: e.metrics["loss"] for e in events if e.kind == "step"}
    b = {e.step: e.metrics["loss"] for e in resumed if e.kind == "step"}
    assert sorted(b) == [4, 5, 6]
    for s in (4, 5, 6):
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), (s, a[s], b[s])


def test_runs_saved_before_prune_ready_still_resume() -> None:
    current = tiny(prune_ready=False, sparsity_reg=TrainConfig.sparsity_reg).to_dict()
    saved = {k: v for k, v in current.items()
             if k not in ("prune_ready", "sparsity_reg", "target_ratio", "sparsity_method")}
    assert _config_differences(saved, current) == []
    assert _config_differences(saved, {**current, "prune_ready": True}) == ["prune_ready: None -> True"]


def test_bad_prune_ready_config_is_refused() -> None:
    from stereo_studio.engine.training import TrainingError

    with pytest.raises(TrainingError, match="target_ratio"):
        tiny(target_ratio=1.5).resolved()
    with pytest.raises(TrainingError, match="sparsity method"):
        tiny(sparsity_method="l0").resolved()
    with pytest.raises(TrainingError, match="sparsity_start"):
        tiny(sparsity_start=1.0).resolved()


def test_the_regulariser_starts_late_and_ramps_up() -> None:
    from stereo_studio.engine.training import sparsity_strength

    cfg = TrainConfig(arch="student", steps=1000, sparsity_start=0.5)  # ramp: a fifth of the steps (200)
    strengths = [sparsity_strength(s, cfg) for s in (0, 498, 499, 549, 699, 999)]
    assert strengths == [0.0, 0.0, 0.0, 0.25, 1.0, 1.0]
    early = TrainConfig(arch="student", steps=1000)
    assert sparsity_strength(0, early) == 1 / 200 and sparsity_strength(199, early) == 1.0


def test_distill_cli_options_reach_the_config() -> None:
    from stereo_studio.cli import build_parser
    from stereo_studio.cli.train_cmd import config_from_args

    args = build_parser().parse_args(["distill", "--teacher", "teacher", "--out", "x", "--prune-ready",
                                      "--sparsity-reg", "0.02", "--target-ratio", "0.4",
                                      "--sparsity-method", "groupnorm", "--sparsity-start", "0.3"])
    cfg = config_from_args(args, args.teacher)
    assert (cfg.prune_ready, cfg.sparsity_reg, cfg.target_ratio, cfg.sparsity_method, cfg.sparsity_start) == (
        True, 0.02, 0.4, "groupnorm", 0.3)
    plain = config_from_args(build_parser().parse_args(["distill", "--teacher", "t", "--out", "x"]), "t")
    assert not plain.prune_ready
    assert np.isfinite(plain.sparsity_reg)


def test_slimmable_pass_is_the_pruned_network_and_leaves_no_trace(student: torch.nn.Module) -> None:
    """`masked()` runs exactly the network `prune_model` makes at the target ratio; on exit the weights, the
    removed slices' gradients and every BatchNorm's running statistics are as before."""
    import copy

    from stereo_studio.engine.pruning import prune_model

    with torch.no_grad():
        for m in student.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    reg = PruneReadyRegularizer(student, reg=1.0, target_ratio=0.5, method="slimmable")
    reg.update()
    x = torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)
    pruned = prune_model(copy.deepcopy(student).eval(), 0.5, criterion="l2", round_to=8).eval()
    student.eval()
    with torch.no_grad():
        whole, small = student(*x), pruned(*x)
        with reg.masked():
            masked = student(*x)
    assert (whole - small).abs().max() > 0.1  # pruning changes the output ...
    torch.testing.assert_close(masked, small, atol=1e-4, rtol=1e-4)  # ... and the masked pass is that network
    student.train()
    student(*x).mean().backward()
    weights = {n: p.detach().clone() for n, p in student.named_parameters()}
    grads = {n: p.grad.clone() for n, p in student.named_parameters()}
    buffers = {n: b.clone() for n, b in student.named_buffers()}
    with reg.masked():
        student(*x).pow(2).mean().backward()  # train mode: BN statistics would move
    now = dict(student.named_parameters())
    assert all(torch.equal(now[n], w) for n, w in weights.items())
    assert all(torch.equal(b, buffers[n]) for n, b in student.named_buffers())
    for _, params in reg._slices:
        for param, dim, idxs, _ in params:
            name = next(n for n, p in now.items() if p is param)
            assert torch.equal(param.grad.index_select(dim, idxs), grads[name].index_select(dim, idxs))
    assert any(not torch.equal(p.grad, grads[n]) for n, p in now.items())  # the kept channels did learn


def test_slimmable_training_logs_the_pruned_loss() -> None:
    from stereo_studio.cli.distill_cmd import SPARSITY_METHOD_CHOICES

    assert SPARSITY_METHOD_CHOICES == losses.SPARSITY_METHODS
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        events, model_dir = _run(train(tiny(sparsity_method="slimmable", steps=3),
                                       Path(d) / "slim"))
        steps = [e.metrics for e in events if e.kind == "step"]
        assert len(steps) == 3 and all(np.isfinite(m["loss_pruned"]) and m["loss_pruned"] > 0 for m in steps)
        meta = json.loads((model_dir / "config.json").read_text())["meta"]
        assert meta["prune_ready"]["method"] == "slimmable"
