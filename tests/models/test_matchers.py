"""Matchers: SGBM on a real pair, hole filling, the net wrapper's precision / BN folding / batching."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from stereo_studio.errors import DataError, ModelError
from stereo_studio.metrics import disparity_metrics
from stereo_studio.models.matchers import (
    NetMatcher,
    SGBMMatcher,
    fill_from_left,
    fold_batchnorm,
    resolve_precision,
)
from stereo_studio.models.registry import build_model, default_config


def _read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _aloe(aloe_q):
    from stereo_studio.data.pfm import read_pfm

    gt = read_pfm(aloe_q / "disp0GT.pfm")
    return _read_rgb(aloe_q / "im0.png"), _read_rgb(aloe_q / "im1.png"), gt, np.isfinite(gt) & (gt > 0)


def _best_constants(gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Scores of the best constant predictors: the GT median (least EPE of all constants; 14.75 px on Aloe Q)
    and the centre of the densest 6 px window of GT values (least bad-3)."""
    g = np.sort(gt[valid].astype(np.float64))
    within = np.searchsorted(g, g + 6.0, side="right") - np.arange(g.size)
    by_epe = disparity_metrics(np.full_like(gt, np.median(g)), gt, valid)
    by_bad3 = disparity_metrics(np.full_like(gt, g[np.argmax(within)] + 3.0), gt, valid)
    return {"epe": by_epe["epe"], "bad3": by_bad3["bad3"]}


def assert_sgbm_accuracy_on_aloe_q(metrics: dict, best: dict) -> None:
    # README reference for SGBM-3way on Aloe Q: EPE 1.42 px, bad-3 10.0 %. The best constants score
    # EPE 5.22 px and bad-3 36.1 %, and pass both bounds of the old check (EPE < 6; EPE < 10, bad-3 < 50).
    assert metrics["epe"] < 2.0 and metrics["bad3"] < 15.0, metrics
    assert metrics["epe"] < 0.4 * best["epe"] and metrics["bad3"] < 0.4 * best["bad3"], (metrics, best)


def test_sgbm_on_aloe_quarter(aloe_q):
    left, right, gt, valid = _aloe(aloe_q)
    matcher = SGBMMatcher(max_disp=64)
    disp = matcher.predict(left, right)
    assert disp.shape == gt.shape and disp.dtype == np.float32
    assert np.isfinite(disp).all() and disp.min() >= 0  # holes filled
    assert_sgbm_accuracy_on_aloe_q(disparity_metrics(disp, gt, valid), _best_constants(gt, valid))
    assert matcher.params()["P1"] == 600 and matcher.params()["P2"] == 2400


def test_the_aloe_check_fails_every_constant_predictor(aloe_q):
    """Mutants: a constant prediction (0 to 64 px, 14.75 px = the GT median among them) fails the check."""
    _, _, gt, valid = _aloe(aloe_q)
    best = _best_constants(gt, valid)
    for value in np.arange(0.0, 64.25, 0.25):
        with pytest.raises(AssertionError):
            assert_sgbm_accuracy_on_aloe_q(disparity_metrics(np.full_like(gt, value), gt, valid), best)


def test_sgbm_recovers_a_constant_shift():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (80, 140, 3), dtype=np.uint8), (3, 3), 0)
    left, right = texture[:, 20:132].copy(), texture[:, 27:139].copy()  # left(x) = right(x - 7)
    disp = SGBMMatcher(max_disp=20).predict(left, right)
    assert np.median(disp[10:-10, 30:-10]) == pytest.approx(7.0, abs=0.25)


def test_fill_from_left():
    disp = np.array([[1, 2, 0, 0, 5], [0, 0, 3, 0, 4], [0, 0, 0, 0, 0]], dtype=np.float32)
    valid = disp > 0
    out = fill_from_left(disp, valid)
    np.testing.assert_array_equal(out, [[1, 2, 2, 2, 5], [3, 3, 3, 3, 4], [0, 0, 0, 0, 0]])


def test_sgbm_num_disparities_and_refusals():
    assert SGBMMatcher(max_disp=65).num_disparities == 80
    with pytest.raises(ModelError, match="block size"):
        SGBMMatcher(block_size=4)
    with pytest.raises(ModelError, match="mode"):
        SGBMMatcher(mode="fast")
    img = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(DataError, match="sizes differ"):
        SGBMMatcher().predict(img, np.zeros((20, 31, 3), np.uint8))
    with pytest.raises(DataError, match="uint8"):
        SGBMMatcher().predict(img.astype(np.float32), img)


def test_precision_resolution():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    from stereo_studio.runtime import inference_settings

    assert resolve_precision("auto") == inference_settings().precision  # the measured choice
    with pytest.raises(ModelError, match="precision"):
        resolve_precision("fp8")


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_fold_batchnorm_keeps_outputs(arch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(default_config(arch, max_disp=32)).train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48))  # non-trivial BN statistics
    model.eval()
    folded = fold_batchnorm(copy.deepcopy(model))
    left_bn = [m for m in folded.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(left_bn) == (1 if arch == "teacher" else 0)  # the BN after the ConvTranspose3d stays
    left, right = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(folded(left, right), model(left, right), atol=1e-3, rtol=1e-4)


def test_net_matcher_batch_and_attributes():
    torch.set_num_threads(1)
    model = build_model(default_config("student", max_disp=32))
    matcher = NetMatcher(model, name="s", precision="fp32", channels_last=True)
    assert matcher.model is model and matcher.config["max_disp"] == 32 and matcher.max_disp == 32
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8),) * 2 for _ in range(3)]
    batch = matcher.predict_batch([p[0] for p in pairs], [p[1] for p in pairs])
    single = [matcher.predict(l, r) for l, r in pairs]
    assert all(b.shape == (24, 40) and b.dtype == np.float32 for b in batch)
    for b, s in zip(batch, single, strict=True):
        np.testing.assert_allclose(b, s, atol=1e-4)
    mixed = matcher.predict_batch([pairs[0][0], np.zeros((16, 20, 3), np.uint8)],
                                  [pairs[0][1], np.zeros((16, 20, 3), np.uint8)])
    assert [m.shape for m in mixed] == [(24, 40), (16, 20)]
    assert matcher.params()["precision"] == "fp32"


def test_net_matcher_refresh_follows_weight_changes():
    torch.set_num_threads(1)
    model = build_model(default_config("student", max_disp=32)).eval()
    matcher = NetMatcher(model, precision="fp32")
    img = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    before = matcher.predict(img, img)
    with torch.no_grad():
        model.refine_out.bias.add_(5.0)
    assert np.array_equal(matcher.predict(img, img), before)  # the inference copy is a snapshot
    matcher.refresh()
    assert not np.array_equal(matcher.predict(img, img), before)


def test_net_matcher_bf16_runs_close_to_fp32():
    """bf16 autocast works (slow on CPUs without native bf16, so tiny); soft-argmin stays fp32."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(default_config("student", max_disp=32))
    img = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    fp32 = NetMatcher(model, precision="fp32").predict(img, np.roll(img, -2, axis=1))
    bf16 = NetMatcher(model, precision="bf16").predict(img, np.roll(img, -2, axis=1))
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert np.abs(bf16 - fp32).mean() < 1.0
