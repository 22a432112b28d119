"""Cached teacher outputs for distillation: the teacher's disparity computed once per stored pair.

A cache lives in `root/<key>/`, the key hashing the teacher's weights, the data (each folder's path and
file listing: names, sizes, modification times) and max_disp, so another teacher or changed data never
reuses it. Each entry is the teacher's float16 disparity of one whole, un-augmented pair, named by a hash
of the pair's pixels (`<pair hash>.npy`), so splits, mixes and orders of the same pairs all find theirs.
Entries and the `complete.json` marker are written atomically (temporary file + rename); an entry that does
not load as an array of its pair's size is never trusted. Only finite, stored data can be cached: dataset
folders (e.g. `stereo-studio generate --out DIR`), not `synthetic` pairs made on the fly nor videos.

In training, `WithTeacher` puts each pair's cached map into `meta["teacher_disparity"]`; the `Augmenter`
crops / scales / pads it exactly like the ground truth (`augment.DISPARITY_MAPS`) and `stack_teacher` turns
the batch's maps into one N x 1 x H x W tensor (NaN where unknown: padding).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_studio.data.augment import DISPARITY_MAPS
from stereo_studio.data.sample import StereoSample
from stereo_studio.data.training_data import DataConfig, is_synthetic, open_spec
from stereo_studio.data.video import is_video_file
from stereo_studio.errors import DataError
from stereo_studio.progress import Job, Progress, Ticker

TEACHER_KEY = DISPARITY_MAPS[0]  # "teacher_disparity"
CACHE_VERSION = 1
COMPLETE_NAME = "complete.json"
KEY_NAME = "key.json"

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # 1x3xHxW in [0, 1] -> 1x1xHxW disparity


def check_cacheable(specs: Sequence[str]) -> None:
    """DataError naming the spec unless every data spec is a stored dataset folder."""
    for spec in specs:
        if is_synthetic(spec):
            raise DataError("the teacher cache needs stored pairs, and 'synthetic' makes them on the fly: "
                            "write them once (stereo-studio generate --out DIR --pairs N) and train on DIR, "
                            "or distill without --teacher-cache")
        path = Path(spec).expanduser()
        if is_video_file(path):
            raise DataError(f"the teacher cache does not cache videos ({spec}); distill from it without "
                            "--teacher-cache, or extract its frames to a pair folder")
        if not path.is_dir():
            raise DataError(f"the teacher cache needs dataset folders; '{spec}' is not one")


def weights_hash(model: nn.Module) -> str:
    """SHA-256 of a model's class, config, tensors (names, dtypes, shapes, bytes) and, for a frozen ONNX
    network, its file."""
    h = hashlib.sha256()
    h.update(type(model).__qualname__.encode())
    h.update(json.dumps(getattr(model, "config", {}), sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    path = getattr(getattr(model, "runner", None), "path", None)
    if path is not None and Path(path).is_file():
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def _listing_hash(folder: Path, skip: Path | None) -> tuple[str, int]:
    """Hash of every file's relative path, size and mtime under `folder` (not under `skip`); file count."""
    h, count = hashlib.sha256(), 0
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(top, d).resolve() != skip]
        for name in sorted(files):
            path = Path(top, name)
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
    return h.hexdigest(), count


def cache_key(teacher_hash: str, specs: Sequence[str], max_disp: int, root: str | Path) -> dict[str, Any]:
    """What a cache depends on (JSON-able); its hash names the cache folder under `root`."""
    skip = Path(root).expanduser().resolve()
    data = []
    for spec in specs:
        folder = Path(spec).expanduser().resolve()
        listing, files = _listing_hash(folder, skip)
        data.append({"spec": str(folder), "files": files, "listing": listing})
    return {"version": CACHE_VERSION, "teacher": teacher_hash, "data": data, "max_disp": int(max_disp),
            "dtype": "float16", "precision": "fp32"}


