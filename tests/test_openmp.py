"""A thread's OpenMP team ends when it calls `release_openmp_threads()` (Linux, GNU / LLVM OpenMP)."""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from stereo_studio.openmp import _loaded_runtime, release_openmp_threads

pytestmark = pytest.mark.skipif(_loaded_runtime() is None, reason="no OpenMP runtime mapped (not Linux?)")


def _name_this_thread(name: str) -> None:
    """The OS name of the calling thread (threads it starts inherit it: OpenMP's workers do)."""
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def threads_named(name: str) -> int:
    count = 0
    for comm in Path("/proc/self/task").glob("*/comm"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            count += comm.read_text().strip() == name
    return count


def parallel_torch_op() -> None:
    torch.ones(1 << 22).add_(1)  # large enough for at::parallel_for to start a team


def in_named_thread(name: str, body: Callable[[], object]) -> object:
    out: dict[str, object] = {}

    def run() -> None:
        _name_this_thread(name)
        out["result"] = body()

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(30)
    finally:
        torch.set_num_threads(previous)
    return out["result"]


def test_release_ends_the_calling_threads_team_and_torch_starts_a_new_one():
    def body() -> dict[str, object]:
        seen = {"alone": threads_named("ss-omp-test")}
        parallel_torch_op()
        seen["with team"] = threads_named("ss-omp-test")
        seen["released"] = release_openmp_threads()
        seen["after release"] = threads_named("ss-omp-test")
        parallel_torch_op()  # still works: a new team
        seen["again"] = threads_named("ss-omp-test")
        seen["released again"] = release_openmp_threads()
        seen["finally"] = threads_named("ss-omp-test")
        return seen

    seen = in_named_thread("ss-omp-test", body)
    assert seen["alone"] == 1
    assert seen["with team"] == 2  # the thread and its one worker (2 threads)
    assert seen["released"] and seen["released again"]
    assert seen["after release"] == 1 and seen["finally"] == 1
    assert seen["again"] == 2


def test_release_without_a_team_is_harmless():
    assert in_named_thread("ss-omp-none", release_openmp_threads) is True
