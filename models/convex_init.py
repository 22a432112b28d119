"""A trained student given convex upsampling, starting exactly where it was:
`python models/convex_init.py MODEL_DIR DEST_DIR`.

Builds `MODEL_DIR`'s architecture with `upsample="convex"`, loads its weights (only the new 1x1 mask conv is
missing; it starts as bilinear interpolation, `layers.bilinear_mask_logits`), checks that both networks give
the same disparity on a random pair (max difference below 1e-3 px) and saves the result to `DEST_DIR` with the
source's meta plus `"convex_from": MODEL_DIR`. Unpruned students only (a pruned one is pruned afterwards).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from stereo_studio.models.registry import build_model
from stereo_studio.models.storage import load_model, pruned_shapes, save_model

TOLERANCE_PX = 1e-3


def main(model_dir: Path, dest: Path) -> None:
    source = load_model(model_dir)
    if source.config.get("arch") != "student" or pruned_shapes(source):
        raise SystemExit(f"{model_dir}: an unpruned student is needed")
    convex = build_model({**source.config, "upsample": "convex"}).eval()
    keys = convex.load_state_dict(source.state_dict(), strict=False)
    if keys.unexpected_keys or set(keys.missing_keys) != {"up_mask.weight", "up_mask.bias"}:
        raise SystemExit(f"missing {keys.missing_keys}, unexpected {keys.unexpected_keys}")
    left, right = torch.rand(2, 1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((source(left, right) - convex(left, right)).abs().max())
    if diff > TOLERANCE_PX:
        raise SystemExit(f"the convex network differs by {diff:.2g} px from the source: not a faithful start")
    save_model(convex, dest, {**source.meta, "convex_from": str(model_dir)})
    print(f"{model_dir} with convex upsampling (max difference {diff:.1e} px) saved to {dest}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
