"""Training and distillation: schedules, config checks, distillation closes the gap, exact resume, NaN stop,
cancellation, unlabelled data, and the CLI end to end. Tiny models and crops keep it fast."""

from __future__ import annotations

import itertools
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_studio.engine import training
from stereo_studio.engine.checkpoint import load_checkpoint
from stereo_studio.engine.training import TrainConfig, TrainingError, lr_at, train
from stereo_studio.errors import DataError

TINY_STUDENT = {"feature_channels": [8, 8], "corr_channels": 8, "ctx_channels": 8, "agg_channels": 16,
                "agg_blocks": 1, "low_res_channels": 0, "refine_channels": 8}
TINY_TEACHER = {"max_disp": 16, "feature_channels": [8, 16], "feature_blocks": 1, "gwc_channels": 16,
                "groups": 4, "agg_channels": 8, "hourglass_channels": 8, "agg_layers": 1, "mask_channels": 16}


def tiny(**overrides) -> TrainConfig:
    base = {"arch": "student", "model_overrides": dict(TINY_STUDENT), "data": ["synthetic"], "steps": 6,
            "batch_size": 2, "crop": (32, 64), "synthetic_size": (40, 80), "max_disp": 16, "val_pairs": 2,
            "val_interval": 3, "ckpt_interval": 3, "log_interval": 1, "precision": "fp32", "threads": 1,
            "lr": 2e-3, "warmup_steps": 0}
    base.update(overrides)
    return TrainConfig(**base)


def collect(job) -> tuple[list, Path]:
    events = []
    try:
        while True:
            events.append(next(job))
    except StopIteration as stop:
        return events, stop.value


def cancel_after_step(job, step: int) -> None:
    """Runs `job` until it reports `step`, then cancels it (closes the generator)."""
    for event in job:
        if event.kind == "step" and event.step == step:
            break
    job.close()


