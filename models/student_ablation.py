"""Student architecture ablation (issue 12, item 4): which layers the student can drop for speed on this CPU.

Same protocol as the generator ablation (`models/generator_ablation.py`: 1,200 steps x batch 6 of 160x288 from
scratch on ground truth, 1 thread, seed 0; scored on synthetic validation and on Aloe Q), on the `clutter`
data the v2 students train on (runs/gen-clutter), so its baseline is that ablation's `clutter` row (the v1
architecture, two training seeds). Each variant is a `--model-config` override of the student. Results go to
models/experiments/student-ablation/results.json. Run from the repository root:

    nohup .venv/bin/python models/student_ablation.py [NAME...] > runs/student-ablation.log 2>&1 &
    .venv/bin/python models/student_ablation.py --table

Latency is not measured here (the runs share the machine): see models/README.md for the quiet measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generator_ablation as ga

RESULTS = ga.ROOT / "models" / "experiments" / "student-ablation" / "results.json"
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "lean": ("no residual block at 1/2 resolution (features, refinement)",
             {"half_block": False, "refine_block": False}),
    "no-refine-block": ("no residual block in the 1/2-res refinement (the features keep theirs)",
                        {"refine_block": False}),
    "no-half-feature-block": ("no residual block in the 1/2-res features (the refinement keeps its)",
                              {"half_block": False}),
    "lean-small": ("`lean`, one aggregation block and no 1/8-res branch",
                   {"half_block": False, "refine_block": False, "agg_blocks": 1, "low_res_channels": 0}),
}


def _load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"variants": {}}

# Replicates: (variant, training seed), to see the run-to-run noise.
REPLICATES = {"lean-small-seed1": ("lean-small", 1)}


def _macs(overrides: dict[str, Any]) -> float:
    from stereo_studio.engine.pruning import macs_params
    from stereo_studio.models.registry import build_model, default_config

    return macs_params(build_model(default_config("student", max_disp=64, **overrides)), (240, 320))["macs"]


def run_variant(name: str) -> None:
    if "aloe_q" in _load()["variants"].get(name, {}):
        ga._log(f"{name}: done, skipped")
        return
    variant, seed = REPLICATES.get(name, (name, 0))
    description, overrides = VARIANTS[variant]
    if seed:
        description = f"`{variant}` again with training seed {seed} (run-to-run noise)"
    run = ga.ROOT / "runs" / f"ablation-arch-{name}"
    if not ((run / "summary.json").exists() and (run / "model").exists()):
        resume = ["--resume"] if (run / "checkpoints" / "last.pt").exists() else []
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        at = ga.TRAIN.index("--seed") + 1
        train = [*ga.TRAIN[:at], str(seed), *ga.TRAIN[at + 1:]]
        ga._run([ga.CLI, "train", "--data", "runs/gen-clutter", *train, "--model-config",
                 json.dumps(overrides), "--out", str(run.relative_to(ga.ROOT)), *resume], env=env, nice=True)
    summary = json.loads((run / "summary.json").read_text())
    entry = {"description": description, "model_config": overrides, "train_seed": seed,
             "gmac_240x320": round(_macs(overrides) / 1e9, 3), "train_time_s": summary.get("train_time_s"),
             "it_s": summary.get("it_s")}
    entry["synthetic"] = ga._eval(f"arch-{name}", ga.SYNTH_VAL)
    entry["aloe_q"] = ga._eval(f"arch-{name}", ["--data", str(ga.ALOE)])
    entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = _load()  # read again just before writing: variants may run in parallel processes
    results["variants"][name] = entry
    ga._save(results, RESULTS)
    ga._log(f"{name}: synthetic {entry['synthetic']}, Aloe Q {entry['aloe_q']}")


def table() -> str:
    """Markdown: the v1 architecture (the generator ablation's `clutter` rows) and every variant scored."""
    base = ga._load()["variants"]
    lines = ["| student | GMAC at 240x320 | synthetic val: EPE / bad-2 / bad-3 "
             "| Aloe Q: EPE / bad-2 / bad-3 |", "|---|---|---|---|"]

    for name in ("clutter", "clutter-seed1"):
        if "aloe_q" in base.get(name, {}):
            s, q = ga.score_cells(base[name])
            lines.append(f"| v1 architecture (`{name}` of the generator ablation) | {_macs({}) / 1e9:.3f} "
                         f"| {s} | {q} |")
    for name, entry in _load()["variants"].items():
        s, q = ga.score_cells(entry)
        lines.append(f"| `{name}`: {entry['description']} | {entry['gmac_240x320']:.3f} | {s} | {q} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"variants (default: {' '.join([*VARIANTS, *REPLICATES])})")
    parser.add_argument("--table", action="store_true", help="print the markdown table, exit")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ga.ROOT))
    if args.table:
        print(table())
        return 0
    for name in args.names or [*VARIANTS, *REPLICATES]:
        run_variant(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
