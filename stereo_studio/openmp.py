"""Release the OpenMP worker threads a thread of this process has started (GNU OpenMP, on Linux).

Every thread that runs a parallel torch op becomes the master of its own OpenMP team, and the team's worker
threads live as long as that thread does, idle or not. Once a process holds more OpenMP threads than there
are CPUs, GNU OpenMP throttles every team's spin-wait to almost nothing, so each wake-up becomes a sleep: a
small network timed 1.3-1.45x slower on the main thread while one idle worker thread's team was alive (2
CPUs, ACTIVE wait policy; models/README.md, "Where the shipped pruned student's milliseconds went"). A
window runs its jobs on pooled threads that stay alive after their job, so its timings paid that.

`release_openmp_threads()`, called by a thread when it has finished its torch work, ends that thread's
team through OpenMP 5's `omp_pause_resource_all(omp_pause_soft)`; the next parallel op of the thread starts
a new team. GNU OpenMP (torch's Linux wheels) implements it per thread: other threads' teams, running or not,
are untouched. LLVM's and Intel's runtimes pause the whole process instead, so with those (and without an
OpenMP runtime in the process: torch not loaded yet, or not Linux) it does nothing.
"""

from __future__ import annotations

import ctypes
import threading

_RUNTIME = "libgomp"  # GNU OpenMP: pausing is per thread there (see the module notes)
OMP_PAUSE_SOFT = 1

_lock = threading.Lock()
_pause: list = []  # [the runtime's omp_pause_resource_all] once found; [None] when there is none


def _loaded_runtime() -> str | None:
    """The path of the GNU OpenMP runtime mapped into this process, if any (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                name = path.rsplit("/", 1)[-1]
                if name.startswith(_RUNTIME) and ".so" in name:
                    return path
    except OSError:
        pass
    return None


def _pause_function():
    """The runtime's `omp_pause_resource_all`, looked up once the runtime is loaded; None without one."""
    with _lock:
        if _pause:
            return _pause[0]
        path = _loaded_runtime()
        if path is None:
            return None  # not loaded yet: look again next time
        try:
            fn = ctypes.CDLL(path).omp_pause_resource_all
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        except (OSError, AttributeError):  # an OpenMP older than 5.0
            fn = None
        _pause.append(fn)
        return fn


def release_openmp_threads() -> bool:
    """End the calling thread's OpenMP team (call it outside any parallel region, when the thread's torch
    work is done). True when a runtime released it."""
    fn = _pause_function()
    return fn is not None and fn(OMP_PAUSE_SOFT) == 0