def step_losses(events) -> dict[int, float]:
    return {e.step: e.metrics["loss"] for e in events if e.kind == "step"}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A random tiny teacher with a sharpened cost (outputs span the range), saved as a model folder."""
    from stereo_studio.models.registry import build_model, default_config
    from stereo_studio.models.storage import save_model

    torch.manual_seed(0)
    teacher = build_model(default_config("teacher", **TINY_TEACHER))
    with torch.no_grad():
        teacher.cost_out.weight.mul_(40.0)
    folder = tmp_path_factory.mktemp("teacher") / "model"
    save_model(teacher, folder, {"note": "random test teacher"})
    return folder


def test_schedules():
    cfg = tiny(steps=100, lr=1.0, warmup_steps=10)
    cos = [lr_at(s, cfg) for s in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(cos[9:])) and cos[-1] < 0.05
    one = [lr_at(s, tiny(steps=100, lr=1.0, schedule="onecycle", warmup_steps=None)) for s in range(100)]
    peak = int(np.argmax(one))
    assert 25 <= peak <= 35 and one[0] == pytest.approx(1 / 25) and one[-1] < 1e-3


def test_config_round_trip_and_checks():
    cfg = tiny(teacher="teacher").resolved()
    assert (cfg.w_teacher, cfg.w_gt) == (1.0, 0.0)
    assert (tiny().resolved().w_teacher, tiny().resolved().w_gt) == (0.0, 1.0)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    with pytest.raises(TrainingError, match="need a teacher"):
        tiny(w_feat=1.0).resolved()
    with pytest.raises(TrainingError, match="precision"):
        tiny(precision="fp8").resolved()
    with pytest.raises(TrainingError, match="unknown training config keys: bogus"):
        TrainConfig.from_dict({"bogus": 1})
    scaled = tiny(aug_scale=[0.7, 1.3]).resolved()
    assert scaled.aug_scale == (0.7, 1.3)
    assert TrainConfig.from_dict(json.loads(json.dumps(scaled.to_dict()))).resolved() == scaled
    with pytest.raises(TrainingError, match="aug_scale must be a range"):
        tiny(aug_scale=(1.3, 0.7)).resolved()
    with pytest.raises(TrainingError, match="aug_scale_prob must be in"):
        tiny(aug_scale=(0.8, 1.0), aug_scale_prob=0.0).resolved()
    with pytest.raises(TrainingError, match="edge_weight must be"):
        tiny(edge_weight=-1.0).resolved()


def test_scale_augmentation_reaches_the_augmenter():
    """`aug_scale` resizes each pair before the crop (disparity scaled with it), with or without `augment`."""
    from stereo_studio.data.augment import Augmenter
    from stereo_studio.data.synthetic import generate_pair
    from stereo_studio.engine.training import _make_augmenter

    sample = generate_pair(0, 96, 192, 32)
    for augment in (True, False):
        plain = _make_augmenter(Augmenter, tiny(crop=(48, 96), augment=augment).resolved())
        zoom = _make_augmenter(Augmenter, tiny(crop=(48, 96), augment=augment, aug_scale=(2, 2)).resolved())
        assert plain.scale is None and zoom.scale == (2, 2)
        out = zoom(sample, np.random.default_rng(0))
        assert out.left.shape == (48, 96, 3)
        ratio = np.nanmedian(out.disparity[out.valid]) / np.nanmedian(sample.disparity)
        assert 1.3 < ratio < 3.0  # disparities doubled (a window's median, not the whole pair's)


def test_distillation_reduces_student_teacher_gap(tmp_path, teacher_dir):
    cfg = tiny(teacher=str(teacher_dir), steps=30, crop=(48, 96), synthetic_size=(48, 96), val_interval=30,
               ckpt_interval=30, lr=3e-3, w_feat=0.1, feat_names=["left_quarter"])
    events, model_dir = collect(train(cfg, tmp_path / "run"))
    vals = [e for e in events if e.kind == "validation"]
    assert [v.step for v in vals] == [0, 30]
    before, after = vals[0].metrics["val_gap"], vals[-1].metrics["val_gap"]
    assert after < 0.7 * before, (before, after)
    assert "val_epe" in vals[-1].metrics and "val_bad3" in vals[-1].metrics
    steps = [e for e in events if e.kind == "step"]
    assert {"loss", "lr", "it_s", "eta_s", "loss_teacher", "loss_feat"} <= set(steps[-1].metrics)
    assert (model_dir / "config.json").exists() and (model_dir / "model.safetensors").exists()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"step", "validation", "checkpoint"}


def test_resume_continues_exactly(tmp_path):
    cfg = tiny()
    full, _ = collect(train(cfg, tmp_path / "full"))
    # The same run, cancelled after step 4 (the checkpoint of step 3 survives), then resumed.
    cancel_after_step(train(cfg, tmp_path / "cut"), 4)
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["step"] == 3
    assert not (tmp_path / "cut" / "model").exists()
    assert not [t for t in threading.enumerate() if t.name == "stereo-studio-prefetch"]
    with pytest.raises(TrainingError, match="already holds a training run"):
        next(train(cfg, tmp_path / "cut"))
    resumed, _ = collect(train(cfg, tmp_path / "cut", resume=True))
    a, b = step_losses(full), step_losses(resumed)
    assert sorted(b) == [4, 5, 6]
    for s in (4, 5, 6):
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), (s, a[s], b[s])
    rows = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == [1, 2, 3, 4, 5, 6]  # no duplicate step 4


def test_weight_average_is_saved_and_resumes_exactly(tmp_path):
    """`ema`: the saved model is the moving average (not the last weights), the checkpoint holds both, and a
    cancelled run resumed ends with the same average as an uncut one."""
    from safetensors.torch import load_file

    cfg = tiny(ema=0.5)
    _, full_dir = collect(train(cfg, tmp_path / "full"))
    state = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    saved = load_file(str(full_dir / "model.safetensors"))
    name = next(k for k in saved if k.endswith("weight") and saved[k].dim() == 4)
    assert torch.equal(saved[name], state["ema"]["module." + name])
    assert not torch.equal(saved[name], state["model"][name])  # an average, not the last step's weights
    cancel_after_step(train(cfg, tmp_path / "cut"), 4)
    _, cut_dir = collect(train(cfg, tmp_path / "cut", resume=True))
    resumed = load_file(str(cut_dir / "model.safetensors"))
    for k, v in saved.items():
        torch.testing.assert_close(resumed[k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(TrainingError, match="ema must be a decay"):
        tiny(ema=1.0).resolved()


def test_a_run_with_tuple_settings_resumes(tmp_path):
    """Stop 27: `--aug-scale` runs could not resume ("aug_scale: [0.77, 1.0] -> (0.77, 1.0)"): the saved JSON
    holds lists, the live config tuples. Every field now compares as JSON keeps it."""
    cfg = tiny(aug_scale=(0.8, 1.0), steps=4, ckpt_interval=1)
    assert json.loads(json.dumps(cfg.resolved().to_dict())) == cfg.resolved().to_dict()
    cancel_after_step(train(cfg, tmp_path / "run"), 2)
    resumed, _ = collect(train(cfg, tmp_path / "run", resume=True))
    assert sorted(step_losses(resumed)) == [2, 3, 4]  # from the checkpoint of step 1


def test_resume_with_different_config_is_refused(tmp_path):
    collect(train(tiny(steps=3), tmp_path / "run"))
    with pytest.raises(TrainingError, match=r"config differs.*lr: 0.002 -> 0.01"):
        next(train(tiny(steps=3, lr=1e-2), tmp_path / "run", resume=True))
    with pytest.raises(TrainingError, match="nothing to resume"):
        next(train(tiny(), tmp_path / "empty", resume=True))


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, monkeypatch):
    real = training.gt_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs) * (math.nan if calls["n"] == 5 else 1.0)

    monkeypatch.setattr(training, "gt_loss", poisoned)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    with pytest.raises(TrainingError, match=f"loss became nan at step 5; last good checkpoint: {ckpt}"):
        collect(train(tiny(ckpt_interval=2), tmp_path / "run"))
    assert load_checkpoint(ckpt)["step"] == 4


def test_unlabelled_pairs_distill_but_do_not_train(tmp_path, teacher_dir):
    import cv2

    from stereo_studio.data.synthetic import SyntheticStereo

    folder = tmp_path / "pairs"
    folder.mkdir()
    for i in range(3):
        s = SyntheticStereo(48, 96, max_disp=16, seed=3)[i]
        cv2.imwrite(str(folder / f"{i:03d}_left.png"), s.left[..., ::-1])
        cv2.imwrite(str(folder / f"{i:03d}_right.png"), s.right[..., ::-1])
    video = tmp_path / "sbs.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (192, 48))
    for i in range(4):
        s = SyntheticStereo(48, 96, max_disp=16, seed=4)[i]
        writer.write(np.concatenate([s.left, s.right], axis=1)[..., ::-1].copy())
    writer.release()
    with pytest.raises(DataError, match="no ground truth"):
        collect(train(tiny(data=[str(folder)], steps=2), tmp_path / "sup"))
    for name, data in (("folder", [str(folder)]), ("video", str(video))):
        cfg = tiny(data=data, teacher=str(teacher_dir), steps=1, val_pairs=1)
        events, model_dir = collect(train(cfg, tmp_path / name))
        assert model_dir.exists()
        val = [e for e in events if e.kind == "validation"][-1].metrics
        assert "val_gap" in val and "val_epe" not in val


def test_cli_train_and_distill(tmp_path, capsys, teacher_dir):
    from stereo_studio.cli import main

    common = ["--steps", "2", "--batch-size", "1", "--crop", "32x64", "--synthetic-size", "40x80",
              "--max-disp", "16", "--val-pairs", "1", "--precision", "fp32", "--threads", "1"]
    assert main(["train", "--arch", "student", "--out", str(tmp_path / "t"), *common]) == 0
    assert f"model saved to {tmp_path / 't' / 'model'}" in capsys.readouterr().out
    assert main(["distill", "--teacher", str(teacher_dir), "--out", str(tmp_path / "d"), "--json",
                 "--init-from", str(tmp_path / "t" / "model"), *common]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == str(tmp_path / "d" / "model") and summary["steps"] == 2
    assert "val_gap" in summary["validation"]
    assert main(["train", "--arch", "student", "--out", str(tmp_path / "t"), "--resume", "--lr", "0.5",
                 *common]) == 2
    assert "config differs" in capsys.readouterr().err


def test_edge_weights_count_the_band_around_a_depth_edge():
    """Pixels within 3 px of a jump count 1 + W times; flat pixels and gentle slopes count once; the weighted
    losses equal the plain ones under unit weights and move toward the edge pixels' error under heavy ones."""
    from stereo_studio.engine.losses import edge_weights, gt_loss, teacher_loss

    gt = torch.full((1, 1, 16, 32), 10.0)
    gt[..., 16:] = 20.0  # a 10 px jump between columns 15 and 16
    gt[..., :8] = torch.linspace(6.5, 10.0, 8)  # a slope of 0.5 px per pixel into the flat part: not an edge
    weights = edge_weights(gt, None, 3.0)
    assert weights[0, 0, 5].tolist() == [1.0] * 12 + [4.0] * 8 + [1.0] * 12
    pred = gt.clone()
    pred[..., 14:18] += 4.0  # wrong only beside the edge
    ones = torch.ones_like(weights)
    assert float(gt_loss(pred, gt, None, 64, ones)) == pytest.approx(float(gt_loss(pred, gt, None, 64)))
    assert float(teacher_loss(pred, gt, None, ones)) == pytest.approx(float(teacher_loss(pred, gt)))
    plain, weighted = float(teacher_loss(pred, gt)), float(teacher_loss(pred, gt, None, weights))
    assert plain == pytest.approx(4.0 * 4 / 32)
    assert weighted == pytest.approx(4.0 * 4 * 4 / (24 + 8 * 4))  # 4 of the 8 weighted columns are wrong
    invalid = torch.zeros_like(gt, dtype=torch.bool)  # nothing valid: no edges, all weights 1
    assert bool((edge_weights(gt, invalid, 3.0) == 1).all())


