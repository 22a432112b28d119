"""evaluate(): metrics, timing fields, progress, errors, on hand-made datasets and real matchers."""

from __future__ import annotations

import numpy as np
import pytest

from stereo_studio.data.sample import StereoSample
from stereo_studio.engine.evaluate import evaluate
from stereo_studio.engine.jobs import Progress
from stereo_studio.errors import DataError
from stereo_studio.metrics import error_map


class OffsetMatcher:
    """Predicts the disparity written in the left image's red channel plus a fixed offset."""

    name = "offset"

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.calls = 0

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        self.calls += 1
        return left[..., 0].astype(np.float32) + self.offset


def _sample(value: int, shape=(6, 8), gt=True, name="p") -> StereoSample:
    img = np.full((*shape, 3), value, np.uint8)
    disp = np.full(shape, float(value), np.float32) if gt else None
    return StereoSample(img, img.copy(), disp, None, {"name": name})


class ListDataset(list):
    name = "hand-made"


def _run(job):
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            return stop.value, events


def test_metrics_pairs_and_progress():
    data = ListDataset([_sample(10, name="a"), _sample(20, (3, 4), name="b")])
    matcher = OffsetMatcher(1.5)
    result, events = _run(evaluate(matcher, data))
    assert result["epe"] == pytest.approx(1.5)
    assert result["bad1"] == pytest.approx(100.0) and result["bad2"] == pytest.approx(0.0)
    assert result["pixels"] == 48 + 12
    assert result["per_image_mean"]["epe"] == pytest.approx(1.5)
    assert result["pairs"] == 2 and result["model"] == "offset" and result["data"] == "hand-made"
    assert result["ms_per_pair"] > 0
    assert [m["name"] for m in result["per_image"]] == ["a", "b"]
    assert matcher.calls == 3  # one untimed warm-up + one timed call per pair
    assert all(isinstance(e, Progress) for e in events)
    assert [e.step for e in events if e.kind == "step"] == [0, 1, 2]
    assert events[1].total == 2


def test_pixel_weighted_differs_from_image_mean():
    # pair a (48 px) exact, pair b (12 px) off by 2 px through the red channel
    a, b = _sample(10, name="a"), _sample(20, (3, 4), name="b")
    b.disparity = b.disparity + 2.0
    result, _ = _run(evaluate(OffsetMatcher(0.0), ListDataset([a, b]), warmup=False))
    assert result["epe"] == pytest.approx(2.0 * 12 / 60)
    assert result["per_image_mean"]["epe"] == pytest.approx(1.0)


def test_limit():
    data = ListDataset([_sample(5, name=str(i)) for i in range(5)])
    result, _ = _run(evaluate(OffsetMatcher(0.0), data, limit=2))
    assert result["pairs"] == 2 and result["epe"] == pytest.approx(0.0)


def test_works_on_plain_iterables():
    result, events = _run(evaluate(OffsetMatcher(0.0), iter([_sample(7), _sample(9)])))
    assert result["pairs"] == 2 and events[1].total is None


def test_pair_without_ground_truth_is_refused():
    with pytest.raises(DataError, match="hand-made has no ground truth"):
        _run(evaluate(OffsetMatcher(0.0), ListDataset([_sample(5, gt=False)])))


def test_empty_dataset_is_refused():
    with pytest.raises(DataError, match="no stereo pairs"):
        _run(evaluate(OffsetMatcher(0.0), ListDataset([])))


def test_cancel_by_closing():
    matcher = OffsetMatcher(0.0)
    job = evaluate(matcher, ListDataset([_sample(5) for _ in range(10)]), warmup=False)
    next(job), next(job)
    job.close()
    assert matcher.calls == 1


class ConstantMatcher:
    """The mutant: one value everywhere (what a broken matcher or a disconnected model looks like)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.name = f"constant {value:g}"

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.full(left.shape[:2], self.value, np.float32)


def _synthetic_pairs() -> ListDataset:
    datasets = pytest.importorskip("stereo_studio.data.datasets")
    synthetic = datasets.open_dataset("synthetic", limit=2, seed=0, size=(96, 128), max_disp=32)
    return ListDataset(synthetic[i] for i in range(len(synthetic)))  # generated once


def _best_constants(data) -> dict[str, float]:
    """The ground truth's best constant predictors, scored by `evaluate` itself: the median minimises EPE
    (mean absolute error), the centre of the densest 6 px window minimises bad-3 (|error| > 3 px)."""
    values = []
    for s in data:  # the pixels the metrics score: error_map is NaN elsewhere
        err = error_map(np.zeros_like(s.disparity), s.disparity, s.valid)
        values.append(err[np.isfinite(err)])
    g = np.sort(np.concatenate(values).astype(np.float64))
    within = np.searchsorted(g, g + 6.0, side="right") - np.arange(g.size)
    by_epe, _ = _run(evaluate(ConstantMatcher(float(np.median(g))), data, warmup=False))
    by_bad3, _ = _run(evaluate(ConstantMatcher(float(g[np.argmax(within)] + 3.0)), data, warmup=False))
    return {"epe": by_epe["epe"], "bad3": by_bad3["bad3"]}


def _assert_far_better_than_constants(result: dict, best: dict) -> None:
    # SGBM on these pairs (seed 0): EPE 2.10 px, bad-3 17.3 %; the best constants: EPE 3.83, bad-3 48.8 %
    # (ratios 0.55 and 0.35; at most 0.55 on both over seeds 0-4). No constant can pass: the median constant
    # has the least EPE of all constants, the bad-3 one the least bad-3.
    assert result["epe"] < 0.75 * best["epe"], (result["epe"], best)
    assert result["bad3"] < 0.6 * best["bad3"], (result["bad3"], best)


def test_sgbm_on_synthetic_data():
    matchers = pytest.importorskip("stereo_studio.models.matchers")
    data = _synthetic_pairs()
    result, _ = _run(evaluate(matchers.SGBMMatcher(32), data))
    assert result["pairs"] == 2
    _assert_far_better_than_constants(result, _best_constants(data))


def test_the_sgbm_check_fails_every_constant_predictor():
    """Mutants: the check above rejects a constant predictor, whatever the constant (0 to 32 px)."""
    data = _synthetic_pairs()
    best = _best_constants(data)
    for value in np.arange(0.0, 32.25, 0.25):
        result, _ = _run(evaluate(ConstantMatcher(float(value)), data, warmup=False))
        with pytest.raises(AssertionError):
            _assert_far_better_than_constants(result, best)
