"""Cached teacher outputs (`data.teacher_cache`): the cached target is the teacher on the whole pair, cropped
with the images; keys separate teachers and data; half-written entries are not trusted; cached distillation
resumes exactly; data made on the fly is refused clearly. Tiny models and images keep it fast."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_studio.data.augment import Augmenter
from stereo_studio.data.datasets import open_dataset, write_scene
from stereo_studio.data.sample import StereoSample
from stereo_studio.data.teacher_cache import (
    COMPLETE_NAME,
    TEACHER_KEY,
    WithTeacher,
    build_teacher_cache,
    open_teacher_cache,
    pair_hash,
    stack_teacher,
    weights_hash,
)
from stereo_studio.engine import training
from stereo_studio.engine.training import TrainConfig, TrainingError, train
from stereo_studio.errors import DataError
from stereo_studio.progress import JobRun, drain

TINY_STUDENT = {"feature_channels": [8, 8], "corr_channels": 8, "ctx_channels": 8, "agg_channels": 16,
                "agg_blocks": 1, "low_res_channels": 0, "refine_channels": 8}
TINY_TEACHER = {"max_disp": 16, "feature_channels": [8, 16], "feature_blocks": 1, "gwc_channels": 16,
                "groups": 4, "agg_channels": 8, "hourglass_channels": 8, "agg_layers": 1, "mask_channels": 16}
H, W = 32, 48  # position codes below 2048 stay exact in float16


def _teacher(seed: int) -> torch.nn.Module:
    from stereo_studio.models.registry import build_model, default_config

    torch.manual_seed(seed)
    teacher = build_model(default_config("teacher", **TINY_TEACHER))
    with torch.no_grad():
        teacher.cost_out.weight.mul_(40.0)
    return teacher.eval()


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    from stereo_studio.models.storage import save_model

    folder = tmp_path_factory.mktemp("tc-teacher") / "model"
    save_model(_teacher(0), folder, {"note": "random test teacher"})
    return folder


def _coded_pair(i: int) -> StereoSample:
    """Random views; the ground truth codes each pixel's position (unique, exact in float16)."""
    rng = np.random.default_rng(i)
    left = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    right = np.roll(left, -2, axis=1)
    disp = np.arange(H * W, dtype=np.float32).reshape(H, W) / 4.0 + 1.0
    return StereoSample(left, right, disp, np.ones((H, W), bool), {"name": f"p{i}", "max_disp": 16.0})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tc-data")
    for i in range(6):
        write_scene(_coded_pair(i), folder / f"{i:06d}")
    return folder


def _predict(model: torch.nn.Module):
    return lambda left, right: model(left, right)