def test_edge_weight_changes_the_training_loss_only(tmp_path):
    """Same seed, data and model: the first step's loss differs with `edge_weight` (the weights reach both
    losses), and the run still trains and saves a model."""
    plain, _ = collect(train(tiny(steps=1, val_interval=1), tmp_path / "plain"))
    events, model_dir = collect(train(tiny(steps=1, val_interval=1, edge_weight=3.0), tmp_path / "edge"))
    a, b = step_losses(plain), step_losses(events)
    assert a[1] != pytest.approx(b[1], rel=1e-3) and (model_dir / "model.safetensors").is_file()


def test_losses_mask_and_project():
    from stereo_studio.engine.losses import FeatureProjector, gt_loss, teacher_loss

    pred = torch.tensor([[[[1.0, 5.0, 9.0, 100.0]]]])
    gt = torch.tensor([[[[2.0, 5.0, 0.0, 50.0]]]])  # gt 0 = unknown, 50 >= max_disp: both ignored
    valid = torch.tensor([[[[True, True, True, False]]]])
    assert float(gt_loss(pred, gt, valid, max_disp=40)) == pytest.approx((0.5 + 0.0) / 2)
    assert float(teacher_loss(pred, gt)) == pytest.approx((1 + 0 + 9 + 50) / 4)
    proj = FeatureProjector([("a", "b")], {"a": 4}, {"b": 6})
    loss = proj({"a": torch.rand(2, 4, 8, 8)}, {"b": torch.rand(2, 6, 4, 4)})  # resized to the teacher's size
    loss.backward()
    assert loss.item() > 0 and proj.proj["a__to__b"].weight.grad is not None
