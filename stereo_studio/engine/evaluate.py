"""Evaluate a matcher (network or SGBM) on a dataset: a job yielding one `Progress` per pair."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from stereo_studio.data.checks import sample_warnings
from stereo_studio.engine.jobs import Job, Progress
from stereo_studio.errors import DataError
from stereo_studio.metrics import METRIC_KEYS, MetricAccumulator


def dataset_name(dataset: Any) -> str:
    """A short name for a dataset object (its `name`, `spec` or `root`, else its class name)."""
    for attr in ("name", "spec", "root"):
        value = getattr(dataset, attr, None)
        if value:
            return str(value)
    return type(dataset).__name__


def _samples(dataset: Any, limit: int | None) -> tuple[Iterator[Any], int | None]:
    """Iterate a dataset (indexable with len, or any iterable) up to `limit` samples."""
    try:
        n = len(dataset)
    except TypeError:
        n = None
    if n is not None and hasattr(dataset, "__getitem__"):
        total = n if limit is None else min(n, limit)
        return (dataset[i] for i in range(total)), total
    it: Iterable[Any] = dataset if limit is None else itertools.islice(dataset, limit)
    return iter(it), limit


def evaluate(
    matcher: Any, dataset: Any, limit: int | None = None, warmup: bool = True, post_filters: Any = None
) -> Job[dict[str, Any]]:
    """Run `matcher.predict` on every pair of `dataset` (at most `limit`) and score it against the GT.

    Returns a dict: the pixel-weighted metrics (epe in px; bad0_5, bad1, bad2, bad3, d1 in percent),
    `pixels`, `per_image_mean` (same keys, mean over images), `per_image` (name + metrics of each pair),
    `pairs`, `ms_per_pair` (mean wall time of `predict` alone, inputs already in memory), `model`, `data`,
    `warnings` (a scene beyond the model's max disparity, an image too small for it: each kind is also
    yielded once as a Progress(kind="warning") when first met).
    With `warmup`, the first pair is predicted once untimed before timing starts (one-time set-up costs of
    networks and OpenCV are not a per-pair cost). A pair without ground truth raises `DataError`.
    `post_filters` (names of `stereo_studio.live.postfilter`, e.g. "hole,median") filter each prediction
    before scoring; their time is `filter_ms_per_pair` (not in `ms_per_pair`), their names `post_filters`.
    Pairs are independent: stateful (temporal) filters start afresh on each.
    """
    from stereo_studio.live.postfilter import FilterChain

    chain = FilterChain(post_filters)
    filter_s = 0.0
    data = dataset_name(dataset)
    model = str(getattr(matcher, "name", type(matcher).__name__))
    samples, total = _samples(dataset, limit)
    acc = MetricAccumulator()
    predict_s = 0.0
    warned: dict[str, list] = {}  # kind -> [first message, pairs concerned]
    for i, sample in enumerate(samples):
        if sample.disparity is None:  # checked before the first yield: no progress bar for a bad dataset
            raise DataError(f"dataset {data} has no ground truth (pair '{sample.name}'); eval needs it")
        if i == 0:
            yield Progress(0, total, f"{model} on {data}")
        for kind, message in sample_warnings(sample, model, getattr(matcher, "max_disp", None)).items():
            if kind not in warned:
                warned[kind] = [message, 0]
                yield Progress(i, total, message, kind="warning")
            warned[kind][1] += 1
        if i == 0 and warmup:
            matcher.predict(sample.left, sample.right)
        t0 = time.perf_counter()
        pred = matcher.predict(sample.left, sample.right)
        predict_s += time.perf_counter() - t0
        if chain:
            t0 = time.perf_counter()
            chain.reset()
            pred = chain.apply(pred, sample.left)
            filter_s += time.perf_counter() - t0
        acc.add(pred, sample.disparity, sample.valid, name=sample.name)
        running = acc.result("pixel") if acc.pixels else {}
        shown = {k: float(running[k]) for k in ("epe", "bad2") if k in running}
        shown["ms"] = 1000.0 * predict_s / (i + 1)
        yield Progress(i + 1, total, sample.name, metrics=shown)
    if not len(acc):
        raise DataError(f"dataset {data} has no stereo pairs to evaluate")
    result: dict[str, Any] = dict(acc.result("pixel"))
    result["per_image_mean"] = {k: v for k, v in acc.result("image").items() if k in (*METRIC_KEYS, "images")}
    result["per_image"] = acc.per_image
    result.update(pairs=len(acc), ms_per_pair=1000.0 * predict_s / len(acc), model=model, data=data)
    if chain:
        result.update(post_filters=list(chain.names), filter_ms_per_pair=1000.0 * filter_s / len(acc))
    result["warnings"] = [m if n == 1 else f"{m} (and {n - 1} more of {len(acc)} pairs)"
                          for m, n in warned.values()]
    yield Progress(len(acc), len(acc), "done", kind="done", metrics={"epe": result["epe"]})
    return result
