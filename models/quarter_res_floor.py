"""Where does the teacher's error arise: in its 1/4-resolution estimate or in the x4 upsampling?
`python models/quarter_res_floor.py [RUN...]` (run folders under models/checkpoints/), on the 20 held-out
synthetic pairs (default generator, seed 0) and Aloe Q, EPE / bad-2 over the valid pixels of:
- the ground truth reduced to 1/4 resolution (each 4 x 4 block's median: the single value closest to it in
  L1) and brought back bilinearly, and by the best any convex upsampling could do from it (each pixel's error
  is its distance to the range of the 3 x 3 coarse neighbours that convex upsampling mixes);
- each run's own 1/4-res disparity (`disp_quarter`) brought back the same two ways, beside its real output
  (its learned convex upsampling), and scored at 1/4 res against the ground truth's 1/4-res map (cells whose
  4 x 4 block is all valid).
If a run's 1/4-res map is as far from the ground truth's as its output is (while the ground truth's own
1/4-res map loses almost nothing through convex upsampling), the coarse estimate is what limits it, not the
upsampling. Evaluation only, fp32."""

from __future__ import annotations

import sys
import warnings

import cv2
import numpy as np
import torch

from stereo_studio.data.datasets import open_dataset
from stereo_studio.models.storage import load_model

FACTOR = 4
ALOE_Q = "../shared/data/middlebury/trainingQ/Aloe"


def quarter_median(gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each FACTOR x FACTOR block's median of its valid values (NaN where a block has none); H, W cropped."""
    h, w = (s // FACTOR * FACTOR for s in gt.shape)
    gt = np.where(valid, gt, np.nan)
    blocks = gt[:h, :w].reshape(h // FACTOR, FACTOR, w // FACTOR, FACTOR).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(h // FACTOR, w // FACTOR, -1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks: filled below
        coarse = np.nanmedian(blocks, axis=-1)
    return fill_nearest(coarse)


def _valid_blocks(valid: np.ndarray) -> np.ndarray:
    """1/4-res cells whose 4 x 4 block is entirely valid ground truth."""
    h, w = (s // FACTOR * FACTOR for s in valid.shape)
    blocks = valid[:h, :w].reshape(h // FACTOR, FACTOR, w // FACTOR, FACTOR)
    return blocks.all(axis=(1, 3))


def fill_nearest(coarse: np.ndarray) -> np.ndarray:
    """NaN cells take their nearest valid cell's value (so a hole does not spread NaN)."""
    holes = ~np.isfinite(coarse)
    if not holes.any():
        return coarse
    _, labels = cv2.distanceTransformWithLabels(holes.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    valid_values = coarse[~holes]
    order = labels[~holes]  # label of each valid cell
    lookup = np.zeros(labels.max() + 1, dtype=coarse.dtype)
    lookup[order] = valid_values
    return lookup[labels]


def bilinear_back(coarse: np.ndarray) -> np.ndarray:
    h, w = coarse.shape
    return cv2.resize(coarse.astype(np.float32), (w * FACTOR, h * FACTOR), interpolation=cv2.INTER_LINEAR)


def convex_floor_error(coarse: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """|gt - clip(gt, lo, hi)| with [lo, hi] the range of each pixel's 3 x 3 coarse neighbourhood."""
    padded = np.pad(coarse, 1, mode="edge")
    h, w = coarse.shape
    stack = np.stack([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
    lo = np.repeat(np.repeat(stack.min(0), FACTOR, 0), FACTOR, 1)
    hi = np.repeat(np.repeat(stack.max(0), FACTOR, 0), FACTOR, 1)
    target = gt[: lo.shape[0], : lo.shape[1]]
    return np.abs(target - np.clip(target, lo, hi))


def run_outputs(model: torch.nn.Module, pair) -> tuple[np.ndarray, np.ndarray]:
    """(full-res output, 1/4-res disparity in full-res pixels) of a model on one pair, fp32."""
    left, right = (torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255 for v in (pair.left, pair.right))
    with torch.inference_mode():
        disp, feats = model(left, right, return_features=True)
    return disp[0, 0].numpy(), feats["disp_quarter"][0].numpy().squeeze()


def scores(pairs: list, runs: list[str]) -> dict[str, tuple[float, float]]:
    errors: dict[str, list[np.ndarray]] = {}
    models = {run: load_model(f"models/checkpoints/{run}/model").eval() for run in runs}

    def add(name: str, err: np.ndarray) -> None:
        errors.setdefault(name, []).append(err)

    for pair in pairs:
        gt, valid = np.asarray(pair.disparity, dtype=np.float32), pair.valid
        coarse = quarter_median(gt, valid)
        h, w = coarse.shape[0] * FACTOR, coarse.shape[1] * FACTOR
        mask = valid[:h, :w]
        add("ground truth, bilinear", np.abs(bilinear_back(coarse) - gt[:h, :w])[mask])
        add("ground truth, best convex", convex_floor_error(coarse, gt)[mask])
        known = _valid_blocks(valid)
        for run, model in models.items():
            out, quarter = run_outputs(model, pair)
            quarter = quarter[: coarse.shape[0], : coarse.shape[1]]
            add(f"{run}, its output", np.abs(out[:h, :w] - gt[:h, :w])[mask])
            add(f"{run}, its 1/4 map bilinear", np.abs(bilinear_back(quarter) - gt[:h, :w])[mask])
            add(f"{run}, its 1/4 map best convex", convex_floor_error(quarter, gt)[mask])
            add(f"{run}, its 1/4 map against the ground truth's, at 1/4 res", np.abs(quarter - coarse)[known])
    out = {}
    for name, parts in errors.items():
        err = np.concatenate(parts)
        out[name] = (round(float(err.mean()), 3), round(float((err > 2).mean() * 100), 2))
    return out


def main(runs: list[str]) -> None:
    sets = {"synthetic (default, 20 pairs, seed 0)": open_dataset("synthetic", limit=20, seed=0),
            "Aloe Q": open_dataset(ALOE_Q)}
    for name, data in sets.items():
        print(name, "EPE / bad-2 %:", flush=True)
        for row, value in scores([data[i] for i in range(len(data))], runs).items():
            print(f"  {row}: {value[0]} / {value[1]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
