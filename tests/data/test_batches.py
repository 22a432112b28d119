"""Tensor conversion, collation and the endless batch stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_studio.data.augment import Augmenter
from stereo_studio.data.batches import batch_stream, collate, sample_to_tensors
from stereo_studio.data.sample import StereoSample
from stereo_studio.errors import DataError


class _Tiny:
    """A dataset whose pair i is filled with the value i (easy to trace through batches)."""

    name = "tiny"

    def __init__(self, n=7, gt=True, h=8, w=10):
        self.n, self.gt, self.h, self.w = n, gt, h, w

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        img = np.full((self.h, self.w, 3), i, np.uint8)
        if not self.gt:
            return StereoSample(img, img.copy(), meta={"index": i})
        disp = np.full((self.h, self.w), float(i), np.float32)
        disp[0, 0] = np.inf
        return StereoSample(img, img.copy(), disp, np.isfinite(disp) & (disp > 0), {"index": i})


def _ids(batch):
    return [m["index"] for m in batch["meta"]]


def test_sample_to_tensors_and_collate():
    t = sample_to_tensors(_Tiny()[3])
    assert t["left"].shape == (1, 3, 8, 10) and t["left"].dtype == torch.float32
    assert torch.allclose(t["left"], torch.full_like(t["left"], 3 / 255))
    assert t["disparity"].shape == (1, 1, 8, 10) and t["valid"].dtype == torch.bool
    assert t["disparity"][0, 0, 0, 0] == 0 and not t["valid"][0, 0, 0, 0]
    assert "disparity" not in sample_to_tensors(_Tiny(gt=False)[1])
    b = collate([_Tiny()[1], _Tiny()[2]])
    assert b["left"].shape == (2, 3, 8, 10) and b["disparity"].shape == (2, 1, 8, 10)
    assert "disparity" not in collate([_Tiny()[1], _Tiny(gt=False)[2]])
    with pytest.raises(DataError, match="different sizes"):
        collate([_Tiny()[1], _Tiny(h=9)[1]])


@pytest.mark.parametrize("prefetch", [0, 2])
def test_stream_epochs_are_permutations_and_deterministic(prefetch):
    ds = _Tiny(n=6)
    stream = batch_stream(ds, 3, seed=5, prefetch=prefetch)
    ids = [i for _ in range(4) for i in _ids(next(stream))]
    stream.close()
    assert sorted(ids[:6]) == list(range(6)) and sorted(ids[6:]) == list(range(6))
    assert ids[:6] != ids[6:]  # reshuffled each epoch
    again = batch_stream(ds, 3, seed=5, prefetch=0)
    assert [i for _ in range(4) for i in _ids(next(again))] == ids
    other = batch_stream(ds, 3, seed=6, prefetch=0)
    assert [i for _ in range(4) for i in _ids(next(other))] != ids


def test_shards_are_disjoint_and_cover():
    ds = _Tiny(n=8)
    seen = []
    for rank in range(2):
        stream = batch_stream(ds, 2, seed=1, shard=(rank, 2), prefetch=0)
        seen.append({i for _ in range(2) for i in _ids(next(stream))})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(8))


def test_stream_with_augmenter_and_errors():
    ds = _Tiny(n=4, h=20, w=30)
    aug = Augmenter(crop=(8, 12))
    a = next(batch_stream(ds, 4, augmenter=aug, seed=0))
    b = next(batch_stream(ds, 4, augmenter=aug, seed=0, prefetch=0))
    assert a["left"].shape == (4, 3, 8, 12) and torch.equal(a["left"], b["left"])

    class Broken(_Tiny):
        def __getitem__(self, i):
            raise DataError("broken.png is unreadable")

    with pytest.raises(DataError, match="broken"):
        next(batch_stream(Broken(), 2))
