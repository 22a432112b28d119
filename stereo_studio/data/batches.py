"""Stereo samples -> torch batches: conversion, collation and an endless, deterministic, sharded stream."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError


def _image_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def sample_to_tensors(sample: StereoSample) -> dict[str, Any]:
    """One sample as tensors: left/right float32 1x3xHxW in [0, 1] RGB; with ground truth also disparity
    float32 1x1xHxW (0 where invalid) and valid bool 1x1xHxW. "meta" holds the sample's meta dict."""
    out: dict[str, Any] = {"left": _image_tensor(sample.left), "right": _image_tensor(sample.right),
                           "meta": sample.meta}
    if sample.disparity is not None:
        valid = np.asarray(sample.valid, bool) & np.isfinite(sample.disparity)
        disp = np.where(valid, sample.disparity, 0.0).astype(np.float32)
        out["disparity"] = torch.from_numpy(disp)[None, None]
        out["valid"] = torch.from_numpy(valid)[None, None]
    return out


def collate(samples: Sequence[StereoSample | dict[str, Any]]) -> dict[str, Any]:
    """Stack samples (or their `sample_to_tensors` dicts) into one batch: left/right N x 3 x H x W, and
    disparity/valid N x 1 x H x W when every sample has ground truth; "meta" is the list of meta dicts."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    parts = [s if isinstance(s, dict) else sample_to_tensors(s) for s in samples]
    sizes = {tuple(p["left"].shape[-2:]) for p in parts}
    if len(sizes) > 1:
        raise DataError(f"cannot batch pairs of different sizes {sorted(sizes)}: crop them to one size "
                        "(e.g. with an Augmenter)")
    batch: dict[str, Any] = {"left": torch.cat([p["left"] for p in parts]),
                             "right": torch.cat([p["right"] for p in parts]),
                             "meta": [p["meta"] for p in parts]}
    if all("disparity" in p for p in parts):
        batch["disparity"] = torch.cat([p["disparity"] for p in parts])
        batch["valid"] = torch.cat([p["valid"] for p in parts])
    return batch


def _index_stream(length: int, seed: int, rank: int, world: int) -> Iterator[tuple[int, int]]:
    """Endless (epoch, index) pairs: a fresh permutation per epoch, this rank's share of it."""
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(length)
        share = order[rank::world]
        if len(share) == 0:  # fewer samples than ranks: every rank still gets data
            share = order[rank % length: rank % length + 1]
        for index in share.tolist():
            yield epoch, index
        epoch += 1


def _make_batches(dataset: Sequence[StereoSample], batch_size: int,
                  augmenter: Callable[[StereoSample, np.random.Generator], StereoSample] | None,
                  seed: int, rank: int, world: int) -> Iterator[dict[str, Any]]:
    indices = _index_stream(len(dataset), seed, rank, world)
    step = 0
    while True:
        samples = []
        for _ in range(batch_size):
            epoch, index = next(indices)
            sample = dataset[index]
            if augmenter is not None:
                sample = augmenter(sample, np.random.default_rng([seed, rank, epoch, index, step]))
            samples.append(sample)
        batch = collate(samples)
        batch["step"] = step
        step += 1
        yield batch


def batch_stream(dataset: Sequence[StereoSample], batch_size: int,
                 augmenter: Callable[[StereoSample, np.random.Generator], StereoSample] | None = None,
                 seed: int = 0, shard: tuple[int, int] = (0, 1),
                 prefetch: int = 2) -> Iterator[dict[str, Any]]:
    """Endless stream of collated batches (see `collate`), deterministic given `seed`.

    Each epoch is a new permutation of the dataset; `shard=(rank, world)` gives each DDP rank a disjoint
    share. `augmenter(sample, rng)` (e.g. `Augmenter`) gets a generator seeded by (seed, rank, epoch, index,
    step). With `prefetch > 0` a background thread prepares up to that many batches ahead (same batches, same
    order). Stop by closing the generator (or just dropping it).
    """
    rank, world = shard
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world:
        raise ValueError(f"bad shard {shard}: need 0 <= rank < world")
    if len(dataset) == 0:
        raise DataError(f"dataset {getattr(dataset, 'name', '')!s} is empty".replace("  ", " "))
    source = _make_batches(dataset, batch_size, augmenter, seed, rank, world)
    if prefetch <= 0:
        yield from source
        return
    yield from _prefetched(source, prefetch)


_END = object()


def _prefetched(source: Iterator[dict[str, Any]], depth: int) -> Iterator[dict[str, Any]]:
    """Run `source` in a daemon thread, `depth` items ahead; errors are re-raised in the consumer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            items.put(exc)
        finally:
            items.put(_END) if not stop.is_set() else None

    thread = threading.Thread(target=work, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