def _gt_as_teacher(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """A stand-in teacher whose output is the position code (so alignment is visible)."""
    return torch.from_numpy(_coded_pair(0).disparity)[None, None]


def test_cached_target_is_the_teacher_on_the_full_pair_cropped(tmp_path, data_dir):
    teacher = _teacher(0)
    ds = open_dataset(str(data_dir), max_disp=16)
    cache = open_teacher_cache(tmp_path / "cache", weights_hash(teacher), [str(data_dir)], 16)
    drain(build_teacher_cache(cache, [ds], _predict(teacher)))
    assert cache.complete and len(list(cache.folder.glob("*.npy"))) == len(ds)
    cached = WithTeacher(ds, cache)
    aug = Augmenter(crop=(16, 24), photometric=True, vertical_jitter_px=1.0, occlusion_patch=True)
    for i in range(len(ds)):
        full = ds[i]
        left, right = (torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255
                       for v in (full.left, full.right))
        with torch.no_grad():
            expected = teacher(left, right)[0, 0].numpy()
        out = aug(cached[i], np.random.default_rng(i))
        y, x = divmod(round(float(out.disparity[0, 0] - 1.0) * 4), W)  # where the crop came from
        target = out.meta[TEACHER_KEY]
        assert target.shape == (16, 24) and target.dtype == np.float32
        np.testing.assert_allclose(target, expected[y:y + 16, x:x + 24], rtol=2e-3, atol=2e-3)
        assert TEACHER_KEY not in full.meta  # the dataset's samples are never modified


@pytest.mark.parametrize("aug", [
    Augmenter(crop=(16, 24)),  # photometric, vertical jitter off, occlusion patch
    Augmenter(crop=(16, 24), vertical_jitter_px=1.0, scale=(0.7, 1.6)),
    Augmenter(crop=(40, 64), photometric=False),  # larger than the pair: padded
    Augmenter(crop=None, scale=(1.5, 1.5)),
])
def test_cached_map_follows_every_geometric_change(tmp_path, data_dir, aug):
    ds = open_dataset(str(data_dir), max_disp=16)
    cache = open_teacher_cache(tmp_path / "cache", "position-code", [str(data_dir)], 16)
    drain(build_teacher_cache(cache, [ds], _gt_as_teacher))
    cached = WithTeacher(ds, cache)
    for seed in range(4):
        out = aug(cached[0], np.random.default_rng(seed))
        target = out.meta[TEACHER_KEY]
        assert target.shape == out.disparity.shape
        np.testing.assert_array_equal(np.isfinite(target), out.valid)  # NaN exactly where padded
        np.testing.assert_array_equal(target[out.valid], out.disparity[out.valid])
    batch = stack_teacher({"meta": [dict(out.meta), dict(out.meta)]})
    assert batch["teacher_disparity"].shape == (2, 1, *out.disparity.shape)
    assert all(TEACHER_KEY not in m for m in batch["meta"])


def test_cache_key_separates_teachers_data_and_max_disp(tmp_path, data_dir):
    root = tmp_path / "cache"
    assert weights_hash(_teacher(0)) == weights_hash(_teacher(0))
    h0, h1 = weights_hash(_teacher(0)), weights_hash(_teacher(1))
    assert h0 != h1
    base = open_teacher_cache(root, h0, [str(data_dir)], 16).folder
    assert open_teacher_cache(root, h0, [str(data_dir)], 16).folder == base
    assert open_teacher_cache(root, h1, [str(data_dir)], 16).folder != base
    assert open_teacher_cache(root, h0, [str(data_dir)], 32).folder != base
    other = tmp_path / "other"
    write_scene(_coded_pair(0), other / "000000")
    assert open_teacher_cache(root, h0, [str(other)], 16).folder != base
    before = open_teacher_cache(root, h0, [str(other)], 16).folder
    write_scene(_coded_pair(1), other / "000000")  # regenerated in place: same names, new files
    st = (other / "000000" / "im0.png").stat()
    os.utime(other / "000000" / "im0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert open_teacher_cache(root, h0, [str(other)], 16).folder != before
    inside = open_teacher_cache(data_dir / "cache", h0, [str(data_dir)], 16)  # a cache inside the data
    assert open_teacher_cache(data_dir / "cache", h0, [str(data_dir)], 16).folder == inside.folder


def test_half_written_entries_are_not_trusted(tmp_path, data_dir):
    ds = open_dataset(str(data_dir), max_disp=16)
    cache = open_teacher_cache(tmp_path / "cache", "position-code", [str(data_dir)], 16)
    calls, limit = [], [3]

    def counting(left, right):
        if limit and len(calls) == limit[0]:
            raise KeyboardInterrupt  # the run is killed while computing the fourth pair
        calls.append(1)
        return _gt_as_teacher(left, right)

    with pytest.raises(KeyboardInterrupt):
        drain(build_teacher_cache(cache, [ds], counting, start=0))
    assert not cache.complete and len(calls) == 3
    limit.clear()
    entry = cache.entry(pair_hash(ds[0]))
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a torn write
    (cache.folder / f".{entry.name}.junk.tmp").write_bytes(b"partial")  # left by a killed writer
    assert cache.load(pair_hash(ds[0]), (H, W)) is None
    assert cache.load(pair_hash(ds[1]), (H, W)) is not None
    assert cache.load(pair_hash(ds[1]), (H, W + 1)) is None  # another size: not this pair's
    drain(build_teacher_cache(cache, [ds], counting, start=0))  # resumes: the torn entry and the rest only
    assert len(calls) == 3 + 1 + (len(ds) - 3) and cache.complete
    assert not list(cache.folder.glob("*.tmp"))
    assert cache.load(pair_hash(ds[0]), (H, W)) is not None
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.raises(DataError, match="no valid entry"):
        WithTeacher(ds, cache)[0]
    (cache.folder / COMPLETE_NAME).write_text('{"key": {"version": 0}}')  # another cache's marker
    assert not cache.complete


def test_builders_start_where_told_and_skip_what_another_stored(tmp_path, data_dir):
    ds = open_dataset(str(data_dir), max_disp=16)
    n, half = len(ds), len(ds) // 2
    index_of = {ds[i].left[0, :8, 0].tobytes(): i for i in range(n)}  # random views: the first pixels differ
    seen: list[int] = []

    def recording(left, right):
        seen.append(index_of[(left[0, 0, 0, :8] * 255).round().to(torch.uint8).numpy().tobytes()])
        return _gt_as_teacher(left, right)

    cache = open_teacher_cache(tmp_path / "a", "position-code", [str(data_dir)], 16)
    drain(build_teacher_cache(cache, [ds], recording, start=half))
    assert seen == [*range(half, n), *range(half)] and cache.complete  # round from `start`
    # a second run building the same cache at once, started elsewhere, has stored the second half
    other = open_teacher_cache(tmp_path / "b", "position-code", [str(data_dir)], 16)
    for i in range(half, n):
        other.store(pair_hash(ds[i]), _coded_pair(0).disparity)
    seen.clear()
    drain(build_teacher_cache(other, [ds], recording, start=0))
    assert seen == list(range(half)) and other.complete  # its pairs are not computed again
    seen.clear()
    third = open_teacher_cache(tmp_path / "c", "position-code", [str(data_dir)], 16)
    drain(build_teacher_cache(third, [ds], recording))  # default: a random first pair, still all of them
    assert sorted(seen) == list(range(n)) and third.complete


def tiny(**overrides) -> TrainConfig:
    base = {"arch": "student", "model_overrides": dict(TINY_STUDENT), "steps": 6, "batch_size": 2,
            "crop": (16, 32), "max_disp": 16, "val_pairs": 1, "val_interval": 3, "ckpt_interval": 3,
            "log_interval": 1, "precision": "fp32", "threads": 1, "lr": 2e-3, "warmup_steps": 0}
    base.update(overrides)
    return TrainConfig(**base)


def _run(job):
    with JobRun(job) as run:
        events = list(run)
    return events, run.result


def _losses(events) -> dict[int, float]:
    return {e.step: e.metrics["loss"] for e in events if e.kind == "step"}


def test_cached_distillation_runs_and_resumes_exactly(tmp_path, data_dir, teacher_dir, monkeypatch):
    from stereo_studio.models import storage

    sizes, real_load = [], storage.load_model

    def load_model(spec, *args, **kwargs):  # records the input size of every teacher forward
        model = real_load(spec, *args, **kwargs)
        if str(spec) == str(teacher_dir):
            model.register_forward_pre_hook(lambda m, inputs: sizes.append(tuple(inputs[0].shape[-2:])))
        return model

    monkeypatch.setattr(storage, "load_model", load_model)
    cfg = tiny(data=[str(data_dir)], teacher=str(teacher_dir), teacher_cache=str(tmp_path / "cache"))
    full, model_dir = _run(train(cfg, tmp_path / "full"))
    assert model_dir.exists()
    assert sizes and set(sizes) == {(H, W)}  # whole pairs (cache, validation) only: never a training crop
    messages = [e.message for e in full if e.kind == "log"]
    assert any("teacher disparity from the cache" in m for m in messages)
    assert any("pairs (6 computed)" in m for m in messages)
    assert "loss_teacher" in [e for e in full if e.kind == "step"][-1].metrics
    job = train(cfg, tmp_path / "cut")
    for event in job:
        if event.kind == "step" and event.step == 4:
            break
    job.close()
    resumed, _ = _run(train(cfg, tmp_path / "cut", resume=True))
    assert any("is complete" in e.message for e in resumed)  # the cache is reused, not rebuilt
    a, b = _losses(full), _losses(resumed)
    assert sorted(b) == [4, 5, 6]
    for s in (4, 5, 6):
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), (s, a[s], b[s])
    # A run saved before the field existed resumes: a missing teacher_cache is its default (off).
    old = {k: v for k, v in tiny().to_dict().items() if k != "teacher_cache"}
    assert training._config_differences(old, tiny().to_dict()) == []
    saved = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert saved["teacher_cache"] == str(tmp_path / "cache")
    with pytest.raises(TrainingError, match="teacher_cache"):
        next(train(tiny(data=[str(data_dir)], teacher=str(teacher_dir)), tmp_path / "cut", resume=True))


def test_cached_and_online_teacher_agree_without_augmentation(tmp_path, data_dir, teacher_dir):
    """Crops the size of the pairs, no augmentation: the cached target is the online teacher's (stored as
    float16), so the first step's losses match closely."""
    common = {"data": [str(data_dir)], "teacher": str(teacher_dir), "steps": 1, "augment": False,
              "crop": (32, 48), "val_at_start": False}
    online, _ = _run(train(tiny(**common), tmp_path / "online"))
    cached, _ = _run(train(tiny(teacher_cache=str(tmp_path / "cache"), **common), tmp_path / "cached"))
    assert _losses(cached)[1] == pytest.approx(_losses(online)[1], rel=1e-2)


def test_data_made_on_the_fly_is_refused(tmp_path, teacher_dir):
    video = tmp_path / "sbs.avi"
    video.write_bytes(b"not really a video")
    cache = str(tmp_path / "cache")
    for data, pattern in ((["synthetic"], "'synthetic' makes them on the fly.*stereo-studio generate"),
                          ([str(video)], "does not cache videos"),
                          ([str(tmp_path / "missing")], "needs dataset folders")):
        with pytest.raises(TrainingError, match=pattern):
            next(train(tiny(data=data, teacher=str(teacher_dir), teacher_cache=cache), tmp_path / "run"))
    with pytest.raises(TrainingError, match="needs a teacher"):
        tiny(data=[str(tmp_path)], teacher_cache=cache).resolved()
    with pytest.raises(TrainingError, match="feature distillation"):
        tiny(data=[str(tmp_path)], teacher="teacher", teacher_cache=cache, w_feat=0.1).resolved()
    assert not (tmp_path / "run").exists()


def test_cli_teacher_cache(tmp_path, capsys, data_dir, teacher_dir):
    from stereo_studio.cli import main

    common = ["--steps", "1", "--batch-size", "1", "--crop", "16x32", "--max-disp", "16", "--val-pairs", "1",
              "--precision", "fp32", "--threads", "1", "--teacher", str(teacher_dir),
              "--teacher-cache", str(tmp_path / "cache")]
    assert main(["distill", "--data", "synthetic", "--out", str(tmp_path / "s"), *common]) == 2
    assert "stereo-studio generate" in capsys.readouterr().err
    assert main(["distill", "--data", str(data_dir), "--out", str(tmp_path / "d"), *common]) == 0
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["teacher_cache"] == str(tmp_path / "cache")


def test_cli_cache_only_fills_the_cache_a_later_run_reuses(tmp_path, capsys, data_dir, teacher_dir):
    from stereo_studio.cli import main

    common = ["--data", str(data_dir), "--steps", "1", "--batch-size", "1", "--crop", "16x32",
              "--max-disp", "16", "--val-pairs", "1", "--precision", "fp32", "--threads", "1",
              "--teacher", str(teacher_dir), "--teacher-cache", str(tmp_path / "cache")]
    assert main(["distill", "--cache-only", "--json", *common]) == 0
    folder = Path(json.loads(capsys.readouterr().out)["teacher_cache"])
    assert folder.parent == tmp_path / "cache"
    assert len(list(folder.glob("*.npy"))) == 6 and (folder / "complete.json").is_file()
    assert not (tmp_path / "run").exists()
    assert main(["distill", "--out", str(tmp_path / "run"), *common]) == 0
    log = capsys.readouterr().err
    assert "is complete" in log and "computed)" not in log  # the run reused every pair: none recomputed
    assert main(["distill", "--cache-only", *common[:-2]]) == 2
    assert "--cache-only needs --teacher-cache" in capsys.readouterr().err
    assert main(["distill", *common]) == 2
    assert "--out is required" in capsys.readouterr().err
