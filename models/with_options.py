"""A trained student given architecture options that start as the identity:
`python models/with_options.py MODEL_DIR DEST_DIR OPTION=VALUE...` (`upsample=convex`, `refine_warp=true`).

Builds `MODEL_DIR`'s architecture with the options, loads its weights (only the options' new parameters may be
missing; they start so that the network computes what it did: the convex upsampling as bilinear, the warping
error's conv at zero), checks that both networks give the same disparity on a random pair (max difference
below 1e-3 px) and saves the result to `DEST_DIR` with the source's meta plus `"options_from": MODEL_DIR`.
Unpruned students only (a pruned one is pruned afterwards).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from stereo_studio.models.registry import build_model
from stereo_studio.models.storage import load_model, pruned_shapes, save_model

TOLERANCE_PX = 1e-3


def main(model_dir: Path, dest: Path, options: dict[str, object]) -> None:
    source = load_model(model_dir)
    if source.config.get("arch") != "student" or pruned_shapes(source):
        raise SystemExit(f"{model_dir}: an unpruned student is needed")
    grown = build_model({**source.config, **options}).eval()
    keys = grown.load_state_dict(source.state_dict(), strict=False)
    new = set(grown.state_dict()) - set(source.state_dict())
    if keys.unexpected_keys or set(keys.missing_keys) != new:
        raise SystemExit(f"weights do not fit: missing {keys.missing_keys}, extra {keys.unexpected_keys}")
    left, right = torch.rand(2, 1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((source(left, right) - grown(left, right)).abs().max())
    if diff > TOLERANCE_PX:
        raise SystemExit(f"the new network differs by {diff:.2g} px from the source: not a faithful start")
    save_model(grown, dest, {**source.meta, "options_from": str(model_dir), "options": options})
    print(f"{model_dir} with {options} (new: {sorted(new)}; max difference {diff:.1e} px) saved to {dest}")


def parse(option: str) -> tuple[str, object]:
    """KEY=VALUE, VALUE read as JSON when it parses (true, 3) and as a string otherwise (convex)."""
    key, sep, value = option.partition("=")
    if not sep:
        raise SystemExit(f"options are KEY=VALUE, got {option!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), dict(parse(o) for o in sys.argv[3:]))
