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
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import held_out_pair

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "stereo_studio" / "models" / "bundled"  # package data (see pyproject.toml)
SHARED = REPO.parent / "shared" / "data" / "middlebury"
REAL_SETS = ("trainingQ/Aloe", "trainingH/Aloe")
LIMITS = {
    "teacher": "the most accurate model here, but a 3D-convolution net: too slow for live use on 2 cores. "
    "`teacher-down` (the teacher before, chosen on Aloe Q among eight runs) widened 2.6x in parameters "
    "and trained 5,500 steps more; shipped by a rule fixed before its run (beat SGBM on Aloe Q and "
    "`teacher-down` on held-out synthetic pairs), and it is better on every held-out set too "
    "(models/README.md). The bundled students were distilled from `teacher-down` first and from this "
    "teacher for their last 3,000 steps (the pruned one recovered from it)",
    "student": "unpruned distilled student; for live use prefer student-pruned",
    "student-scratch": "evidence for (or against) distillation: same architecture and step budget as "
    "`student`, trained on ground truth alone; not in the app's default list",
    "student-pruned": "the real-time model; pruned structurally, so its widths differ from `student`. "
    "`student` cut at 0.75 of the MACs and recovered 6,000 steps (`student-wide-pruned`), then given the "
    "windowed regression (`regression_window` 3: the 1/4-res soft-argmin over each pixel's peak +- 3) and "
    "fine-tuned 3,000 steps with it (the training recipe above starts from that copy, which the recipe "
    "rebuilds in `runs/`); `student` keeps the full soft-argmin",
}


# models/recipe.sh stages of the run folders under models/checkpoints/ named otherwise (the other folders:
# the stage is the folder's name).
RUN_STAGES = {"student-scratch": "scratch", "student-pruned": "pruned",
              "student-rescaled-pruned": "pruned-rescaled", "student-scratch-fresh": "scratch-fresh",
              "student-fresh-pruned": "pruned-fresh", "student-lean-pruned": "pruned-lean",
              "student-scratch-scale": "scratch-scale", "student-scale-pruned": "pruned-scale",
              "student-scratch-more": "scratch-more", "student-down-pruned": "pruned-down",
              "student-down-pruned-ema": "pruned-down-ema", "student-down-mix-pruned": "pruned-mix",
              "student-scratch-mix": "scratch-mix",
              "student-down-mix-pruned-long": "pruned-mix-long",
              "student-down-mix-pruned-625": "pruned-mix-625",
              "student-scratch-convex": "scratch-convex", "student-scratch-mix-more": "scratch-mix-more",
              "student-convex-pruned": "pruned-convex", "student-mix-more-pruned": "pruned-mix-more",
              "student-down-mix-pruned-edge": "pruned-direct-edge", "student-scratch-edge": "scratch-edge",
              "student-edge-pruned": "pruned-edge", "student-down-mix-pruned-edge8": "pruned-direct-edge8",
              "student-scratch-edge-more": "scratch-edge-more",
              "student-edge-more-pruned": "pruned-edge-more", "student-edge-planned": "pruned-edge-planned",
              "student-scratch-wide": "scratch-wide", "student-wide-pruned": "pruned-wide",
              "student-wide-pruned-ta": "pruned-ta", "student-wide-pruned-ta-only": "pruned-ta-only",
              "student-wide-pruned-window": "pruned-window",
              "student-wide-pruned-window-control": "pruned-window-control",
              "student-scratch-window": "scratch-window", "student-window-pruned": "pruned-window-trio"}


def _stage(run_dir: str | Path) -> str:
    """The recipe stage that trains the run folder `run_dir`."""
    name = Path(run_dir).name
    return RUN_STAGES.get(name, name)


