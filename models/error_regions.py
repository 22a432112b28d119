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
from stereo_studio.engine.losses import EDGE_JUMP_PX, EDGE_RADIUS_PX
from stereo_studio.models.storage import load_matcher

ALOE_Q = "../shared/data/middlebury/trainingQ/Aloe"


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


def errors(spec: str, pairs: list, gts: list[np.ndarray]) -> np.ndarray:
    """The model's absolute error on every pixel of every pair, flattened (invalid pixels 0)."""
    matcher = load_matcher(spec, precision="fp32")
    out = []
    for pair, gt in zip(pairs, gts, strict=True):
        valid = np.isfinite(gt) & (gt > 0)
        out.append(np.abs(matcher.predict(pair.left, pair.right) - np.where(valid, gt, 0)).ravel())
    return np.concatenate(out)


def table(err: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> list[str]:
    """Markdown rows: per model, EPE / bad-3 overall, then per region EPE / bad-3 / share of its bad-3."""
    total = masks["all"].sum()
    regions_only = {k: v for k, v in masks.items() if k != "all"}
    heads = " | ".join(f"{k} ({100 * v.sum() / total:.0f} %): EPE / bad-3 / share of bad-3"
                       for k, v in regions_only.items())
    lines = [f"| model | all: EPE / bad-3 | {heads} |", "|---|---|" + "---|" * len(regions_only)]
    for spec, e in err.items():
        bad = (e > 3) & masks["all"]
        share = {k: 100 * bad[m].sum() / max(1, bad.sum()) for k, m in regions_only.items()}
        cells = [f"{e[m].mean():.2f} / {100 * bad[m].mean():.1f} % / {share[k]:.0f} %"
                 for k, m in regions_only.items()]
        lines.append(f"| {spec} | {e[masks['all']].mean():.3f} / {100 * bad[masks['all']].mean():.1f} % | "
                     + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default=ALOE_Q,
                        help="a Middlebury folder, or `synthetic`: 20 held-out pairs (seed 0), occlusion "
                             "from the generator")
    args = parser.parse_args()
    data = open_dataset(args.data, limit=20, seed=0) if args.data == "synthetic" else open_dataset(args.data)
    pairs = [data[i] for i in range(len(data))]
    gts = [p.disparity.astype(np.float32) for p in pairs]
    per_pair = []
    for pair, gt in zip(pairs, gts, strict=True):
        band = min(64, int(np.nanmax(np.where(np.isfinite(gt), gt, 0))) + 1)
        masks = regions(gt, band)
        hidden = pair.meta["occlusion"] if "occlusion" in pair.meta else occluded(gt)
        near = masks["near depth edges"]
        masks.update({"occluded": masks["all"] & hidden, "near edges, visible": near & ~hidden,
                      "elsewhere, visible": masks["all"] & ~near & ~hidden})
        per_pair.append(masks)
    masks = {k: np.concatenate([m[k].ravel() for m in per_pair]) for k in per_pair[0]}
    err = {spec: errors(spec, pairs, gts) for spec in args.models}
    by_place = {k: masks[k] for k in ("all", "near depth edges", "left band", "rest")}
    by_occlusion = {k: masks[k] for k in ("all", "occluded", "near edges, visible", "elsewhere, visible")}
    print(f"{args.data}, {len(pairs)} pair(s)\n")
    print("\n".join(table(err, by_place)) + "\n")
    print("\n".join(table(err, by_occlusion)))


if __name__ == "__main__":
    main()