def pair_hash(sample: StereoSample) -> str:
    """Hash of a pair's pixels (names its cache entry)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(sample.left.shape).encode())
    h.update(np.ascontiguousarray(sample.left).data)
    h.update(np.ascontiguousarray(sample.right).data)
    return h.hexdigest()


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """`write(file)` into a temporary file next to `path`, synced, then renamed onto `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TeacherCache:
    """One keyed cache folder: `load` / `store` entries by pair hash; `complete` once every pair is in."""

    def __init__(self, folder: Path, key: dict[str, Any]) -> None:
        self.folder = folder
        self.key = key

    def entry(self, fingerprint: str) -> Path:
        return self.folder / f"{fingerprint}.npy"

    def load(self, fingerprint: str, size: tuple[int, int]) -> np.ndarray | None:
        """The cached float32 map of a pair of `size` (h, w), or None when missing or not trustworthy."""
        try:
            disp = np.load(self.entry(fingerprint), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if disp.dtype != np.float16 or disp.shape != tuple(size):
            return None
        return disp.astype(np.float32)

    def store(self, fingerprint: str, disp: np.ndarray) -> None:
        """Write one entry atomically (float16)."""
        arr = np.ascontiguousarray(disp, dtype=np.float16)
        _atomic_write(self.entry(fingerprint), lambda fh: np.save(fh, arr, allow_pickle=False))

    @property
    def complete(self) -> bool:
        try:
            marker = json.loads((self.folder / COMPLETE_NAME).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(marker, dict) and marker.get("key") == self.key

    def mark_complete(self, pairs: int) -> None:
        text = json.dumps({"key": self.key, "pairs": pairs}, indent=2).encode()
        _atomic_write(self.folder / COMPLETE_NAME, lambda fh: fh.write(text))


def open_teacher_cache(root: str | Path, teacher_hash: str, specs: Sequence[str],
                       max_disp: int) -> TeacherCache:
    """The cache of this teacher, data and max_disp under `root` (its folder is created)."""
    check_cacheable(specs)
    key = cache_key(teacher_hash, specs, max_disp, root)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder = Path(root).expanduser() / digest
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / KEY_NAME).is_file():
        text = json.dumps(key, indent=2).encode()
        _atomic_write(folder / KEY_NAME, lambda fh: fh.write(text))
    return TeacherCache(folder, key)


def cache_sources(cfg: DataConfig, max_disp: int) -> list[Any]:
    """Every pair of every data spec (training and held-out alike), as the training run opens them."""
    check_cacheable(cfg.data)
    return [open_spec(spec, cfg, max_disp, cfg.seed, None) for spec in cfg.data]


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div_(255.0)


def build_teacher_cache(cache: TeacherCache, datasets: Sequence[Any], predict: Predict,
                        start: int | None = None) -> Job[TeacherCache]:
    """Job: the teacher's disparity (`predict`, run on each whole un-augmented pair) into `cache`; pairs
    already cached are skipped, so a cancelled build resumes. The pairs are visited from `start` (default: a
    random pair) round to it again, so two runs building one cache at once mostly split the work instead of
    computing the same pairs side by side. Returns the cache, marked complete."""
    if cache.complete:
        yield Progress(0, None, f"teacher cache {cache.folder} is complete", kind="log")
        return cache
    for stale in cache.folder.glob(".*.tmp"):  # left by a killed build: never renamed, never trusted
        stale.unlink(missing_ok=True)
    pairs = [(ds, index) for ds in datasets for index in range(len(ds))]
    total = len(pairs)
    if start is None:
        start = random.randrange(total) if total else 0
    first = start % total if total else 0
    computed = 0
    ticker = Ticker(0.5)
    yield Progress(0, total, f"teacher cache: {total} pairs into {cache.folder}", kind="log")
    for done, (ds, index) in enumerate(pairs[first:] + pairs[:first], 1):
        sample = ds[index]
        fingerprint = pair_hash(sample)
        if cache.load(fingerprint, sample.size) is None:
            with torch.no_grad():
                disp = predict(_to_tensor(sample.left), _to_tensor(sample.right))
            disp = disp.float()[0, 0].cpu().numpy()
            if disp.shape != sample.size:
                raise DataError(f"the teacher gave a {disp.shape} disparity for the {sample.size} pair "
                                f"'{sample.name}'; the cache needs full-size outputs")
            cache.store(fingerprint, disp)
            computed += 1
        if ticker.due() or done == total:
            yield Progress(done, total, f"teacher cache: {done}/{total} pairs ({computed} computed)",
                           kind="log")
    cache.mark_complete(total)
    return cache


class WithTeacher:
    """`dataset` whose samples carry their cached teacher map in `meta["teacher_disparity"]` (float32)."""

    def __init__(self, dataset: Any, cache: TeacherCache) -> None:
        self.dataset = dataset
        self.cache = cache
        self.name = getattr(dataset, "name", "dataset")
        self._hashes: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> StereoSample:
        sample = self.dataset[index]
        fingerprint = self._hashes.get(index) or self._hashes.setdefault(index, pair_hash(sample))
        disp = self.cache.load(fingerprint, sample.size)
        if disp is None:
            raise DataError(f"the teacher cache {self.cache.folder} holds no valid entry for pair "
                            f"'{sample.name}': delete {self.cache.folder / COMPLETE_NAME} to rebuild it")
        meta = {**sample.meta, TEACHER_KEY: disp}
        return StereoSample(sample.left, sample.right, sample.disparity, sample.valid, meta)


def stack_teacher(batch: dict[str, Any]) -> dict[str, Any]:
    """Move the samples' (augmented) teacher maps out of `batch["meta"]` into `batch["teacher_disparity"]`,
    float32 N x 1 x H x W, NaN where unknown. DataError if a sample has none."""
    maps = [meta.pop(TEACHER_KEY, None) for meta in batch["meta"]]
    if any(m is None for m in maps):
        raise DataError("a training pair came without its cached teacher disparity")
    batch["teacher_disparity"] = torch.from_numpy(np.stack(maps).astype(np.float32, copy=False))[:, None]
    return batch
