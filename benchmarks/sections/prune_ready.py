"""Prune-ready training (issue 11, item 1): a student distilled with `distill --prune-ready` against the plain
distilled student of the same budget, unpruned and pruned at 0.5 *without* a fine-tune.

Every student: the bundled student's recipe (bundled teacher, 1,500 steps x batch 4, 192x320 crops, lr 1e-3,
seed 0, `models/recipe.sh`); the plain one is the bundled `student` itself, the prune-ready ones add
`--prune-ready --target-ratio 0.5` with a method and strength (`--sparsity-method M --sparsity-reg S`,
labelled from each model's own metadata), kept in `models/experiments/prune-ready/<name>/`. Pruned points:
ratio 0.5 (fraction of MACs removed, global ranking, L1, widths multiple of 8), raw and with BatchNorm
statistics re-estimated on 8 synthetic pairs (generator seed 515151, neither training nor validation data).
Done when the prune-ready student's unpruned EPE is within 1.05x of the plain one and its best pruned point
within 1.25x of its own unpruned EPE, on held-out synthetic (generator seed 0) and on Aloe Q.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import num, table

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "models" / "experiments" / "prune-ready"
PLAIN = "student (plain distillation, bundled)"
ALOE_Q = REPO.parent / "shared" / "data" / "middlebury" / "trainingQ" / "Aloe"
RATIO = 0.5
SYNTH_PAIRS = 20
CALIB_PAIRS = 8
UNPRUNED_GOAL, PRUNED_GOAL = 1.05, 1.25


def _datasets(quick: bool) -> dict[str, Any]:
    from stereo_studio.data.datasets import open_dataset

    n = 2 if quick else SYNTH_PAIRS
    out: dict[str, Any] = {"held-out synthetic": open_dataset("synthetic", limit=n, seed=0)}
    if ALOE_Q.is_dir():
        out["Aloe Q"] = open_dataset(str(ALOE_Q))
    return out


def _accuracy(model: Any, dataset: Any) -> dict[str, float]:
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import drain
    from stereo_studio.models.matchers import NetMatcher

    return drain(evaluate(NetMatcher(model, precision="fp32"), dataset, warmup=False))


def _variants(spec: str, quick: bool) -> dict[str, Any]:
    """unpruned / raw / recalibrated models of one student, and the MACs the plan removed."""
    from stereo_studio.engine.pruning import prune_model, recalibrate_bn
    from stereo_studio.engine.sweep import calibration_samples
    from stereo_studio.models.storage import load_net

    model = load_net(spec).eval()
    pruned = prune_model(model, RATIO, criterion="l1", round_to=8).eval()
    calib = calibration_samples("synthetic", 2 if quick else CALIB_PAIRS, (240, 320), 64)
    return {"unpruned": model, "raw": pruned, "recalibrated": recalibrate_bn(pruned, calib),
            "removed": float(pruned.meta["pruning"]["macs_removed"])}


def _label(run: Path) -> str:
    """"prune-ready (`folder`): method, reg R[, from S of the steps]" from the model's own metadata."""
    import json

    meta = json.loads((run / "config.json").read_text()).get("meta", {}).get("prune_ready", {})
    start = float(meta.get("start") or 0.0)
    return (f"prune-ready (`{run.name}`): {meta.get('method', '?')}, reg {meta.get('reg', '?'):g}"
            + (f", from {start:g} of the steps" if start else ""))


def measure(quick: bool) -> str:
    from stereo_studio.engine.pruning import macs_params

    found = EXPERIMENTS.iterdir() if EXPERIMENTS.is_dir() else []
    runs = sorted(p for p in found if (p / "config.json").is_file())
    if not runs:
        where = EXPERIMENTS.relative_to(REPO)
        return f"_No prune-ready student in `{where}`: run `bash models/recipe.sh prune-ready`._"
    models = {PLAIN: "student", **{_label(p): str(p) for p in runs}}
    data = _datasets(quick)
    rows, results = [], {}
    for label, spec in models.items():
        v = _variants(spec, quick)
        for kind in ("unpruned", "raw", "recalibrated"):
            model = v[kind]
            cost = macs_params(model, (240, 320))
            accs = {name: _accuracy(model, ds) for name, ds in data.items()}
            results[(label, kind)] = accs
            rows.append([label, kind, f"{v['removed'] if kind != 'unpruned' else 0.0:.1%}",
                         f"{cost['params']:,}", f"{cost['macs'] / 1e9:.3f}",
                         *[f"{num(a['epe'], '.3f')} / {num(a['bad3'], '.1f')} %" for a in accs.values()]])
    parts = [table(["model", "pruned at 0.5", "MACs removed", "params", "GMACs (240x320)",
                    *[f"{name}: EPE / bad-3" for name in data]], rows)]
    verdicts = []
    for ready in list(models)[1:]:
        for name in data:
            base = results[(PLAIN, "unpruned")][name]["epe"]
            own = results[(ready, "unpruned")][name]["epe"]
            best = min(results[(ready, k)][name]["epe"] for k in ("raw", "recalibrated"))
            r1, r2 = own / base, best / own
            verdicts.append([ready, name, f"{r1:.3f}x", "**pass**" if r1 <= UNPRUNED_GOAL else "**miss**",
                             f"{r2:.3f}x", "**pass**" if r2 <= PRUNED_GOAL else "**miss**"])
    plain_rows = []
    for name in data:
        base = results[(PLAIN, "unpruned")][name]["epe"]
        best = min(results[(PLAIN, k)][name]["epe"] for k in ("raw", "recalibrated"))
        plain_rows.append(f"{name} {best / base:.2f}x")
    parts.append(table(["student", "data", f"unpruned / plain unpruned (goal <= {UNPRUNED_GOAL}x)", "",
                        f"pruned at 0.5, best of raw / recalibrated, / its unpruned (goal <= {PRUNED_GOAL}x)",
                        ""], verdicts))
    parts.append("The plain student pruned at 0.5 the same way (best of raw / recalibrated) / its unpruned "
                 "EPE: " + ", ".join(plain_rows) + ".")
    return "\n\n".join(parts)
