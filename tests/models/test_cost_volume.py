"""Correlation volumes: loop and unfold forms agree with a direct per-pixel definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stereo_studio.models.cost_volume import (
    correlation_volume,
    groupwise_correlation_volume,
    local_groupwise_correlation,
)


def _naive(left: torch.Tensor, right: torch.Tensor, groups: int, disparities: int) -> torch.Tensor:
    n, c, h, w = left.shape
    out = torch.zeros(n, groups, h, w, disparities)
    for d in range(disparities):
        for x in range(d, w):
            prod = left[..., x] * right[..., x - d]  # N x C x H
            out[..., x, d] = prod.view(n, groups, c // groups, h).mean(2)
    return out


@pytest.mark.parametrize("method", ["loop", "unfold", "auto"])
def test_groupwise_matches_definition(method):
    torch.manual_seed(0)
    left, right = torch.randn(2, 8, 5, 11), torch.randn(2, 8, 5, 11)
    got = groupwise_correlation_volume(left, right, groups=4, disparities=6, method=method)
    assert got.shape == (2, 4, 5, 11, 6)
    torch.testing.assert_close(got, _naive(left, right, 4, 6))


@pytest.mark.parametrize("method", ["loop", "unfold"])
def test_cosine_correlation_matches_definition(method):
    torch.manual_seed(1)
    left, right = torch.randn(1, 6, 4, 9), torch.randn(1, 6, 4, 9)
    got = correlation_volume(left, right, 5, method=method)
    mean_product = _naive(F.normalize(left, dim=1), F.normalize(right, dim=1), 1, 5)[:, 0].permute(0, 3, 1, 2)
    assert got.shape == (1, 5, 4, 9)
    torch.testing.assert_close(got, 6 * mean_product)  # the sum over unit vectors: a true cosine
    assert got.abs().max() <= 1 + 1e-6


def test_peak_at_true_shift():
    torch.manual_seed(2)
    right = torch.randn(1, 16, 6, 40)
    left = torch.roll(right, 3, dims=-1)  # left(x) = right(x - 3): disparity 3
    cost = correlation_volume(left, right, 8)
    assert (cost[..., 8:].argmax(dim=1) == 3).all()
    torch.testing.assert_close(cost[:, 3, :, 8:], torch.ones(1, 6, 32))  # identical features: cosine 1


def test_disparities_wider_than_image_and_bad_groups():
    left = torch.randn(1, 4, 3, 5)
    assert correlation_volume(left, left, 8, method="loop")[:, 5:].abs().max() == 0
    torch.testing.assert_close(correlation_volume(left, left, 8, method="loop"),
                               correlation_volume(left, left, 8, method="unfold"))
    with pytest.raises(ValueError, match="groups"):
        groupwise_correlation_volume(left, left, groups=3, disparities=4)
    with pytest.raises(ValueError, match="method"):
        correlation_volume(left, left, 4, method="fft")


def test_local_volume_is_the_full_volume_around_the_estimate():
    """At integer estimates, hypothesis o of the local volume is the full volume at disparity estimate + o
    (where x - d stays inside the image); fractional estimates interpolate between two of them."""
    torch.manual_seed(3)
    left, right = torch.randn(1, 8, 5, 30), torch.randn(1, 8, 5, 30)
    full = _naive(left, right, 4, 12)  # N x G x H x W x D
    estimate = torch.randint(3, 9, (1, 1, 5, 30)).float()
    local = local_groupwise_correlation(left, right, estimate, radius=2, groups=4)
    assert local.shape == (1, 5 * 4, 5, 30)
    for k, offset in enumerate(range(-2, 3)):
        d = (estimate[:, 0] + offset).long()  # N x H x W
        want = full.gather(-1, d[:, None, :, :, None].expand(1, 4, 5, 30, 1))[..., 0]
        inside = (torch.arange(30).view(1, 1, 30) - d >= 0)[:, None].expand_as(want)
        torch.testing.assert_close(local[:, 4 * k: 4 * k + 4][inside], want[inside])
    half = local_groupwise_correlation(left, right, estimate + 0.5, radius=2, groups=4)
    whole = local_groupwise_correlation(left, right, estimate, radius=3, groups=4)  # offsets -3..3
    mean = (whole[:, 12:16] + whole[:, 16:20]) / 2  # offsets 0 and 1 around estimate + 0.5
    inside = (torch.arange(30).view(1, 1, 1, 30) - estimate - 1 >= 0).expand_as(mean)
    torch.testing.assert_close(half[:, 8:12][inside], mean[inside])
