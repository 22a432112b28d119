"""Are the resampled teachers better on soft images? `python models/blur_diagnostic.py RUN...` (run folders
under models/checkpoints/): each run's EPE on the 20 held-out synthetic pairs (default generator, seed 0), as
drawn and with both views Gaussian-blurred (sigma 0.5 and 0.8 px). Evaluation only; fp32."""

from __future__ import annotations

import dataclasses
import sys

import cv2

from stereo_studio.data.datasets import open_dataset
from stereo_studio.data.sample import StereoSample
from stereo_studio.engine.evaluate import evaluate
from stereo_studio.models.storage import load_matcher
from stereo_studio.progress import drain

SIGMAS = (0.5, 0.8)


def blurred(pairs: list[StereoSample], sigma: float) -> list[StereoSample]:
    """The pairs with both views blurred by a Gaussian of `sigma` px (ground truth unchanged)."""
    return [dataclasses.replace(p, left=cv2.GaussianBlur(p.left, (0, 0), sigma),
                                right=cv2.GaussianBlur(p.right, (0, 0), sigma)) for p in pairs]


def main(runs: list[str]) -> None:
    data = open_dataset("synthetic", limit=20, seed=0)
    sharp = [data[i] for i in range(len(data))]
    sets = {"as drawn": sharp, **{f"blur {s}": blurred(sharp, s) for s in SIGMAS}}
    for run in runs:
        matcher = load_matcher(f"models/checkpoints/{run}/model", precision="fp32")
        epe = {name: round(drain(evaluate(matcher, pairs, warmup=False))["epe"], 3)
               for name, pairs in sets.items()}
        print(run, epe, flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
