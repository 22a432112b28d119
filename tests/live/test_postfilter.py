"""Post-filters: the registry, each filter's behaviour, the chain's state, and the pipeline per model."""

from __future__ import annotations

import numpy as np
import pytest
from live_helpers import FakeSource, ShiftMatcher

from stereo_studio.errors import ModelError
from stereo_studio.live import postfilter as pf
from stereo_studio.live.pipeline import STAGES, StereoPipeline


def test_parse_orders_validates_and_accepts_none() -> None:
    assert pf.parse_filters("median, hole") == ("hole", "median")  # registry order, whatever was named
    assert pf.parse_filters(None) == pf.parse_filters("") == pf.parse_filters("none") == ()
    assert pf.parse_filters(["temporal", "speckle"]) == ("speckle", "temporal")
    with pytest.raises(pf.PostFilterError, match=r"unknown post-filter 'blur'.*hole"):
        pf.parse_filters("hole,blur")
    assert [f.name for f in pf.FILTERS.values() if f.needs_left] == ["guided"]
    assert [f.name for f in pf.FILTERS.values() if f.stateful] == ["temporal"]


def test_hole_filling_takes_the_background_side() -> None:
    disp = np.array([[10, 10, 0, 0, 4, 4], [0, 0, 7, np.nan, 7, -1], [0, 0, 0, 0, 0, 0]], np.float32)
    out = pf.fill_holes(disp)
    assert out[0].tolist() == [10, 10, 4, 4, 4, 4]  # the farther (smaller) neighbour
    assert out[1].tolist() == [7, 7, 7, 7, 7, 7]  # one-sided at the borders
    assert out[2].tolist() == [0] * 6  # nothing valid in the row
    assert np.isnan(disp[1, 3])  # the input is untouched


def test_speckles_become_holes_and_median_removes_outliers() -> None:
    disp = np.full((60, 80), 20.0, np.float32)
    disp[30:32, 40:42] = 45.0  # a 4-pixel blob
    out = pf.remove_speckles(disp)
    assert (out[30:32, 40:42] == 0).all() and (out[disp == 20.0] == 20.0).all()
    assert (pf.median(disp) == 20.0).all()


def test_guided_weighted_median_sharpens_a_smeared_edge_at_the_image_edge() -> None:
    h, w = 192, 256  # radius 3 px at this size
    left = np.zeros((h, w, 3), np.uint8)
    left[:, 128:] = 200  # the image edge at column 128
    truth = np.where(np.arange(w) < 128, 10.0, 30.0).astype(np.float32)[None].repeat(h, 0)
    smeared = truth.copy()
    smeared[:, 126:130] = [14, 18, 22, 26]  # a depth edge blurred over 4 px
    out = pf.guided(smeared, left)
    assert np.abs(out - truth).mean() < 0.5 * np.abs(smeared - truth).mean()
    assert (out[:, :126] == 10).all() and (out[:, 130:] == 30).all()  # the flat sides stay exact
    assert (out[:, 126:128] < smeared[:, 126:128]).all() and (out[:, 128:130] > smeared[:, 128:130]).all()
    with pytest.raises(pf.PostFilterError, match="left image"):
        pf.FilterChain("guided").apply(smeared)


def test_guided_helps_sgbm_on_aloe(aloe_q) -> None:
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.metrics import disparity_metrics
    from stereo_studio.models.matchers import SGBMMatcher

    s = open_dataset(str(aloe_q))[0]
    disp = SGBMMatcher(max_disp=64).predict(s.left, s.right)
    before = disparity_metrics(disp, s.disparity, s.valid)
    after = disparity_metrics(pf.guided(disp, s.left), s.disparity, s.valid)
    assert after["epe"] < before["epe"] and after["bad3"] < before["bad3"]


def test_temporal_blends_small_changes_keeps_large_ones_and_resets() -> None:
    chain = pf.FilterChain("temporal")
    a = np.full((4, 4), 10.0, np.float32)
    assert np.array_equal(chain.apply(a), a)
    b = a + 0.5
    b[0, 0] = 20.0  # motion: taken as is
    out = chain.apply(b)
    assert out[1, 1] == pytest.approx(10.0 + pf.TEMPORAL_ALPHA * 0.5) and out[0, 0] == 20.0
    chain.reset()
    assert np.array_equal(chain.apply(b), b) and set(chain.last_ms) == {"temporal"}


def test_pipeline_filters_per_model_and_times_them() -> None:
    class Holey(ShiftMatcher):
        def predict(self, left, right):
            d = super().predict(left, right)
            d[:, :5] = 0.0
            return d

    with FakeSource(count=3) as src:
        pipe = StereoPipeline(src, {"raw": Holey(), "filled": Holey()}, post_filters={"filled": "hole"})
        results = [e.payload for e in pipe.run() if e.kind == "frame"]
        summary = pipe.summary()
    last = results[-1]
    assert (last.outputs["raw"].disparity[:, :5] == 0).all() and last.outputs["raw"].post_filters == ()
    filled = last.outputs["filled"]
    assert (filled.disparity == 6.0).all() and filled.post_filters == ("hole",)
    assert "filter" in STAGES and last.timings["filter"] >= last.outputs["filled"].filter_ms > 0
    assert summary["models"]["filled"]["filter_ms"] > 0 and "filter_ms" not in summary["models"]["raw"]

    pipe.set_post_filters("median,temporal", model="raw")  # live toggle, from the next frame
    assert pipe.post_filters("raw") == ("median", "temporal") and pipe.post_filters("filled") == ("hole",)
    pipe.reset_post_filters()
    with pytest.raises(ModelError, match="no model 'nope'"):
        pipe.set_post_filters("hole", model="nope")
