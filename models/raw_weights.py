"""The raw (not averaged) weights of a finished `--ema` run as a model folder, to measure what the moving
average bought: `python models/raw_weights.py RUN_DIR DEST_DIR`.

Loads `RUN_DIR/model` (the average, as the run saved it), replaces its state with the last checkpoint's raw
`model` weights (loaded with `weights_only=True`) and saves it to `DEST_DIR` with the same meta plus
`"raw": true`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stereo_studio.engine.checkpoint import load_checkpoint
from stereo_studio.models.storage import load_model, save_model


def main(run_dir: Path, dest: Path) -> None:
    model = load_model(run_dir / "model")
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    if "ema" not in state:
        raise SystemExit(f"{run_dir} was not trained with --ema: its saved model holds the raw weights")
    model.load_state_dict(state["model"])
    save_model(model.eval(), dest, {**model.meta, "raw": True, "step": state["step"]})
    print(f"raw weights of step {state['step']} saved to {dest}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
