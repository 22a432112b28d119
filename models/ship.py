"""Ship a finished training run as a bundled model: `python models/ship.py RUN_DIR DEST_DIR`.

Copies `RUN_DIR/model/{config.json,model.safetensors}` into `DEST_DIR` and writes `DEST_DIR/training.json`:
the run's config and summary, its validation curve (step, EPE, bad-2, bad-3) and its wall time summed over
every work session that trained it (`summary.train_time_s` covers the last session only). A fine-tune whose
`init_from` is another run's model folder also records that run (`base`: folder, steps, wall time, curve,
and its own `base` if it was a fine-tune too).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def run_history(metrics_file: Path) -> tuple[list[dict[str, Any]], float]:
    """(validation records, total wall seconds) from a run's metrics.jsonl. Step records carry the seconds
    since their session started: a session ends where that clock goes back."""
    validation: list[dict[str, Any]] = []
    total, last = 0.0, 0.0
    for line in metrics_file.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("kind") == "validation":
            keys = ("step", "val_epe", "val_bad2", "val_bad3")
            validation.append({k: record[k] for k in keys if k in record})
        elif record.get("kind") == "step" and "time_s" in record:
            if record["time_s"] < last:
                total += last
            last = record["time_s"]
    return validation, total + last


def base_run(config: dict[str, Any]) -> dict[str, Any] | None:
    """The finished run a fine-tune started from (`init_from` = `<run>/model`, or a copy of it that
    models/with_options.py gave options), with the run that one started from as its `base`, and so on; or
    None."""
    init = config.get("init_from")
    if not init:
        return None
    copy_config = Path(init) / "config.json"  # a copy given options (models/with_options.py): its source
    if copy_config.is_file():
        init = json.loads(copy_config.read_text()).get("meta", {}).get("options_from") or init
    run = Path(init).parent
    if not (run / "metrics.jsonl").exists() or not (run / "summary.json").exists():
        return None  # a bundled name, or a model folder that is not a run's (e.g. a freshly pruned model)
    validation, wall_s = run_history(run / "metrics.jsonl")
    steps = json.loads((run / "summary.json").read_text()).get("steps")
    base = {"run": str(run), "steps": steps, "wall_time_s": round(wall_s, 1), "validation": validation}
    config_file = run / "config.json"
    earlier = base_run(json.loads(config_file.read_text())) if config_file.exists() else None
    if earlier:  # a fine-tune of a fine-tune: the whole chain
        base["base"] = earlier
    return base


def ship(run_dir: Path, dest: Path) -> None:
    model = run_dir / "model"
    missing = [p for p in (model / "config.json", model / "model.safetensors", run_dir / "summary.json")
               if not p.exists()]
    if missing:
        raise SystemExit(f"{run_dir} is not a finished run: missing {', '.join(map(str, missing))}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(model / name, dest / name)
    validation, wall_s = run_history(run_dir / "metrics.jsonl")
    config = json.loads((run_dir / "config.json").read_text())
    training = {"config": config, "summary": json.loads((run_dir / "summary.json").read_text()),
                "validation": validation, "wall_time_s": round(wall_s, 1)}
    base = base_run(config)
    if base:
        training["base"] = base
    (dest / "training.json").write_text(json.dumps(training, indent=1) + "\n")
    print(f"shipped {run_dir} -> {dest} ({wall_s / 3600:.2f} h of training)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    ship(Path(sys.argv[1]), Path(sys.argv[2]))
