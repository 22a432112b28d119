"""A model folder's BatchNorm statistics re-estimated on stored training pairs at their own scale:
`python models/native_bn.py MODEL_DIR DATA_DIR PAIRS DEST_DIR`.

Loads `MODEL_DIR`, runs its first `PAIRS` pairs of the dataset folder `DATA_DIR` through it as one batch with
the BatchNorms re-estimating their statistics (`engine.pruning.recalibrate_bn`: no labels, weights unchanged)
and saves the result to `DEST_DIR` with the same meta plus `"bn_recalibrated": {"data": ..., "pairs": ...}`.
Used to ask whether what scale augmentation changed in a network lies in its BatchNorm statistics.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stereo_studio.data.datasets import open_dataset
from stereo_studio.engine.pruning import recalibrate_bn
from stereo_studio.models.storage import load_model, save_model


def main(model_dir: Path, data_dir: Path, pairs: int, dest: Path) -> None:
    model = load_model(model_dir)
    dataset = open_dataset(str(data_dir), limit=pairs)
    recalibrated = recalibrate_bn(model, [dataset[i] for i in range(len(dataset))])
    source = {"data": str(data_dir), "pairs": len(dataset)}
    save_model(recalibrated, dest, {**model.meta, "bn_recalibrated": source})
    print(f"{model_dir} with BatchNorm statistics of {len(dataset)} pairs of {data_dir} saved to {dest}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
