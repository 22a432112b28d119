"""Write `stereo_studio/models/bundled/<name>/card.md` for every bundled model:
`python -m benchmarks.model_cards`.

Every number on a card comes from the project's own CLI (`stereo-studio eval ... --json` and
`stereo-studio bench ... --json`, run as subprocesses), so the same commands reproduce the card exactly.
The training recipe comes from `<that folder>/training.json` (the run's config and summary, copied when
the model was shipped) and the commands in `models/README.md`.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "stereo_studio" / "models" / "bundled"  # package data (see pyproject.toml)
SHARED = REPO.parent / "shared" / "data" / "middlebury"
REAL_SETS = ("trainingQ/Aloe", "trainingH/Aloe")
LIMITS = {
    "teacher": "the most accurate model here, but a 3D-convolution net: too slow for live use on 2 cores",
    "student": "unpruned distilled student; for live use prefer student-pruned",
    "student-scratch": "evidence for (or against) distillation: same architecture and step budget as "
    "`student`, trained on ground truth alone; not in the app's default list",
    "student-pruned": "the real-time model; pruned structurally, so its widths differ from `student`",
}


def cli(*args: str) -> dict[str, Any]:
    """Run `stereo-studio ARGS --json` and return its JSON object (raises with stderr on failure)."""
    cmd = [sys.executable, "-m", "stereo_studio", *args, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def card(name: str) -> str:
    folder = MODELS / name
    config = json.loads((folder / "config.json").read_text())
    training_file = folder / "training.json"
    training = json.loads(training_file.read_text()) if training_file.exists() else {}
    arch = {k: v for k, v in config.items() if k not in ("meta", "pruned_shapes")}
    bench = cli("bench", "--model", name, "--size", "240x320")
    rows = []
    cmds = [f"stereo-studio eval --model {name} --data synthetic --json"]
    synthetic = "held-out synthetic (20 pairs, seed 0, 256x512)"
    results = {synthetic: cli("eval", "--model", name, "--data", "synthetic")}
    for rel in REAL_SETS:
        path = SHARED / rel
        if path.exists():
            results[f"Middlebury 2006 {rel}"] = cli("eval", "--model", name, "--data", str(path))
            cmds.append(f"stereo-studio eval --model {name} --data ../shared/data/middlebury/{rel} --json")
    for data, r in results.items():
        rows.append(f"| {data} | {r['epe']:.3f} | {r['bad1']:.1f} | {r['bad2']:.1f} | {r['bad3']:.1f} | "
                    f"{r['d1']:.1f} | {r['ms_per_pair']:.1f} |")
    summary = training.get("summary", {})
    run_cfg = training.get("config", {})
    lines = [
        f"# Model card: `{name}`",
        "",
        f"Architecture `{config['arch']}`, max disparity {config['max_disp']}"
        + (", structurally pruned (widths stored in config.json)" if "pruned_shapes" in config else "")
        + ".",
        "",
        f"## Cost (`stereo-studio bench --model {name} --size 240x320 --json`)",
        "",
        f"params {bench['params']:,}; MACs {bench['macs'] / 1e9:.3f} G at 240x320; latency median "
        f"{bench['latency_ms']:.1f} ms (p90 {bench.get('p90_ms', float('nan')):.1f} ms, "
        f"{bench.get('threads', '?')} threads, fp32) on this project's 2-core CPU, "
        f"measured {dt.date.today()}.",
        "",
        "## Accuracy",
        "",
        "| data | EPE px | bad-1 % | bad-2 % | bad-3 % | D1 % | ms / pair |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Reproduce: " + "; ".join(f"`{c}`" for c in cmds) + ".",
        "",
        "## Training recipe",
        "",
        f"Command: see `models/README.md` (section `{name}`). Steps {summary.get('steps', '?')}, "
        f"batch {run_cfg.get('batch_size', '?')} of {run_cfg.get('crop', '?')} crops, "
        f"lr {run_cfg.get('lr', '?')} "
        f"({run_cfg.get('schedule', '?')}), data {run_cfg.get('data', '?')}, "
        f"teacher {run_cfg.get('teacher')}, "
        f"loss weights teacher {run_cfg.get('w_teacher')} / ground truth {run_cfg.get('w_gt')}; "
        f"wall time {summary.get('train_time_s', 0) / 60:.1f} min on 2 shared CPU cores"
        + (f", started from `{run_cfg['init_from']}`" if run_cfg.get("init_from") else "") + ".",
        "",
        "## Architecture config",
        "",
        "```json",
        json.dumps(arch, indent=1),
        "```",
        "",
        "## Known limits",
        "",
        f"- {LIMITS.get(name, '')}.",
        "- Trained only on the project's procedural synthetic generator (no real images, no real ground"
        " truth); accuracy on real scenes is what the Middlebury rows above show.",
        f"- Disparities above {config['max_disp']} px cannot be predicted (Aloe H reaches 105 px, so its"
        " near surfaces are out of range at that size).",
        "- Short CPU training budget (minutes, not days): edges are soft and thin structures are often lost.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    for folder in sorted(p for p in MODELS.iterdir() if (p / "config.json").exists()):
        (folder / "card.md").write_text(card(folder.name))
        print(f"wrote {folder / 'card.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