def _bases(training: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished runs a fine-tune started from, newest first (`models/ship.py`: a `base` may have one)."""
    chain, base = [], training.get("base")
    while base:
        chain.append(base)
        base = base.get("base")
    return chain


def _wall_hours(training: dict[str, Any]) -> float:
    """Training wall time in hours, over every work session (`models/ship.py`), else the last one's, plus
    the runs a fine-tune started from."""
    seconds = training.get("wall_time_s", training.get("summary", {}).get("train_time_s", 0.0))
    return (seconds + sum(b.get("wall_time_s", 0.0) for b in _bases(training))) / 3600


def _curve(points: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['step']}: {v['val_epe']:.2f}" for v in points if v["step"] % 1000 == 0
                     or v is points[-1])


def _recipe_lines(name: str, training: dict[str, Any]) -> list[str]:
    """The card's training recipe: budget, data, losses, prune-ready settings and the validation curve."""
    summary, cfg = training.get("summary", {}), training.get("config", {})
    crop = "x".join(map(str, cfg.get("crop", []))) or "?"
    bases = _bases(training)
    stages = _stage(Path(summary["model"]).parent) if summary.get("model") else name
    stages = " ".join([_stage(b["run"]) for b in reversed(bases)] + [stages])
    threads = cfg.get("threads", "?")
    text = (f"Command: `bash models/recipe.sh {stages}` (the exact recipe, resumable; "
            f"`models/README.md`). Steps {summary.get('steps', '?')}, batch {cfg.get('batch_size', '?')} of "
            f"{crop} crops, lr {cfg.get('lr', '?')} ({cfg.get('schedule', '?')}), "
            f"{cfg.get('precision', '?')}, {threads} thread{'s' if threads != 1 else ''}, "
            f"data {', '.join(cfg.get('data', [])) or '?'}")
    if cfg.get("teacher"):
        text += (f", teacher {cfg['teacher']}, loss weights teacher {cfg.get('w_teacher')} / ground truth "
                 f"{cfg.get('w_gt')}")
    else:
        text += ", ground truth only"
    if cfg.get("aug_scale"):
        text += f", random scale {cfg['aug_scale'][0]}-{cfg['aug_scale'][1]}x"
    if cfg.get("edge_weight"):
        text += f", pixels near depth edges counted {1 + cfg['edge_weight']:g}x in the losses"
    if cfg.get("ema"):
        text += f", the shipped weights a moving average of the trained ones (decay {cfg['ema']})"
    if cfg.get("prune_ready"):
        text += (f", prune-ready ({cfg.get('sparsity_method')}, reg {cfg.get('sparsity_reg')}, target "
                 f"{cfg.get('target_ratio')} of the MACs)")
    if bases:
        text += ", fine-tuned from " + ", itself fine-tuned from ".join(
            f"the finished run `{b['run']}` ({b['steps']} steps, {b['wall_time_s'] / 3600:.1f} h)"
            for b in bases)
    elif cfg.get("init_from"):
        text += f", started from `{cfg['init_from']}`"
    lines = [text + f"; wall time {_wall_hours(training):.1f} h on 2 shared CPU cores"
             + (" in all." if bases else ".")]
    curve = training.get("validation", [])
    if curve:
        where = cfg.get("val_data") or "held-out pairs"
        lines += ["", f"Validation curve on `{where}` (EPE by step; watched, never trained on, never used to "
                  f"pick a checkpoint: the final step ships): {_curve(curve)}."]
        for i, b in enumerate(bases):
            if b.get("validation"):
                which = "The run it started from" if i == 0 else "The run before that"
                lines[-1] += f" {which} (`{Path(b['run']).name}`): {_curve(b['validation'])}."
    return lines


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
    with tempfile.TemporaryDirectory() as tmp:
        held_out = held_out_pair.scene_folder(Path(tmp))
        if held_out is not None:
            label = f"Middlebury 2014 {held_out_pair.NAME}"
            results[label] = cli("eval", "--model", name, "--data", str(held_out))
            cmds += ["python -m benchmarks.held_out_pair /tmp/held-out",  # the `bench` extra
                     f"stereo-studio eval --model {name} --data /tmp/held-out/Motorcycle --json"]
    for data, r in results.items():
        rows.append(f"| {data} | {r['epe']:.3f} | {r['bad1']:.1f} | {r['bad2']:.1f} | {r['bad3']:.1f} | "
                    f"{r['d1']:.1f} | {r['ms_per_pair']:.1f} |")
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
        f"{bench['latency_ms']:.1f} ms (p90 {bench.get('p90_ms', float('nan')):.1f} ms; this machine's "
        f"defaults: {bench.get('precision', '?')}, {bench.get('threads', '?')} threads, OMP_WAIT_POLICY "
        f"{bench.get('wait_policy', 'default')}) on this project's 2-core CPU, measured {dt.date.today()}. "
        "Latency varies by 10-30 % between processes on this VM: `BENCHMARKS.md` compares models in one run.",
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
        *_recipe_lines(name, training),
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
        f"- CPU training budget ({_wall_hours(training):.1f} h on 2 cores over the run above and the runs it"
        " started from; not GPU-days): edges are soft and thin structures are often lost.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    for folder in sorted(p for p in MODELS.iterdir() if (p / "config.json").exists()):
        (folder / "card.md").write_text(card(folder.name))
        print(f"wrote {folder / 'card.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
