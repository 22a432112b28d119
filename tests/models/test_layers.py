"""Shared layers: the input normalisation's channels-last inference path matches the plain formula."""

import pytest
import torch

from stereo_studio.models import layers
from stereo_studio.models.layers import InputNorm


def _plain(norm: InputNorm, x: torch.Tensor) -> torch.Tensor:
    return (x - norm.mean) / norm.std


@pytest.mark.parametrize("shape", [(1, 3, 24, 32), (2, 3, 17, 41)])
def test_channels_last_inference_matches_the_formula(shape: tuple[int, ...]) -> None:
    norm = InputNorm()
    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert layers._channels_last_inference(x)
        out = norm(x)
    assert out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, _plain(norm, x), rtol=0, atol=1e-6)


def test_the_plain_formula_where_autograd_or_layout_needs_it() -> None:
    x = torch.rand(1, 3, 8, 8)
    assert not layers._channels_last_inference(x)  # contiguous NCHW
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert not layers._channels_last_inference(x_cl.requires_grad_())  # autograd on (training, tracing)
    norm = InputNorm()
    out = norm(x_cl)
    out.sum().backward()
    assert x_cl.grad is not None
    torch.testing.assert_close(x_cl.grad, (1 / norm.std).expand_as(x_cl).contiguous())
