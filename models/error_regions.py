"""Where each model's errors lie on a real pair: `python models/error_regions.py MODEL... [--data DIR]`.

MODEL: `sgbm`, a bundled name or a model folder. DATA: a Middlebury folder (default Aloe Q). Every valid
ground-truth pixel falls in one region: near a depth edge (the ground truth jumps by more than 1 px within
3 px), the left band a matcher cannot see in the right view (max disparity of the pair's calibration, `ndisp`
capped at 64), or the rest. For each region: its share of the pixels, EPE and bad-3 there, and its share of
the model's bad-3 pixels. A second table splits the pixels into those occluded in the right view (derived
from the ground truth: a nearer pixel of the same row lands on the same right-view column), the visible ones
near depth edges and the visible rest. Evaluation only, fp32; the pair is never trained on.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from stereo_studio.data.datasets import open_dataset
from stereo_studio.models.storage import load_matcher

ALOE_Q = "../shared/data/middlebury/trainingQ/Aloe"
EDGE_JUMP_PX = 1.0  # a depth edge: the ground truth changes by more than this per pixel
EDGE_RADIUS_PX = 3


def regions(gt: np.ndarray, band: int) -> dict[str, np.ndarray]:
    """Boolean masks over the valid pixels of `gt`: near a depth edge, the left band, the rest."""
    valid = np.isfinite(gt) & (gt > 0)
    g = np.where(valid, gt, 0).astype(np.float32)
    dx, dy = (np.abs(cv2.Sobel(g, cv2.CV_32F, *d, ksize=3)) / 8 for d in ((1, 0), (0, 1)))
    jump = dx + dy
    size = 2 * EDGE_RADIUS_PX + 1
    edge = cv2.dilate((jump > EDGE_JUMP_PX).astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    left = np.zeros_like(valid)
    left[:, :band] = True
    return {"all": valid, "near depth edges": valid & edge, "left band": valid & left & ~edge,
            "rest": valid & ~edge & ~left}


def occluded(gt: np.ndarray) -> np.ndarray:
    """Left-view pixels hidden in the right view: out of view (x - d < 0) or behind a nearer pixel of the same
    row landing within half a pixel of the same right-view column."""
    valid = np.isfinite(gt) & (gt > 0)
    g = np.where(valid, gt, 0).astype(np.float32)
    height, width = g.shape
    out = np.zeros_like(valid)
    for y in range(height):
        target = np.round(2 * (np.arange(width) - g[y])).astype(int)  # half-pixel bins of x - d
        nearest = {}
        for x in np.argsort(-g[y], kind="stable"):  # nearest first
            if not valid[y, x]:
                continue
            bins = (target[x] - 1, target[x], target[x] + 1)
            if any(nearest.get(b, -1.0) > g[y, x] + 0.5 for b in bins):
                out[y, x] = True
            else:
                nearest[target[x]] = max(nearest.get(target[x], -1.0), float(g[y, x]))
        out[y] |= valid[y] & (np.arange(width) - g[y] < 0)
    return out


def report(spec: str, left: np.ndarray, right: np.ndarray, gt: np.ndarray,
           masks: dict[str, np.ndarray]) -> str:
    """One markdown row group: per region EPE / bad-3 and share of the model's bad-3 pixels."""
    pred = load_matcher(spec, precision="fp32").predict(left, right)
    err = np.abs(pred - np.where(masks["all"], gt, 0))
    bad = (err > 3) & masks["all"]
    cells = []
    for name, mask in masks.items():
        if name == "all":
            continue
        share = 100 * bad[mask].sum() / max(1, bad.sum())
        cells.append(f"{err[mask].mean():.2f} / {100 * bad[mask].mean():.1f} % / {share:.0f} %")
    whole = f"{err[masks['all']].mean():.3f} / {100 * bad[masks['all']].mean():.1f} %"
    return f"| {spec} | {whole} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default=ALOE_Q)
    args = parser.parse_args()
    pair = open_dataset(args.data)[0]
    gt = pair.disparity.astype(np.float32)
    band = min(64, int(np.nanmax(np.where(np.isfinite(gt), gt, 0))) + 1)
    masks = regions(gt, band)
    share = {k: 100 * v.sum() / masks["all"].sum() for k, v in masks.items() if k != "all"}
    print(f"{args.data}: pixels near depth edges {share['near depth edges']:.0f} %, left band ({band} px) "
          f"{share['left band']:.0f} %, rest {share['rest']:.0f} %\n")
    heads = " | ".join(f"{k}: EPE / bad-3 / share of bad-3" for k in share)
    print(f"| model | all: EPE / bad-3 | {heads} |")
    print("|---|---|" + "---|" * len(share))
    rows = {spec: report(spec, pair.left, pair.right, gt, masks) for spec in args.models}
    for row in rows.values():
        print(row, flush=True)
    hidden = occluded(gt)
    near = masks["near depth edges"]
    split = {"all": masks["all"], "occluded": masks["all"] & hidden, "near edges, visible": near & ~hidden,
             "elsewhere, visible": masks["all"] & ~near & ~hidden}
    share = {k: 100 * v.sum() / masks["all"].sum() for k, v in split.items() if k != "all"}
    print(f"\noccluded in the right view (from the ground truth): {share['occluded']:.1f} % of the valid "
          "pixels\n")
    heads = " | ".join(f"{k} ({v:.0f} %): EPE / bad-3 / share of bad-3" for k, v in share.items())
    print(f"| model | all: EPE / bad-3 | {heads} |")
    print("|---|---|" + "---|" * len(share))
    for spec in args.models:
        print(report(spec, pair.left, pair.right, gt, split), flush=True)


if __name__ == "__main__":
    main()
