"""Generator ablation (issue 12): which procedural-generator choices transfer to real images.

For each variant of `stereo_studio.data.synthetic.GENERATORS` (one change against the default): generate 1000
pairs at 256x512 with seed 1 into runs/gen-<name>/, train a student from scratch at a fixed small budget into
runs/ablation-<name>/, then score its final model on synthetic validation (the default generator, seed 0, 50
pairs at 256x512: the same pairs for every variant) and on Middlebury Aloe Q (read from ../shared/data, never
trained on). Results go to models/experiments/generator-ablation/results.json. Run from the repository root:

    nohup .venv/bin/python models/generator_ablation.py [NAME...] > runs/generator-ablation.log 2>&1 &
    .venv/bin/python models/generator_ablation.py --table     # the markdown table of what is done

Resumable: a variant whose scores are recorded is skipped, finished data and runs are reused, and an
interrupted training run continues from its last checkpoint. Variants run one after another (a lock file
stops a second instance).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / ".venv" / "bin" / "stereo-studio")
RESULTS = ROOT / "models" / "experiments" / "generator-ablation" / "results.json"
LOCK = ROOT / "runs" / "generator-ablation.lock"
ALOE = ROOT.parent / "shared" / "data" / "middlebury" / "trainingQ" / "Aloe"
# Baseline first, then alternately the candidate improvements and the levers of the notes; clutter-thin (the
# two changes that helped alone, combined) and the replicates were added as the results came in; clutter-floor
# (stop 21) adds steep ground planes to the winner; clutter-photo (stop 23) paints half its surfaces with
# crops of real photographs (runs/photos, models/fetch_photos.sh).
ORDER = ["default", "clutter", "few-objects", "thin", "same-views", "default-seed1", "clutter-thin",
         "clutter-thin-seed1", "clutter-seed1", "plain", "steep", "clutter-floor", "clutter-floor-seed1",
         "clutter-photo", "clutter-photo-seed1"]
# Replicates: (generator, training seed) on the generator's data, to measure the run-to-run noise.
REPLICATES = {"default-seed1": ("default", 1), "clutter-thin-seed1": ("clutter-thin", 1),
              "clutter-seed1": ("clutter", 1), "clutter-floor-seed1": ("clutter-floor", 1),
              "clutter-photo-seed1": ("clutter-photo", 1)}
PHOTOS = ROOT / "runs" / "photos"
DATA = {"pairs": 1000, "size": "256x512", "seed": 1, "max_disp": 64}
TRAIN = ["--arch", "student", "--steps", "1200", "--batch-size", "6", "--crop", "160x288", "--lr", "1e-3",
         "--threads", "1", "--precision", "fp32", "--seed", "0", "--max-disp", "64", "--val-pairs", "4",
         "--val-interval", "600", "--ckpt-interval", "200"]
SYNTH_VAL = ["--data", "synthetic", "--seed", "0", "--limit", "50", "--size", "256x512", "--max-disp", "64"]
METRICS = ("epe", "bad2", "bad3")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run(cmd: list[str], env: dict[str, str] | None = None, nice: bool = False) -> str:
    """Run a command from the repository root; return its stdout (stderr passes through)."""
    full = (["nice", "-n", "5"] if nice else []) + cmd
    _log(" ".join(full))
    out = subprocess.run(full, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout


def _load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"protocol": _protocol(), "variants": {}}


def _save(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Atomically: a killed run never leaves a half-written results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def score_cells(entry: dict[str, Any]) -> list[str]:
    """"EPE / bad-2 / bad-3" on synthetic validation and on Aloe Q, for a results row."""
    return [" / ".join([f"{e['epe']:.2f}", f"{e['bad2']:.1f} %", f"{e['bad3']:.1f} %"])
            for e in (entry["synthetic"], entry["aloe_q"])]


def _protocol() -> dict[str, Any]:
    return {
        "data": {**DATA, "folder": "runs/gen-<name>"},
        "train": "stereo-studio train --data runs/gen-<name> " + " ".join(TRAIN)
                 + " --out runs/ablation-<name> (OMP_WAIT_POLICY=PASSIVE, nice -n 5)",
        "synthetic_val": "stereo-studio eval --model runs/ablation-<name>/model " + " ".join(SYNTH_VAL)
                         + " --precision fp32 (default generator)",
        "aloe_q": "stereo-studio eval --model runs/ablation-<name>/model --data "
                  "../shared/data/middlebury/trainingQ/Aloe --precision fp32",
        "machine": "2 CPU cores shared with other jobs (a teacher training run among them)",
    }


def _generate(name: str) -> float | None:
    """runs/gen-<name>, generated unless complete; returns pairs per second when generated now."""
    folder = ROOT / "runs" / f"gen-{name}"
    marker = folder / "generator.json"
    if marker.exists() and json.loads(marker.read_text()).get("generator") == name:
        return None
    from stereo_studio.data.synthetic import generator_config

    photos = []
    if generator_config(name).photo_prob > 0:
        _run(["bash", str(ROOT / "models" / "fetch_photos.sh"), str(PHOTOS)])
        photos = ["--photos", str(PHOTOS)]
    start = time.time()
    _run([CLI, "generate", "--out", str(folder), "--pairs", str(DATA["pairs"]), "--size", DATA["size"],
          "--seed", str(DATA["seed"]), "--max-disp", str(DATA["max_disp"]), "--generator", name, *photos])
    rate = DATA["pairs"] / (time.time() - start)
    marker.write_text(json.dumps({"generator": name, **DATA, "pairs_per_s": round(rate, 1)}) + "\n")
    return rate


def _train(name: str, generator: str, seed: int) -> dict[str, Any]:
    run = ROOT / "runs" / f"ablation-{name}"
    summary = run / "summary.json"
    if not (summary.exists() and (run / "model").exists()):
        resume = ["--resume"] if (run / "checkpoints" / "last.pt").exists() else []
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        at = TRAIN.index("--seed") + 1
        args = [*TRAIN[:at], str(seed), *TRAIN[at + 1:]]
        _run([CLI, "train", "--data", f"runs/gen-{generator}", *args, "--out", f"runs/ablation-{name}",
              *resume], env=env, nice=True)
    return json.loads(summary.read_text())


def _eval(name: str, data: list[str]) -> dict[str, float]:
    model = f"runs/ablation-{name}/model"
    out = _run([CLI, "eval", "--model", model, *data, "--precision", "fp32", "--json"])
    result = json.loads(out.strip().splitlines()[-1])
    return {k: result[k] for k in METRICS}


def _description(name: str) -> str:
    from stereo_studio.data.synthetic import generator_config

    if name in REPLICATES:
        generator, seed = REPLICATES[name]
        return f"`{generator}` again with training seed {seed} (run-to-run noise)"
    return generator_config(name).description


def run_variant(name: str, results: dict[str, Any]) -> None:
    entry = results["variants"].get(name, {})
    if "synthetic" in entry and "aloe_q" in entry:
        _log(f"{name}: done, skipped")
        return
    generator, seed = REPLICATES.get(name, (name, 0))
    rate = _generate(generator)
    summary = _train(name, generator, seed)
    entry = {"description": _description(name), "generator": generator, "train_seed": seed,
             "train_steps": summary.get("steps"),
             "train_time_s": summary.get("train_time_s"), "it_s": summary.get("it_s"),
             "resumed_from": summary.get("resumed_from"), "train_validation": summary.get("validation")}
    if rate is not None:
        entry["generate_pairs_per_s"] = round(rate, 1)
    entry["synthetic"] = _eval(name, SYNTH_VAL)
    entry["aloe_q"] = _eval(name, ["--data", str(ALOE)])
    entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entry["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    results["variants"][name] = entry
    _save(results)
    _log(f"{name}: synthetic {entry['synthetic']}, Aloe Q {entry['aloe_q']}")


def table(results: dict[str, Any], names: list[str]) -> str:
    """Markdown table: one row per variant, pending where not scored yet."""
    lines = ["| generator | change against the default | synthetic val: EPE / bad-2 / bad-3 "
             "| Aloe Q: EPE / bad-2 / bad-3 |", "|---|---|---|---|"]
    for name in names:
        entry = results["variants"].get(name)
        desc = _description(name)
        if not entry or "aloe_q" not in entry:
            lines.append(f"| `{name}` | {desc} | pending | pending |")
            continue
        cells = score_cells(entry)
        lines.append(f"| `{name}` | {desc} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"variants to run (default, in order: {' '.join(ORDER)})")
    parser.add_argument("--table", action="store_true", help="print the markdown table of the results, exit")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    names = args.names or ORDER
    if args.table:
        print(table(_load(), names))
        return 0
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = LOCK.read_text().strip()
        print(f"another ablation holds {LOCK} (pid {pid}); remove it if stale", file=sys.stderr)
        return 1
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    try:
        for name in names:
            run_variant(name, _load())
    finally:
        LOCK.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
