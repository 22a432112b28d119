"""bench: parameter / MAC counts, latency statistics, peak memory, matmul peak."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from stereo_studio import runtime
from stereo_studio.engine import bench


class TinyStereo(nn.Module):
    """One 3x3 convolution over the concatenated pair: known parameters and MACs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1, bias=False)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([left, right], 1)).mean(1, keepdim=True)


def test_count_params_macs_hand_computed():
    params, macs = bench.count_params_macs(TinyStereo(), size=(8, 10))
    assert params == 4 * 6 * 9
    assert macs == 4 * 6 * 9 * 8 * 10


def test_synthetic_pair_is_textured_rgb():
    left, right = bench.synthetic_pair((40, 64), max_disp=16)
    assert left.shape == right.shape == (40, 64, 3) and left.dtype == np.uint8
    assert left.std() > 10 and not np.array_equal(left, right)


def test_measure_latency_on_callable_module_and_matcher():
    seen = []

    def fn(left, right):
        seen.append(left.shape)

    lat = bench.measure_latency(fn, (32, 48), warmup=2, runs=5)
    assert len(seen) == 7 and seen[0] == (32, 48, 3)
    assert lat["runs"] == 5 and lat["threads"] == torch.get_num_threads()
    assert 0 <= lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert lat["precision"] is None and lat["wait_policy"] == runtime.effective_wait_policy()
    assert lat["contended"] is False and lat["contended_by"] == []
    # a network is timed as a NetMatcher in the machine's precision ("auto": fp32 in the tests), or as asked
    lat = bench.measure_latency(TinyStereo(), (16, 16), warmup=0, runs=3)
    assert lat["runs"] == 3 and lat["mean_ms"] > 0 and lat["precision"] == "fp32"
    lat = bench.measure_latency(TinyStereo(), (16, 16), warmup=0, runs=1, precision="bf16")
    assert lat["precision"] == "bf16"

    class M:
        calls = 0

        def predict(self, left, right):
            M.calls += 1
            return np.zeros(left.shape[:2], np.float32)

    bench.measure_latency(M(), (16, 16), warmup=1, runs=2)
    assert M.calls == 3
    with pytest.raises(TypeError):
        bench.measure_latency(42, (16, 16))


def test_peak_memory_sees_a_transient_tensor():
    def fn():
        a = torch.ones(2_000_000)  # 7.6 MB, freed before the next, smaller one
        del a
        b = torch.ones(500_000)
        return b.sum()

    mb = bench.peak_memory_mb(fn)
    assert 7.5 < mb < 10.0


def test_peak_malloc_sees_native_allocations():
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def fn():
        ptr = libc.malloc(6 * 2**20)
        ctypes.memset(ptr, 1, 6 * 2**20)
        time.sleep(0.05)  # let the sampler see it
        libc.free(ptr)

    assert 5.9 < bench.peak_malloc_mb(fn) < 8.0


def test_matmul_peak_positive_and_cached():
    for dtype in (torch.float32, torch.bfloat16):
        first = bench.matmul_peak_gflops(dtype, n=128, repeats=2)
        assert 0 < first < float("inf")
        assert bench.matmul_peak_gflops(dtype, n=128, repeats=2) == first


def test_latency_while_training_is_marked_contended():
    with runtime.training_running():  # this thread's own training: measured at once, marked
        lat = bench.measure_latency(lambda l, r: None, (16, 16), warmup=0, runs=2)
    assert lat["contended"] and lat["contended_by"] == ["training"]


def test_bench_model_keeps_its_keys_and_reports_settings():
    from stereo_studio.models.matchers import NetMatcher

    r = bench.bench_model(NetMatcher(TinyStereo(), name="tiny", precision="fp32"), (16, 24), warmup=0, runs=3,
                          memory=False, peak_n=128)
    for key in ("model", "size", "max_disp", "precision", "params", "macs", "latency_ms", "p90_ms", "mean_ms",
                "runs", "threads", "gflops", "peak_gflops", "fraction_of_peak"):
        assert key in r, key
    assert r["p10_ms"] <= r["latency_ms"] <= r["p90_ms"] and r["precision"] == "fp32"
    assert r["wait_policy"] == runtime.effective_wait_policy() and r["contended"] is False
    assert r["threads"] == torch.get_num_threads()
    assert set(r["runtime"]) >= {"precision", "threads", "wait_policy", "source"}
