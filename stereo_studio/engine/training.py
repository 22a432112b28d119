"""Supervised training and distillation of stereo networks, as one resumable job.

`train(config, run_dir, resume=False)` is a generator (see `stereo_studio.engine.jobs`) used by the CLI
(`stereo-studio train` / `distill`) and the GUI. The student learns from ground truth (`w_gt`), from the
teacher's disparity with an L1 loss (`w_teacher`, DTPnet's best setting) and optionally from the teacher's
features through 1x1 projections (`w_feat`). Distillation needs no ground truth, so unlabelled pair folders or
videos work too.

Run folder: `config.json`, `metrics.jsonl`, `checkpoints/last.pt` (atomic, weights_only-loadable),
`summary.json` and the final model in `model/`. Under `torchrun` the same job runs with DDP; only rank 0
writes. Batches are a pure function of (seed, step, rank): a resumed run sees exactly the batches it would
have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from stereo_studio.data.training_data import open_training_data
from stereo_studio.engine import distributed as ddp
from stereo_studio.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from stereo_studio.engine.jobs import Job, JobRun, Progress, Ticker
from stereo_studio.engine.losses import (
    SPARSITY_RAMP,
    SPARSITY_UPDATE_STEPS,
    FeatureProjector,
    PruneReadyRegularizer,
    edge_weights,
    gt_loss,
    parse_feature_pairs,
    teacher_loss,
)
from stereo_studio.errors import StereoStudioError

# Fields that may change between a run and its resumption (they do not change the numbers).
RESUMABLE_CHANGES = ("threads", "cache_mb")


class TrainingError(StereoStudioError):
    """Training could not go on (non-finite loss, mismatched resume, nothing to train on)."""


@dataclass
class TrainConfig:
    """Everything a training / distillation run depends on (JSON-able; saved as the run's config.json).

    The student is `init_from` (a model spec: bundled name, folder, pruned model...) when set, grown to
    `model_overrides` if any (`models.grow`: it starts out predicting the same), else a fresh `arch` with
    `model_overrides`. `teacher` (a model spec) turns on distillation. Loss weights left as None
    are resolved by `resolved()`: with a teacher w_teacher=1, w_gt=0 (the paper's best); without, w_gt=1.
    `data` is a list of data specs (mixed); `val_data` None = a held-out split (or fresh synthetic pairs).
    `precision` "auto" resolves to "bf16" where bf16 kernels are native, else "fp32". Synthetic data is a
    fixed set of `synthetic_pairs` generated pairs; up to `cache_mb` of training pairs stay in memory. A data
    spec may also be a side-by-side stereo video (unlabelled: distillation only; `video_frames` frames).
    `prune_ready` adds group-sparsity regularisation over the pruning engine's groups so that pruning at
    `target_ratio` (fraction of MACs) costs little (`sparsity_method`, `sparsity_reg`: see
    `engine.losses.PruneReadyRegularizer`); the group norms go to metrics.jsonl as kind "sparsity" rows (and
    kind "sparsity" progress events) every `log_interval` steps.
    `ema` > 0 keeps an exponential moving average of the weights and BatchNorm statistics (decay `ema` per
    step); validation scores it and it is the saved model (the raw weights stay in the checkpoint).
    `teacher_cache` (a folder) computes the teacher's disparity once per stored pair, on the whole
    un-augmented pair, and crops it like the images instead of running the teacher every step (see
    `data.teacher_cache`; dataset folders only, not with feature distillation).
    """

    arch: str | None = "student"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    teacher: str | None = None
    data: list[str] = field(default_factory=lambda: ["synthetic"])
    val_data: str | None = None
    val_fraction: float = 0.1
    val_pairs: int = 8
    val_interval: int = 500
    val_at_start: bool = True
    steps: int = 1000
    batch_size: int = 4
    crop: tuple[int, int] = (192, 320)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int | None = None
    grad_clip: float = 0.0
    w_teacher: float | None = None
    w_gt: float | None = None
    w_feat: float = 0.0
    feat_names: list[str] = field(default_factory=list)
    ckpt_interval: int = 500
    log_interval: int = 10
    seed: int = 0
    precision: str = "auto"
    threads: int | None = None
    max_disp: int | None = None
    synthetic_pairs: int = 4000
    video_frames: int = 500
    cache_mb: int = 2000
    synthetic_size: tuple[int, int] | None = None
    augment: bool = True
    aug_scale: tuple[float, float] | None = None  # random scale of each training pair (disparity scaled)
    aug_scale_prob: float = 1.0  # fraction of the pairs `aug_scale` resizes (the others stay at native scale)
    ema: float = 0.0  # decay of an exponential moving average of the weights (and BN statistics); 0 = off
    # prune-ready training (`engine.losses.PruneReadyRegularizer`): group sparsity so pruning costs little
    prune_ready: bool = False
    sparsity_reg: float = 20.0
    target_ratio: float = 0.5  # fraction of MACs the student is made ready to lose
    sparsity_method: str = "group"
    sparsity_start: float = 0.0  # fraction of the steps trained at full width before the regulariser starts
    teacher_cache: str | None = None  # folder of cached teacher outputs (`data.teacher_cache`); None: online
    edge_weight: float = 0.0  # extra loss weight of pixels near depth edges (`engine.losses.edge_weights`)

    def resolved(self) -> TrainConfig:
        """A copy with automatic loss weights filled in and the values checked."""
        data = self.data.split(",") if isinstance(self.data, str) else self.data
        data = [str(d).strip() for d in data if str(d).strip()]
        cfg = dataclasses.replace(self, crop=tuple(self.crop), data=data,
                                  synthetic_size=tuple(self.synthetic_size) if self.synthetic_size else None,
                                  aug_scale=tuple(self.aug_scale) if self.aug_scale else None)
        if cfg.init_from:
            cfg.arch = None
        if cfg.w_teacher is None:
            cfg.w_teacher = 1.0 if cfg.teacher else 0.0
        if cfg.w_gt is None:
            cfg.w_gt = 0.0 if cfg.teacher else 1.0
        problems = []
        if cfg.arch is None and cfg.init_from is None:
            problems.append("give an architecture (arch) or a model to start from (init_from)")
        if not cfg.data:
            problems.append("no training data given")
        if (cfg.w_teacher > 0 or cfg.w_feat > 0) and not cfg.teacher:
            problems.append("w_teacher / w_feat need a teacher model")
        if cfg.teacher_cache:
            problems += _teacher_cache_problems(cfg)
        if cfg.w_teacher + cfg.w_gt + cfg.w_feat <= 0:
            problems.append("all loss weights are zero")
        scale = cfg.aug_scale
        if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1]):
            problems.append(f"aug_scale must be a range 0 < lo <= hi, got {list(cfg.aug_scale)}")
        if not 0.0 < cfg.aug_scale_prob <= 1.0:
            problems.append(f"aug_scale_prob must be in (0, 1], got {cfg.aug_scale_prob}")
        if not (math.isfinite(cfg.edge_weight) and cfg.edge_weight >= 0.0):
            problems.append(f"edge_weight must be a finite number >= 0 (0 = off), got {cfg.edge_weight}")
        if not (math.isfinite(cfg.ema) and 0.0 <= cfg.ema < 1.0):
            problems.append(f"ema must be a decay in [0, 1) (0 = off), got {cfg.ema}")
        if cfg.schedule not in ("cosine", "onecycle", "constant"):
            problems.append(f"unknown schedule '{cfg.schedule}' (cosine, onecycle, constant)")
        if cfg.precision == "auto":
            cfg.precision = _native_precision()
        if cfg.precision not in ("bf16", "fp32"):
            problems.append(f"unknown precision '{cfg.precision}' (auto, bf16, fp32)")
        for name in ("steps", "batch_size", "val_interval", "ckpt_interval", "log_interval", "val_pairs"):
            if getattr(cfg, name) < 1:
                problems.append(f"{name} must be at least 1")
        if min(cfg.crop) < 16:
            problems.append(f"crop {cfg.crop} is too small (at least 16x16)")
        if not (math.isfinite(cfg.lr) and cfg.lr > 0):
            problems.append(f"lr must be a positive finite number, got {cfg.lr}")
        if cfg.prune_ready:
            from stereo_studio.engine.losses import SPARSITY_METHODS

            if cfg.sparsity_method not in SPARSITY_METHODS:
                problems.append(f"unknown sparsity method '{cfg.sparsity_method}' "
                                f"({', '.join(SPARSITY_METHODS)})")
            if not (math.isfinite(cfg.sparsity_reg) and cfg.sparsity_reg >= 0):
                problems.append(f"sparsity_reg must be a finite number >= 0, got {cfg.sparsity_reg}")
            if not 0.0 < cfg.target_ratio < 1.0:
                problems.append(f"target_ratio must be in (0, 1), got {cfg.target_ratio}")
            if not 0.0 <= cfg.sparsity_start < 1.0:
                problems.append(f"sparsity_start must be in [0, 1), got {cfg.sparsity_start}")
        if problems:
            raise TrainingError("bad training config: " + "; ".join(problems))
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON keeps them (tuples as lists): a saved config compares equal to the live one."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainingError(f"unknown training config keys: {', '.join(unknown)}")
        d = dict(d)
        if d.get("crop") is not None:
            d["crop"] = tuple(d["crop"])
        if d.get("synthetic_size") is not None:
            d["synthetic_size"] = tuple(d["synthetic_size"])
        return cls(**d)


def _teacher_cache_problems(cfg: TrainConfig) -> list[str]:
    """Why `cfg.teacher_cache` cannot work (no teacher, feature distillation, data made on the fly)."""
    from stereo_studio.data.teacher_cache import check_cacheable
    from stereo_studio.errors import DataError

    if not cfg.teacher:
        return ["teacher_cache needs a teacher model"]
    if cfg.w_feat > 0:
        return ["teacher_cache holds the teacher's disparity only; feature distillation (w_feat > 0) needs "
                "the teacher online: drop one of them"]
    try:
        check_cacheable(cfg.data)
    except DataError as exc:
        return [str(exc)]
    return []


def _native_precision() -> str:
    """'bf16' where oneDNN has native bf16 kernels (AVX-512 BF16 / AMX) or on CUDA, else 'fp32' (on an
    AVX2-only CPU bf16 convolutions fall back to reference kernels, several times slower than fp32)."""
    if torch.cuda.is_available():
        return "bf16"
    from stereo_studio.models.matchers import resolve_precision

    return resolve_precision("auto")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for the step with 0-based index `step` (a pure function: resuming needs no state)."""
    total = max(1, cfg.steps)
    if cfg.schedule == "onecycle":
        warm = cfg.warmup_steps if cfg.warmup_steps is not None else int(0.3 * total)
        start, end = cfg.lr / 25.0, cfg.lr / 25.0 / 1e4
        if step < warm:
            t = step / max(1, warm)
            return start + (cfg.lr - start) * 0.5 * (1 - math.cos(math.pi * t))
        t = min(1.0, (step - warm) / max(1, total - warm))
        return end + (cfg.lr - end) * 0.5 * (1 + math.cos(math.pi * t))
    warm = cfg.warmup_steps if cfg.warmup_steps is not None else min(500, total // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.schedule == "constant":
        return cfg.lr
    t = min(1.0, (step - warm) / max(1, total - warm))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def step_seed(seed: int, step: int) -> int:
    """The data seed of one step (ranks take disjoint shares of the same permutation)."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------------- data


class _Prefetcher:
    """Builds the batches of steps [start, stop) in a background thread, a few steps ahead."""

    def __init__(self, make_batch: Callable[[int], dict], start: int, stop: int, depth: int = 3) -> None:
        self._make = make_batch
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(start, stop), daemon=True,
                                        name="stereo-studio-prefetch")
        self._thread.start()

    def _run(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            try:
                item: tuple = (step, self._make(step), None)
            except BaseException as exc:  # handed to the consumer
                item = (step, None, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or item[2] is not None:
                return

    def get(self, timeout: float) -> tuple[int, dict] | None:
        """The next (step, batch), or None if not ready within `timeout` seconds."""
        try:
            step, batch, exc = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if exc is not None:
            raise exc
        return step, batch

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5.0)


# --------------------------------------------------------------------------------------------- models


class _Trainee(nn.Module):
    """The student plus the feature projections, so DDP synchronises both."""

    def __init__(self, student: nn.Module, projector: FeatureProjector | None) -> None:
        super().__init__()
        self.student = student
        self.projector = projector

    def forward(self, left: torch.Tensor, right: torch.Tensor,
                teacher_feats: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Any]:
        if self.projector is None or teacher_feats is None:
            return self.student(left, right), None
        disp, feats = self.student(left, right, return_features=True)
        return disp, self.projector(feats, teacher_feats)


def _load_student(cfg: TrainConfig) -> nn.Module:
    if cfg.init_from:
        from stereo_studio.models.storage import load_model

        model = load_model(cfg.init_from)
        if cfg.model_overrides:  # it grown (wider, or with a stage added), still predicting the same
            from stereo_studio.models.grow import grow_model

            model = grow_model(model, cfg.model_overrides)
        return model
    from stereo_studio.models.registry import build_model, default_config

    overrides = dict(cfg.model_overrides)
    if cfg.max_disp is not None:
        overrides["max_disp"] = cfg.max_disp
    return build_model(default_config(cfg.arch, **overrides))


def _feature_channels(model: nn.Module, device: str) -> dict[str, int]:
    probe = torch.rand(1, 3, 64, 128, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(probe, probe, return_features=True)
    except TypeError as exc:
        raise StereoStudioError(f"{type(model).__name__} cannot return features for feature "
                                f"distillation: {exc}") from exc
    finally:
        model.train(was_training)
    return {name: int(t.shape[1]) for name, t in out[1].items()}


def _channels_last(model: nn.Module) -> nn.Module:
    """4-D weights in channels_last memory format (faster oneDNN convolutions); 3-D conv weights are kept."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
    return model


def _to_input(t: torch.Tensor, device: str) -> torch.Tensor:
    return t.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def _autocast(device: str, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)


# ------------------------------------------------------------------------------------------ the job


@dataclass
class _Run:
    """What the helpers of one `train()` call share: the models, the optimiser, where to write."""

    cfg: TrainConfig
    info: ddp.DistInfo
    device: str
    max_disp: int
    student: nn.Module
    teacher: nn.Module | None
    projector: FeatureProjector | None
    trainee: _Trainee
    model: nn.Module  # the trainee, wrapped by DDP when distributed
    optimizer: torch.optim.Optimizer
    sparsity: PruneReadyRegularizer | None
    validator: _Validator | None
    ema: AveragedModel | None  # the moving average of the student's weights (`cfg.ema`), or None
    run_dir: Path
    ckpt_path: Path
    metrics_path: Path
    ticker: Ticker
    last_ckpt: str | None  # the last checkpoint written (or resumed from)

    @property
    def bf16(self) -> bool:
        return self.cfg.precision == "bf16"

    @property
    def kept(self) -> nn.Module:
        """The network validation scores and the run saves: the moving average if there is one."""
        return self.student if self.ema is None else self.ema.module


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False) -> Job[Path]:
    """Train or distill a student; yields Progress (step / validation / checkpoint / log) and returns
    the folder of the final model (`run_dir/model`). Cancel by closing the generator: the run keeps its last
    checkpoint and can be resumed with `resume=True` (same config, `threads` may differ)."""
    cfg = config.resolved()
    run_dir = Path(run_dir)
    info = ddp.init_distributed()
    device = info.device
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(threads)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    metrics_path = run_dir / "metrics.jsonl"

    state = _prepare_run_dir(cfg, run_dir, ckpt_path, resume, info)
    start_step = int(state["step"]) if state else 0
    if state is None:
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

    yield Progress(step=start_step, total=cfg.steps, kind="log", message="loading models")
    student = _load_student(cfg).to(device)
    max_disp = int(cfg.max_disp or getattr(student, "config", {}).get("max_disp", 192))
    teacher = _load_teacher(cfg, device) if cfg.teacher else None
    projector = None
    if cfg.w_feat > 0:
        s_ch, t_ch = _feature_channels(student, device), _feature_channels(teacher, device)
        pairs = parse_feature_pairs(cfg.feat_names, s_ch, t_ch)
        torch.manual_seed(cfg.seed + 1)
        projector = FeatureProjector(pairs, s_ch, t_ch).to(device)
    trainee = _channels_last(_Trainee(student, projector))
    optimizer = torch.optim.AdamW(trainee.parameters(), lr=lr_at(start_step, cfg),
                                  weight_decay=cfg.weight_decay)
    if state is not None:
        student.load_state_dict(state["model"])
        if projector is not None:
            projector.load_state_dict(state["projector"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
    ema = _make_ema(student, cfg.ema, state)
    sparsity = None
    if cfg.prune_ready:
        yield Progress(step=start_step, total=cfg.steps, kind="log", message="building the sparsity groups")
        sparsity = PruneReadyRegularizer(student, cfg.sparsity_reg, cfg.target_ratio, cfg.sparsity_method)
        if state is not None and state.get("sparsity"):
            sparsity.load_state(state["sparsity"])
    model = ddp.wrap_model(trainee, info)

    yield Progress(step=start_step, total=cfg.steps, kind="log", message="opening data")
    train_ds, val_ds, data_desc = open_training_data(cfg, max_disp)
    from stereo_studio.data.augment import Augmenter
    from stereo_studio.data.batches import batch_stream

    augmenter = _make_augmenter(Augmenter, cfg)
    if cfg.teacher_cache:
        train_ds = yield from _cached_teacher_data(cfg, train_ds, teacher, max_disp, info, device, start_step)

    def make_batch(step: int) -> dict:
        # One fresh stream per step: the batch depends on (seed, step, rank) only, so resuming is exact.
        stream = batch_stream(train_ds, cfg.batch_size, augmenter, seed=step_seed(cfg.seed, step),
                              shard=(info.rank, info.world_size), prefetch=0)
        try:
            batch = next(stream)
        finally:
            stream.close()
        if cfg.teacher_cache:
            from stereo_studio.data.teacher_cache import stack_teacher

            batch = stack_teacher(batch)
        return batch

    validator = _Validator(val_ds, cfg, max_disp, teacher, device) if (val_ds is not None and info.is_main) \
        else None
    run = _Run(cfg=cfg, info=info, device=device, max_disp=max_disp, student=student, teacher=teacher,
               projector=projector, trainee=trainee, model=model, optimizer=optimizer, sparsity=sparsity,
               validator=validator, ema=ema, run_dir=run_dir, ckpt_path=ckpt_path, metrics_path=metrics_path,
               ticker=Ticker(0.5), last_ckpt=str(ckpt_path) if state else None)
    activity = "distilling" if teacher is not None else "training"
    prefetch = _Prefetcher(make_batch, start_step, cfg.steps) if start_step < cfg.steps else None
    window: dict[str, list[float]] = {}
    t_start = time.monotonic()
    rate = None
    last_val: dict[str, float] = dict(state.get("last_val", {})) if state else {}
    yield Progress(step=start_step, total=cfg.steps, kind="log", message=data_desc)

    try:
        if validator is not None and start_step == 0 and cfg.val_at_start:
            last_val = yield from _validate(run, 0)
        model.train()
        if teacher is not None:
            teacher.eval()
        step = start_step
        while step < cfg.steps:
            t0 = time.monotonic()
            got = prefetch.get(timeout=0.5)
            if got is None:
                yield Progress(step=step, total=cfg.steps, kind="log", message="waiting for data")
                continue
            lr, loss, losses = yield from _train_step(run, step, got[1])
            step += 1
            dt = time.monotonic() - t0
            rate = 1.0 / dt if rate is None else 0.9 * rate + 0.1 / dt
            metrics = {"loss": loss, "lr": lr, "it_s": rate, "eta_s": (cfg.steps - step) / rate, **losses}
            for k, v in metrics.items():
                window.setdefault(k, []).append(v)
            yield Progress(step=step, total=cfg.steps, kind="step", metrics=metrics, message=activity)
            if info.is_main and (step % cfg.log_interval == 0 or step == cfg.steps):
                yield from _log_metrics(run, step, window, time.monotonic() - t_start)
            if validator is not None and (step % cfg.val_interval == 0 or step == cfg.steps):
                last_val = yield from _validate(run, step)
            if info.is_main and (step % cfg.ckpt_interval == 0 or step == cfg.steps):
                yield _save_checkpoint(run, step, last_val)
        model_dir = run_dir / "model"
        if info.is_main:
            _save_final_model(run, last_val, start_step=start_step, t_start=t_start, rate=rate)
        ddp.barrier(info)
        yield Progress(step=cfg.steps, total=cfg.steps, kind="done", message=f"model saved to {model_dir}",
                       payload=str(model_dir))
        return model_dir
    finally:
        if prefetch is not None:
            prefetch.close()


def _load_teacher(cfg: TrainConfig, device: str) -> nn.Module:
    from stereo_studio.models.storage import load_model

    teacher = load_model(cfg.teacher).to(device).eval()
    teacher.requires_grad_(False)
    return _channels_last(teacher)


def _fill_teacher_cache(cfg: TrainConfig, teacher: nn.Module, max_disp: int,
                        device: str) -> Iterator[Progress]:
    """Sub-generator: builds or completes the teacher cache of `cfg` (yielding the build's Progress) and
    returns it."""
    from stereo_studio.data.teacher_cache import (
        build_teacher_cache,
        cache_sources,
        open_teacher_cache,
        weights_hash,
    )

    cache = open_teacher_cache(cfg.teacher_cache, weights_hash(teacher), cfg.data, max_disp)

    def predict(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:  # fp32, the whole pair
        return teacher(_to_input(left, device), _to_input(right, device))

    with JobRun(build_teacher_cache(cache, cache_sources(cfg, max_disp), predict)) as build:
        yield from build
    return cache


def cache_teacher(config: TrainConfig) -> Job[Path]:
    """Only fill the teacher cache of `config` (`teacher_cache`), keyed exactly as `train` keys it (teacher,
    data, the student's max disparity), then stop: the step `train` takes before its first one, for runs
    started later or side by side. Yields the build's Progress; returns the cache folder. Cancel by closing
    the generator: the pairs cached so far stay, and the next build skips them."""
    cfg = config.resolved()
    if not cfg.teacher_cache:
        raise TrainingError("caching the teacher needs a cache folder (teacher_cache)")
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    yield Progress(0, None, "loading models", kind="log")
    student = _load_student(cfg)  # only for its max disparity, which keys the cache
    max_disp = int(cfg.max_disp or getattr(student, "config", {}).get("max_disp", 192))
    del student
    cache = yield from _fill_teacher_cache(cfg, _load_teacher(cfg, device), max_disp, device)
    return cache.folder


def _cached_teacher_data(cfg: TrainConfig, train_ds: Any, teacher: nn.Module, max_disp: int,
                         info: ddp.DistInfo, device: str, start_step: int) -> Iterator[Progress]:
    """Opens (rank 0: builds or completes) the teacher cache of `cfg`, a sub-generator returning `train_ds`
    with each pair's cached teacher map attached (`data.teacher_cache.WithTeacher`)."""
    from stereo_studio.data.teacher_cache import WithTeacher, open_teacher_cache, weights_hash

    if info.is_main:
        for event in _fill_teacher_cache(cfg, teacher, max_disp, device):
            yield Progress(step=start_step, total=cfg.steps, kind="log", message=event.message)
    ddp.barrier(info)
    cache = open_teacher_cache(cfg.teacher_cache, weights_hash(teacher), cfg.data, max_disp)
    if not cache.complete:
        raise TrainingError(f"the teacher cache {cache.folder} is incomplete")
    yield Progress(step=start_step, total=cfg.steps, kind="log",
                   message=f"teacher disparity from the cache {cache.folder} (cropped like the images; "
                   "photometric jitter, vertical jitter and occlusion patches reach the student only)")
    return WithTeacher(train_ds, cache)


def sparsity_strength(step: int, cfg: TrainConfig) -> float:
    """The prune-ready regulariser's strength (0-1) at 0-based `step`: off for the first `sparsity_start` of
    the steps, then growing linearly over `SPARSITY_RAMP` of them (the channels meant to go are chosen on
    learned weights, and a late start trains at full width first)."""
    start = cfg.sparsity_start * cfg.steps
    return min(1.0, max(0.0, (step + 1 - start) / max(1.0, SPARSITY_RAMP * cfg.steps)))


def _train_step(run: _Run, step: int, batch: dict) -> Iterator[Progress]:
    """Step `step` (0-based) on `batch`: forwards, losses, backward, sparsity regulariser, optimiser update.

    A sub-generator (log events keep slow forwards cancellable) returning (lr, loss, {loss part: value}), the
    losses averaged over the ranks. A non-finite loss raises TrainingError before the weights change.
    """
    cfg, device, bf16, teacher, sparsity = run.cfg, run.device, run.bf16, run.teacher, run.sparsity
    if sparsity is not None and step % SPARSITY_UPDATE_STEPS == 0:
        sparsity.update()  # a pure function of the weights at this step: resuming is exact
    lr = lr_at(step, cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    left, right = _to_input(batch["left"], device), _to_input(batch["right"], device)
    t_disp = t_feats = t_mask = None
    if "teacher_disparity" in batch:  # cached (`data.teacher_cache`): NaN where the crop was padded
        t_disp = batch["teacher_disparity"].to(device)
        t_mask = torch.isfinite(t_disp)
        t_disp = torch.where(t_mask, t_disp, torch.zeros_like(t_disp))
        t_mask = None if bool(t_mask.all()) else t_mask
    elif teacher is not None:
        with torch.no_grad(), _autocast(device, bf16):
            if run.projector is not None:
                t_disp, t_feats = teacher(left, right, return_features=True)
                t_feats = {k: v.float() for k, v in t_feats.items()}
            else:
                t_disp = teacher(left, right)
        t_disp = t_disp.float()
        if run.ticker.due():
            yield Progress(step=step, total=cfg.steps, kind="log", message="teacher forward")
    with _autocast(device, bf16):
        disp, feat_loss = run.model(left, right, t_feats)
    if run.ticker.due():  # slow steps (the teacher at large crops) stay cancellable
        yield Progress(step=step, total=cfg.steps, kind="log", message="student forward")
    loss, parts = _losses(run, batch, disp, feat_loss, t_disp, t_mask)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    strength = sparsity_strength(step, cfg) if sparsity is not None else 0.0
    if strength > 0 and sparsity.method == "slimmable":  # the same batch through the pruned network
        with sparsity.masked():
            with _autocast(device, bf16):
                disp_pruned, feat_pruned = run.model(left, right, t_feats)
            loss_pruned, _ = _losses(run, batch, disp_pruned, feat_pruned, t_disp, t_mask)
            (strength * loss_pruned).backward()
        parts["loss_pruned"] = loss_pruned.detach()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.trainee.parameters(), cfg.grad_clip)
    if strength > 0:
        sparsity.regularize()
    values = torch.stack([loss.detach(), *[v.detach() for v in parts.values()]])
    reported = ddp.all_reduce_mean(values, run.info)
    loss_value = float(reported[0])
    if not bool(torch.isfinite(reported).all()):
        loss_value = next(float(v) for v in reported.tolist() if not math.isfinite(v))
        where = run.last_ckpt or "none (no checkpoint was written yet)"
        message = f"loss became {loss_value} at step {step + 1}; last good checkpoint: {where}"
        if run.info.is_main:
            _append_jsonl(run.metrics_path, {"kind": "error", "step": step + 1, "message": message})
        raise TrainingError(message)
    run.optimizer.step()
    if strength > 0:
        sparsity.after_step(lr, strength)
    if run.ema is not None:
        run.ema.update_parameters(run.student)
    return lr, loss_value, {k: float(v) for k, v in zip(parts, reported[1:].tolist(), strict=True)}


def _losses(run: _Run, batch: dict, disp: torch.Tensor, feat_loss: torch.Tensor | None,
            t_disp: torch.Tensor | None, t_mask: torch.Tensor | None
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted training loss of the student's output `disp` and its parts (teacher, ground truth,
    features)."""
    cfg = run.cfg
    disp = disp.float()
    parts: dict[str, torch.Tensor] = {}
    gt = batch.get("disparity")
    valid = _opt_to(batch.get("valid"), run.device)
    gt = gt.to(run.device) if gt is not None else None
    pixel_weights = None
    if cfg.edge_weight > 0:  # edges of the ground truth where there is one, else of the teacher's disparity
        pixel_weights = edge_weights(gt if gt is not None else t_disp, valid if gt is not None else t_mask,
                                     cfg.edge_weight)
    if cfg.w_teacher > 0:
        parts["loss_teacher"] = teacher_loss(disp, t_disp, t_mask, pixel_weights)
    if cfg.w_gt > 0 and gt is not None:
        parts["loss_gt"] = gt_loss(disp, gt, valid, run.max_disp, pixel_weights)
    if feat_loss is not None:
        parts["loss_feat"] = feat_loss.float()
    weights = {"loss_teacher": cfg.w_teacher, "loss_gt": cfg.w_gt, "loss_feat": cfg.w_feat}
    return sum((weights[k] * v for k, v in parts.items()), start=disp.sum() * 0.0), parts


def _log_metrics(run: _Run, step: int, window: dict[str, list[float]],
                 elapsed_s: float) -> Iterator[Progress]:
    """Writes the mean step metrics since the last row (and empties `window`), then the sparsity stats."""
    row = {"kind": "step", "step": step, "time_s": round(elapsed_s, 3)}
    row.update({k: float(np.mean(v)) for k, v in window.items()})
    _append_jsonl(run.metrics_path, row)
    window.clear()
    if run.sparsity is not None:
        stats = run.sparsity.stats()
        _append_jsonl(run.metrics_path, {"kind": "sparsity", "step": step, **stats})
        yield Progress(step=step, total=run.cfg.steps, kind="sparsity", metrics=stats,
                       message=f"channels meant to go: median norm {stats['go_norm_median']:.3f} "
                       f"of their layer's, {stats['go_shrunk']:.0%} shrunk")


def _validate(run: _Run, step: int) -> Iterator[Progress]:
    """Validates the student after `step` steps (a sub-generator) and logs it; returns the metrics."""
    result = yield from run.validator.run(run.kept, step, run.cfg.steps, run.bf16)
    run.model.train()
    _append_jsonl(run.metrics_path, {"kind": "validation", "step": step, **result})
    yield Progress(step=step, total=run.cfg.steps, kind="validation", metrics=result,
                   message=_format_val(result))
    return result


def _save_checkpoint(run: _Run, step: int, last_val: dict[str, float]) -> Progress:
    """Writes `checkpoints/last.pt` after `step` steps and logs it; returns the event to yield."""
    _write_checkpoint(run.ckpt_path, run.cfg, step, run.student, run.projector, run.optimizer, last_val,
                      run.sparsity.state() if run.sparsity is not None else None,
                      run.ema.state_dict() if run.ema is not None else None)
    run.last_ckpt = str(run.ckpt_path)
    _append_jsonl(run.metrics_path, {"kind": "checkpoint", "step": step, "path": run.last_ckpt})
    return Progress(step=step, total=run.cfg.steps, kind="checkpoint", message=f"saved {run.ckpt_path}",
                    payload=run.last_ckpt)


def _save_final_model(run: _Run, last_val: dict[str, float], *, start_step: int, t_start: float,
                      rate: float | None) -> None:
    """Saves the student to `run_dir/model` and writes the run's `summary.json`."""
    from stereo_studio.models.storage import save_model

    cfg, sparsity, model_dir = run.cfg, run.sparsity, run.run_dir / "model"
    meta = {"trained_steps": cfg.steps, "teacher": cfg.teacher, "data": cfg.data, "ema": cfg.ema,
            "run": str(run.run_dir), **{k: v for k, v in last_val.items()}}
    if sparsity is not None:
        meta["prune_ready"] = {"method": cfg.sparsity_method, "reg": cfg.sparsity_reg,
                               "target_ratio": cfg.target_ratio, "start": cfg.sparsity_start,
                               **sparsity.stats()}
    save_model(run.kept.eval(), model_dir, meta)
    summary = {"model": str(model_dir), "steps": cfg.steps, "resumed_from": start_step,
               "train_time_s": round(time.monotonic() - t_start, 2), "it_s": rate,
               "validation": last_val, "checkpoint": run.last_ckpt,
               "world_size": run.info.world_size}
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def _make_ema(student: nn.Module, decay: float, state: dict[str, Any] | None) -> AveragedModel | None:
    """The moving average of `student` (weights and BatchNorm statistics) for `decay` > 0, restored from
    the checkpoint `state` when resuming."""
    if decay <= 0:
        return None
    ema = AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    if state is not None:
        if "ema" not in state:
            raise TrainingError("cannot resume: the checkpoint holds no moving average (ema) of the weights")
        ema.load_state_dict(state["ema"])
    return ema.eval()


def _make_augmenter(augmenter_cls: type, cfg: TrainConfig) -> Any:
    """Random crops (randomly scaled by `aug_scale`) always; photometric jitter, +-1 px vertical jitter and
    occlusion patches if `augment`."""
    if cfg.augment:
        return augmenter_cls(crop=tuple(cfg.crop), photometric=True, vertical_jitter_px=1.0,
                             occlusion_patch=True, scale=cfg.aug_scale, scale_prob=cfg.aug_scale_prob)
    return augmenter_cls(crop=tuple(cfg.crop), photometric=False, occlusion_patch=False, scale=cfg.aug_scale,
                         scale_prob=cfg.aug_scale_prob)


def _opt_to(t: torch.Tensor | None, device: str) -> torch.Tensor | None:
    return None if t is None else t.to(device)


def _format_val(result: dict[str, float]) -> str:
    return "validation " + ", ".join(f"{k}={v:.3f}" for k, v in result.items())


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _write_checkpoint(path: Path, cfg: TrainConfig, step: int, student: nn.Module,
                      projector: nn.Module | None, optimizer: torch.optim.Optimizer,
                      last_val: dict[str, float], sparsity: dict[str, list[int]] | None = None,
                      ema: dict[str, torch.Tensor] | None = None) -> None:
    state = {
        "version": 1,
        "step": step,
        "data_position": step,
        "model": student.state_dict(),
        "projector": projector.state_dict() if projector is not None else {},
        "optimizer": optimizer.state_dict(),
        "scheduler": {"kind": cfg.schedule, "step": step},
        "rng": rng_state(),
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "last_val": {k: float(v) for k, v in last_val.items()},
    }
    if sparsity is not None:
        state["sparsity"] = sparsity
    if ema is not None:
        state["ema"] = ema
    save_checkpoint(state, path)


def _config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    defaults = TrainConfig().to_dict()  # a run saved before a field existed ran with its default
    saved = {**{k: v for k, v in defaults.items() if k not in saved and current.get(k) == v}, **saved}
    keys = sorted((set(saved) | set(current)) - set(RESUMABLE_CHANGES))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def _prepare_run_dir(cfg: TrainConfig, run_dir: Path, ckpt_path: Path, resume: bool,
                     info: ddp.DistInfo) -> dict[str, Any] | None:
    """Check / create the run folder; return the checkpoint state to resume from (or None)."""
    config_path = run_dir / "config.json"
    current = cfg.to_dict()
    if resume:
        if not config_path.is_file():
            raise TrainingError(f"nothing to resume: {run_dir} holds no config.json")
        try:
            saved = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainingError(f"cannot resume {run_dir}: {config_path} is unreadable ({exc})") from exc
        if not isinstance(saved, dict):
            raise TrainingError(f"cannot resume {run_dir}: {config_path} is not a training config")
        diff = _config_differences(saved, current)
        if diff:
            raise TrainingError(f"cannot resume {run_dir}: the config differs from the saved run ("
                                + "; ".join(diff) + ")")
        if not ckpt_path.is_file():
            state = None
        else:
            state = load_checkpoint(ckpt_path)
            diff = _config_differences(json.loads(state["config"]), current)
            if diff:
                raise TrainingError(f"cannot resume {run_dir}: checkpoint config differs ({'; '.join(diff)})")
    else:
        if ckpt_path.exists() or (run_dir / "model").exists():
            raise TrainingError(f"{run_dir} already holds a training run: resume it (--resume) or choose "
                                "another output folder")
        state = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(current, indent=2))
        _truncate_metrics(run_dir / "metrics.jsonl", int(state["step"]) if state else 0)
    ddp.barrier(info)
    return state


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows written after `step` (the run continues from there)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(k + "\n" for k in keep))
    os.replace(tmp, path)


class _Validator:
    """Validation on a fixed held-out set: EPE / bad-3 where there is ground truth, the gap to the teacher."""

    def __init__(self, dataset: Any, cfg: TrainConfig, max_disp: int, teacher: nn.Module | None,
                 device: str) -> None:
        self.dataset = dataset
        self.count = min(len(dataset), cfg.val_pairs)
        self.max_disp = max_disp
        self.teacher = teacher
        self.device = device
        self._teacher_preds: dict[int, torch.Tensor] = {}

    def _predict(self, model: nn.Module, sample: Any, bf16: bool) -> torch.Tensor:
        left = torch.from_numpy(np.ascontiguousarray(sample.left)).permute(2, 0, 1)[None].float() / 255.0
        right = torch.from_numpy(np.ascontiguousarray(sample.right)).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad(), _autocast(self.device, bf16):
            out = model(_to_input(left, self.device), _to_input(right, self.device))
        return out.float()[0, 0].cpu()

    def run(self, student: nn.Module, step: int, total: int, bf16: bool) -> Iterator[Progress]:
        """Sub-generator (use with `yield from`); returns the validation metrics."""
        from stereo_studio.metrics import MetricAccumulator

        student.eval()
        acc = MetricAccumulator()
        gaps = []
        ticker = Ticker(0.5)
        for i in range(self.count):
            sample = self.dataset[i]
            pred = self._predict(student, sample, bf16)
            if sample.has_gt:
                acc.add(pred.numpy(), sample.disparity, sample.valid & (sample.disparity < self.max_disp),
                        name=sample.name)
            if self.teacher is not None:
                if i not in self._teacher_preds:
                    self._teacher_preds[i] = self._predict(self.teacher, sample, bf16)
                gaps.append(float((pred - self._teacher_preds[i]).abs().mean()))
            if ticker.due():
                yield Progress(step=step, total=total, kind="log", message=f"validating {i + 1}/{self.count}")
        result: dict[str, float] = {}
        if acc.per_image:
            pix = acc.result("pixel")
            if pix.get("pixels", 0):
                result.update(val_epe=float(pix["epe"]), val_bad2=float(pix["bad2"]),
                              val_bad3=float(pix["bad3"]))
        if gaps:
            result["val_gap"] = float(np.mean(gaps))
        return result
