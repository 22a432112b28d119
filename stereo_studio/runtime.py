"""Inference runtime settings chosen by measurement, and the one measuring queue.

Settings: precision (fp32 / bf16), threads and the OpenMP wait policy (ACTIVE / PASSIVE) change CPU
inference time several times over, and which is fastest differs between machines. So they are measured,
not guessed from CPU flags: `probe()` times a small stereo network (the bundled `student-pruned`, else the
untrained `student` architecture) at 240x320 for every candidate, each wait policy in its own `python -c`
subprocess because OpenMP reads OMP_WAIT_POLICY once, when it loads. The choice is cached as JSON per
machine (key: CPU model, CPU flags hash, usable CPU count, torch version) in `$STEREO_STUDIO_RUNTIME_CACHE`,
else `$XDG_CACHE_HOME/stereo-studio/runtime.json`, else `~/.cache/stereo-studio/runtime.json`.

Who applies what, and when:
- `import stereo_studio` calls `apply_cached_wait_policy()`: with a cache entry for this machine it sets
  OMP_WAIT_POLICY (setdefault: a user's own value wins) before torch loads OpenMP. Nothing is measured.
- The CLI calls `prepare_process(role)` after parsing, before anything imports torch. Inference commands
  run the probe when this machine has no cache entry yet (first use: a one-line notice on stderr, ~10-20 s),
  then set OMP_WAIT_POLICY and OMP_NUM_THREADS unless the user's environment has them. So no re-exec is
  needed. Training commands get OMP_WAIT_POLICY=PASSIVE instead (spinning threads cost a training step
  several times its CPU time on a shared machine): training may use other settings than inference.
- `resolve_precision("auto")` (models.matchers) reads `inference_settings()`: never probes; without a
  cache entry it falls back to fp32 (never the catastrophic choice: bf16 without native kernels ran ~9x
  slower than fp32).
- Overrides, strongest first: CLI flags (--precision, --threads); the environment as the process found it
  (STEREO_STUDIO_PRECISION, OMP_NUM_THREADS, OMP_WAIT_POLICY); the cache; the fallback.
  STEREO_STUDIO_RUNTIME_PROBE=0 disables probing (the test suite sets it).

Measuring queue: every latency measurement (`engine.bench.measure_latency`, hence bench, sweep and the
GUI's stats) runs inside `measuring()`: one at a time per process and, through a file lock next to the
cache, per user on the machine. Work that disturbs timing registers with `running(kind)`
(`training_running()` for training jobs, seen across processes through a shared file lock). A measurement
waits until no training runs unless asked to run anyway (`while_training=True`); it is then marked
`contended` with what ran (`contended_by`). The live pipeline's continuous per-model timing is not a
measurement and does not take the queue.

This module imports only the standard library at import time (it runs before torch loads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: the queue is per process only
    fcntl = None  # type: ignore[assignment]

CACHE_ENV = "STEREO_STUDIO_RUNTIME_CACHE"
PROBE_ENV = "STEREO_STUDIO_RUNTIME_PROBE"
PRECISION_ENV = "STEREO_STUDIO_PRECISION"
CACHE_VERSION = 1
WAIT_POLICIES = ("ACTIVE", "PASSIVE")
PROBE_SPEC = "student-pruned"
PROBE_FALLBACK_SPEC = "student"  # the untrained architecture, when the bundled pruned model is missing
PROBE_SIZE = (240, 320)
BUSY_LOAD = 0.5  # a probe started above this load average per CPU is provisional (measured again later)
TOLERANCE = 0.02  # candidates within 2 % of the fastest are equally fast: the preference order decides
RUNOFF = 0.15  # first-round candidates within 15 % of the fastest are timed again, longer, one at a time
RUNOFF_FINALISTS = 2
TIMING_KEYS = ("median_ms", "p10_ms", "p90_ms")
RUNOFF_ROUNDS = 2  # fresh processes of identical settings differ by up to 1.5x: each finalist gets two

# The environment as this process found it (this module is imported first by `import stereo_studio`):
# values the package sets itself later are not mistaken for the user's.
_USER_ENV: dict[str, str | None] = {
    k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", PRECISION_ENV, "GOMP_SPINCOUNT")
}
# ACTIVE waits spin this many rounds, then sleep. GNU OpenMP's ACTIVE alone spins forever: an idle process
# (the window between frames, a benchmark's parent beside its children) kept a core busy after its first
# parallel op (measured: 3.0 s of CPU in 3 s of sleep). 3e6 rounds keep ACTIVE's speed (student-pruned
# 240x320, bf16, 2 threads: 9.8 ms vs 11.8 ms spinning forever, same run) and idle at 0.04 CPU-s per second.
ACTIVE_SPIN_COUNT = "3000000"


def set_wait_policy(policy: str, env: dict[str, str] | None = None) -> None:
    """OMP_WAIT_POLICY=`policy` in `env` (default: this process's environment, before torch loads), with a
    bounded GOMP_SPINCOUNT for ACTIVE unless the user set one (and none of ours for PASSIVE)."""
    target = os.environ if env is None else env
    target["OMP_WAIT_POLICY"] = policy
    if _USER_ENV.get("GOMP_SPINCOUNT"):
        return
    if policy.upper() == "ACTIVE":
        target["GOMP_SPINCOUNT"] = ACTIVE_SPIN_COUNT
    else:
        target.pop("GOMP_SPINCOUNT", None)


# ------------------------------------------------------------------------------------------ this machine


def cpu_model() -> str:
    """The CPU model name (/proc/cpuinfo; platform's answer elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """All CPU feature flags (sorted; empty where /proc/cpuinfo does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return sorted(set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def torch_version() -> str:
    """torch's version without importing torch (read from torch/version.py; package metadata otherwise)."""
    mod = sys.modules.get("torch")
    if mod is not None and hasattr(mod, "__version__"):
        return str(mod.__version__)
    try:
        import importlib.util

        spec = importlib.util.find_spec("torch")
        if spec is not None and spec.origin:
            text = (Path(spec.origin).parent / "version.py").read_text()
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
            if found:
                return found.group(1)
    except (OSError, ImportError, ValueError):
        pass
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:
        return "unknown"


def machine_key() -> str:
    """Cache key of this machine: CPU model, flags hash, usable CPUs, torch version."""
    flags = hashlib.sha1(" ".join(cpu_flags()).encode()).hexdigest()[:12]
    return f"{cpu_model()} | flags {flags} | {cpu_count()} cpus | torch {torch_version()}"


# ------------------------------------------------------------------------------------------ the cache


def cache_path() -> Path:
    """$STEREO_STUDIO_RUNTIME_CACHE, else $XDG_CACHE_HOME/stereo-studio/runtime.json, else ~/.cache/..."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stereo-studio" / "runtime.json"


_CACHE_MEMO: dict[tuple[str, int], dict[str, Any]] = {}


def _read_cache_file(path: Path) -> dict[str, Any]:
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    memo = _CACHE_MEMO.get((str(path), stamp))
    if memo is not None:
        return memo
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    _CACHE_MEMO.clear()
    _CACHE_MEMO[(str(path), stamp)] = data
    return data


def load_entry(key: str | None = None) -> dict[str, Any] | None:
    """This machine's cached probe result (None when there is none)."""
    machines = _read_cache_file(cache_path()).get("machines", {})
    entry = machines.get(key or machine_key()) if isinstance(machines, dict) else None
    return entry if isinstance(entry, dict) and isinstance(entry.get("choice"), dict) else None


def save_entry(entry: dict[str, Any], key: str | None = None) -> Path:
    """Store `entry` for this machine (other machines' entries in the same file are kept); atomic."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read_cache_file(path) or {"version": CACHE_VERSION, "machines": {}}
    data = {"version": CACHE_VERSION, "machines": {**data.get("machines", {}), (key or machine_key()): entry}}
    fd, tmp = tempfile.mkstemp(prefix=".runtime-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
    _CACHE_MEMO.clear()
    return path


# ------------------------------------------------------------------------------------------ settings


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """The inference settings and where each came from ('env', 'cache', 'probe' or 'fallback')."""

    precision: str
    threads: int
    wait_policy: str | None  # None: OpenMP's own default (spin a while, then sleep)
    source: dict[str, str]
    contended: bool = False  # the probe behind these settings ran while training ran

    def to_json(self) -> dict[str, Any]:
        return {"precision": self.precision, "threads": self.threads,
                "wait_policy": self.wait_policy or "default", "source": dict(self.source),
                "probe_contended": self.contended, "cache": str(cache_path())}


def _user_threads() -> int | None:
    text = _USER_ENV.get("OMP_NUM_THREADS")
    try:
        return max(1, int(str(text).split(",")[0])) if text else None
    except ValueError:
        return None


def inference_settings(entry: dict[str, Any] | None = None, probed: bool = False) -> RuntimeSettings:
    """The settings inference uses here: user environment > cached probe choice > fallback. Never probes."""
    entry = load_entry() if entry is None else entry
    choice = (entry or {}).get("choice", {})
    found = "probe" if probed else "cache"
    source: dict[str, str] = {}

    user_precision = (_USER_ENV.get(PRECISION_ENV) or "").strip().lower()
    if user_precision in ("fp32", "bf16"):
        precision, source["precision"] = user_precision, "env"
    elif choice.get("precision") in ("fp32", "bf16"):
        precision, source["precision"] = str(choice["precision"]), found
    else:
        precision, source["precision"] = "fp32", "fallback"

    user_threads = _user_threads()
    if user_threads:
        threads, source["threads"] = user_threads, "env"
    elif isinstance(choice.get("threads"), int) and choice["threads"] >= 1:
        threads, source["threads"] = min(int(choice["threads"]), cpu_count()), found
    else:
        threads, source["threads"] = cpu_count(), "fallback"

    user_policy = (_USER_ENV.get("OMP_WAIT_POLICY") or "").strip().upper()
    if user_policy:
        policy, source["wait_policy"] = user_policy, "env"
    elif choice.get("wait_policy") in WAIT_POLICIES:
        policy, source["wait_policy"] = str(choice["wait_policy"]), found
    else:
        policy, source["wait_policy"] = None, "fallback"
    return RuntimeSettings(precision, threads, policy, source, bool((entry or {}).get("contended")))


def effective_wait_policy() -> str:
    """The OpenMP wait policy of this process: OMP_WAIT_POLICY as set ('ACTIVE' / 'PASSIVE'), else 'default'.
    The package never changes it once torch is loaded, so the variable tells what OpenMP read."""
    return (os.environ.get("OMP_WAIT_POLICY") or "default").strip().upper()


def _set_env_before_torch(name: str, value: str) -> bool:
    """Set `name` unless the user set it or torch (OpenMP) is loaded already; True when it holds `value`."""
    if _USER_ENV.get(name):
        return _USER_ENV[name] == value
    if "torch" in sys.modules:
        return os.environ.get(name) == value
    if name == "OMP_WAIT_POLICY":
        set_wait_policy(value)  # with its bounded spin count
    else:
        os.environ[name] = value
    return True


def apply_cached_wait_policy() -> None:
    """At package import: OMP_WAIT_POLICY from this machine's cache entry (setdefault). Never raises."""
    try:
        if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
            return
        entry = load_entry()
        policy = (entry or {}).get("choice", {}).get("wait_policy")
        if policy in WAIT_POLICIES:
            set_wait_policy(policy)
    except Exception:  # the package must import whatever the cache holds
        pass


def is_provisional(entry: dict[str, Any]) -> bool:
    """A probe result measured while training ran or the machine was busy: to be measured again."""
    return bool(entry.get("contended") or entry.get("busy"))


def is_quiet(entry: dict[str, Any]) -> bool:
    """A complete probe result measured on a quiet machine."""
    complete = bool(entry.get("choice", {}).get("precision"))
    return complete and not is_provisional(entry) and not entry.get("failed")


def probing_enabled() -> bool:
    return os.environ.get(PROBE_ENV, "1").strip().lower() not in ("0", "no", "off", "false")


def ensure_settings(force: bool = False, notice: Callable[[str], None] | None = None,
                    **probe_kwargs: Any) -> RuntimeSettings:
    """This machine's inference settings, running the probe first when there is no cache entry yet, or the
    cached one is provisional (measured while training ran or the machine was busy) and the machine is
    quiet now, or `force`. `notice` receives the one-line notice (default: printed on stderr). With probing
    disabled: the cache or the fallback."""
    entry = load_entry()
    stale = entry is not None and (
        (entry.get("contended") and not training_active()) or (entry.get("busy") and not machine_busy())
    )
    if not probing_enabled() or (entry is not None and not stale and not force):
        return inference_settings(entry)
    say = notice or _stderr
    started = time.perf_counter()
    head = "stereo-studio: measuring the fastest inference settings for this CPU (once per machine) ..."
    if notice is None:
        _stderr_start(head)
    try:
        entry = probe(**probe_kwargs)
    except Exception as exc:  # a failed probe must not stop the command: fall back, say so, remember it
        why = f"{type(exc).__name__}: {str(exc)[:120]}"
        msg = f" failed ({why}); using fp32 and all cores (measure again: bench --reprobe)"
        say(msg if notice is None else head + msg)
        failed = {"choice": {}, "failed": why, "measured_at": _now()}
        with contextlib.suppress(OSError):
            save_entry(failed)
        return inference_settings(failed)
    previous = load_entry()
    if is_provisional(entry) and previous is not None and is_quiet(previous):
        # a busy machine's measurement never replaces a quiet one (stop 26: a probe run right after training
        # chose 1 thread and PASSIVE and became the benchmark's defaults); the quiet entry stays in charge
        c, q = entry["choice"], previous["choice"]
        msg = (f" {c['precision']}, {c['threads']} thread(s), {c['wait_policy']} ({c['median_ms']:.1f} ms) "
               f"on a busy machine: kept the quiet measurement of {previous.get('measured_at', '?')} "
               f"({q['precision']}, {q['threads']} thread(s), {q['wait_policy']})")
        say(msg if notice is None else head + msg)
        return inference_settings(previous)
    try:
        where = f"cached in {save_entry(entry)}"
    except OSError as exc:
        where = f"not cached: {exc}"
    c = entry["choice"]
    msg = (f" {c['precision']}, {c['threads']} thread{'s' if c['threads'] != 1 else ''}, "
           f"OMP_WAIT_POLICY={c['wait_policy']} "
           f"({c['median_ms']:.1f} ms, {time.perf_counter() - started:.0f} s; {where})")
    if is_provisional(entry):
        msg += " [the machine was busy: provisional, measured again when it is quiet]"
    say(msg if notice is None else head + msg)
    return inference_settings(entry, probed=True)


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _stderr_start(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def prepare_process(role: str, force_probe: bool = False) -> RuntimeSettings | None:
    """Call before torch is imported. role 'inference': ensure settings (probe on first use), then set
    OMP_WAIT_POLICY and OMP_NUM_THREADS for this process; 'inference-cached': the same without probing
    (the GUI: a window must open at once); 'training': OMP_WAIT_POLICY=PASSIVE. The user's environment
    always wins."""
    if role == "training":
        _set_env_before_torch("OMP_WAIT_POLICY", "PASSIVE")
        return None
    settings = ensure_settings(force=force_probe) if role == "inference" else inference_settings()
    if settings.wait_policy and settings.source["wait_policy"] != "env":
        _set_env_before_torch("OMP_WAIT_POLICY", settings.wait_policy)
    if settings.source["threads"] != "fallback":
        _set_env_before_torch("OMP_NUM_THREADS", str(settings.threads))
    return settings


def apply_inference_threads(threads: int | None = None) -> int:
    """Set torch and OpenCV threads to `threads` (default: the chosen inference threads); the count."""
    import torch

    n = int(threads or inference_settings().threads)
    torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    return n


def runtime_report(precision: str | None = None) -> dict[str, Any]:
    """The settings in effect for a measurement now: threads, precision (when known), wait policy, and the
    machine's chosen defaults (`runtime`)."""
    threads = None
    if "torch" in sys.modules:
        threads = int(sys.modules["torch"].get_num_threads())
    return {"threads": threads, "precision": precision, "wait_policy": effective_wait_policy(),
            "runtime": inference_settings().to_json()}


# ------------------------------------------------------------------------------------------ the probe


def thread_candidates(n: int) -> list[int]:
    """1..n on small machines; powers of two up to n, plus n, on larger ones."""
    if n <= 4:
        return list(range(1, n + 1))
    out, t = [], 1
    while t < n:
        out.append(t)
        t *= 2
    return [*out, n]


def choose(results: Sequence[dict[str, Any]], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The candidate to use: the fastest median; among candidates within `tolerance` of it, prefer fp32
    (numerically safer), then PASSIVE (kinder to the GUI thread and other work), then fewer threads."""
    timed = [r for r in results if r.get("median_ms") is not None and r["median_ms"] > 0]
    if not timed:
        raise RuntimeError("the probe timed no candidate")
    best = min(r["median_ms"] for r in timed)
    close = [r for r in timed if r["median_ms"] <= best * (1.0 + tolerance)]
    return min(close, key=lambda r: (r["precision"] != "fp32", r["wait_policy"] != "PASSIVE", r["threads"],
                                     r["median_ms"]))


ProbeRunner = Callable[[str, dict[str, Any]], dict[str, Any]]


def probe(
    policies: Sequence[str] = WAIT_POLICIES,
    precisions: Sequence[str] = ("fp32", "bf16"),
    threads: Sequence[int] | None = None,
    spec: str | None = None,
    size: tuple[int, int] = PROBE_SIZE,
    budget_s: float = 6.0,
    runner: ProbeRunner | None = None,
    timeout_s: float = 90.0,
) -> dict[str, Any]:
    """Time every candidate (precision x threads x wait policy) and return the cache entry:
    {choice, candidates, probe, contended, measured_at, ...}. One subprocess per wait policy (`runner`,
    injectable for tests: (policy, args) -> {"results": [...], "bf16_native": bool, "model": str}); bf16 is
    skipped inside it where torch reports no native bf16. `budget_s` is the total timing budget (process start
    not included). Runs inside the measuring queue; never waits for training (marks it instead)."""
    threads = list(threads or thread_candidates(cpu_count()))
    n_candidates = max(1, len(policies) * len(precisions) * len(threads))
    per_candidate = min(0.75, max(0.15, budget_s / n_candidates))
    args = {"spec": spec, "size": list(size), "precisions": list(precisions), "threads": sorted(threads),
            "budget_s": per_candidate}
    run = runner or _run_probe_subprocess
    candidates: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    load = load_average()
    with measuring(while_training=True) as slot:
        for policy in policies:
            out = run(policy, {**args, "timeout_s": timeout_s})
            info.setdefault("model", out.get("model"))
            info["bf16_native"] = out.get("bf16_native")
            candidates += [{**r, "wait_policy": policy} for r in out.get("results", [])]
        runoff = _runoff(candidates, {**args, "budget_s": max(per_candidate, budget_s / 4)}, run, timeout_s)
    choice = choose(runoff or candidates)
    return {
        "choice": {k: choice[k] for k in ("precision", "threads", "wait_policy", *TIMING_KEYS)},
        "runoff": runoff,
        "candidates": candidates,
        "probe": {"model": info.get("model"), "size": list(size), "bf16_native": info.get("bf16_native"),
                  "seconds": round(time.perf_counter() - t0, 2), "per_candidate_s": per_candidate},
        "contended": slot.contended,
        "contended_by": slot.contended_by,
        "load_avg_1m": load,
        "busy": load is not None and load > BUSY_LOAD * cpu_count(),
        "cpu": cpu_model(),
        "cpus": cpu_count(),
        "torch": torch_version(),
        "measured_at": _now(),
    }


def _runoff(candidates: list[dict[str, Any]], args: dict[str, Any], run: ProbeRunner,
            timeout_s: float) -> list[dict[str, Any]]:
    """The first round is short and alternates precisions call by call; a 2-thread row measured there was
    8 % slower than in `bench` while a 1-thread row was 8 % faster, and the choice ran 1.25x slower than the
    fastest (stop 16). So the `RUNOFF_FINALISTS` fastest candidates within `RUNOFF` of the best are timed
    again, each alone in `RUNOFF_ROUNDS` fresh processes (`args["budget_s"]` each: a quarter of the probe's
    budget; the median of their medians), and the choice is made among those."""
    timed = sorted((c for c in candidates if c.get("median_ms")), key=lambda c: c["median_ms"])
    finalists = [c for c in timed if c["median_ms"] <= timed[0]["median_ms"] * (1.0 + RUNOFF)]
    finalists = finalists[:RUNOFF_FINALISTS]
    if len(finalists) < 2:
        return []
    per_finalist: list[list[dict[str, Any]]] = [[] for _ in finalists]
    for _ in range(RUNOFF_ROUNDS):  # alternate: drift of the machine hits every finalist alike
        for c, got in zip(finalists, per_finalist, strict=True):
            res = run(c["wait_policy"], {**args, "precisions": [c["precision"]], "threads": [c["threads"]],
                                         "timeout_s": timeout_s})
            got += [r for r in res.get("results", [])
                    if r["precision"] == c["precision"] and r["threads"] == c["threads"]]
    out = []
    for c, got in zip(finalists, per_finalist, strict=True):
        if got:
            out.append({"precision": c["precision"], "threads": c["threads"], "wait_policy": c["wait_policy"],
                        **{k: statistics.median(r[k] for r in got) for k in TIMING_KEYS},
                        "runs": sum(int(r.get("runs", 0)) for r in got), "processes": len(got)})
    return out


def machine_busy() -> bool:
    """True when the 1-minute load average exceeds BUSY_LOAD per usable CPU (other work is running)."""
    load = load_average()
    return load is not None and load > BUSY_LOAD * cpu_count()


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work the registry cannot see."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _run_probe_subprocess(policy: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run `_probe_child` in a fresh interpreter with OMP_WAIT_POLICY=`policy`; its JSON answer."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p), **{PROBE_ENV: "0"})
    set_wait_policy(policy, env)
    env.pop("OMP_NUM_THREADS", None)
    code = "from stereo_studio.runtime import _probe_child; _probe_child()"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=float(args.get("timeout_s", 90.0)))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"probe process ({policy}) failed: {tail}")
    return json.loads(lines[-1])


def _probe_child(argv: Sequence[str] | None = None) -> None:
    """Inside the probe subprocess: time the probe network for each threads x precision; print one JSON
    line. Threads go up (an OpenMP pool only grows), precisions alternate call by call (drift hits both
    alike); a candidate over 3x slower than the best so far stops after 3 runs (it cannot win)."""
    import numpy as np
    import torch

    from stereo_studio.engine.bench import synthetic_pair
    from stereo_studio.models.matchers import NetMatcher, bf16_is_native

    args = json.loads((argv or sys.argv[1:])[0])
    size = tuple(args["size"])
    model, desc = _probe_model(args.get("spec"))
    native = bf16_is_native()
    precisions = [p for p in args["precisions"] if p != "bf16" or native]
    left, right = synthetic_pair(size, int(getattr(model, "max_disp", 64)))
    budget = float(args["budget_s"])
    results = []
    best = float("inf")
    for n in sorted(args["threads"]):
        torch.set_num_threads(int(n))
        matchers = {p: NetMatcher(model, precision=p) for p in precisions}
        for m in matchers.values():  # warm-up: first calls pick kernels and allocate
            m.predict(left, right)
            m.predict(left, right)
        times: dict[str, list[float]] = {p: [] for p in precisions}
        start = time.perf_counter()
        while True:
            for p, m in matchers.items():
                v = times[p]
                if len(v) >= 3 and float(np.median(v)) > 3.0 * best:
                    continue  # hopeless: keep its 3 runs
                t0 = time.perf_counter()
                m.predict(left, right)
                v.append((time.perf_counter() - t0) * 1000.0)
                if len(v) >= 3:
                    best = min(best, float(np.median(v)))
            live = [v for v in times.values() if len(v) < 3 or float(np.median(v)) <= 3.0 * best]
            done = min((len(v) for v in live), default=50)
            if done >= 50 or (done >= 3 and time.perf_counter() - start > budget * len(precisions)):
                break
        for p, v in times.items():
            results.append({"precision": p, "threads": int(n), "median_ms": float(np.median(v)),
                            "p10_ms": float(np.percentile(v, 10)), "p90_ms": float(np.percentile(v, 90)),
                            "runs": len(v)})
    print(json.dumps({"results": results, "bf16_native": native, "model": desc}), flush=True)


def _probe_model(spec: str | None) -> tuple[Any, str]:
    """The probe network: `spec`, else the bundled student-pruned, else the untrained student architecture."""
    from stereo_studio.models.storage import load_network, resolve_model

    if spec:
        return load_network(spec), spec
    if resolve_model(PROBE_SPEC) is not None:
        return load_network(PROBE_SPEC), PROBE_SPEC
    return load_network(PROBE_FALLBACK_SPEC, max_disp=64), f"{PROBE_FALLBACK_SPEC} (untrained)"


# ------------------------------------------------------------------------------------------ measuring queue


@dataclasses.dataclass
class MeasureSlot:
    """A turn in the measuring queue. `contended_by`: kinds of registered work (e.g. 'training') that ran
    while the measurement did; `waited_s`: time spent waiting for training and for the queue."""

    contended_by: list[str] = dataclasses.field(default_factory=list)
    waited_s: float = 0.0

    @property
    def contended(self) -> bool:
        return bool(self.contended_by)


class _Queue:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.owner: int | None = None
        self.depth = 0
        self.running: dict[str, list[int]] = {}  # kind -> thread idents that registered it (in this process)
        self.epoch: dict[str, int] = {}  # kind -> how many times it started (in this process)


_QUEUE = _Queue()


def _lock_file(name: str) -> int | None:
    """An open fd of `name` next to the cache file, or None when locks across processes are unavailable."""
    if fcntl is None:
        return None
    try:
        path = cache_path().parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None


@contextlib.contextmanager
def running(kind: str) -> Iterator[None]:
    """Register work that disturbs measurements (e.g. a training job) for the duration of the block: seen by
    measurements in this process and, through a shared file lock, in other processes of this user."""
    me = threading.get_ident()
    fd = _lock_file(f"running-{kind}.lock")
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            os.close(fd)
            fd = None
    with _QUEUE.cond:
        _QUEUE.running.setdefault(kind, []).append(me)
        _QUEUE.epoch[kind] = _QUEUE.epoch.get(kind, 0) + 1
    try:
        yield
    finally:
        with _QUEUE.cond:
            _QUEUE.running[kind].remove(me)
            _QUEUE.cond.notify_all()
        if fd is not None:
            os.close(fd)  # releases the lock


def training_running() -> contextlib.AbstractContextManager[None]:
    """`with training_running():` around a training job's loop."""
    return running("training")


def _kind_elsewhere(kind: str) -> bool:
    """True when another process holds `kind` (only asked when this process holds none of it)."""
    fd = _lock_file(f"running-{kind}.lock")
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def active_kinds(include_own_thread: bool = True) -> list[str]:
    """Kinds of registered work running now (this process, other threads or this one, and other processes)."""
    me = threading.get_ident()
    with _QUEUE.cond:
        local = {k: list(v) for k, v in _QUEUE.running.items()}
    kinds = set()
    for kind, holders in local.items():
        if any(include_own_thread or h != me for h in holders):
            kinds.add(kind)
    for name in _known_kinds():
        if name not in kinds and not local.get(name) and _kind_elsewhere(name):
            kinds.add(name)
    return sorted(kinds)


def _known_kinds() -> list[str]:
    names = {"training"} | set(_QUEUE.running)
    with contextlib.suppress(OSError):
        names |= {p.name[len("running-"):-len(".lock")] for p in cache_path().parent.glob("running-*.lock")}
    return sorted(names)


def training_active(include_own_thread: bool = False) -> bool:
    """True while a registered training job runs (in another thread here, or in another process). The
    calling thread's own training (e.g. a sweep's fine-tune generator left open) is ignored unless asked:
    a measurement must not wait for itself."""
    return "training" in active_kinds(include_own_thread)


def measurement_active() -> bool:
    """True while a measurement holds the queue in this process (the GUI can pause its live preview)."""
    with _QUEUE.cond:
        return _QUEUE.owner is not None


@contextlib.contextmanager
def measuring(
    while_training: bool = False,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.25,
) -> Iterator[MeasureSlot]:
    """Take the measuring queue for the block: one measurement at a time (threads of this process, and other
    processes through a file lock). Unless `while_training`, first wait until no training runs (`on_wait`
    gets one message when waiting starts). Yields a MeasureSlot; after the block, its `contended_by` lists
    registered work that ran during it. Re-entrant in one thread (a nested measurement joins the outer
    one)."""
    me = threading.get_ident()
    slot = MeasureSlot()
    with _QUEUE.cond:
        nested = _QUEUE.owner == me
        if nested:
            _QUEUE.depth += 1
    if nested:
        try:
            slot.contended_by = active_kinds(include_own_thread=True)
            yield slot
        finally:
            with _QUEUE.cond:
                _QUEUE.depth -= 1
        return

    t_wait = time.perf_counter()
    told = False
    fd = None
    while True:
        if not while_training:
            while training_active():
                if not told and on_wait is not None:
                    on_wait("waiting for the training job to finish before measuring "
                            "(ask to measure while training to measure now, marked contended)")
                told = True
                time.sleep(poll_s)
        with _QUEUE.cond:
            while _QUEUE.owner is not None:
                _QUEUE.cond.wait()
            _QUEUE.owner, _QUEUE.depth = me, 1
        fd = _lock_file("measure.lock")
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                os.close(fd)
                fd = None
        if while_training or not training_active():
            break
        _release(fd)  # training started while we queued: wait again
        fd = None
    slot.waited_s = time.perf_counter() - t_wait
    with _QUEUE.cond:
        epoch0 = dict(_QUEUE.epoch)
    kinds = set(active_kinds(include_own_thread=True))
    try:
        yield slot
    finally:
        kinds |= set(active_kinds(include_own_thread=True))
        with _QUEUE.cond:
            kinds |= {k for k, e in _QUEUE.epoch.items() if e != epoch0.get(k, 0)}
        slot.contended_by = sorted(kinds)
        _release(fd)


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
    with _QUEUE.cond:
        _QUEUE.owner, _QUEUE.depth = None, 0
        _QUEUE.cond.notify_all()
